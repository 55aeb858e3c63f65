"""Run tests/localstack against LocalStack (SQS, S3, STS, SNS, EventBridge) and DynamoDB Local.

Started by ``tools/localstack/run.sh`` inside a loopback-only network namespace,
with the project's venv (it reuses ``tests.dynamodb_local.server``) and
``--localstack-python``, the interpreter of LocalStack's own Python 3.13 venv.
Prints one ``localstack tier skipped:`` line and exits 0 when a server cannot
start; otherwise exits with pytest's status. Both servers are stopped at the end,
whatever happens.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.dynamodb_local.server import (  # noqa: E402
    DynamoDBLocalError,
    _die_with_parent,
    dynamodb_local,
    free_port,
    missing_prerequisite,
)

SERVICES = "sqs,s3,sts,sns,events"
READY_TIMEOUT = 120.0
"""Seconds LocalStack gets to print "Ready." (about 20 s on an idle machine)."""


class NotReady(RuntimeError):
    """LocalStack did not become ready; the message says why."""


def _tail(path: Path, lines: int = 20) -> str:
    text = path.read_text(errors="replace") if path.exists() else ""
    return "\n".join(text.splitlines()[-lines:]) or "(empty)"


def _healthy(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint}/_localstack/health", timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


@contextmanager
def localstack(python: str, workdir: Path) -> Iterator[str]:
    """LocalStack on a free loopback port until the block ends; yields its endpoint."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    env = dict(
        os.environ,
        GATEWAY_LISTEN=f"127.0.0.1:{port}",
        SERVICES=SERVICES,
        LOCALSTACK_VOLUME_DIR=str(workdir / "volume"),
        DISABLE_EVENTS="1",
        SKIP_SSL_CERT_DOWNLOAD="1",
    )
    log_path = workdir / "localstack.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [python, "-m", "localstack.runtime.main"],
            cwd=workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_die_with_parent,  # SIGKILL if this process dies without cleaning up
        )
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while "Ready." not in log_path.read_text(errors="replace") or not _healthy(endpoint):
            if process.poll() is not None:
                raise NotReady(
                    f"LocalStack exited with status {process.returncode} at startup; "
                    f"log tail:\n{_tail(log_path)}"
                )
            if time.monotonic() > deadline:
                raise NotReady(
                    f"LocalStack was not ready within {READY_TIMEOUT:.0f} s; "
                    f"log tail:\n{_tail(log_path)}"
                )
            time.sleep(0.5)
        yield endpoint
    finally:
        _stop(process)
        if os.environ.get("LOCALSTACK_TIER_LOG"):
            print(_tail(log_path, 200), file=sys.stderr)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM LocalStack's process group, SIGKILL it after 20 s."""
    for sig, wait in ((signal.SIGTERM, 20.0), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    """Start both servers, run pytest on tests/localstack, stop both; pytest's exit status."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--localstack-python", required=True)
    args, pytest_args = parser.parse_known_args(argv)  # the rest goes to pytest
    signal.signal(signal.SIGTERM, _exit_on_sigterm)  # so the servers are stopped on SIGTERM too
    missing = missing_prerequisite()
    if missing:
        print(f"localstack tier skipped: DynamoDB Local cannot run: {missing}", flush=True)
        return 0
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="stepflow-localstack-") as tmp:
        try:
            with dynamodb_local() as dynamodb, localstack(args.localstack_python, Path(tmp)) as ls:
                ready = time.monotonic() - started
                print(
                    f"localstack tier: LocalStack ({SERVICES}) at {ls}, DynamoDB Local at "
                    f"{dynamodb}, ready in {ready:.0f} s",
                    flush=True,
                )
                env = dict(
                    os.environ, LOCALSTACK_ENDPOINT=ls, LOCALSTACK_DYNAMODB_ENDPOINT=dynamodb
                )
                command = [
                    sys.executable,
                    "-m",
                    "pytest",
                    "-p",
                    "no:xdist",
                    "-p",
                    "no:cacheprovider",
                    "-rfEs",
                    "-q",
                    "tests/localstack",
                    *pytest_args,
                ]
                tests_started = time.monotonic()
                status = subprocess.run(command, cwd=ROOT, env=env, check=False).returncode
                print(
                    f"localstack tier: tests took {time.monotonic() - tests_started:.0f} s "
                    f"(exit {status})",
                    flush=True,
                )
        except (NotReady, DynamoDBLocalError) as exc:
            first, _, rest = str(exc).partition("\n")
            print(f"localstack tier skipped: {first}", flush=True)
            if rest:
                print(rest, file=sys.stderr)
            return 0
    print(f"localstack tier: {time.monotonic() - started:.0f} s in all", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
