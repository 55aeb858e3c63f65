"""The live WebSocket API's function ($connect, subscribe, $disconnect)."""
