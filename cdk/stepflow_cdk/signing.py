"""The key that signs StepFlow's internal messages: one Secrets Manager secret.

Secrets Manager rather than an SSM SecureString: CloudFormation generates the
value (it never appears in the template, a parameter or a deploy log), the
secret's versions carry the rotation (``AWSCURRENT`` signs, ``AWSPREVIOUS`` is
still accepted, and their ``VersionId`` is the key id every message names),
and read access is granted per function on the one secret. See
docs/security-messages.md.
"""

from __future__ import annotations

from aws_cdk import aws_iam as iam
from aws_cdk import aws_secretsmanager as secretsmanager
from cdk_nag import NagSuppressions
from constructs import Construct

SECRET_ENV_VAR = "STEPFLOW_SIGNING_SECRET_ARN"
"""The variable :class:`stepflow.aws.settings.Settings` reads the secret's ARN from."""

KEY_CHARACTERS = 64
"""Generated key length: 64 letters and digits, about 380 bits."""


class SigningKey(Construct):
    """``secret``: the message-signing key; :meth:`grant` gives one function read access."""

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.secret = secretsmanager.Secret(
            self,
            "MessageKey",
            description="StepFlow: HMAC key of the messages between its functions",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                password_length=KEY_CHARACTERS,
                exclude_punctuation=True,
                include_space=False,
            ),
        )
        NagSuppressions.add_resource_suppressions(
            self.secret,
            [
                {
                    "id": "AwsSolutions-SMG4",
                    "reason": "Rotated on demand (docs/security-messages.md): functions accept "
                    "the current, previous and staged versions, so a rotation needs no "
                    "rotation Lambda and drops no message in flight.",
                }
            ],
        )

    def grant(self, grantee: iam.IGrantable) -> None:
        """Let ``grantee`` read the key (``GetSecretValue`` on this secret only)."""
        self.secret.grant_read(grantee)
