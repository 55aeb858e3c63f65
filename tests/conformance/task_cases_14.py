"""The 14 AWS-recorded dev Task cases of issue 14: nested executions and ItemReader/ResultWriter.

Each is set up as its LocalStack test (localstack/localstack,
``tests/aws/services/stepfunctions/v2/``) set it up on AWS, re-created from the
test's facts:

- the **target state machines** of the ``states:startExecution`` cases, registered
  in the case's :class:`~stepflow.testing.WorkflowEnvironment` (``env.register``)
  under the name the recorded input's ``<ArnPart_0idx>`` / ``<resource:1>`` stands
  for: one that fails with ``SomeFailure``, one that returns
  ``{"Arg1": "argument1"}``, and ``SQS_SEND_MESSAGE_AND_WAIT`` (sends the parent's
  task token to the queue, then waits 60 s; the test's worker answers the token);
- the **S3 objects** of the ItemReader cases in moto's ``bucket-name``: a JSON list of
  three ``verdict``/``statement_date``/``statement_source`` records, the same
  file holding an object instead of a list, and a CSV with a ``Col1,Col2`` header
  and four rows;
- the ResultWriter's ``result-bucket``.

A distributed Map reads and writes S3 through the environment's ``aws=`` clients
(the case's moto), not through a Task integration: those cases reach no
integration (``calls=()``).
"""

from __future__ import annotations

import json
from typing import Any

from tests.conformance.task_harness import (
    ACCOUNT,
    REGION,
    CaseContext,
    Check,
    Setup,
    Spec,
    machine_name,
)
from tests.conformance.task_standins import sqs_success

BUCKET = "bucket-name"
"""The bucket every ItemReader case reads (the recording's name for the test's bucket)."""

RESULT_BUCKET = "result-bucket"
"""The ResultWriter case's bucket (named in its definition)."""

NO_SUCH_SUFFIX = "-no-such-machine"
"""What ``<random_arn_part>`` becomes: the target's ARN with it names no machine."""


# -- fixtures -----------------------------------------------------------------------------


def statements(count: int = 3) -> list[dict[str, str]]:
    """The JSON file's items: ``count`` (at most 3) fact-check records, as the test wrote them."""
    rows = (
        ("true", "6/11/2008", "speech"),
        ("false", "6/7/2022", "television"),
        ("mostly-true", "5/18/2016", "news"),
    )
    keys = ("verdict", "statement_date", "statement_source")
    return [dict(zip(keys, row, strict=True)) for row in rows[:count]]


def csv_rows(rows: int = 4) -> bytes:
    """The CSV file: header ``Col1,Col2``, then ``Value1,Value2`` ... (``rows`` rows)."""
    lines = ["Col1,Col2"]
    lines += [f"Value{2 * i + 1},Value{2 * i + 2}" for i in range(rows)]
    return ("\n".join(lines) + "\n").encode()


def _objects(**objects: bytes) -> Setup:
    """``bucket-name`` holding ``objects`` (keys with ``_`` for ``.``: ``file_json``)."""

    def setup(case: CaseContext) -> dict[str, str]:
        s3 = case.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        for key, body in objects.items():
            s3.put_object(Bucket=BUCKET, Key=key.replace("_", "."), Body=body)
        return {}

    return setup


JSON_FILE = _objects(file_json=json.dumps(statements()).encode())
NOT_A_LIST = _objects(file_json=json.dumps({"Hello": "world"}).encode())
CSV_FILE = _objects(file_csv=csv_rows())


def _result_bucket(case: CaseContext) -> dict[str, str]:
    case.client("s3").create_bucket(Bucket=RESULT_BUCKET)
    return {}


def _queue(case: CaseContext) -> dict[str, str]:
    url: str = case.client("sqs").create_queue(QueueName="conform-queue")["QueueUrl"]
    case.values["queue_url"] = url
    return {"sqs_queue_url": url}


def _trusted_role(case: CaseContext) -> dict[str, str]:
    """The role the Task's ``Credentials`` names (moto's IAM; the other account is ours)."""
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "states.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    role = case.client("iam").create_role(
        RoleName="conform-trusted-role", AssumeRolePolicyDocument=json.dumps(trust)
    )
    # StepFlow hosts one account: the test's second account is the same one here.
    return {"<trusted_role_arn>": role["Role"]["Arn"], "<secondary_test_aws_account_id>": ACCOUNT}


# -- target state machines ------------------------------------------------------------------


def fails_with_some_failure() -> dict[str, Any]:
    """A machine that fails with ``SomeFailure`` (the delegate-failure test's target)."""
    fail = {
        "Type": "Fail",
        "Error": "SomeFailure",
        "Cause": "This state machines raises a 'SomeFailure' failure.",
    }
    return {"StartAt": "Fail", "States": {"Fail": fail}}


def returns_argument() -> dict[str, Any]:
    """A machine whose output is ``{"Arg1": "argument1"}`` (the cross-account test's target)."""
    result = {"Type": "Pass", "Result": {"Arg1": "argument1"}, "End": True}
    return {"StartAt": "Return", "States": {"Return": result}}


