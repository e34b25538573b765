"""Kept summaries: the small files of finished runs, copied out of a storage folder that will not last.

A reproduction or sweep that outlives its machines (spot instances, a scratch disk wiped between jobs)
keeps, in a folder that lasts (a git checkout, a bucket mount), what the report needs of every finished
run: its config.yaml, the test points of its metrics (gzip-compressed: metrics.jsonl.gz, about a fifth of
the text; `gzip -dc` reads it, and so does every qmix command), evaluations and learning curve, with `kept.json`
saying what was left out and holding the checksums of the parameters that stayed behind. Parameters,
checkpoints, TensorBoard logs and the training diagnostics of the metrics stay behind.

Given back to an empty storage folder, a kept run counts as done (its final parameters were written
and checksummed before it was kept), so the same command trains only what is missing.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from qmix.files import parse_jsonl, write_atomic, write_compressed
from qmix.run_folder import CONFIG_FILE, KEPT_FILE, METRICS_FILE, parameter_checksums, seed_folders

# What a kept run folder holds (per run folder and per seed folder); everything else is left behind.
# Written by `qmix evaluate` and `qmix plot`, possibly after the run was kept: copied again on every keep.
LATER_FILES = ("evaluation*.json", "learning_curve.*")
RUN_FILES = (CONFIG_FILE, *LATER_FILES)
# Of each metrics line, what the report, `qmix plot` and the tables read: the counters and every test
# metric the environment declares (test_*); training diagnostics (loss, gradient norm, train returns) stay
# with the original run folder and its TensorBoard log.
KEPT_METRICS = ("env_steps", "episodes", "wall_seconds")
KEPT_PREFIX = "test_"
# What a storage folder holds besides its runs: small results worth giving back (not recomputed), and
# the report (or a sweep's summary) with the PNG figures it shows (rewritten anyway; the SVG copies stay in storage).
RESULT_FILES = ("two_step.json", "heuristic.json")
TOP_FILES = ("report.md", "summary.md", "*.png", *RESULT_FILES)


def read_kept(run_dir: Path) -> dict | None:
    """The marker of a kept run folder, or None for a run folder that is not a kept copy."""
    try:
        return json.loads((run_dir / KEPT_FILE).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError, UnicodeDecodeError):
        return None


def _seeds(config) -> list[int]:
    return list(range(config.seed, config.seed + config.num_seeds))


def is_kept(run_dir: Path, config) -> bool:
    """`run_dir` is a kept copy of a finished run of this config's seeds at its budget."""
    kept = read_kept(run_dir) or {}
    return kept.get("env_steps") == config.env_steps and kept.get("seeds") == _seeds(config)


def _copy_matching(source: Path, dest: Path, patterns: tuple[str, ...]) -> None:
    for pattern in patterns:
        for path in source.glob(pattern):
            if path.is_file():
                dest.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, dest / path.name)


KEPT_DIGITS = 7  # significant digits of a kept test metric: float32's, which the loop computed it in


def _kept_value(value):
    return float(f"{value:.{KEPT_DIGITS}g}") if isinstance(value, float) else value


def thin_metrics(text: str) -> str:
    """The metrics lines with only KEPT_METRICS and the test metrics, these to float32's precision (their
    float64 text carries ten more digits of nothing); lines that do not parse are dropped."""
    kept = [json.dumps({key: value if key in KEPT_METRICS else _kept_value(value) for key, value in record.items()
                        if key in KEPT_METRICS or key.startswith(KEPT_PREFIX)}) for record in parse_jsonl(text).records]
    return "".join(line + "\n" for line in kept)


def _keep_folder(source: Path, dest: Path, files: tuple[str, ...]) -> None:
    _copy_matching(source, dest, files)
    metrics = source / METRICS_FILE
    if metrics.is_file():
        write_compressed(dest / METRICS_FILE, thin_metrics(metrics.read_text(encoding="utf-8", errors="replace")))
        (dest / METRICS_FILE).unlink(missing_ok=True)  # the plain copy an older version kept


def _folder_pairs(run_dir: Path, dest: Path, config) -> list[tuple[Path, Path]]:
    """(source, kept copy) for the run folder and each of its seed folders."""
    pairs = [(run_dir, dest)]
    return pairs + [(f, dest / f.name) for f in seed_folders(run_dir, config) if f != run_dir]


def keep_run(run_dir: Path, dest: Path, config) -> None:
    """Copy the small files of the finished run folder `run_dir` (trained with `config`) to `dest`;
    `kept.json` is written last."""
    for source, target in _folder_pairs(run_dir, dest, config):
        # a seed folder's config.yaml is its run's with the seed changed, which the results reader derives
        _keep_folder(source, target, RUN_FILES if source == run_dir else LATER_FILES)
    write_kept_marker(dest, config, run_dir)


def write_kept_marker(dest: Path, config, run_dir: Path) -> None:
    # The parameter manifest goes into the marker rather than beside it: one small file fewer per kept run,
    # and the checksums still name the parameters that were evaluated.
    marker = {"env_steps": config.env_steps, "seeds": _seeds(config),
              "left_out": "parameters (*.msgpack), checkpoints/ and tensorboard/; evaluate the original run folder",
              "metrics_fields": [*KEPT_METRICS, f"{KEPT_PREFIX}*"], "parameters": parameter_checksums(run_dir)}
    write_atomic(dest / KEPT_FILE, json.dumps(marker, indent=1) + "\n")


def keep_storage(storage: Path, dest: Path, done_runs: list[tuple[Path, object]], top: Path | None = None) -> None:
    """Copy the report files of `top` (the storage folder itself, or a sweep's own summary folder in it) and
    every finished run (its folder and config) to `dest`."""
    _copy_matching(storage if top is None else top, dest, TOP_FILES)
    for run_dir, config in done_runs:
        target = dest / run_dir.relative_to(storage)
        if not is_kept(target, config):
            keep_run(run_dir, target, config)
        elif run_dir != target:
            for source, kept in _folder_pairs(run_dir, target, config):
                _copy_matching(source, kept, LATER_FILES)  # an evaluation made since it was kept


def restore_kept(dest: Path, storage: Path) -> list[Path]:
    """Copy kept runs (and the small results) from `dest` into `storage` where `storage` has nothing of
    them yet; returns the run folders given back. A run already in `storage` is never touched."""
    if not dest.is_dir():
        return []
    for name in RESULT_FILES:
        if (dest / name).is_file() and not (storage / name).exists():
            storage.mkdir(parents=True, exist_ok=True)
            shutil.copy2(dest / name, storage / name)
    restored = []
    for marker in sorted(dest.rglob(KEPT_FILE)):
        kept = marker.parent
        target = storage / kept.relative_to(dest)
        if target.exists():
            continue
        shutil.copytree(kept, target)
        restored.append(target)
    return restored
