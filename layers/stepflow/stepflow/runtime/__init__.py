"""The durable runtime: the engine driven over a coordination log and a message bus."""

from stepflow.runtime.leases import LeaseFence, TaskClaim, TaskLease
from stepflow.runtime.memory import InMemoryBus, InMemoryLog
from stepflow.runtime.messages import Message, decode_event, encode_event
from stepflow.runtime.outcome import TaskInvoker, TaskOutcome
from stepflow.runtime.payloads import (
    InMemoryPayloadStore,
    PayloadNotFoundError,
    PayloadStore,
    PayloadStoreUnavailableError,
)
from stepflow.runtime.ports import (
    ConflictError,
    CoordinationLog,
    ExecutionAlreadyExistsError,
    ExecutionRecord,
    HistoryPage,
    MessageBus,
)
from stepflow.runtime.stepper import (
    ExecutionInputMismatchError,
    Stepper,
    TaskLeaseHeldError,
)

__all__ = [
    "ConflictError",
    "CoordinationLog",
    "ExecutionAlreadyExistsError",
    "ExecutionInputMismatchError",
    "ExecutionRecord",
    "HistoryPage",
    "InMemoryBus",
    "InMemoryLog",
    "InMemoryPayloadStore",
    "LeaseFence",
    "Message",
    "MessageBus",
    "PayloadNotFoundError",
    "PayloadStore",
    "PayloadStoreUnavailableError",
    "Stepper",
    "TaskClaim",
    "TaskInvoker",
    "TaskLease",
    "TaskLeaseHeldError",
    "TaskOutcome",
    "decode_event",
    "encode_event",
]
