"""The hooks dispatcher Lambda (DynamoDB table stream consumer)."""
