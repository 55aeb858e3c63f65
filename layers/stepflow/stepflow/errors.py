"""ASL errors as data: the ``States.*`` names and the failure value the engine carries."""

from __future__ import annotations

from enum import StrEnum


class StatesErrorName(StrEnum):
    """The predefined error names of the Amazon States Language."""

    ALL = "States.ALL"
    BRANCH_FAILED = "States.BranchFailed"
    DATA_LIMIT_EXCEEDED = "States.DataLimitExceeded"
    EXCEED_TOLERATED_FAILURE_THRESHOLD = "States.ExceedToleratedFailureThreshold"
    HEARTBEAT_TIMEOUT = "States.HeartbeatTimeout"
    INTRINSIC_FAILURE = "States.IntrinsicFailure"
    ITEM_READER_FAILED = "States.ItemReaderFailed"
    NO_CHOICE_MATCHED = "States.NoChoiceMatched"
    PARAMETER_PATH_FAILURE = "States.ParameterPathFailure"
    PERMISSIONS = "States.Permissions"
    QUERY_EVALUATION_ERROR = "States.QueryEvaluationError"
    RESULT_PATH_MATCH_FAILURE = "States.ResultPathMatchFailure"
    RESULT_WRITER_FAILED = "States.ResultWriterFailed"
    RUNTIME = "States.Runtime"
    TASK_FAILED = "States.TaskFailed"
    TIMEOUT = "States.Timeout"


class StatesError(Exception):
    """A failure inside a workflow: an ASL error name and an optional cause.

    Raised by the data layer and by task handlers; the engine turns it into a
    failure value that Retry and Catch match on, and, if nothing catches it,
    into ``ExecutionFailed``.
    """

    def __init__(self, error: str, cause: str | None = None) -> None:
        super().__init__(f"{error}: {cause}" if cause else error)
        self.error = error
        self.cause = cause

    def __repr__(self) -> str:
        return f"StatesError({self.error!r}, {self.cause!r})"
