"""The imperative shell around the compiled loop: run folder, tests on schedule, logs, checkpoints, resume."""

from __future__ import annotations

import functools
import json
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import yaml
from flax import serialization

from qmix.checkpoint import CHECKPOINT_FOLDER, RESUMABLE_CHANGES, CheckpointStore, Restored, write_atomic
from qmix.config import FIELDS, Config, ConfigError, apply_settings, build_config, config_to_yaml, validate
from qmix.learn.train import RunnerState, Trainer, run_slice, seed_keys
from qmix.results.metrics import MetricsLog

INT32_MAX = np.iinfo(np.int32).max
NON_FINITE_EXIT_CODE = 3
PARAMS_FILE = "params.msgpack"  # a run's final parameters (agent and mixer), in each seed folder
AVERAGED_AGENT_FILE = "averaged_agent.msgpack"  # its averaged agent network, when policy_average_tau > 0
# The only logged fields that differ between two runs of one config and seed on one machine.
WALL_CLOCK_FIELDS = ("wall_seconds", "env_steps_per_second")


class NonFiniteError(RuntimeError):
    """A loss or parameter became NaN or infinite; the run stopped without writing a checkpoint.

    The command line prints its message as one line and exits with NON_FINITE_EXIT_CODE.
    """


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
    config: Config | None = None


@dataclass
class LoopState:
    """The host loop's own state between chunks, saved in every checkpoint so a resumed run carries on exactly."""

    test_index: int  # evaluation keys are a pure function of it
    last_logged: list[int]  # per run: env steps of its last log line (-1: none yet)
    history: list[list[dict]]  # per run: every logged record, for the summary
    wall_seconds: float = 0.0  # time spent up to the last checkpoint (a resumed run's clock starts there)
    checkpoint_step: int | None = None  # env steps of the newest checkpoint written

    @classmethod
    def fresh(cls, num_seeds: int) -> LoopState:
        return cls(test_index=0, last_logged=[-1] * num_seeds, history=[[] for _ in range(num_seeds)])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoopState:
        return cls(**data)


class _Clock:
    """Wall-clock seconds of the run, counting the time spent before a resume."""

    def __init__(self, offset: float = 0.0):
        self.offset = offset
        self.start = time.perf_counter()

    def seconds(self) -> float:
        return self.offset + time.perf_counter() - self.start


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
    # An old run's checkpoints would be resumed in place of this run's.
    shutil.rmtree(run_dir / CHECKPOINT_FOLDER, ignore_errors=True)


def _write_configs(run_dir: Path, config: Config) -> None:
    write_atomic(run_dir / "config.yaml", config_to_yaml(config))
    for k, folder in enumerate(seed_folders(run_dir, config)):
        if folder != run_dir:
            write_atomic(folder / "config.yaml", yaml.safe_dump({**config.to_dict(), "seed": config.seed + k}))


def train(
    config: Config,
    run_dir: Path | None = None,
    force: bool = False,
    progress: bool = True,
    tensorboard: bool = True,
    trainer: Trainer | None = None,
    on_checkpoint: Callable[[Path], None] | None = None,
) -> RunSummary:
    """Train `config.num_seeds` runs side by side; log, test and checkpoint on schedule, save final parameters.

    `on_checkpoint(path)` is called after each checkpoint is complete (e.g. to copy it elsewhere).
    Raises NonFiniteError if a loss or parameter stops being finite.
    """
    run_dir = Path(run_dir) if run_dir else default_run_dir(config)
    prepare_run_dir(run_dir, force)
    _write_configs(run_dir, config)
    trainer = trainer or Trainer(config)
    clock = _Clock()
    runners = trainer.init_runs(seed_keys(config.seed, config.num_seeds))
    store = CheckpointStore(run_dir, config.keep_checkpoints)
    session = _Session(config, run_dir, trainer, store, LoopState.fresh(config.num_seeds), clock,
                       tensorboard, on_checkpoint)
    return session.run(runners, progress, first_test=True)


