"""A callback task inside a STANDARD distributed Map's child is answered by its token.

The child is an execution of its own (under its map run), so its task token must
locate the child's record: SendTaskSuccess on it completes the item once.
"""

from __future__ import annotations

from stepflow.testing import WorkflowEnvironment

DEFINITION = {
    "StartAt": "Each",
    "States": {
        "Each": {
            "Type": "Map",
            "ItemsPath": "$.items",
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                "StartAt": "Wait for approval",
                "States": {
                    "Wait for approval": {
                        "Type": "Task",
                        "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                        "Parameters": {
                            "QueueUrl": "https://sqs.us-east-1.amazonaws.com/123456789012/q",
                            "MessageBody": {"item.$": "$", "token.$": "$$.Task.Token"},
                        },
                        "End": True,
                    }
                },
            },
            "End": True,
        }
    },
}


def test_each_childs_callback_is_answered_once_by_its_token() -> None:
    # GIVEN three items whose children each wait for a callback (no handler: left open)
    env = WorkflowEnvironment()
    arn = env.start(DEFINITION, {"items": [1, 2, 3]})
    env.run_until_idle()
    tasks = env.open_tasks()
    assert len(tasks) == 3
    # WHEN each token is answered
    for n, task in enumerate(tasks):
        env.complete(task.token, {"approved": n})
    # THEN each child took its answer, once, and the Map gathered the three
    result = env.result(arn)
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    assert sorted(item["approved"] for item in result.result) == [0, 1, 2]
    assert env.open_tasks() == []