def sends_token_and_waits() -> dict[str, Any]:
    """``SQS_SEND_MESSAGE_AND_WAIT``: sends ``{Message, TaskToken}`` to the queue, waits 60 s."""
    body = {"Message": "SQS_SEND_MESSAGE_AND_WAIT", "TaskToken.$": "$.TaskToken"}
    send = {
        "Type": "Task",
        "Resource": "arn:aws:states:::sqs:sendMessage",
        "Parameters": {"QueueUrl.$": "$.QueueUrl", "MessageBody": body},
        "Next": "Wait",
    }
    wait = {"Type": "Wait", "Seconds": 60, "End": True}
    return {"StartAt": "Send", "States": {"Send": send, "Wait": wait}}


def passes() -> dict[str, Any]:
    """A machine that returns its input (the target the no-such-ARN test misnames)."""
    return {"StartAt": "Pass", "States": {"Pass": {"Type": "Pass", "End": True}}}


# -- what the oracle cannot see --------------------------------------------------------------
# Every one of the 14 recordings has placeholders, so the oracle compares the status and
# the error name only: these checks compare what is known exactly (the items read, the
# child's describe object, the cause, the objects written).


def _output(result: dict[str, Any]) -> Any:
    return json.loads(result["output"]) if result.get("output") is not None else None


def outputs(expected: Any) -> Check:
    """The execution's output is ``expected``."""

    def check(_case: CaseContext, result: dict[str, Any]) -> str | None:
        got = _output(result)
        return None if got == expected else f"the output is {got!r}, not {expected!r}"

    return check


def caused(cause: str, *, prefix: bool = False) -> Check:
    """The execution failed with ``cause`` (or a cause starting with it)."""

    def check(_case: CaseContext, result: dict[str, Any]) -> str | None:
        got = str(result.get("cause"))
        ok = got.startswith(cause) if prefix else got == cause
        return None if ok else f"the cause is {got[:300]!r}, not {cause!r}"

    return check


def described(**fields: Any) -> Check:
    """The ``.sync`` task's describe object (the output, or a failure's cause) has ``fields``."""

    def check(_case: CaseContext, result: dict[str, Any]) -> str | None:
        text = result.get("output") if result["status"] == "SUCCEEDED" else result.get("cause")
        try:
            got = json.loads(str(text))
        except ValueError:
            return f"no describe object: {str(text)[:300]!r}"
        wrong = {
            k: got.get(k) for k, v in fields.items() if not isinstance(got, dict) or got.get(k) != v
        }
        return None if not wrong else f"the child's describe object has {wrong}, not {fields}"

    return check


def batched(items: list[dict[str, str]]) -> Check:
    """One batch of ``items`` with a ``BatchInput.BatchTimestamp`` (the state's entered time)."""

    def check(_case: CaseContext, result: dict[str, Any]) -> str | None:
        got = _output(result)
        if not (isinstance(got, list) and len(got) == 1 and isinstance(got[0], dict)):
            return f"the output is {got!r}, not one batch"
        stamp = got[0].get("BatchInput", {}).get("BatchTimestamp")
        if got[0].get("Items") != items or not isinstance(stamp, str):
            return f"the batch is {got[0]!r}"
        return None

    return check


def wrote_results(prefix: str, label: str, inputs: list[Any]) -> Check:
    """The output names the manifest under ``prefix/<map run id>/`` (AWS's: the bucket,
    the run's ARN, the result files), which holds it and one ``SUCCEEDED_0.json`` with
    each input's result once."""

    def check(case: CaseContext, result: dict[str, Any]) -> str | None:
        got = _output(result)
        if not isinstance(got, dict) or set(got) != {"MapRunArn", "ResultWriterDetails"}:
            return f"the output is {got!r}, not MapRunArn and ResultWriterDetails"
        run_arn = str(got["MapRunArn"])
        run_id = run_arn.rsplit(":", 1)[-1]
        owner = f"arn:aws:states:{REGION}:{ACCOUNT}:mapRun:conform/{label}:"
        manifest = f"{prefix}/{run_id}/manifest.json"
        details = {"Bucket": RESULT_BUCKET, "Key": manifest}
        if not run_arn.startswith(owner) or got["ResultWriterDetails"] != details:
            return f"the output is {got!r}"
        s3 = case.client("s3")
        listed = s3.list_objects_v2(Bucket=RESULT_BUCKET).get("Contents", [])
        keys = sorted(o["Key"] for o in listed)
        succeeded = f"{prefix}/{run_id}/SUCCEEDED_0.json"
        if keys != sorted([manifest, succeeded]):
            return f"the result bucket holds {keys}, not {manifest} and {succeeded}"
        written = json.loads(s3.get_object(Bucket=RESULT_BUCKET, Key=manifest)["Body"].read())
        if written.get("MapRunArn") != run_arn or written.get("DestinationBucket") != RESULT_BUCKET:
            return f"the manifest is {written!r}: its MapRunArn is the run's ARN on AWS"
        body = s3.get_object(Bucket=RESULT_BUCKET, Key=succeeded)["Body"].read()
        entries = json.loads(body)
        if not isinstance(entries, list) or not all(
            isinstance(e, dict) and isinstance(e.get("Output"), str) for e in entries
        ):
            return f"SUCCEEDED_0.json is {body[:300]!r}, not entries with Output as JSON text"
        outs = sorted(json.dumps(json.loads(e["Output"])) for e in entries)
        expected = sorted(json.dumps(i) for i in inputs)
        return None if outs == expected else f"SUCCEEDED_0.json has outputs {outs}"

    return check


