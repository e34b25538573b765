"""A rich progress bar for training: env steps (mean over runs), steps/s, ETA, the latest test value of the
environment's headline metric (e.g. "test win 73%" on SMAX, "test return 12.31" on the two-step game)."""

from __future__ import annotations

import time

import numpy as np

from qmix.metric_text import format_value, label


class TrainingProgress:
    def __init__(self, config, enabled: bool, headline: str, start_steps: float = 0.0):
        self.enabled = enabled
        self.headline = headline  # the metric shown, e.g. win_rate or return
        self.start_steps = start_steps  # a resumed run's speed counts only this process's steps
        if not enabled:
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn(f"[bold]{config.alg} on {config.map}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("env steps"),
            TextColumn("{task.fields[speed]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn(f"test {label(headline)} {{task.fields[headline]}}"),
        )
        self.progress.start()
        self.task = self.progress.add_task("train", total=config.env_steps, completed=start_steps, speed="",
                                       headline="-")
        self.start = time.perf_counter()

    def update(self, env_steps, headline_values=None) -> None:
        """env_steps and headline_values [S]: the runs' steps and latest test values of the headline (None:
        no new test, the value shown stays)."""
        if not self.enabled:
            return
        steps = float(np.mean(np.asarray(env_steps)))
        elapsed = time.perf_counter() - self.start
        speed = (steps - self.start_steps) / max(elapsed, 1e-9)
        shown = {} if headline_values is None else {
            "headline": format_value(self.headline, float(np.mean(headline_values)))}
        self.progress.update(self.task, completed=steps, speed=f"{speed:,.0f}/s", **shown)

    def close(self) -> None:
        if self.enabled:
            self.progress.stop()
