"""The wakeup pipe, the exit backstop and a worker stopped by real signals, in-process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from typing import Any

from stepflow.worker import ServiceClient, TaskContext, Worker
from stepflow.worker.signals import Wakeup

from tests.worker.harness import Harness, activity, task_machine

WAIT = 10.0


def test_a_signal_and_a_wake_end_a_wait_and_the_old_handler_comes_back() -> None:
    before = signal.getsignal(signal.SIGTERM)
    wakeup = Wakeup()
    wakeup.catch()
    try:
        assert wakeup.wait(0) is None
        os.kill(os.getpid(), signal.SIGTERM)
        assert wakeup.wait(WAIT) == [signal.SIGTERM]
        threading.Timer(0.05, wakeup.wake).start()
        assert wakeup.wait(WAIT) == []
    finally:
        wakeup.close()
    assert signal.getsignal(signal.SIGTERM) is before
    wakeup.wake()  # closed: a late wake is ignored, it writes nowhere


def test_exit_within_ends_a_process_a_non_daemon_thread_would_keep_alive() -> None:
    code = (
        "import threading, time\n"
        "from stepflow.worker.signals import exit_within\n"
        "threading.Thread(target=time.sleep, args=(600,)).start()\n"
        "exit_within(0.2, code=3)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], timeout=60, capture_output=True)
    assert done.returncode == 3, done.stderr


def test_a_second_signal_releases_the_tasks_in_hand_without_waiting_out_the_grace() -> None:
    # GIVEN a worker on the main thread with one task in a handler that will not finish
    h = Harness(task_machine(activity("jobs")))
    h.service.create_activity({"name": "jobs"})
    arn = h.start({"n": 1})
    in_hand, never = threading.Event(), threading.Event()

    def stuck(task: Any, context: TaskContext) -> Any:
        in_hand.set()
        never.wait(WAIT)
        return "never reported"

    client = ServiceClient(h.service, wait_seconds=0.05)
    worker = Worker(client, activity("jobs"), stuck, grace_seconds=600, heartbeat_seconds=60)
    worker.install_signal_handlers()

    def signal_twice() -> None:
        assert in_hand.wait(WAIT)
        os.kill(os.getpid(), signal.SIGTERM)
        while not worker.stopping.wait(0.01):
            pass
        os.kill(os.getpid(), signal.SIGTERM)

    sender = threading.Thread(target=signal_twice, daemon=True)
    sender.start()
    # WHEN it gets SIGTERM, then SIGTERM again
    worker.run()  # returns: the 600 s grace is cut short
    never.set()
    sender.join(WAIT)
    # THEN the task went back and the next worker gets it at once
    assert worker.signalled == signal.SIGTERM
    assert worker.counts["released"] == 1
    task = h.poll("jobs", "next")
    assert json.loads(task["input"]) == {"n": 1}
    h.service.send_task_success({"taskToken": task["taskToken"], "output": '"rescued"'})
    assert h.output(arn) == "rescued"
    assert h.types(arn).count("ActivitySucceeded") == 1


def test_leave_always_skips_finalization_even_with_no_thread_left() -> None:
    # GIVEN a process whose finalization would print (an atexit hook), with no other thread
    code = (
        "import atexit\n"
        "from stepflow.worker.signals import leave\n"
        "atexit.register(lambda: print('finalized', flush=True))\n"
        "leave(3)\n"  # nothing left behind: returns, finalization would run
        "print('returned', flush=True)\n"
        "leave(4, always=True)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    # THEN the first call returned, the second ended the process at once with its code
    assert (done.returncode, done.stdout) == (4, "returned\n")
