"""The hooks dispatcher Lambda (DynamoDB stream consumer)."""
