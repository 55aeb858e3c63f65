"""bench/integration_reach.py: the corpus parses, placeholders normalise, the counts add up."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import integration_reach as reach
from bench.integration_reach import ACTIVITY_ARN, LAMBDA_ARN, Definition, measure, normalise

INVOKE = "arn:aws:states:::lambda:invoke"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # SAM DefinitionSubstitutions standing for the whole resource.
        ("${ValidatePolicyArn}", LAMBDA_ARN),
        ("${ActivityArn}", ACTIVITY_ARN),
        ("${StateAcitivityArn}", ACTIVITY_ARN),
        # Hand-edited samples and empty templates.
        ("<INSERT DICE LAMBDA ARN HERE>", LAMBDA_ARN),
        ("  ${Fn}  ", LAMBDA_ARN),
        # A placeholder partition (CloudFormation/Terraform).
        ("arn:${partition}:states:::batch:submitJob.sync", "arn:aws:states:::batch:submitJob.sync"),
        (
            "arn:${AWS::Partition}:states:::elasticmapreduce:addStep.sync",
            "arn:aws:states:::elasticmapreduce:addStep.sync",
        ),
        # Lambda ARNs with placeholder or malformed parts become the representative ARN.
        ("arn:aws:lambda:${AWS::Region}:${AWS::AccountId}:function:${Name}", LAMBDA_ARN),
        ("arn:aws:lambda:AWS_ACCOUNT:function:DeleteStepFunction", LAMBDA_ARN),
        (
            "arn:aws:lambda:us-east-2:XXXXXXXXXXXX:function:single_extraction",
            "arn:aws:lambda:us-east-2:123456789012:function:single_extraction",
        ),
        (
            "arn:aws:lambda:eu-west-1:732956588665:function:step1-dev-app:$LATEST",
            "arn:aws:lambda:eu-west-1:732956588665:function:step1-dev-app:$LATEST",
        ),
        # Activities with a placeholder region/account.
        ("arn:aws:states:${AWS::Region}:${AWS::AccountId}:activity:approve", ACTIVITY_ARN),
        # Service integrations keep their action and pattern.
        (INVOKE, INVOKE),
        (
            "arn:aws:states:${AWS::Region}:${AWS::AccountId}:aws-sdk:s3:getObject",
            "arn:aws:states:::aws-sdk:s3:getObject",
        ),
        (
            "arn:aws:states:us-east-1:776177632559:aws-sdk:s3:putObject",
            "arn:aws:states:us-east-1:776177632559:aws-sdk:s3:putObject",
        ),
    ],
)
def test_normalise(raw: str, expected: str) -> None:
    assert normalise(raw) == expected
    assert normalise(expected) == expected  # idempotent


def test_parse_line_normalises_and_rejects_malformed_lines() -> None:
    line = json.dumps(
        {"repo": "o/r", "path": "sm.asl.json", "resources": ["${F}", INVOKE], "item_reader": True}
    )
    assert reach.parse_line(line) == Definition("o/r", "sm.asl.json", (LAMBDA_ARN, INVOKE), True)
    with pytest.raises(ValueError, match="list of strings"):
        reach.parse_line(json.dumps({"repo": "o/r", "path": "p", "resources": "arn:x"}))
    with pytest.raises(ValueError, match="list of strings"):
        reach.parse_line(json.dumps({"repo": "o/r", "path": "p", "resources": [1]}))
    with pytest.raises(ValueError, match="not an object"):
        reach.parse_line("[]")


def test_load_rejects_a_definition_listed_twice(tmp_path: Path) -> None:
    line = json.dumps({"repo": "o/r", "path": "p", "resources": []})
    data = tmp_path / "c.jsonl"
    data.write_text(f"{line}\n\n{line}\n")
    with pytest.raises(ValueError, match=r"c\.jsonl:3: duplicate"):
        reach.load(data)


def test_corpus_is_large_distinct_and_already_normalised() -> None:
    definitions = reach.load()
    assert len(definitions) >= 300
    assert len({(d.repo, d.path) for d in definitions}) == len(definitions)
    raw = [json.loads(line) for line in reach.DATA.read_text().splitlines() if line.strip()]
    for entry in raw:
        for resource in entry["resources"]:
            assert resource.startswith("arn:"), resource
            assert normalise(resource) == resource, resource


def _problem(blocked: set[str]) -> reach.Problem:
    return lambda resource: "blocked" if resource in blocked else None


def test_measure_counts_definitions_states_and_next_issue_blockers() -> None:
    sfn = "arn:aws:states:::states:startExecution.sync:2"
    athena_sync = "arn:aws:states:::athena:startQueryExecution.sync"
    token = "arn:aws:states:::sqs:sendMessage.waitForTaskToken"
    s3 = "arn:aws:states:::aws-sdk:s3:getObject"
    corpus = [
        Definition("a", "runs", (INVOKE, INVOKE, token)),
        Definition("a", "no-tasks", ()),
        Definition("a", "reader", (INVOKE,), item_reader=True),
        Definition("a", "nested", (INVOKE, sfn)),
        Definition("a", "athena-sync", (athena_sync,)),
        Definition("a", "sdk", (s3, LAMBDA_ARN)),
    ]
    result = measure(corpus, _problem({sfn, athena_sync, s3}), "test")
    assert (result.definitions, result.with_tasks, result.task_states) == (6, 5, 9)
    assert result.wait_for_token_states == 1
    assert result.item_reader == 1
    assert result.runnable == 2  # "runs" and "no-tasks"
    assert result.runnable_with_tasks == 1
    assert result.runnable_next == 5  # all but "sdk"
    assert result.table[INVOKE.removeprefix("arn:aws:states:::")] == [4, 3]
    assert result.table["plain Lambda ARNs"] == [1, 1]
    assert result.table["aws-sdk:*"] == [1, 1]
    assert result.sdk_services == {"s3": [1, 1]}
    # Next-issue blockers are not listed as unsupported; the rest are, with the reason.
    assert result.unsupported == {"aws-sdk:s3:getObject": [1, 1]}
    assert result.problems["aws-sdk:s3:getObject"] == "blocked"
    assert result.deferred == {
        "states:startExecution.sync:2": [1, 1],
        "athena:startQueryExecution.sync": [1, 1],
    }


def test_planned_set() -> None:
    planned = reach.planned_problem
    assert planned(LAMBDA_ARN) is None
    assert planned(ACTIVITY_ARN) is None
    assert planned("arn:aws:states:::lambda:invoke.waitForTaskToken") is None
    assert planned("arn:aws:states:::dynamodb:putItem") is None
    assert planned("arn:aws:states:::dynamodb:query") is not None  # invalid on AWS too
    assert planned("arn:aws:states:::dynamodb:putItem.waitForTaskToken") is not None
    assert planned("arn:aws:states:::glue:startJobRun.sync") is not None
    # aws-sdk: botocore's service and operation names, Step Functions' spelling.
    assert planned("arn:aws:states:::aws-sdk:s3:getObject") is None
    assert planned("arn:aws:states:::aws-sdk:eventbridge:putRule") is None
    assert planned("arn:aws:states:::aws-sdk:sfn:sendTaskSuccess") is None
    assert planned("arn:aws:states:::aws-sdk:redshiftdata:executeStatement") is None
    assert planned("arn:aws:states:::aws-sdk:textract:analyzeID") is None
    assert planned("arn:aws:states:::aws-sdk:s3:getObjectFast") is not None
    assert planned("arn:aws:states:::aws-sdk:nosuchservice:list") is not None


def test_registry_mode_and_report_render() -> None:
    corpus = reach.load()[:20]
    result = measure(corpus, reach.registry_problem(), "default_registry()")
    text = reach.render(result, top=5)
    assert "every Task resource runnable" in text
    assert "| integration | states / definitions |" in text
    assert json.loads(json.dumps(result.as_json()))["definitions"] == 20
