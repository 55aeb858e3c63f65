"""moto's server in a process of its own, so the local stack uses a second core.

In one process the GIL serialises everything: the API, the steppers and moto
answering their DynamoDB and SQS requests, which is over half of the busy time
of a stack starting executions (see docs/benchmarks.md, "Local stack rate").
:class:`MotoProcess` runs the same server (moto's WSGI application under werkzeug, as
``moto.server.ThreadedMotoServer`` serves it, with :mod:`stepflow.local.moto_patches`
installed) in a child Python process;
the stack reaches it over HTTP exactly as it reaches the in-process one.

The child ends when its stdin closes: :meth:`MotoProcess.stop` closes it, and
so does the parent's death, however it dies, so no server outlives its stack.
It ignores SIGINT (a Ctrl-C reaches the whole process group; the stack decides
when moto stops).

The child runs :func:`serve`, which prints ``ready`` once it serves.
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

READY = "ready"
_CHILD = (
    "import sys; from stepflow.local.moto_process import serve; "
    "serve(sys.argv[1], int(sys.argv[2]))"
)
START_SECONDS = 30.0
"""How long the child may take to serve (imports on a loaded machine are slow)."""


class MotoProcessError(RuntimeError):
    """The moto process did not start."""


class MotoProcess:
    """A moto server in a child process on ``host:port``; :attr:`endpoint` once started."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.endpoint = f"http://{host}:{port}"
        self._child: subprocess.Popen[str] | None = None

    @property
    def pid(self) -> int | None:
        """The child's process id (None before start or after stop)."""
        return self._child.pid if self._child is not None else None

    def start(self) -> MotoProcess:
        """Start the child and wait until it serves; raises :class:`MotoProcessError`."""
        package_root = str(Path(__file__).resolve().parents[2])
        path = os.environ.get("PYTHONPATH", "")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (package_root, path) if p)}
        child = self._child = subprocess.Popen(
            [sys.executable, "-c", _CHILD, self.host, str(self.port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        stdout = child.stdout
        assert stdout is not None
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(stdout.readline()), daemon=True)
        reader.start()
        reader.join(START_SECONDS)
        if not line or line[0].strip() != READY:
            code = child.poll()
            self.stop()
            raise MotoProcessError(
                f"moto's server did not start on {self.endpoint}"
                + (f" (exit status {code})" if code is not None else "")
            )
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Close the child's stdin and wait for it to end (killed after ``timeout``)."""
        child, self._child = self._child, None
        if child is None:
            return
        if child.stdin is not None:
            child.stdin.close()
        try:
            child.wait(timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        if child.stdout is not None:  # only now: a reader may still be blocked in it until EOF
            child.stdout.close()


def serve(host: str, port: int) -> None:
    """The child: serve moto (patched) on ``host:port`` until stdin closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from stepflow.local import moto_patches

    moto_patches.install()
    # One log line per request costs the server time and says nothing to a user.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    app = importlib.import_module("moto.moto_server.werkzeug_app")
    serving = importlib.import_module("werkzeug.serving")
    # Bound here, not in a thread as ThreadedMotoServer does: a port that cannot be bound
    # ends this process at once (ThreadedMotoServer would wait forever for its thread).
    server = serving.make_server(
        host,
        port,
        app.DomainDispatcherApplication(app.create_backend_app),
        True,
        request_handler=app.MotoRequestHandler,
    )
    threading.Thread(target=server.serve_forever, name="moto", daemon=True).start()
    print(READY, flush=True)
    sys.stdin.read()  # EOF: the stack stopped or its process ended
    # Nothing to save (moto's state lives in memory): the serving thread ends with us.
