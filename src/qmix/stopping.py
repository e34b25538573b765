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


class GracefulStop:
    """Context manager: records the first SIGINT/SIGTERM instead of dying mid-write."""

    def __init__(self):
        self.requested: int | None = None
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
            # None: the previous handler was set outside Python (e.g. Ray's crash reporter); the default stands in
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)

    @property
    def name(self) -> str:
        return signal.Signals(self.requested).name if self.requested else ""
