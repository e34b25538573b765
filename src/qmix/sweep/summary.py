"""The end of a sweep: one line per task, and summary.md with a table and a figure of the finished runs.

Several sweep files may share one storage folder (each trains its own run folders there), so a sweep's
summary and figures go to a folder of its own, named after the sweep file: `<out>/summaries/<name>/`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from qmix.files import write_atomic
from qmix.sweep.plan import Task


def outcome_lines(outcomes) -> list[str]:
    lines = []
    for o in outcomes:
        lines.append(f"{o.status:8} {o.task.name}" + (f": {o.detail}" if o.detail else ""))
    counts = {s: sum(o.status == s for o in outcomes) for s in ("done", "skipped", "failed")}
    lines.append(f"{counts['done']} trained, {counts['skipped']} finished before, {counts['failed']} failed "
                 f"of {len(outcomes)} tasks")
    return lines


def _label(group: str, task: Task) -> str:
    """The method's name in tables and figures: the algorithm plus the grid point, if any."""
    prefix = f"{task.settings['map']}-{task.settings['alg']}"
    return task.settings["alg"] + group.removeprefix(prefix).replace("-", " ", 1).rstrip()


SUMMARIES = "summaries"


def summary_folder(out: Path, sweep_name: str) -> Path:
    """Where the sweep named `sweep_name` (its file's stem) writes summary.md and its figures."""
    return out / SUMMARIES / sweep_name


def write_summary(out: Path, outcomes, title: str, folder: Path) -> Path | None:
    """`folder`/summary.md: the mean final test headline (the win rate on SMAX) per map and method over the
    groups (run folders under `out`) whose every task finished, with its figures beside it."""
    from qmix.metric_text import label
    from qmix.results.headline import metric_groups
    from qmix.results.plots import plot_runs
    from qmix.results.runs import load_runs
    from qmix.results.stats import aggregate_table, format_table_markdown

    by_group: dict[str, list] = {}
    for o in outcomes:
        by_group.setdefault(o.task.group, []).append(o)
    runs = []
    for group, members in by_group.items():
        if all(o.status in ("done", "skipped") for o in members):
            method = _label(group, members[0].task)
            try:
                runs += [dataclasses.replace(r, alg=method) for r in load_runs([out / group])]
            except ValueError:
                continue  # finished without a test point: nothing to show
    if not runs:
        return None
    lines = [f"# {title}", "", "Final = each run's last test; mean and 95% CI over runs.", ""]
    for metric, group in metric_groups(runs).items():  # each map by its own headline
        figure = plot_runs(group, folder / metric, title=title, metric=metric)
        rows = aggregate_table(group, final_tests=1, key=metric)
        lines += [f"![test {label(metric)}]({figure[0].name})", "", format_table_markdown(rows), ""]
    lines += ["## Tasks", "", "```", *outcome_lines(outcomes), "```", ""]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "summary.md"
    write_atomic(path, "\n".join(lines))
    return path
