"""A rich progress bar for training: env steps (mean over runs), steps/s, ETA, latest test win rate."""

from __future__ import annotations

import time

import numpy as np


class TrainingProgress:
    def __init__(self, config, enabled: bool, start_steps: float = 0.0):
        self.enabled = enabled
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
            TextColumn("test win {task.fields[win]}"),
        )
        self.progress.start()
        self.task = self.progress.add_task("train", total=config.env_steps, completed=start_steps, speed="", win="-")
        self.start = time.perf_counter()

    def update(self, env_steps, win_rates) -> None:
        if not self.enabled:
            return
        steps = float(np.mean(np.asarray(env_steps)))
        elapsed = time.perf_counter() - self.start
        speed = (steps - self.start_steps) / max(elapsed, 1e-9)
        self.progress.update(self.task, completed=steps, speed=f"{speed:,.0f}/s", win=f"{np.mean(win_rates):.0%}")

    def close(self) -> None:
        if self.enabled:
            self.progress.stop()
