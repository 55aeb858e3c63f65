"""Stop signals as bytes on a pipe: a race-free way for a main loop to wait for SIGTERM/SIGINT.

A Python signal handler runs in the main thread between two bytecodes, possibly
while that thread holds a lock: setting a :class:`threading.Event` from the
handler while the main thread sits in ``Event.wait()`` can deadlock on the
event's own lock, and the signal is then ignored for good. So the handlers
installed here do nothing at all. The interpreter's C-level handler writes the
signal number to a pipe (:func:`signal.set_wakeup_fd`), and the main thread
blocks in ``select()`` on that pipe, which a signal always ends. Other threads
wake the same loop with :meth:`Wakeup.wake`.

:func:`exit_within` is the backstop: a handler stuck in user code (or an
``atexit`` join on a thread it started) cannot keep the process alive past a
bound.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import sys
import threading
import time
import weakref
from collections.abc import Iterable
from types import FrameType

logger = logging.getLogger("stepflow.worker")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
WATCHDOG = "exit-watchdog"


def _ignore(signum: int, frame: FrameType | None) -> None:
    """The Python-level handler: nothing (the wakeup pipe carries the signal)."""


def _close(read: int, write: int) -> None:
    for fd in (read, write):
        with contextlib.suppress(OSError):
            os.close(fd)


class Wakeup:
    """A self-pipe the main loop blocks on; woken by a caught signal or by :meth:`wake`."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)
        self._lock = threading.Lock()
        self._closed = False
        self._caught: dict[signal.Signals, object] = {}
        self._previous_fd: int | None = None
        self._finalizer = weakref.finalize(self, _close, self._read, self._write)

    def catch(self, signals: Iterable[signal.Signals] = STOP_SIGNALS) -> None:
        """Deliver ``signals`` to :meth:`wait` from now on (call from the main thread)."""
        self._previous_fd = signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)
        for signum in signals:
            self._caught[signum] = signal.signal(signum, _ignore)

    def wake(self) -> None:
        """End a :meth:`wait` in progress (or the next one); safe from any thread."""
        with self._lock:
            if self._closed:
                return
            with contextlib.suppress(BlockingIOError):  # full: a wake-up is pending anyway
                os.write(self._write, b"\0")

    def wait(self, timeout: float | None = None) -> list[signal.Signals] | None:
        """Block until woken or ``timeout``; the signals caught since (maybe none), or None."""
        try:
            ready, _, _ = select.select([self._read], [], [], timeout)
        except (ValueError, OSError):  # closed meanwhile
            return []
        if not ready:
            return None
        try:
            data = os.read(self._read, 512)
        except BlockingIOError:
            return []
        return [signal.Signals(byte) for byte in data if byte in self._caught]

    def close(self) -> None:
        """Give the signals their previous handlers back and close the pipe."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._caught and threading.current_thread() is threading.main_thread():
                signal.set_wakeup_fd(-1 if self._previous_fd is None else self._previous_fd)
                for signum, previous in self._caught.items():
                    signal.signal(signum, previous)  # type: ignore[arg-type]
            self._finalizer()


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a broken stream must not stop the exit
            stream.flush()


def leave(code: int, *, always: bool = False) -> None:
    """End the process now with ``code`` if threads are left behind (or ``always``).

    Daemon threads abandoned in a handler or a request keep running while the
    interpreter finalizes, and one that holds a standard stream's lock then
    aborts the process. After an orderly stop, skipping finalization is safe;
    with ``always`` it is skipped even with no thread left, since freeing a
    large heap can take longer than the exit watchdog, which cannot fire
    during finalization.
    """
    left = [
        t
        for t in threading.enumerate()
        if t is not threading.current_thread() and t.name != WATCHDOG
    ]
    if left or always:
        _flush()
        os._exit(code)


def exit_within(seconds: float, code: int = 0) -> threading.Thread:
    """End the process with ``code`` after ``seconds`` unless it has ended by then.

    A daemon thread, so it never keeps the process alive itself; it flushes the
    standard streams and calls :func:`os._exit`, which no thread can block.
    """

    def expire() -> None:
        time.sleep(seconds)
        logger.warning("exit forced", extra={"after_seconds": seconds})
        _flush()
        os._exit(code)

    thread = threading.Thread(target=expire, name=WATCHDOG, daemon=True)
    thread.start()
    return thread
