"""The imperative shell around the compiled loop: run folder, tests on schedule, logs, progress, summary."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import jax
import numpy as np
import yaml
from flax import serialization

from qmix.config import Config, ConfigError, config_to_yaml
from qmix.learn.train import RunnerState, Trainer, seed_keys
from qmix.results.metrics import MetricsLog

INT32_MAX = np.iinfo(np.int32).max


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write to a temporary file beside `path`, then rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def default_run_dir(config: Config, root: Path = Path("runs")) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    tag = f"-{config.tag}" if config.tag else ""
    return root / f"{stamp}-{config.alg}-{config.map}{tag}"


def seed_folders(run_dir: Path, config: Config) -> list[Path]:
    """One run: the run folder itself; many seeds: run_dir/seed_<seed>/ each."""
    if config.num_seeds == 1:
        return [run_dir]
    return [run_dir / f"seed_{config.seed + k}" for k in range(config.num_seeds)]


@dataclass
class RunSummary:
    run_dir: Path
    env_steps: list[int]
    final_test_win_rate: list[float]
    best_test_win_rate: list[float]
    final_test_return: list[float]
    wall_seconds: float
    history: list[list[dict]] = field(default_factory=list)  # per seed, every logged record


def _evaluation_keys(config: Config, test_index: int) -> jax.Array:
    # Separate from the training stream, and a pure function of the test's index (resumable).
    return jax.vmap(lambda k: jax.random.fold_in(k, 1_000_003 + test_index))(
        seed_keys(config.seed, config.num_seeds)
    )


def _chunk_record(totals, k: int, runners: RunnerState, trainer: Trainer) -> dict:
    """Means over one chunk for run k (train side of the log line)."""
    episodes = max(float(totals.episodes[k]), 1.0)
    updates = float(totals.updates[k])
    nan = float("nan")
    return {
        "env_steps": int(runners.env_steps[k]),
        "episodes": int(runners.episodes[k]),
        "updates": int(runners.learner.updates[k]),
        "train_return": float(totals.returns[k]) / episodes,
        "train_win_rate": float(totals.wins[k]) / episodes,
        "train_length": float(totals.lengths[k]) / episodes,
        "epsilon": float(trainer.epsilon(runners.env_steps[k])),
        "loss": float(totals.loss[k]) / updates if updates else nan,
        "q_taken_mean": float(totals.q_taken[k]) / updates if updates else nan,
        "grad_norm": float(totals.grad_norm[k]) / updates if updates else nan,
    }


def prepare_run_dir(run_dir: Path, force: bool) -> None:
    if run_dir.exists() and any(run_dir.iterdir()) and not force:
        raise ConfigError(
            f"run folder '{run_dir}' already holds a run; resume it with --resume {run_dir}, "
            "pick another --out, or pass --force to overwrite"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    for stale in run_dir.rglob("metrics.jsonl"):
        stale.unlink()


def train(
    config: Config,
    run_dir: Path | None = None,
    force: bool = False,
    progress: bool = True,
    tensorboard: bool = True,
    trainer: Trainer | None = None,
) -> RunSummary:
    """Train `config.num_seeds` runs side by side; log, test on schedule, save final parameters."""
    run_dir = Path(run_dir) if run_dir else default_run_dir(config)
    prepare_run_dir(run_dir, force)
    write_atomic(run_dir / "config.yaml", config_to_yaml(config))
    trainer = trainer or Trainer(config)
    folders = seed_folders(run_dir, config)
    for k, folder in enumerate(folders):
        if folder != run_dir:
            write_atomic(folder / "config.yaml", yaml.safe_dump({**config.to_dict(), "seed": config.seed + k}))
    logs = [MetricsLog(folder, tensorboard) for folder in folders]
    history: list[list[dict]] = [[] for _ in folders]

    start = time.perf_counter()
    runners = trainer.init_runs(seed_keys(config.seed, config.num_seeds))
    bar = _Progress(config, enabled=progress)
    test_index = 0
    last_logged = [-1] * config.num_seeds

    def run_tests(runners, train_records):
        nonlocal test_index
        results = trainer.evaluate_runs(runners.learner.params.agent, _evaluation_keys(config, test_index))
        test_index += 1
        results = jax.device_get(results)
        wall = time.perf_counter() - start
        for k in range(config.num_seeds):
            steps = int(runners.env_steps[k])
            if steps == last_logged[k]:
                continue  # this run already reached its budget; nothing new to log
            last_logged[k] = steps
            record = {
                **train_records[k],
                "test_win_rate": float(results["test_win_rate"][k]),
                "test_return": float(results["test_return"][k]),
                "test_length": float(results["test_length"][k]),
                "wall_seconds": round(wall, 3),
                "env_steps_per_second": steps / wall if wall > 0 else 0.0,
            }
            logs[k].write(record)
            history[k].append(record)
        return results

    initial = [{"env_steps": 0, "episodes": 0, "updates": 0} for _ in folders]
    results = run_tests(runners, initial)
    bar.update(runners, results)
    budget = config.env_steps
    while int(np.min(np.asarray(runners.env_steps))) < budget:
        stop_steps, stop_episodes = _next_stop(config, runners)
        runners, totals = trainer.train_runs_until(runners, stop_steps, stop_episodes)
        totals = jax.device_get(totals)
        records = [_chunk_record(totals, k, runners, trainer) for k in range(config.num_seeds)]
        results = run_tests(runners, records)
        bar.update(runners, results)
    bar.close()

    for k, folder in enumerate(folders):
        params = jax.tree.map(lambda x, k=k: np.asarray(x[k]), runners.learner.params)
        write_atomic(folder / "params.msgpack", serialization.to_bytes(params))
    for log in logs:
        log.close()
    wall = time.perf_counter() - start
    return RunSummary(
        run_dir=run_dir,
        env_steps=[int(s) for s in np.asarray(runners.env_steps)],
        final_test_win_rate=[h[-1]["test_win_rate"] for h in history],
        best_test_win_rate=[max(r["test_win_rate"] for r in h) for h in history],
        final_test_return=[h[-1]["test_return"] for h in history],
        wall_seconds=wall,
        history=history,
    )


def _next_stop(config: Config, runners: RunnerState) -> tuple[np.ndarray, np.ndarray]:
    """Per run: train until the next test point (in env steps or episodes) or the budget."""
    steps = np.asarray(runners.env_steps, dtype=np.int64)
    episodes = np.asarray(runners.episodes, dtype=np.int64)
    if config.test_interval_env_steps > 0:
        stop_steps = np.minimum(steps + config.test_interval_env_steps, config.env_steps)
    else:
        stop_steps = np.full_like(steps, config.env_steps)
    if config.test_interval_episodes > 0:
        stop_episodes = episodes + config.test_interval_episodes
    else:
        stop_episodes = np.full_like(episodes, INT32_MAX)
    return stop_steps.astype(np.int32), stop_episodes.astype(np.int32)


class _Progress:
    """A rich progress bar: env steps (mean over runs), steps/s, ETA, latest test win rate."""

    def __init__(self, config: Config, enabled: bool):
        self.enabled = enabled
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
        self.task = self.progress.add_task("train", total=config.env_steps, speed="", win="-")
        self.start = time.perf_counter()

    def update(self, runners: RunnerState, results) -> None:
        if not self.enabled:
            return
        steps = float(np.mean(np.asarray(runners.env_steps)))
        elapsed = time.perf_counter() - self.start
        win = float(np.mean(results["test_win_rate"]))
        self.progress.update(
            self.task, completed=steps, speed=f"{steps / max(elapsed, 1e-9):,.0f}/s", win=f"{win:.0%}"
        )

    def close(self) -> None:
        if self.enabled:
            self.progress.stop()
