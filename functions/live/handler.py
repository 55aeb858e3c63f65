"""The live WebSocket API's entry point (``functions/live/handler.handler``).

A thin adapter: the work is in :mod:`stepflow.live.websocket`, which the
``stepflow`` layer ships.
"""

from stepflow.live.websocket_lambda import handler

__all__ = ["handler"]
