"""From a sweep to tasks: one task is one run folder, a group of consecutive seeds trained side by side.

Folder layout under the storage folder: `<map>-<alg>[-<key>=<value>...]/` per map, algorithm and grid
point. When its seeds are one group that folder is the run folder (as `qmix train --seeds K` writes it);
when they are split, each group is a sub-folder `seed_<s>/` (one seed) or `seeds_<a>-<b>/`, itself a run
folder. `qmix plot`, `qmix evaluate` and the report read either.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from qmix.config import Config, build_config, config_from_sources, replace
from qmix.run_folder import EVALUATION_FILE, KEPT_FILE
from qmix.sweep.memory import format_bytes, task_memory_bytes


@dataclass(frozen=True)
class Task:
    """One run folder to train: everything a worker needs, as plain values."""

    name: str  # the run folder relative to the storage folder, e.g. "3m-qmix/seeds_0-1"
    run_dir: Path
    settings: dict[str, Any]  # the fully resolved config (Config.to_dict())
    cpus: float
    gpus: float
    memory: int  # bytes declared to the scheduler: the replay estimate plus a process's overhead
    retries: int
    group: str  # the run folder holding all seeds of this map, algorithm and settings
    evaluate_episodes: int = 0  # greedy episodes on the final parameters once trained (`qmix evaluate`); 0: none

    @cached_property  # validating every setting takes ~10 ms; the progress display asks every few seconds
    def config(self) -> Config:
        return config_from_sources([("the task's settings", self.settings)])

    @property
    def seeds(self) -> list[int]:
        return list(range(self.settings["seed"], self.settings["seed"] + self.settings["num_seeds"]))

    @property
    def env_steps(self) -> int:
        return int(self.settings["env_steps"])

    @property
    def needs_evaluation(self) -> bool:
        """Its evaluation is still to be made (a kept copy has no parameters to play: never)."""
        return (self.evaluate_episodes > 0 and not (self.run_dir / EVALUATION_FILE).is_file()
                and not (self.run_dir / KEPT_FILE).is_file())


def _format_value(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def folder_name(map_name: str, alg: str, point: dict[str, Any]) -> str:
    tag = "".join(f"-{key}={_format_value(value)}" for key, value in point.items())
    return f"{map_name}-{alg}{tag}"


def consecutive_runs(seeds: list[int]) -> list[list[int]]:
    """[0, 1, 2, 5, 6] -> [[0, 1, 2], [5, 6]]: a task trains seeds seed..seed+K-1."""
    runs: list[list[int]] = []
    for s in sorted(seeds):
        if runs and runs[-1][-1] == s - 1:
            runs[-1].append(s)
        else:
            runs.append([s])
    return runs


def split_seeds(seeds: list[int], group: int) -> list[list[int]]:
    """Groups of at most `group` consecutive seeds, as even in size as possible."""
    groups = []
    for run in consecutive_runs(seeds):
        count = math.ceil(len(run) / group)
        size = math.ceil(len(run) / count)
        groups += [run[i:i + size] for i in range(0, len(run), size)]
    return groups


def largest_group(base: Config, seeds: int, memory_limit: int | None) -> int:
    """The most seeds of `base` whose task fits in `memory_limit` bytes (at least one)."""
    if memory_limit is None:
        return seeds
    for k in range(seeds, 0, -1):
        if task_memory_bytes(_with_seeds(base, 0, k)) <= memory_limit:
            return k
    return 1


def _with_seeds(base: Config, seed: int, num_seeds: int) -> Config:
    return replace(base, seed=seed, num_seeds=num_seeds)


def group_folder(seeds: list[int]) -> str:
    return f"seed_{seeds[0]}" if len(seeds) == 1 else f"seeds_{seeds[0]}-{seeds[-1]}"


def task_for(out: Path, name: str, config: Config, group: str, cpus: float = 1.0, gpus: float = 0.0,
             retries: int = 3, evaluate_episodes: int = 0) -> Task:
    """The task training `config` (its seeds) in the run folder out/name."""
    return Task(name=name, run_dir=out / name, settings=config.to_dict(), cpus=cpus, gpus=gpus,
                memory=task_memory_bytes(config), retries=retries, group=group, evaluate_episodes=evaluate_episodes)


def make_tasks(
    out: Path,
    base: Config,
    folder: str,
    seeds: list[int],
    seed_group: int | None,
    memory_limit: int | None,
    cpus: float = 1.0,
    gpus: float = 0.0,
    retries: int = 3,
    subfolders: bool = False,
    evaluate_episodes: int = 0,
) -> list[Task]:
    """The tasks of one map, algorithm and setting: its seeds in groups (`seed_group`, or as many as fit).
    One group is the folder itself unless `subfolders` (other groups of it are already there)."""
    group = seed_group or largest_group(base, len(seeds), memory_limit)
    groups = split_seeds(seeds, group)
    tasks = []
    for members in groups:
        config = _with_seeds(base, members[0], len(members))
        name = folder if len(groups) == 1 and not subfolders else f"{folder}/{group_folder(members)}"
        tasks.append(task_for(out, name, config, folder, cpus, gpus, retries, evaluate_episodes))
    return tasks


def describe(task: Task) -> str:
    seeds = task.seeds
    which = f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {seeds[0]}-{seeds[-1]}"
    return (f"{task.settings['alg']} on {task.settings['map']}, {which}, {task.env_steps:,} env steps "
            f"({format_bytes(task.memory)} declared)")


def sweep_tasks(spec, memory_limit: int | None) -> list[Task]:
    """Every task of a sweep file, in the file's order: maps, then algorithms, then grid points."""
    tasks = []
    for map_name in spec.maps:
        for alg in spec.algs:
            for point in spec.grid_points():
                base = build_config(preset=spec.preset, shared=spec.settings, overrides=point, map=map_name,
                                    alg=alg, env_steps=spec.env_steps)
                tasks += make_tasks(spec.out, base, folder_name(map_name, alg, point), spec.seeds,
                                    spec.seed_group, memory_limit, spec.cpus, spec.gpus, spec.retries,
                                    evaluate_episodes=spec.evaluate_episodes)
    return tasks
