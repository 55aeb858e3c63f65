"""Service integrations: every Task is an effect performed by one integration module.

:class:`~stepflow.integrations.base.TaskRequest` is the typed request,
:class:`~stepflow.integrations.registry.Registry` maps resources to the
integration that performs them, and
:class:`~stepflow.integrations.registry.IntegrationInvoker` is the one task
invoker the runtime uses, in memory, in ``stepflow local`` and deployed.
"""

from stepflow.integrations.base import Integration, TaskRequest
from stepflow.integrations.catalog import default_registry
from stepflow.integrations.registry import IntegrationInvoker, Registry

__all__ = ["Integration", "IntegrationInvoker", "Registry", "TaskRequest", "default_registry"]