# -- the 14 cases ---------------------------------------------------------------------------

_MAP = "scenarios/test_base_scenarios.py::TestBaseScenarios::"
_CROSS = (
    "credentials/test_credentials_base.py::TestCredentialsBase::"
    "test_cross_account_states_start_sync_execution"
)
_CROSS_SPEC = Spec(
    setup=_trusted_role,
    machines={"<ArnPart_0idx>": returns_argument()},
    check=described(
        Status="SUCCEEDED",
        Name="TestTaskTargetWithCredentials",
        Input='"InputFromTrustedAccount"',
        Output='{"Arg1":"argument1"}',
    ),
)
_CSV = [{"Col1": f"Value{2 * i + 1}", "Col2": f"Value{2 * i + 2}"} for i in range(4)]
_NO_SUCH = (
    f"State Machine Does Not Exist: 'arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:"
    f"{machine_name('<ArnPart_0idx>')}{NO_SUCH_SUFFIX}' (Service: AWSStepFunctions; "
    "Status Code: 400; Error Code: StateMachineDoesNotExist; Request ID: "
)


def _reader(setup: Setup, check: Check) -> Spec:
    return Spec(setup=setup, calls=(), check=check)


SPECS_14: dict[str, Spec] = {
    "assign/test_assign_reference_variables.py::TestAssignReferenceVariables::"
    "test_reference_in_map_state_max_items_path[MAP_STATE_REFERENCE_IN_MAX_ITEMS_PATH]": _reader(
        JSON_FILE, outputs(statements(2))
    ),
    "callback/test_callback.py::TestCallback::test_start_execution_sync_delegate_failure": Spec(
        machines={"<ArnPart_0idx>": fails_with_some_failure()},
        check=described(Status="FAILED", Error="SomeFailure", Name="TestStartTarget", Input="{}"),
    ),
    "callback/test_callback.py::TestCallback::test_sync_with_task_token": Spec(
        setup=_queue,
        machines={"<resource:1>": sends_token_and_waits()},
        names={"<resource:3>": "TestStartTarget"},
        exact=("sqs_queue_url",),
        worker=sqs_success,
        polls=True,
        check=outputs("SQS_SEND_MESSAGE_AND_WAIT"),
    ),
    f"{_CROSS}[SFN_START_EXECUTION_SYNC_ROLE_ARN_PATH_CONTEXT]": _CROSS_SPEC,
    f"{_CROSS}[SFN_START_EXECUTION_SYNC_ROLE_ARN_VARIABLE]": _CROSS_SPEC,
    "error_handling/test_task_service_sfn.py::TestTaskServiceSfn::"
    "test_start_execution_no_such_arn": Spec(
        machines={"<ArnPart_0idx>": passes()},
        names={"<random_arn_part>": NO_SUCH_SUFFIX},
        check=caused(_NO_SUCH, prefix=True),
    ),
    f"{_MAP}test_map_item_reader_base_json": _reader(JSON_FILE, outputs(statements())),
    f"{_MAP}test_map_item_reader_json_no_json_list_object": _reader(
        NOT_A_LIST, caused("Attempting to map over non-iterable node.")
    ),
    f"{_MAP}test_map_item_reader_csv_max_items_paths[-1]": _reader(
        CSV_FILE, caused("field MaxItems must be positive")
    ),
    f"{_MAP}test_map_item_reader_csv_max_items_paths[0]": _reader(CSV_FILE, outputs(_CSV)),
    f"{_MAP}test_map_item_reader_csv_max_items_paths[2]": _reader(CSV_FILE, outputs(_CSV[:2])),
    f"{_MAP}test_map_item_reader_csv_max_items_paths[100000001]": _reader(CSV_FILE, outputs(_CSV)),
    f"{_MAP}test_map_state_result_writer": Spec(
        setup=_result_bucket,
        calls=(),
        check=wrote_results("mapJobs", "TestMap", ["Hello", "World"]),
    ),
    f"{_MAP}test_map_item_batching_base_json_max_per_batch_jsonata": _reader(
        JSON_FILE, batched(statements(2))
    ),
}
"""The 14 cases with nested executions or an ItemReader/ResultWriter, keyed as
:data:`tests.conformance.task_cases.SPECS`."""
