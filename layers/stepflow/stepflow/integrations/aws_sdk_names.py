"""How Step Functions names the services of ``aws-sdk:<service>:<action>``, and botocore's.

Step Functions names an SDK service by the AWS SDK for Java v2 client package
(``sfn``, ``eventbridge``, ``cloudwatchlogs``), which is derived from the
service's ``serviceId``; boto3 names it by its endpoint prefix (``stepfunctions``,
``events``, ``logs``). For most services the two agree once hyphens are
dropped (``secretsmanager``, ``rdsdata`` for ``rds-data``); :data:`RENAMED`
lists the others. Errors are prefixed with the Java client's name
(``Sfn.InvalidTokenException``, ``DynamoDb.ResourceNotFoundException``), which
:func:`error_prefix` derives from the ``serviceId`` the same way.

Nothing here loads botocore: the service list is read on first use.
"""

from __future__ import annotations

import re
from functools import lru_cache

RENAMED: dict[str, str] = {
    "applicationdiscovery": "discovery",
    "cloudwatchevents": "events",
    "cloudwatchlogs": "logs",
    "cognitoidentityprovider": "cognito-idp",
    "costandusagereport": "cur",
    "costexplorer": "ce",
    "databasemigration": "dms",
    "directory": "ds",
    "directoryservicedata": "ds-data",
    "elasticloadbalancing": "elb",
    "elasticloadbalancingv2": "elbv2",
    "elasticsearch": "es",
    "eventbridge": "events",
    "iotdataplane": "iot-data",
    "iotjobsdataplane": "iot-jobs-data",
    "lexmodelbuilding": "lex-models",
    "lexmodelsv2": "lexv2-models",
    "lexruntimev2": "lexv2-runtime",
    "marketplacemetering": "meteringmarketplace",
    "migrationhub": "mgh",
    "pinpointsmsvoice": "sms-voice",
    "serverlessapplicationrepository": "serverlessrepo",
    "sfn": "stepfunctions",
    "simpledb": "sdb",
}
"""Step Functions service names that are not the boto3 name without hyphens.

The Java v2 package is the ``serviceId`` in lower case without spaces and
without a trailing ``Service`` (``Database Migration Service`` gives
``databasemigration``). tests/unit/test_aws_sdk_names.py derives this table
from botocore's models and checks it.
"""

_SUFFIX = re.compile(r"\s+Service$")


def java_package(service_id: str) -> str:
    """The SDK for Java v2 package of a botocore ``serviceId`` (Step Functions' service name)."""
    return re.sub(r"[^a-z0-9]", "", _SUFFIX.sub("", service_id).lower())


def error_prefix(service_id: str) -> str:
    """The Java v2 client name of a ``serviceId``: ``DynamoDB`` -> ``DynamoDb``, ``SFN`` -> ``Sfn``.

    Words split at spaces, lower-to-upper case changes and acronym ends
    (``RDS Data`` -> ``RdsData``, ``EC2`` -> ``Ec2``, ``SESv2`` -> ``SesV2``),
    each capitalised.
    """
    text = _SUFFIX.sub("", service_id).replace("IoT", "Iot")
    text = re.sub(r"([A-Za-z])v(\d)", r"\1 V\2", text)
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", text)
    text = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1 \2", text)
    words = re.sub(r"[^A-Za-z0-9]+", " ", text).split()
    return "".join(word[:1].upper() + word[1:].lower() for word in words)


@lru_cache(maxsize=1)
def _boto_names() -> dict[str, str]:
    """Step Functions name -> boto3 name, for every service botocore has a model of."""
    import botocore.session

    available = botocore.session.get_session().get_available_services()
    renamed = set(RENAMED.values())
    names = {name.replace("-", ""): name for name in available if name not in renamed}
    names.update({sfn: boto for sfn, boto in RENAMED.items() if boto in available})
    return names


def boto_name(service: str) -> str | None:
    """The boto3 client name of Step Functions' ``service`` (None: botocore has no such service)."""
    return _boto_names().get(service)


def operation_name(action: str) -> str:
    """The API operation of a Step Functions action: ``getObject`` -> ``GetObject``."""
    return action[:1].upper() + action[1:]