def load_run_config(run_dir: Path, changes: dict[str, Any] | None = None) -> Config:
    """The resolved config a run saved in `run_dir`, with `changes` applied; only the budget may change."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"run folder '{run_dir}' does not exist")
    path = run_dir / "config.yaml"
    if not path.is_file():
        raise ConfigError(f"'{run_dir}' is not a run folder (it has no config.yaml); pass a folder `qmix train` wrote")
    saved = build_config(config_file=path)
    wanted = apply_settings(saved, changes or {}, "command line")
    validate(wanted)
    changed = [key for key in FIELDS if key not in RESUMABLE_CHANGES and getattr(wanted, key) != getattr(saved, key)]
    if changed:
        listing = ", ".join(f"{key} ({getattr(saved, key)!r} -> {getattr(wanted, key)!r})" for key in changed)
        raise ConfigError(
            f"a resumed run keeps the settings saved in '{path}'; only env_steps (the budget) may change, "
            f"not {listing}"
        )
    return wanted


def resume(
    run_dir: Path,
    changes: dict[str, Any] | None = None,
    progress: bool = True,
    tensorboard: bool = True,
    trainer: Trainer | None = None,
    on_checkpoint: Callable[[Path], None] | None = None,
) -> RunSummary:
    """Continue the run in `run_dir` from its newest usable checkpoint, to its (possibly raised) budget.

    Newer checkpoints that are unfinished or corrupt are skipped with a warning and deleted; log lines
    written after the restored checkpoint are dropped, so they are logged again exactly as before.
    """
    run_dir = Path(run_dir)
    config = load_run_config(run_dir, changes)
    store = CheckpointStore(run_dir, config.keep_checkpoints, create=False)
    get_trainer = functools.cache(lambda: trainer or Trainer(config))  # built once a checkpoint verifies
    restored = _restore_newest(store, config, get_trainer)
    store.discard_after(restored.step)  # the unusable newer steps, which would block writing new ones
    _report_restore(run_dir, config, restored)
    _rewind_run_folder(run_dir, config, restored)
    loop = LoopState.from_dict(restored.host["loop"])
    purge_steps = [int(steps) + 1 for steps in np.asarray(restored.runners.env_steps)]
    session = _Session(config, run_dir, get_trainer(), store, loop, _Clock(loop.wall_seconds), tensorboard,
                       on_checkpoint, purge_steps)
    return session.run(restored.runners, progress, first_test=False)


def _restore_newest(store: CheckpointStore, config: Config, get_trainer: Callable[[], Trainer]) -> Restored:
    keys = seed_keys(config.seed, config.num_seeds)
    try:
        return store.restore_latest(
            lambda: jax.eval_shape(get_trainer().init_runs, keys),  # shapes and types only: nothing allocated
            lambda: get_trainer().init_runs(keys).replay,
            config.to_dict(),
        )
    except BaseException:
        store.close()
        raise


def _report_restore(run_dir: Path, config: Config, restored: Restored) -> None:
    for line in restored.skipped:
        _warn(line)
    if not restored.replay_restored:
        _warn(
            "the replay buffer was not restored (the run has save_replay=false): it starts empty and learning "
            "waits until it holds batch_size episodes again, so the results will differ from an uninterrupted run"
        )
    _say(f"resuming '{run_dir}' from its checkpoint at env step {restored.step:,}")
    if restored.step >= config.env_steps:
        _say(f"the run already reached its budget of {config.env_steps:,} env steps; raise it with --env-steps")


def _rewind_run_folder(run_dir: Path, config: Config, restored: Restored) -> None:
    """Make the run folder match the checkpoint: drop later log lines; record a raised budget."""
    for k, folder in enumerate(seed_folders(run_dir, config)):
        _drop_records_after(folder / "metrics.jsonl", int(restored.runners.env_steps[k]))
    if config.env_steps != restored.host["config"]["env_steps"]:
        _write_configs(run_dir, config)


def _say(message: str) -> None:
    print(f"qmix: {message}", file=sys.stderr)


def _warn(message: str) -> None:
    print(f"qmix: warning: {message}", file=sys.stderr)


def _drop_records_after(path: Path, env_steps: int) -> None:
    """Keep only the log lines up to `env_steps` (those a checkpoint already covers); rewrite atomically."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a kill
        if record.get("env_steps", INT32_MAX) <= env_steps:
            kept.append(line + "\n")
    write_atomic(path, "".join(kept))


