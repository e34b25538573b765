"""The sweep's progress in the terminal: runs done / running / failed / queued, env steps, ETA.

On a terminal a live table (rich) shows every running task with its node, attempt and env steps; in a
log file (not a terminal) one status line is printed every `LINE_SECONDS` and whenever a task ends.
Env steps are read from each run folder's metrics.jsonl, which the training writes at every test point.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from qmix.metric_text import format_value, label
from qmix.sweep.plan import Task, describe
from qmix.sweep.state import logged_env_steps
from qmix.sweep.worker import read_status

LINE_SECONDS = 60.0
READ_SECONDS = 5.0  # metrics files are re-read at most this often


def format_duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


class SweepDisplay:
    def __init__(self, out: Path, enabled: bool = True, stream=None):
        self.out = out
        self.stream = stream or sys.stdout
        self.live_table = enabled and self.stream.isatty()
        self.tasks: list[Task] = []
        self.outcomes: dict = {}
        self.submitted_at: dict[str, float] = {}
        self.steps: dict[str, int] = {}
        self.baseline_steps: dict[str, int] = {}  # per task: env steps the rate counts from
        self.start_time = time.perf_counter()
        self.last_read = 0.0
        self.last_line = 0.0
        self.live = None
        self.sweep_id = ""
        self.printed = ""

    # ----- events from the driver -----
    def start(self, tasks: list[Task], outcomes: dict) -> None:
        self.tasks, self.outcomes = tasks, outcomes
        self._read_steps(force=True)
        self.start_time = time.perf_counter()
        skipped = sum(o.status == "skipped" for o in outcomes.values())
        self.say(f"{len(tasks)} tasks: {skipped} finished before (skipped), {len(tasks) - len(outcomes)} to run")
        for outcome in outcomes.values():
            if outcome.status == "failed":
                self.say(f"failed {outcome.task.name}: {outcome.detail}")
        if self.live_table:
            from rich.live import Live

            self.live = Live(self._table(), refresh_per_second=1, transient=True)
            self.live.start()

    def submitted(self, task: Task) -> None:
        self.submitted_at[task.name] = time.time()

    def finished(self, outcome) -> None:
        task = outcome.task
        self.outcomes[task.name] = outcome
        if outcome.status == "done":
            headline = outcome.result.get("headline", "win_rate")
            finals = ", ".join(format_value(headline, v) for v in outcome.result.get("final_test_headline", []))
            self.say(f"done {task.name}: {outcome.detail}, {outcome.result.get('wall_seconds', 0):.0f} s, "
                     f"attempt {outcome.result.get('attempt', 1)}; final test {label(headline)} {finals}")
        else:
            self.say(f"failed {task.name}: {outcome.detail}")
        self._read_steps(force=True)
        self._line(force=True)

    def refresh(self, sweep_id: str) -> None:
        self.sweep_id = sweep_id
        self._read_steps()
        if self.live is not None:
            self.live.update(self._table())
        else:
            self._line()

    def stop(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None
        self._line(force=True)

    def say(self, message: str) -> None:
        if self.live is not None:
            self.live.console.print(message, markup=False, highlight=False)
        else:
            print(message, file=self.stream, flush=True)

    # ----- state -----
    def _read_steps(self, force: bool = False) -> None:
        now = time.perf_counter()
        if not force and now - self.last_read < READ_SECONDS:
            return
        self.last_read = now
        for task in self.tasks:
            outcome = self.outcomes.get(task.name)
            if outcome is not None and outcome.status in ("done", "skipped"):
                self.steps[task.name] = task.env_steps * len(task.seeds)
            else:
                self.steps[task.name] = sum(min(s, task.env_steps) for s in logged_env_steps(task.run_dir, task.config))
            # The rate counts from the first reading, or lower: a resumed run rewinds its log to its checkpoint.
            steps = self.steps[task.name]
            self.baseline_steps[task.name] = min(self.baseline_steps.get(task.name, steps), steps)

    def _is_running(self, task: Task) -> tuple[bool, dict]:
        if task.name in self.outcomes or task.name not in self.submitted_at:
            return False, {}
        status = read_status(self.out, task.name)
        started = status.get("sweep_id") == self.sweep_id and status.get("started", 0) >= self.submitted_at[task.name] - 5
        return started, status

    def counts(self) -> dict[str, int]:
        counts = {"done": 0, "running": 0, "failed": 0, "queued": 0}
        for task in self.tasks:
            outcome = self.outcomes.get(task.name)
            if outcome is not None:
                counts["failed" if outcome.status == "failed" else "done"] += 1
            elif self._is_running(task)[0]:
                counts["running"] += 1
            else:
                counts["queued"] += 1
        return counts

    def status_line(self) -> str:
        counts = self.counts()
        total = sum(t.env_steps * len(t.seeds) for t in self.tasks
                    if self.outcomes.get(t.name) is None or self.outcomes[t.name].status != "failed")
        failed_steps = sum(self.steps.get(t.name, 0) for t in self.tasks
                           if self.outcomes.get(t.name) is not None and self.outcomes[t.name].status == "failed")
        done_steps = sum(self.steps.values()) - failed_steps
        elapsed = time.perf_counter() - self.start_time
        gained = sum(steps - self.baseline_steps[name] for name, steps in self.steps.items())
        rate = gained / elapsed if elapsed > 0 else 0.0
        eta = format_duration((total - done_steps) / rate) if rate > 0 and counts["queued"] + counts["running"] else "-"
        return (f"runs: {counts['done']} done, {counts['running']} running, {counts['failed']} failed, "
                f"{counts['queued']} queued | env steps {done_steps:,} / {total:,} | {rate:,.0f}/s | "
                f"elapsed {format_duration(elapsed)} | eta {eta}")

    def _line(self, force: bool = False) -> None:
        now = time.perf_counter()
        if self.live is None and (force or now - self.last_line >= LINE_SECONDS):
            line = self.status_line()
            if line != self.printed:
                print(line, file=self.stream, flush=True)
            self.last_line, self.printed = now, line

    def _table(self):
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        table = Table(box=None, pad_edge=False)
        for column in ("running", "node", "attempt", "env steps"):
            table.add_column(column)
        for task in self.tasks:
            running, status = self._is_running(task)
            if running:
                steps = self.steps.get(task.name, 0)
                table.add_row(describe(task), str(status.get("node", "?")), str(status.get("attempt", 1)),
                              f"{steps:,} / {task.env_steps * len(task.seeds):,}")
        return Group(Text(self.status_line()), table)
