"""What a run folder already holds, compared with the task that wants it: done, resumable, new, or in the way."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path

from qmix.config import Config, build_config
from qmix.errors import ConfigError
from qmix.files import read_jsonl
from qmix.run_folder import LOCK_FILE, has_verified_final_parameters, marked_checkpoint_steps, seed_folders
from qmix.settings import speed_only_names
from qmix.sweep.keep import is_kept

CHECKPOINTS = "checkpoints"
METRICS = "metrics.jsonl"


class RunState(enum.Enum):
    DONE = "done"  # final parameters for every seed at this budget, or a kept copy of such a run: skipped
    RESUME = "resume"  # a complete checkpoint: continue from the newest one
    FRESH = "fresh"  # nothing yet (or a start killed before its first checkpoint): train from step 0
    CONFLICT = "conflict"  # another run is there: never overwritten


@dataclass(frozen=True)
class Inspection:
    state: RunState
    detail: str = ""


def _differences(saved: Config, wanted: Config) -> list[str]:
    """The settings that make the saved run another run: not the budget, nor a setting that changes speed only
    (the run goes on with its saved value, so a changed default does not orphan a sweep's runs)."""
    a, b = saved.to_dict(), wanted.to_dict()
    ignored = {"env_steps"} | speed_only_names(saved.algorithm, saved.environment)
    return [f"{key} {a[key]!r} (saved) vs {b[key]!r}" for key in a if key not in ignored and a[key] != b[key]]


def inspect_run(run_dir: Path, config: Config) -> Inspection:
    config_file = run_dir / "config.yaml"
    if not config_file.is_file():
        # the lock alone is a start killed before its config was written: nothing of value
        if run_dir.is_dir() and any(p.name not in (CHECKPOINTS, LOCK_FILE) for p in run_dir.iterdir()):
            return Inspection(RunState.CONFLICT, f"'{run_dir}' holds files but no config.yaml; move them away")
        return Inspection(RunState.FRESH)
    try:
        saved = build_config(config_file=config_file)
    except ConfigError as error:
        return Inspection(RunState.CONFLICT, f"its config.yaml is unreadable ({error}); move '{run_dir}' away")
    differences = _differences(saved, config)
    if differences:
        return Inspection(RunState.CONFLICT, f"'{run_dir}' holds a run with other settings: "
                          + ", ".join(differences) + "; move it away or choose another out")
    if saved.env_steps > config.env_steps:
        return Inspection(RunState.CONFLICT, f"'{run_dir}' holds a run with a larger budget "
                          f"({saved.env_steps:,} > {config.env_steps:,} env steps); move it away")
    finished = all(has_verified_final_parameters(f) for f in seed_folders(run_dir, config)) or is_kept(run_dir, saved)
    if finished and saved.env_steps == config.env_steps:
        return Inspection(RunState.DONE)
    steps = marked_checkpoint_steps(run_dir)
    if steps:
        return Inspection(RunState.RESUME, f"from env step {steps[-1]:,}")
    return Inspection(RunState.FRESH, "started before but killed before its first checkpoint")


def logged_env_steps(run_dir: Path, config: Config) -> list[int]:
    """Per seed: env steps of the newest log line (0 when none); read while the run writes."""
    steps = []
    for folder in seed_folders(run_dir, config):
        records = read_jsonl(folder / METRICS).records  # a line being written is skipped
        steps.append(max((_as_steps(r.get("env_steps")) for r in records[-3:]), default=0))
    return steps


def final_test_values(run_dir: Path, config: Config, metric: str) -> list[float]:
    """Per seed: the value of `metric` (e.g. test_win_rate, test_return) on its last log line holding it."""
    rates = []
    for folder in seed_folders(run_dir, config):
        records = read_jsonl(folder / METRICS).records
        tested = [r for r in records if metric in r]
        rates.append(float(tested[-1][metric]) if tested else float("nan"))
    return rates


def _as_steps(value) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0
