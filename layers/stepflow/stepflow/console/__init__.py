"""The web console: a single page over the Step Functions API, and its graph endpoint.

``stepflow local`` serves it at ``/console/`` (:class:`ConsoleRoute`); another
server mounts :class:`ConsoleAssets` for the files and :class:`GraphApi` for
``/console/api/graph`` with its own Step Functions client, and forwards the
page's ``POST /`` calls to the API. See docs/console.md.
"""

from stepflow.console.api import GraphApi
from stepflow.console.assets import ConsoleAssets
from stepflow.console.route import ConsoleRoute

__all__ = ["ConsoleAssets", "ConsoleRoute", "GraphApi"]
