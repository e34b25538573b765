"""Stopping on SIGINT (Ctrl-C) and SIGTERM (what clusters send before pre-emption) at the next safe point.

While a run trains, the first signal is only recorded; the session checks between chunks, writes a
checkpoint and raises StopRequested, which the command line turns into one line saying how to resume and
exit code 128 + the signal's number (130, 143). A second signal interrupts at once.
"""

from __future__ import annotations

import signal
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequested(Exception):  # noqa: N818  (a request, not a failure)
    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.exit_code = 128 + signum


# A signal that arrived before any GracefulStop was entered (while the command imports JAX and the
# environments, seconds in which libraries may swallow a KeyboardInterrupt): the first one taken over.
_early: list[int] = []


def record_stops_from_now() -> None:
    """Record SIGINT/SIGTERM from the very start of a command (call before importing anything slow); the
    first GracefulStop takes the request over, so the run stops at its first safe point. A second signal
    interrupts at once, as it does later."""
    if threading.current_thread() is not threading.main_thread():
        return

    for signum in SIGNALS:
        signal.signal(signum, _record_early)


def stop_recording() -> None:
    """Put the default handlers back where the early recorder still stands (the command is over)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in SIGNALS:
        if signal.getsignal(signum) is _record_early:
            signal.signal(signum, _after(signum, _record_early))
    _early.clear()


def _record_early(signum, frame) -> None:
    if _early:
        raise KeyboardInterrupt
    _early.append(signum)


def _after(signum: int, handler) -> object:
    """The handler to put back when a GracefulStop ends: the default rather than the early recorder (once
    training is over, a Ctrl-C interrupts again), and the default for one set outside Python (None)."""
    if handler is _record_early or handler is None:
        return signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL
    return handler


class GracefulStop:
    """Context manager: records the first SIGINT/SIGTERM instead of dying mid-write."""

    def __init__(self):
        self.requested: int | None = _early.pop() if _early else None  # asked while the command started
        self._previous: dict[int, object] = {}

    def _handle(self, signum, frame) -> None:
        if self.requested is not None:  # asked twice: stop now
            raise KeyboardInterrupt
        self.requested = signum

    def __enter__(self) -> GracefulStop:
        if threading.current_thread() is threading.main_thread():  # handlers can only be set there
            for signum in SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, _after(signum, handler))

    @property
    def name(self) -> str:
        return signal.Signals(self.requested).name if self.requested else ""
