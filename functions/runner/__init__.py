"""The task runner Lambda (SQS tasks queue consumer, one task at a time)."""
