"""The stepper Lambda (SQS transition queue consumer)."""
