"""The sweeper Lambda (the table stream: expired executions' leftovers)."""
