"""The preset dictionary the log compresses its JSON documents with (zlib ``zdict``).

A head's documents are small (a few hundred bytes to a few KB) and rewritten at
every commit; plain zlib spends most of such a stream on the first occurrence
of each key name. A preset dictionary of the fragments StepFlow's own JSON
repeats (engine state, outbox messages, history events, task results) starts
every stream with them already seen.

A stream names its dictionary: zlib's header has the ``FDICT`` flag and the
Adler-32 of the dictionary (:func:`inflate` checks it). A stream written before
there was a dictionary has no flag and inflates as it did. **Never edit**
:data:`STATIC` **in place**: a stored stream needs the very bytes it was written
with. To change it, add a new constant, write with it, and keep reading the old.

A document may also be primed by other documents of the same item (e.g. the
engine state by the execution's input, which it repeats): their JSON text is
appended to the dictionary, and :func:`inflate` is given the candidates to
match against the stream's dictionary id.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

_FRAGMENTS = (
    # engine state (stepflow.engine.codec)
    '{"execution_arn":"arn:aws:states:","name":"","state_machine_arn":"arn:aws:states:',
    ':stateMachine:","state_machine_name":"","role_arn":"arn:aws:iam::',
    ':role/StepFlowExecutionRole","start_time":"","input":',
    '"status":"RUNNING","frames":{"":{"machine":"","state":"","input":',
    '"phase":"ready","parent":"","index":0,"entered_id":0,"prev_id":0,"effective":',
    '"retries":[],"retry_count":0,"entered_time":"","task_id":"t","timer_id":"w",',
    '"fanout":{"kind":"map","total":0,"items":[],"results":[],"done":[false,true],',
    '"children":{},"next_index":0,"max_concurrency":0,"failures":0,',
    '"tolerated_count":null,"tolerated_percentage":null,"effective_input":null,',
    '"failed":[],"state":""},"kind":"parallel","output":null,"error":null,"cause":null,',
    '"started":true,"submitted":true,"rerun":true,"silent":true,"heartbeat_at":1',
    '"variables":{},"pending_assign":null,"handle":null,"poll_round":0,',
    '"map_run":null,"early":null,"map_reports":null,"phase":"wait","phase":"retry",',
    '"phase":"children","phase":"done","phase":"failed","phase":"task",',
    '"ready":[],"tasks":{},"timers":{"w":["","retry"]},"next_event_id":1,',
    '"effect_events":0,"counter":0,"output":null,"error":null,"cause":null,"seed":1,',
    '"token_key":"","child_limit":40,"children":{},"parent":null,"machine":null,',
    '"outer_variables":{},"root_input":null,"redrive_count":0,"redrive_date":null,',
    '"caller":null,"format":2,"~h":["execution_arn","name","state_machine_arn","input"]}',
    # outbox messages (stepflow.runtime.messages, stepflow.aws.head_docs)
    '[{"kind":"event","body":{"type":"TimerFired","timer_id":"w"},"sid":"#',
    '"not_before":1',
    '{"kind":"task","body":{"task_id":"t","resource":"arn:aws:lambda:us-east-1:',
    ':function:","input":{},"state_name":"","timeout_seconds":null,',
    '"heartbeat_seconds":null,"task_token":null,"role_arn":"arn:aws:iam::',
    ':role/StepFlowExecutionRole","execution_role":"arn:aws:iam::',
    ':role/StepFlowExecutionRole","frame":"/"},"sid":"#',
    # history events and task results
    '{"id":1,"previousEventId":0,"timestamp":1,"type":"ExecutionStarted",',
    '"executionStartedEventDetails":{"input":"{}","inputDetails":{"truncated":false},',
    '"roleArn":"arn:aws:iam::"}},"type":"ExecutionSucceeded",',
    '"executionSucceededEventDetails":{"output":"","outputDetails":{"truncated":false}}',
    '"type":"PassStateEntered","type":"ChoiceStateEntered","type":"ParallelStateEntered",',
    '"type":"MapStateEntered","type":"MapIterationStarted","type":"MapIterationSucceeded",',
    '"mapIterationStartedEventDetails":{"name":"","index":0}},',
    '"mapIterationSucceededEventDetails":{"name":"","index":0}},',
    '"type":"ParallelStateStarted","type":"ParallelStateSucceeded","type":"MapStateStarted",',
    '"type":"MapStateSucceeded","mapStateStartedEventDetails":{"length":0}},',
    '"type":"TaskStateEntered","stateEnteredEventDetails":{"name":"","input":"{}",',
    '"inputDetails":{"truncated":false}}},"type":"TaskScheduled",',
    '"type":"LambdaFunctionScheduled","lambdaFunctionScheduledEventDetails":{"resource":',
    '"arn:aws:lambda:us-east-1:","type":"LambdaFunctionFailed",',
    '"lambdaFunctionFailedEventDetails":{"error":"","cause":""}},',
    '"type":"TaskStateExited","stateExitedEventDetails":{"name":"","output":"{}",',
    '"outputDetails":{"truncated":false}}},',
    '{"id":1,"previousEventId":0,"timestamp":1,"type":"LambdaFunctionStarted"},',
    '{"id":1,"previousEventId":0,"timestamp":1,"type":"LambdaFunctionSucceeded",',
    '"lambdaFunctionSucceededEventDetails":{"output":"{}","outputDetails":{"truncated":false}}},',
    '{"type":"TaskSucceeded","task_id":"t","output":{},"external":false,"effects":[]}',
)

STATIC = "".join(_FRAGMENTS).encode()
"""The dictionary every compressed document starts from (frozen: see the module's note)."""

LEVEL = 6


def deflate(text: bytes, primers: Sequence[bytes] = ()) -> bytes:
    """``text`` compressed with :data:`STATIC` followed by ``primers`` as the dictionary."""
    compressor = zlib.compressobj(LEVEL, zdict=STATIC + b"".join(primers))
    return compressor.compress(text) + compressor.flush()


def inflate(data: bytes, candidates: Sequence[Sequence[bytes]] = ((),)) -> bytes:
    """The text of a zlib stream: plain, or written by :func:`deflate` with one of ``candidates``.

    Each candidate is a list of primers; the stream's dictionary id picks the one
    it was written with. ``ValueError`` if none matches (or the stream is corrupt).
    """
    if len(data) < 6 or not data[1] & 0x20:  # no FDICT: written without a dictionary
        return zlib.decompress(data)
    wanted = int.from_bytes(data[2:6], "big")
    for primers in candidates:
        dictionary = STATIC + b"".join(primers)
        if zlib.adler32(dictionary) == wanted:
            decompressor = zlib.decompressobj(zdict=dictionary)
            text = decompressor.decompress(data) + decompressor.flush()
            if not decompressor.eof or decompressor.unused_data:  # as zlib.decompress checks
                raise ValueError("a compressed document is truncated or has trailing data")
            return text
    raise ValueError("a compressed document names a dictionary the log does not have")
