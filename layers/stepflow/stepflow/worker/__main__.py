"""``python -m stepflow.worker``: the same as ``stepflow worker``."""

import sys

from stepflow.worker.cli import main

sys.exit(main())
