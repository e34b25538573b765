"""Sweeps on Ray: a grid of maps x algorithms x seeds x settings, one run folder per task (seed group).

spec.py reads the sweep file, plan.py turns it into tasks, state.py says what a run folder already holds,
memory.py estimates what a task needs, worker.py is a task's body, execute.py runs the tasks on Ray,
progress.py shows them, summary.py writes the result. `qmix reproduce` uses the same machinery.
"""

from __future__ import annotations

from pathlib import Path

from qmix.errors import ConfigError
from qmix.sweep.plan import Task, sweep_tasks
from qmix.sweep.spec import SweepSpec, load_spec

__all__ = ["SweepSpec", "Task", "load_spec", "run_sweep", "sweep_tasks"]


def run_sweep(spec_path: Path, out: Path | None = None, address: str | None = None, cpus: int | None = None,
              gpus: int | None = None, memory: int | None = None, progress: bool = True,
              max_running: int | None = None, dry_run: bool = False, keep: Path | None = None) -> list:
    """Train every run of the sweep file not finished yet; print the summary; return the outcomes. `keep`: a
    folder that lasts (as `qmix reproduce --keep`), given back to the storage folder first and holding every
    finished run's small files and the summary after each task."""
    from qmix.sweep.execute import run_tasks, start_ray, stop_ray
    from qmix.sweep.keep import keep_storage, restore_kept
    from qmix.sweep.plan import describe
    from qmix.sweep.progress import SweepDisplay
    from qmix.sweep.summary import outcome_lines, summary_folder, write_summary

    spec = load_spec(spec_path, out)
    summaries = summary_folder(spec.out, spec_path.stem)
    if keep is not None:
        if keep.resolve() == spec.out.resolve():
            raise ConfigError(f"--keep '{keep}' is the storage folder itself; keep summaries in another folder "
                              "(one that lasts)")
        restored = restore_kept(keep, spec.out)
        if restored:
            print(f"{len(restored)} finished run(s) given back from {keep}", flush=True)

    def keep_finished(outcome) -> None:
        if keep is not None and outcome.status == "done":
            keep_storage(spec.out, keep, [(outcome.task.run_dir, outcome.task.config)], top=summaries)

    cluster = start_ray(address, cpus, gpus, memory)
    try:
        tasks = sweep_tasks(spec, cluster.largest_node_memory)
        print(f"sweep {spec_path}: {len(tasks)} tasks on {cluster.nodes} node(s) ({cluster.address}, "
              f"{cluster.cpus:g} CPUs, {cluster.gpus:g} GPUs); storage {spec.out}", flush=True)
        if dry_run:
            for task in tasks:
                print(f"  {task.name}: {describe(task)}")
            return []
        outcomes = run_tasks(tasks, spec.out, cluster, SweepDisplay(spec.out, enabled=progress),
                             on_finished=keep_finished, max_running=max_running)
    finally:
        stop_ray()
    for line in outcome_lines(outcomes):
        print(line)
    summary = write_summary(spec.out, outcomes, f"Sweep {spec_path.stem}", summaries)
    if summary is not None:
        print(f"summary: {summary}")
        if keep is not None:
            keep_storage(spec.out, keep, [], top=summaries)  # the summary and its figure
    return outcomes
