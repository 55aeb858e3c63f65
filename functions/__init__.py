"""Lambda handlers: thin adapters from events to StepFlow services."""
