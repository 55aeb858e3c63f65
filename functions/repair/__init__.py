"""The outbox repair Lambda (scheduled by EventBridge)."""
