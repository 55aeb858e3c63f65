"""A cells module for the worker tests: cells that perform built-in AWS effects.

``send`` sends one SQS message to the input's queue, ``put`` writes one S3
object to the input's bucket (``aws-sdk:s3:putObject``). It registers no
handler: a worker brings the built-in ones, guarded by the stack's own resources.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field
from stepflow.cells import Cell, CellContext
from stepflow.cells.builtin import AwsCall, SqsSendMessage

Effects = Annotated[SqsSendMessage | AwsCall, Field(discriminator="kind")]


class Target(BaseModel):
    target: str


class Done(BaseModel):
    done: bool


class Nope(BaseModel):
    why: str


class Send(Cell[Target, Done, Nope, Effects]):
    """Send one message to the input's queue URL."""

    name = "send"
    version = "1"

    def run(self, ctx: CellContext[Effects], data: Target) -> Done:
        ctx.effect(SqsSendMessage(queue_url=data.target, message_body="order"))
        return Done(done=True)


class Put(Cell[Target, Done, Nope, Effects]):
    """Write one object to the input's bucket."""

    name = "put"
    version = "1"

    def run(self, ctx: CellContext[Effects], data: Target) -> Done:
        ctx.effect(
            AwsCall(
                service="s3",
                action="putObject",
                parameters={"Bucket": data.target, "Key": "order.json", "Body": "{}"},
            )
        )
        return Done(done=True)
