"""What ``stepflow local`` prints under its first line: how to call the stack.

The first line (``StepFlow local stack: <API URL>  (AWS services: <URL>)``) is
the command's own and stays stable for scripts. The lines here show the AWS CLI
and boto3 calls, and the one setting StartSyncExecution and TestState need:
botocore's model gives both a ``sync-`` host prefix, so against
``http://127.0.0.1:<port>`` a client calls ``sync-127.0.0.1``, which does not
resolve. The AWS SDKs' documented setting turns the prefix off: the
``AWS_DISABLE_HOST_PREFIX_INJECTION=true`` environment variable or
``disable_host_prefix_injection = true`` in a profile of the shared config
file (botocore and the AWS CLI read both since early 2025), or
``Config(inject_host_prefix=False)`` on a boto3 client, which
:func:`stepflow.client` and :meth:`LocalStack.stepfunctions` already set.
"""

from __future__ import annotations

from collections.abc import Iterable

HOST_PREFIX_VARIABLE = "AWS_DISABLE_HOST_PREFIX_INJECTION"
"""The AWS SDKs' environment variable that stops the ``sync-`` host prefix."""


def banner_lines(url: str, worker_commands: Iterable[str] = ()) -> list[str]:
    """The lines printed after the first: the console, calls against ``url``, the workers."""
    return [
        f"  console: {url}/console/",
        f"  aws stepfunctions list-state-machines --endpoint-url {url}",
        f"  boto3.client('stepfunctions', endpoint_url='{url}')",
        f"  start-sync-execution and test-state: export {HOST_PREFIX_VARIABLE}=true",
        f"    (or boto3 config=Config(inject_host_prefix=False), or stepflow.client('{url}'))",
        *(f"  {line}" for line in worker_commands),
    ]