@jax.jit
def finite_runs(tree) -> jax.Array:
    """[S] bool: every floating-point array of run k (leading axis) in `tree` is finite."""
    checks = [
        jnp.isfinite(x).reshape(x.shape[0], -1).all(axis=1)
        for x in jax.tree.leaves(tree)
        if jnp.issubdtype(x.dtype, jnp.inexact)
    ]
    return jnp.stack(checks).all(axis=0)


def _checkpoint_due(config: Config, last_step: int | None, env_steps: int) -> bool:
    """True when env_steps has crossed a multiple of checkpoint_interval_env_steps since the last checkpoint."""
    interval = config.checkpoint_interval_env_steps
    return interval > 0 and env_steps // interval > (last_step or 0) // interval


class _Session:
    """One process's share of a run: chunks of training, tests, logs, checkpoints, the NaN guard."""

    def __init__(
        self,
        config: Config,
        run_dir: Path,
        trainer: Trainer,
        store: CheckpointStore,
        loop: LoopState,
        clock: _Clock,
        tensorboard: bool,
        on_checkpoint: Callable[[Path], None] | None,
        purge_steps: list[int] | None = None,
    ):
        self.config = config
        self.run_dir = run_dir
        self.trainer = trainer
        self.store = store
        self.loop = loop
        self.clock = clock
        self.on_checkpoint = on_checkpoint
        self.folders = seed_folders(run_dir, config)
        purge_steps = purge_steps or [None] * len(self.folders)
        self.logs = [MetricsLog(f, tensorboard, purge_step=p) for f, p in zip(self.folders, purge_steps, strict=True)]

    def run(self, runners: RunnerState, progress: bool, first_test: bool) -> RunSummary:
        bar = _Progress(self.config, progress, start_steps=float(np.mean(np.asarray(runners.env_steps))))
        try:
            if first_test:
                initial = [{"env_steps": 0, "episodes": 0, "updates": 0} for _ in self.folders]
                bar.update(runners, self.test_and_log(runners, initial))
            while int(np.min(np.asarray(runners.env_steps))) < self.config.env_steps:
                runners = self.train_one_chunk(runners, bar)
            if self.loop.checkpoint_step != _checkpoint_step(runners):
                self.checkpoint(runners)
            self.write_final_params(runners)
        finally:
            bar.close()
            self.trainer.close()
            for log in self.logs:
                log.close()
            self.store.close()
        return self.summary(runners)

    def train_one_chunk(self, runners: RunnerState, bar: _Progress) -> RunnerState:
        """Train to the next test point, then guard, test, log and (when due) checkpoint."""
        stop_steps, stop_episodes = _next_stop(self.config, runners)
        runners, totals = self.trainer.train_runs_until(runners, stop_steps, stop_episodes)
        totals = jax.device_get(totals)
        self.stop_if_not_finite(runners, totals)
        records = [_chunk_record(totals, k, runners, self.trainer) for k in range(self.config.num_seeds)]
        bar.update(runners, self.test_and_log(runners, records))
        if _checkpoint_due(self.config, self.loop.checkpoint_step, _checkpoint_step(runners)):
            self.checkpoint(runners)
        return runners

    def test_and_log(self, runners: RunnerState, train_records: list[dict]) -> dict:
        config, loop = self.config, self.loop
        keys = _evaluation_keys(config, loop.test_index)
        results = jax.device_get(self.trainer.evaluate_runs(runners.learner.params.agent, keys))
        averaged = None
        if config.policy_average_tau > 0:  # the same episodes' layouts and randomness: a paired comparison
            averaged = jax.device_get(self.trainer.evaluate_runs(runners.learner.average_agent, keys))
        loop.test_index += 1
        wall = self.clock.seconds()
        for k in range(config.num_seeds):
            steps = int(runners.env_steps[k])
            if steps == loop.last_logged[k]:
                continue  # this run already reached its budget; nothing new to log
            loop.last_logged[k] = steps
            record = {
                **train_records[k],
                "test_win_rate": float(results["test_win_rate"][k]),
                "test_return": float(results["test_return"][k]),
                "test_length": float(results["test_length"][k]),
            }
            if averaged is not None:
                record["test_win_rate_averaged"] = float(averaged["test_win_rate"][k])
                record["test_return_averaged"] = float(averaged["test_return"][k])
            record["wall_seconds"] = round(wall, 3)
            record["env_steps_per_second"] = steps / wall if wall > 0 else 0.0
            self.logs[k].write(record)
            loop.history[k].append(record)
        return results

    def stop_if_not_finite(self, runners: RunnerState, totals) -> None:
        """The NaN guard: stop before a non-finite loss or parameter reaches a test, a log or a checkpoint."""
        params_finite = np.asarray(finite_runs(runners.learner))
        loss_finite = np.isfinite(np.asarray(totals.loss))
        for k in range(self.config.num_seeds):
            if params_finite[k] and loss_finite[k]:
                continue
            what = " and ".join(name for name, ok in (("loss", loss_finite[k]), ("parameters", params_finite[k]))
                                if not ok)
            step = self.loop.checkpoint_step
            last = self.store.path(step) if step is not None else "none (no checkpoint was written yet)"
            raise NonFiniteError(
                f"non-finite {what} at env step {int(runners.env_steps[k]):,} "
                f"(run {k}, seed {self.config.seed + k}); last good checkpoint: {last}"
            )

    def checkpoint(self, runners: RunnerState) -> None:
        step = _checkpoint_step(runners)
        self.loop.checkpoint_step = step
        self.loop.wall_seconds = self.clock.seconds()
        host = {"config": self.config.to_dict(), "loop": self.loop.to_dict()}
        path = self.store.save(step, runners, host, self.config.save_replay)
        if self.on_checkpoint is not None:
            self.on_checkpoint(path)

    def write_final_params(self, runners: RunnerState) -> None:
        for k, folder in enumerate(self.folders):
            params = jax.device_get(run_slice(runners.learner.params, k))
            write_atomic(folder / PARAMS_FILE, serialization.to_bytes(params))
            if self.config.policy_average_tau > 0:
                average = jax.device_get(run_slice(runners.learner.average_agent, k))
                write_atomic(folder / AVERAGED_AGENT_FILE, serialization.to_bytes(average))

    def summary(self, runners: RunnerState) -> RunSummary:
        history = self.loop.history
        return RunSummary(
            run_dir=self.run_dir,
            env_steps=[int(s) for s in np.asarray(runners.env_steps)],
            final_test_win_rate=[h[-1]["test_win_rate"] for h in history],
            best_test_win_rate=[max(r["test_win_rate"] for r in h) for h in history],
            final_test_return=[h[-1]["test_return"] for h in history],
            wall_seconds=self.clock.seconds(),
            history=history,
            config=self.config,
        )


def _checkpoint_step(runners: RunnerState) -> int:
    """A checkpoint is named by the env steps of the run furthest behind (all runs are saved together)."""
    return int(np.min(np.asarray(runners.env_steps)))


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

    def __init__(self, config: Config, enabled: bool, start_steps: float = 0.0):
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
        self.task = self.progress.add_task(
            "train", total=config.env_steps, completed=start_steps, speed="", win="-"
        )
        self.start = time.perf_counter()

    def update(self, runners: RunnerState, results) -> None:
        if not self.enabled:
            return
        steps = float(np.mean(np.asarray(runners.env_steps)))
        elapsed = time.perf_counter() - self.start
        win = float(np.mean(results["test_win_rate"]))
        speed = (steps - self.start_steps) / max(elapsed, 1e-9)
        self.progress.update(self.task, completed=steps, speed=f"{speed:,.0f}/s", win=f"{win:.0%}")

    def close(self) -> None:
        if self.enabled:
            self.progress.stop()
