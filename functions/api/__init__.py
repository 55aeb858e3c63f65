"""The API Lambda (API Gateway proxy: the Step Functions JSON protocol)."""
