"""The 71 AWS-recorded dev Task cases, each set up as its test.

Each case of ``../shared/conformance/aws-recorded-dev.jsonl`` that calls a resource
(``needs``) has a :class:`Spec`: the 57 of issue 13 (integrations) here, the 14 of
issue 14 (nested executions, ItemReader/ResultWriter) in
:mod:`tests.conformance.task_cases_14`. A spec says what its LocalStack test (localstack/localstack,
``tests/aws/services/stepfunctions/v2/``) creates before the run, which Lambda
functions it deploys (re-implemented in :mod:`tests.conformance.task_standins`), and
how it answers ``.waitForTaskToken`` tasks. :func:`run_case` runs one on moto
(:mod:`tests.conformance.task_harness`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from stepflow.engine.resources import describe
from stepflow.integrations import Registry

from tests.conformance import task_standins as fn
from tests.conformance.task_cases_14 import SPECS_14
from tests.conformance.task_harness import CaseContext, Setup, Spec, run_spec
from tests.conformance.task_standins import (
    ApiStandIn,
    RestApi,
    StandIn,
    sns_success,
    sqs_empty_failure,
    sqs_failure,
    sqs_success,
)

PREFIX = "tests/aws/services/stepfunctions/v2/"
"""Every case id starts so; :data:`SPECS` is keyed by the rest."""

LAMBDA = "arn:aws:states:::lambda:invoke"


def _fixed(standin: StandIn) -> Callable[[CaseContext], StandIn]:
    return lambda _case: standin


ID, BYTES, RAISE, LARGE = (
    _fixed(fn.identity),
    _fixed(fn.return_bytes_str),
    _fixed(fn.raise_exception),
    _fixed(fn.large_output_string),
)


def _wait_60(case: CaseContext) -> StandIn:
    return fn.waits(60, case.sleep)


# -- resources ----------------------------------------------------------------------------


def _queue(case: CaseContext, *keys: str) -> dict[str, str]:
    url = case.client("sqs").create_queue(QueueName="conform-queue")["QueueUrl"]
    case.values["queue_url"] = url
    return dict.fromkeys(keys, url)


def _topic(case: CaseContext) -> str:
    arn: str = case.client("sns").create_topic(Name="conform-topic")["TopicArn"]
    return arn


def _topic_named(case: CaseContext) -> dict[str, str]:
    return {"<resource:1>": _topic(case).rsplit(":", 1)[-1]}


def _deleted_topic(case: CaseContext) -> dict[str, str]:
    arn = _topic(case)
    case.client("sns").delete_topic(TopicArn=arn)
    return {"<resource:1>": arn.rsplit(":", 1)[-1]}


def _topic_to_queue(case: CaseContext) -> dict[str, str]:
    arn = _topic(case)
    _queue(case)
    url, sqs = case.values["queue_url"], case.client("sqs")
    queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    endpoint = queue_arn["Attributes"]["QueueArn"]
    case.client("sns").subscribe(TopicArn=arn, Protocol="sqs", Endpoint=endpoint)
    return {"<resource:1>": arn.rsplit(":", 1)[-1]}


def _table(case: CaseContext, create: bool = True) -> dict[str, str]:
    name = "conform-table"
    if create:
        case.client("dynamodb").create_table(
            TableName=name,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
    return {"<test-table>": name}


def _bucket(case: CaseContext, **objects: bytes) -> dict[str, str]:
    s3 = case.client("s3")
    s3.create_bucket(Bucket="bucket-name")
    for key, body in objects.items():
        s3.put_object(Bucket="bucket-name", Key=key, Body=body)
    return {}


def _object(body: bytes) -> Setup:
    """The bucket with ``file_key`` holding ``body`` (the test's parametrised object)."""
    return lambda case: _bucket(case, file_key=body)


def _events_to_queue(case: CaseContext) -> dict[str, str]:
    detail_type = "conform-detail-type"
    url = _queue(case, "<sqs_queue_url>")["<sqs_queue_url>"]
    sqs, events = case.client("sqs"), case.client("events")
    queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    events.put_rule(
        Name="conform-rule",
        EventBusName="default",
        EventPattern=json.dumps({"detail-type": [detail_type]}),
    )
    target = {"Id": "conform-target", "Arn": queue_arn["Attributes"]["QueueArn"]}
    events.put_targets(Rule="conform-rule", Targets=[target])
    return {"<detail-type>": detail_type, "<sqs_queue_url>": url}


def _role(case: CaseContext) -> dict[str, str]:
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
    return {"<trusted_role_arn>": role["Role"]["Arn"]}


def _api(query_template: bool = False) -> Setup:
    def setup(case: CaseContext) -> dict[str, str]:
        assert case.api is not None, "an API Gateway case runs with an ApiStandIn"
        case.api.api = RestApi(query_template=query_template)
        return {"<api-endpoint>": case.api.endpoint}

    return setup


# -- the 57 cases -------------------------------------------------------------------------

_SQS: dict[str, Any] = {
    "setup": lambda c: _queue(c, "<sqs_queue_url>", "sqs_queue_url"),
    "exact": ("sqs_queue_url",),
}
_SNS: dict[str, Any] = {"setup": _topic_named}
_TOPIC_LITERAL: dict[str, Any] = {
    "setup": lambda c: {"topic-arn": _topic(c)},
    "exact": ("topic-arn",),
}
_FN_LITERAL = ("lambda_function_name",)

SPECS_13: dict[str, Spec] = {
    # assign
    "assign/test_assign_reference_variables.py::TestAssignReferenceVariables::"
    "test_assign_in_catch_state": Spec(functions={"<lambda-function-name>": RAISE}),
    "assign/test_assign_reference_variables.py::TestAssignReferenceVariables::"
    "test_variables_in_lambda_task[BASE_ASSIGN_FROM_LAMBDA_TASK_RESULT]": Spec(
        functions={"<lambda-function-name>": BYTES}
    ),
    "assign/test_assign_reference_variables.py::TestAssignReferenceVariables::"
    "test_undefined_reference[BASE_UNDEFINED_ARGUMENTS]": Spec(calls=()),
    # callback
    "callback/test_callback.py::TestCallback::test_sns_publish_wait_for_task_token": Spec(
        setup=_topic_to_queue, worker=sns_success
    ),
    "callback/test_callback.py::TestCallback::test_sqs_wait_for_task_token_call_chain": Spec(
        worker=sqs_success, **_SQS
    ),
    "callback/test_callback.py::TestCallback::test_sqs_failure_in_wait_for_task_tok_no_error_field"
    "[SQS_WAIT_FOR_TASK_TOKEN_CATCH]": Spec(worker=sqs_empty_failure, **_SQS),
    # credentials
    "credentials/test_credentials_base.py::TestCredentialsBase::"
    "test_cross_account_service_lambda_invoke_retry": Spec(
        setup=_role, functions={"<lambda_function_name>": RAISE}
    ),
    # error_handling
    "error_handling/test_aws_sdk.py::TestAwsSdk::test_dynamodb_invalid_param": Spec(setup=_table),
    "error_handling/test_aws_sdk.py::TestAwsSdk::test_s3_no_such_key": Spec(setup=_bucket),
    "error_handling/test_states_errors.py::TestStatesErrors::"
    "test_service_task_lambada_data_limit_exceeded_on_large_utf8_response": Spec(
        functions={"<lambda_function_name>": LARGE}
    ),
    "error_handling/test_task_service_dynamodb.py::TestTaskServiceDynamoDB::"
    "test_put_item_no_such_table": Spec(setup=lambda c: _table(c, create=False)),
    "error_handling/test_task_service_dynamodb.py::TestTaskServiceDynamoDB::"
    "test_put_item_invalid_table_name": Spec(setup=_table),
    "error_handling/test_task_service_dynamodb.py::TestTaskServiceDynamoDB::"
    "test_invalid_param": Spec(setup=_table),
    "error_handling/test_task_service_lambda.py::TestTaskServiceLambda::test_raise_exception": Spec(
        functions={"<lambda_function_name>": RAISE}
    ),
    # the function exists; the task calls no_such_<its name>
    "error_handling/test_task_service_lambda.py::TestTaskServiceLambda::"
    "test_no_such_function": Spec(functions={"<lambda_function_name>": ID}, calls=(LAMBDA,)),
    # local_mocking (recorded on AWS with the same fixtures)
    "local_mocking/test_base_callbacks.py::TestBaseScenarios::test_sqs_wait_for_task_token": Spec(
        worker=sqs_success, **_SQS
    ),
    "local_mocking/test_base_callbacks.py::TestBaseScenarios::"
    "test_sqs_wait_for_task_token_task_failure": Spec(worker=sqs_failure, **_SQS),
    "local_mocking/test_base_scenarios.py::TestBaseScenarios::test_lambda_service_invoke": Spec(
        functions={"lambda_function_name": ID}, exact=_FN_LITERAL
    ),
    "local_mocking/test_base_scenarios.py::TestBaseScenarios::test_sns_publish_base": Spec(
        **_TOPIC_LITERAL
    ),
    "local_mocking/test_base_scenarios.py::TestBaseScenarios::test_events_put_events": Spec(),
    # query_language
    "query_language/test_mixed_query_language.py::TestMixedQueryLanguageFlow::"
    "test_task_dataflow_to_state": Spec(functions={"<lambda-function-name>": ID}),
    # scenarios
    "scenarios/test_base_scenarios.py::TestBaseScenarios::"
    "test_lambda_service_invoke_with_retry_extended_input": Spec(
        functions={"<lambda_function_1_name>": RAISE}
    ),
    "scenarios/test_base_scenarios.py::TestBaseScenarios::"
    "test_invalid_jsonpath[ST.INVALID_JSONPATH_IN_HEARTBEATSECONDSPATH]": Spec(calls=()),
    # services: API Gateway
    "services/test_apigetway_task_service.py::TestTaskApiGateway::"
    "test_invoke_with_query_parameters": Spec(setup=_api(query_template=True)),
    **{
        "services/test_apigetway_task_service.py::TestTaskApiGateway::" + name: Spec(setup=_api())
        for name in (
            'test_invoke_with_body_post["HelloWorld"]',
            "test_invoke_with_body_post[true]",
            'test_invoke_with_body_post[{"message": "HelloWorld!"}]',
            "test_invoke_error",
            "test_invoke_with_headers[singleStringHeader]",
            "test_invoke_with_headers[custom_header1]",
            "test_invoke_with_headers[custom_header2]",
        )
    },
    # services: aws-sdk
    "services/test_aws_sdk_task_service.py::TestTaskServiceAwsSdk::test_list_secrets": Spec(),
    "services/test_aws_sdk_task_service.py::TestTaskServiceAwsSdk::"
    "test_sfn_send_task_outcome_with_no_such_token[state_machine_template1]": Spec(),
    **{
        "services/test_aws_sdk_task_service.py::TestTaskServiceAwsSdk::"
        f"test_s3_get_object[{name}]": Spec(setup=_object(body))
        for name, body in (
            ("empty_str", b""),
            ("empty_binary", b""),
            ("binary", b"binary data"),
            ("bytearray", b"byte array data"),
        )
    },
    **{
        "services/test_aws_sdk_task_service.py::TestTaskServiceAwsSdk::"
        f"test_s3_put_object[{name}]": Spec(setup=_bucket)
        for name in ("dict", "list")
    },
    # services: EventBridge
    "services/test_events_task_service.py::TestTaskServiceEvents::test_put_events_base": Spec(
        setup=_events_to_queue
    ),
    "services/test_events_task_service.py::TestTaskServiceEvents::test_put_events_no_source": Spec(
        setup=_events_to_queue
    ),
    # services: Lambda
    "services/test_lambda_task_service.py::TestTaskServiceLambda::test_invoke": Spec(
        functions={"<lambda_function_name>": ID}
    ),
    "services/test_lambda_task_service.py::TestTaskServiceLambda::test_invoke_bytes_payload": Spec(
        functions={"<lambda_function_name>": BYTES}
    ),
    **{
        "services/test_lambda_task_service.py::TestTaskServiceLambda::"
        f"test_invoke_json_values[{name}]": Spec(functions={"<lambda_function_name>": ID})
        for name in ("0_1", "json_value6", "json_value5")
    },
    # services: SNS
    **{
        f"services/test_sns_task_service.py::TestTaskServiceSns::{name}": Spec(**_SNS)
        for name in (
            "test_publish_base[HelloWorld]",
            "test_publish_base[1]",
            "test_publish_base[True]",
            "test_publish_base[]",
            "test_publish_message_attributes[HelloWorld]",
            'test_publish_message_attributes["HelloWorld"]',
            "test_publish_message_attributes[{}]",
        )
    },
    "services/test_sns_task_service.py::TestTaskServiceSns::"
    "test_publish_base_error_topic_arn": Spec(setup=_deleted_topic),
    # services: SQS
    "services/test_sqs_task_service.py::TestTaskServiceSqs::test_send_message_attributes": Spec(
        **_SQS
    ),
    # timeouts: the function runs 60 s, the task times out after 5 s
    "timeouts/test_timeouts.py::TestTimeouts::test_fixed_timeout_service_lambda": Spec(
        functions={"<lambda_function_1_name>": _wait_60}
    ),
    "timeouts/test_timeouts.py::TestTimeouts::test_fixed_timeout_service_lambda_with_path": Spec(
        functions={"<lambda_function_1_name>": _wait_60}
    ),
}
"""The 57 cases of issue 13, keyed by id without :data:`PREFIX`."""

SPECS: dict[str, Spec] = {**SPECS_13, **SPECS_14}
"""All 71 Task cases: the 57 of issue 13 and the 14 of issue 14 (:data:`SPECS_14`)."""


def key(case: Mapping[str, Any]) -> str:
    """The case's key in :data:`SPECS`."""
    return str(case["id"]).removeprefix(PREFIX)


def calls(case: Mapping[str, Any]) -> tuple[str, ...]:
    """The resources of ``case`` that reach the integrations (not a bound stand-in)."""
    spec = SPECS[key(case)]
    if spec.calls is not None:
        return spec.calls
    bound = bool(spec.functions)
    return tuple(
        resource.removesuffix(".waitForTaskToken")
        for resource in case["needs"]
        if not (bound and describe(resource).service == "lambda")
    )


def run_case(
    case: Mapping[str, Any], api: ApiStandIn | None = None, registry: Registry | None = None
) -> dict[str, Any]:
    """Run one of the 71 cases as its test did (see :func:`run_spec`)."""
    return run_spec(SPECS[key(case)], case, api=api, registry=registry)
