"""Metrics of one run: JSON lines (flushed per line, so a killed run keeps what it logged) and TensorBoard."""

from __future__ import annotations

import contextlib
import json
import math
from pathlib import Path
from typing import Any

from qmix.files import read_jsonl


def _plain(value: Any) -> Any:
    """JSON-friendly scalars: numpy/jax numbers to Python, non-finite floats to None."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class MetricsLog:
    """Appends one JSON object per line to metrics.jsonl and mirrors numbers to TensorBoard."""

    def __init__(self, folder: Path, tensorboard: bool = True, purge_step: int | None = None):
        """`purge_step`: on resume, TensorBoard drops the points a killed process logged from that step on."""
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / "metrics.jsonl"
        self._file = self.path.open("a", encoding="utf-8")
        self._writer = None
        if tensorboard:
            from tensorboardX import SummaryWriter

            self._writer = SummaryWriter(str(folder / "tensorboard"), purge_step=purge_step)

    def write(self, record: dict[str, Any]) -> None:
        record = {key: _plain(value) for key, value in record.items()}
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        if self._writer is not None:
            step = record.get("env_steps", 0)
            for key, value in record.items():
                if key != "env_steps" and isinstance(value, int | float) and not isinstance(value, bool):
                    self._writer.add_scalar(key, value, step)

    def close(self) -> None:
        self._file.close()
        writer, self._writer = self._writer, None
        if writer is None:
            return
        try:
            writer.close()
        except OSError:  # e.g. a full disk: the events not yet written are lost, and said so by the caller
            _abandon(writer)
            raise


def _abandon(writer) -> None:
    """Stop a TensorBoard writer whose last flush failed, without writing: otherwise its background thread
    and its exit hook retry the flush and print tracebacks after the run's one-line error."""
    events = writer.file_writer.event_writer
    with contextlib.suppress(Exception):
        events._worker.stop()
    events._closed = True  # the exit hook's close() then does nothing
    with contextlib.suppress(Exception):
        events._ev_writer._py_recordio_writer._writer.close()


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """Every complete line of a metrics.jsonl (a line cut short by a kill, or damaged, is skipped)."""
    return read_jsonl(path).records
