"""Effects: the typed side effects a cell requests, and what identifies each request.

An effect is a frozen pydantic model that subclasses :class:`Effect` with its
result type, ``class ChargeCard(Effect[Charge])``, so that
``ctx.effect(ChargeCard(...))`` is typed ``Charge`` for mypy. A cell's effects
are a discriminated union of such models (each with a ``kind`` literal). The
cell never performs an effect itself: a handler registered for the effect's
type does (:mod:`stepflow.cells.handlers`), once, and its result is recorded
(:mod:`stepflow.cells.journal`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, TypeAdapter
from pydantic_core import to_jsonable_python

ResultT = TypeVar("ResultT")


class Effect(BaseModel, Generic[ResultT]):
    """A side effect a cell requests; ``ResultT`` is what its handler returns.

    Subclasses are frozen and refuse unknown fields. ``compensation`` (optional)
    names the effect that undoes this one once it has run (see
    :mod:`stepflow.cells.saga`); None: nothing to undo. ``compensation_unknown``
    (optional) names the one to run when it may have run but gave no usable
    result (a timeout after the request was sent, a result of the wrong type).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: ClassVar[str | None] = None
    """The effect's name in the log and the history (default: the class name)."""

    @classmethod
    def effect_name(cls) -> str:
        """The name recorded for this effect type."""
        return cls.name or cls.__name__

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        """Refuse fields that would hide the methods the runtime calls."""
        super().__pydantic_init_subclass__(**kwargs)
        clash = sorted(RESERVED & set(cls.model_fields))
        if clash:
            raise TypeError(
                f"{cls.__name__}: field(s) {', '.join(clash)} would hide Effect's methods; "
                "rename them (e.g. with an alias)"
            )

    @classmethod
    def result_type(cls) -> Any:
        """The ``ResultT`` this effect type was declared with (``Any`` if none).

        Resolved through generic intermediate classes: for ``class Call(Effect[R],
        Generic[R])`` and ``class Put(Call[Out])`` it is ``Out``.
        """
        target: Any = Any
        for base in cls.__mro__:
            meta = getattr(base, "__pydantic_generic_metadata__", None)
            if meta and meta.get("origin") is Effect and meta.get("args"):
                target = meta["args"][0]
                break
        for _ in range(len(cls.__mro__)):
            if not isinstance(target, TypeVar):
                return target
            target = _bound(cls, target)
        return Any

    @classmethod
    def parse_result(cls, raw: Any) -> Any:
        """A recorded (JSON) result read back as ``ResultT``."""
        return _adapter(cls.result_type()).validate_python(raw)

    @classmethod
    def dump_result(cls, result: Any) -> Any:
        """A handler's result as JSON data, checked against ``ResultT``."""
        adapter = _adapter(cls.result_type())
        return adapter.dump_python(adapter.validate_python(result), mode="json")

    def compensation(self, result: ResultT) -> Effect[Any] | None:
        """The effect that undoes this one, given its result (None: nothing to undo)."""
        return None

    def compensation_unknown(self) -> Effect[Any] | None:
        """The effect that undoes this one when its outcome is unknown (None: nothing to run).

        Registered, as :meth:`compensation` is for a success, when the effect failed
        but may have been performed (a timeout or dropped connection after its request
        was sent, or a :class:`~stepflow.cells.handlers.OutcomeUnknown`) or was
        performed with a result that cannot be used (not its declared type, or not
        storable). It is not given the result, and may run when nothing happened:
        write it to tolerate "nothing to undo" (a refund by the charge's idempotency
        key that finds no charge succeeds).
        """
        return None

    def request(self) -> dict[str, Any]:
        """The request as JSON data (what the log records and the digest covers)."""
        return self.model_dump(mode="json")

    def digest(self) -> str:
        """A short fingerprint of the effect's type and request, to detect non-determinism.

        Canonical: keys sorted and sets in sorted order, so the same request has the same
        digest in every process (a set's iteration order changes with the hash seed).
        """
        request = _canonical(self.model_dump(mode="python"))
        text = json.dumps(
            {"effect": self.effect_name(), "request": request},
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        )
        return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


RESERVED = frozenset(
    {"compensation", "compensation_unknown", "digest", "dump_result", "effect_name",
     "parse_result", "request", "result_type"}
)  # fmt: skip
"""Names an effect's fields may not take: the methods the runtime calls."""


def _bound(cls: type[Any], variable: Any) -> Any:
    """What ``variable`` is bound to by the nearest parametrized generic base of ``cls``."""
    for base in cls.__mro__:
        meta = getattr(base, "__pydantic_generic_metadata__", None)
        origin = meta.get("origin") if meta else None
        if origin is None or origin is Effect or not meta or not meta.get("args"):
            continue
        parameters = origin.__pydantic_generic_metadata__.get("parameters", ())
        if variable in parameters:
            return meta["args"][parameters.index(variable)]
    return Any


def _canonical(value: Any) -> Any:
    """``value`` as JSON data with sets sorted (dict keys are sorted when dumped)."""
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        items = [_canonical(v) for v in value]
        return sorted(items, key=lambda v: json.dumps(v, sort_keys=True, default=str))
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    return to_jsonable_python(value)


_ADAPTERS: dict[Any, TypeAdapter[Any]] = {}


def _adapter(kind: Any) -> TypeAdapter[Any]:
    adapter = _ADAPTERS.get(kind)
    if adapter is None:
        adapter = _ADAPTERS[kind] = TypeAdapter(kind)
    return adapter


@dataclass(frozen=True, slots=True)
class IdempotencyKey:
    """What identifies one effect request: (execution, state, attempt, effect index).

    ``attempt`` is the task attempt's id (unique per attempt in the execution);
    ``scope`` separates a cell's own effects (``run``) from those of its
    compensation (``compensate``). :attr:`token` is the opaque string handlers
    pass to targets that take an idempotency key (an HTTP ``Idempotency-Key``,
    SQS's deduplication id, a DynamoDB condition on it).
    """

    execution_arn: str
    state: str
    attempt: str
    index: int
    scope: str = "run"

    @property
    def token(self) -> str:
        """A 64-character hex token, the same for the same key on every run."""
        text = "\x1f".join(
            (self.execution_arn, self.state, self.attempt, self.scope, str(self.index))
        )
        return hashlib.sha256(text.encode()).hexdigest()
