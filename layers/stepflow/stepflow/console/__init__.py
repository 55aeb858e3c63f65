"""The web console: a single page over the Step Functions API, and its graph endpoint.

``stepflow local`` serves it at ``/console/`` (:class:`ConsoleRoute`); another
server mounts the same route (:class:`ConsoleAssets` for the files,
:class:`GraphApi` for ``POST /console/api/graph``, which reads nothing) and
forwards the page's ``POST /`` calls to the API. See docs/console.md.
"""

from stepflow.console.api import GraphApi
from stepflow.console.assets import ConsoleAssets
from stepflow.console.route import ConsoleRoute

__all__ = ["ConsoleAssets", "ConsoleRoute", "GraphApi"]
