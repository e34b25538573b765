"""Kept summaries: the small files of finished runs, copied out of a storage folder that will not last.

A reproduction or sweep that outlives its machines (spot instances, a scratch disk wiped between jobs)
keeps, in a folder that lasts (a git checkout, a bucket mount), what the report needs of every finished
run: its config.yaml, the test points of its metrics, parameter manifest, evaluations and learning
curve, with `kept.json` saying what was left out. Parameters, checkpoints, TensorBoard logs and the
training diagnostics of the metrics stay behind.

Given back to an empty storage folder, a kept run counts as done (its final parameters were written
and checksummed before it was kept), so the same command trains only what is missing.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from qmix.files import write_atomic
from qmix.run_folder import CONFIG_FILE, KEPT_FILE, METRICS_FILE, PARAMETER_MANIFEST

# What a kept run folder holds (per run folder and per seed folder); everything else is left behind.
RUN_FILES = (CONFIG_FILE, PARAMETER_MANIFEST, "evaluation*.json", "learning_curve.*")
# Of each metrics line, what the report, `qmix plot` and the tables read; training diagnostics (loss,
# gradient norm, train returns) stay with the original run folder and its TensorBoard log.
KEPT_METRICS = ("env_steps", "episodes", "test_win_rate", "test_return", "test_length", "wall_seconds")
# What a storage folder holds besides its runs (reproduce's report, figures and small results).
TOP_FILES = ("report.md", "*.png", "*.svg", "two_step.json", "heuristic.json")


def read_kept(run_dir: Path) -> dict | None:
    """The marker of a kept run folder, or None for a run folder that is not a kept copy."""
    try:
        return json.loads((run_dir / KEPT_FILE).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError, UnicodeDecodeError):
        return None


def is_kept(run_dir: Path, env_steps: int, seeds: list[int]) -> bool:
    """`run_dir` is a kept copy of a finished run of these seeds at this budget."""
    kept = read_kept(run_dir) or {}
    return kept.get("env_steps") == env_steps and kept.get("seeds") == seeds


def _copy_matching(source: Path, dest: Path, patterns: tuple[str, ...]) -> None:
    for pattern in patterns:
        for path in source.glob(pattern):
            if path.is_file():
                dest.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, dest / path.name)


def thin_metrics(text: str) -> str:
    """The metrics lines with only KEPT_METRICS (lines that do not parse are dropped)."""
    kept = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        kept.append(json.dumps({key: record[key] for key in KEPT_METRICS if key in record}))
    return "".join(line + "\n" for line in kept)


def _keep_folder(source: Path, dest: Path) -> None:
    _copy_matching(source, dest, RUN_FILES)
    metrics = source / METRICS_FILE
    if metrics.is_file():
        dest.mkdir(parents=True, exist_ok=True)
        write_atomic(dest / METRICS_FILE, thin_metrics(metrics.read_text(encoding="utf-8")))


def keep_run(run_dir: Path, dest: Path, env_steps: int, seeds: list[int]) -> None:
    """Copy the small files of the finished run folder `run_dir` to `dest`; `kept.json` is written last."""
    _keep_folder(run_dir, dest)
    for seed_dir in sorted(run_dir.glob("seed_*")):
        if seed_dir.is_dir():
            _keep_folder(seed_dir, dest / seed_dir.name)
    write_kept_marker(dest, env_steps, seeds)


def write_kept_marker(dest: Path, env_steps: int, seeds: list[int]) -> None:
    marker = {"env_steps": env_steps, "seeds": seeds,
              "left_out": "parameters (*.msgpack), checkpoints/ and tensorboard/; evaluate the original run folder",
              "metrics_fields": list(KEPT_METRICS)}
    write_atomic(dest / KEPT_FILE, json.dumps(marker, indent=1) + "\n")


def keep_storage(storage: Path, dest: Path, done_runs: list[tuple[Path, int, list[int]]]) -> None:
    """Copy the storage folder's report files and every finished run (path, env steps, seeds) to `dest`."""
    _copy_matching(storage, dest, TOP_FILES)
    for run_dir, env_steps, seeds in done_runs:
        target = dest / run_dir.relative_to(storage)
        if not is_kept(target, env_steps, seeds):
            keep_run(run_dir, target, env_steps, seeds)


def restore_kept(dest: Path, storage: Path) -> list[Path]:
    """Copy kept runs (and the small results) from `dest` into `storage` where `storage` has nothing of
    them yet; returns the run folders given back. A run already in `storage` is never touched."""
    if not dest.is_dir():
        return []
    for pattern in ("two_step.json", "heuristic.json"):
        for path in dest.glob(pattern):
            if not (storage / path.name).exists():
                storage.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, storage / path.name)
    restored = []
    for marker in sorted(dest.rglob(KEPT_FILE)):
        kept = marker.parent
        target = storage / kept.relative_to(dest)
        if target.exists():
            continue
        shutil.copytree(kept, target)
        restored.append(target)
    return restored
