"""Live updates: an execution's history events, streamed as they commit.

:mod:`stepflow.live.tail` follows a history in order (the one driver behind
``stepflow local``'s server-sent events and ``stepflow watch``);
:mod:`stepflow.live.sse` is the local route; :mod:`stepflow.live.websocket`
the deployed WebSocket API's routes, :mod:`stepflow.live.push` the pushes and
:mod:`stepflow.live.live_hook` the hook that runs them per stream batch.
"""
