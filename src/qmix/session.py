"""One process's share of a run: chunks of compiled training, tests on schedule, logs, checkpoints, the
NaN guard, and the final parameters. Whatever the algorithm's updates, rollouts and tests report is
logged by name (metrics.jsonl and TensorBoard)."""

from __future__ import annotations

import contextlib
import errno
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization

from qmix.checkpoint import CheckpointStore
from qmix.envs.base import episode_metrics
from qmix.errors import ConfigError, NonFiniteError
from qmix.files import write_atomic
from qmix.learn.loop import RunnerState, Trainer, run_slice, seed_keys
from qmix.learn.write_back import still_to_train
from qmix.progress import TrainingProgress
from qmix.results.metrics import MetricsLog
from qmix.run_folder import (
    INT32_MAX,
    parameter_binding,
    parameter_file,
    seed_folders,
    write_parameter_manifest,
)
from qmix.stopping import GracefulStop, StopRequested

SPACE_MARGIN_BYTES = 2**20  # free space a checkpoint needs beyond its own size (file system overheads)
STOP_CHECK_SECONDS = 2.0  # training between two looks at a stop request (SIGINT, SIGTERM)


@dataclass
class LoopState:
    """The host loop's own state between chunks, saved in every checkpoint so a resumed run carries on exactly."""

    test_index: int  # evaluation keys are a pure function of it
    last_logged: list[int]  # per run: env steps of its last log line (-1: none yet)
    history: list[list[dict]]  # per run: every logged record, for the summary
    wall_seconds: float = 0.0  # time spent up to the last checkpoint (a resumed run's clock starts there)
    checkpoint_step: int | None = None  # env steps of the newest checkpoint written
    chunk: dict | None = None  # a chunk stopped part-way (Chunk.to_dict), finished first on resume

    @classmethod
    def fresh(cls, num_seeds: int) -> LoopState:
        return cls(test_index=0, last_logged=[-1] * num_seeds, history=[[] for _ in range(num_seeds)])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoopState:
        return cls(**data)


@dataclass
class Chunk:
    """Training from one test point to the next: where each run stops and the sums so far. Trained in calls
    of a bounded number of iterations, so a stop request waits seconds, not a whole test interval; a
    checkpoint written part-way holds it, and the resumed run finishes the same chunk with the same sums."""

    stop_env_steps: np.ndarray  # [S] int32
    stop_episodes: np.ndarray  # [S] int32
    totals: dict[str, Any]  # name -> [S] float32

    def unfinished(self, runners: RunnerState) -> bool:
        return bool(np.asarray(still_to_train(runners, self.stop_env_steps, self.stop_episodes)).any())

    def to_dict(self) -> dict[str, list]:
        totals = jax.device_get(self.totals)
        return {"stop_env_steps": self.stop_env_steps.tolist(), "stop_episodes": self.stop_episodes.tolist(),
                "totals": {name: np.asarray(v).tolist() for name, v in totals.items()}}

    @classmethod
    def from_dict(cls, data: dict[str, list]) -> Chunk:
        return cls(np.asarray(data["stop_env_steps"], np.int32), np.asarray(data["stop_episodes"], np.int32),
                   {name: jnp.asarray(v, jnp.float32) for name, v in data["totals"].items()})


class Pace:
    """How many iterations one call of the compiled loop may run: about `seconds` of training, measured
    as it goes (the first call, which compiles, runs one)."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.iterations = 1

    def measured(self, iterations: int, seconds: float) -> None:
        if iterations < self.iterations:
            return  # the chunk ended early: says nothing about the rate
        fitting = int(self.seconds * iterations / max(seconds, 1e-6))
        self.iterations = max(1, min(fitting, 4 * self.iterations))  # grow gently past the compiling call


class Clock:
    """Wall-clock seconds of the run, counting the time spent before a resume."""

    def __init__(self, offset: float = 0.0):
        self.offset = offset
        self.start = time.perf_counter()

    def seconds(self) -> float:
        return self.offset + time.perf_counter() - self.start


def evaluation_keys(config, test_index: int) -> jax.Array:
    # Separate from the training stream, and a pure function of the test's index (resumable).
    return jax.vmap(lambda k: jax.random.fold_in(k, 1_000_003 + test_index))(seed_keys(config.seed, config.num_seeds))


@jax.jit
def finite_runs(tree) -> jax.Array:
    """[S] bool: every floating-point array of run k (leading axis) in `tree` is finite."""
    leaves = jax.tree.leaves(tree)
    checks = [jnp.isfinite(x).reshape(x.shape[0], -1).all(axis=1) for x in leaves if jnp.issubdtype(x.dtype, jnp.inexact)]
    if not checks:  # nothing that can stop being finite
        return jnp.ones((leaves[0].shape[0],), bool)
    return jnp.stack(checks).all(axis=0)


def checkpoint_step(runners: RunnerState) -> int:
    """A checkpoint is named by the env steps of the run furthest behind (all runs are saved together)."""
    return int(np.min(np.asarray(runners.env_steps)))


def checkpoint_due(config, last_step: int | None, env_steps: int) -> bool:
    """True when env_steps has crossed a multiple of checkpoint_interval_env_steps since the last checkpoint."""
    interval = config.checkpoint_interval_env_steps
    return interval > 0 and env_steps // interval > (last_step or 0) // interval


def next_stop(config, runners: RunnerState) -> tuple[np.ndarray, np.ndarray]:
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


def chunk_record(totals: dict, k: int, runners: RunnerState, trainer: Trainer) -> dict:
    """Run k's train side of a log line: counters, then the means over the chunk of every metric."""
    episodes = max(float(totals["episodes"][k]), 1.0)
    updates = float(totals["updates"][k])
    record = {"env_steps": int(runners.env_steps[k]), "episodes": int(runners.episodes[k]),
              "updates": int(runners.updates[k])}
    record.update({f"train_{n}": float(totals[f"train_{n}"][k]) / episodes for n in episode_metrics(trainer.env).names})
    record.update({n: float(v) for n, v in trainer.algorithm.status(runners.env_steps[k]).items()})
    record.update({n: float(totals[f"update_{n}"][k]) / updates if updates else math.nan
                   for n in trainer.metric_names})
    return record


def test_record(results: dict[str, dict], k: int) -> dict:
    """Run k's test side: test_<metric> for the main policy, test_<metric>_<name> for the others."""
    return {f"{metric}{'_' + name if name else ''}": float(values[k])
            for name, metrics in results.items() for metric, values in metrics.items()}


class Session:
    def __init__(self, config, run_dir: Path, trainer: Trainer, store: CheckpointStore, loop: LoopState,
                 clock: Clock, tensorboard: bool, on_checkpoint: Callable[[Path], None] | None,
                 purge_steps: list[int] | None = None, stop: GracefulStop | None = None):
        self.config = config
        self.run_dir = run_dir
        self.trainer = trainer
        self.store = store
        self.loop = loop
        self.clock = clock
        self.on_checkpoint = on_checkpoint
        self.stop = stop
        self.folders = seed_folders(run_dir, config)
        purge_steps = purge_steps or [None] * len(self.folders)
        self.headline = episode_metrics(trainer.env).headline  # the metric the progress bar shows
        self.pace = Pace(STOP_CHECK_SECONDS)
        self.logs = [MetricsLog(f, tensorboard, purge_step=p) for f, p in zip(self.folders, purge_steps, strict=True)]

    def run(self, runners: RunnerState, progress: bool, first_test: bool) -> RunnerState:
        bar = TrainingProgress(self.config, progress, self.headline,
                               start_steps=float(np.mean(np.asarray(runners.env_steps))))
        try:
            if first_test:
                initial = [{"env_steps": 0, "episodes": 0, "updates": 0} for _ in self.folders]
                bar.update(runners.env_steps, self.test_and_log(runners, initial)[""][f"test_{self.headline}"])
            while int(np.min(np.asarray(runners.env_steps))) < self.config.env_steps:
                if self.stop_requested:
                    self.stop_here(runners)
                runners = self.train_one_chunk(runners, bar)
            if self.loop.checkpoint_step != checkpoint_step(runners):
                self.checkpoint(runners)
            self.write_final_params(runners)
        finally:  # each closed on its own: a failing close (e.g. on a full disk) must not hide the first error
            for close in (bar.close, self.trainer.close, *(log.close for log in self.logs), self.store.close):
                with contextlib.suppress(Exception):
                    close()
        return runners

    def train_one_chunk(self, runners: RunnerState, bar: TrainingProgress) -> RunnerState:
        """Train to the next test point (or finish the chunk a stopped run was in), honouring a stop request
        between calls of about STOP_CHECK_SECONDS; then guard, test, log and (when due) checkpoint."""
        chunk = Chunk.from_dict(self.loop.chunk) if self.loop.chunk else self.new_chunk(runners)
        while chunk.unfinished(runners):
            started = time.perf_counter()
            runners, chunk.totals, done = self.trainer.train_chunk(
                runners, chunk.totals, chunk.stop_env_steps, chunk.stop_episodes, np.int32(self.pace.iterations))
            self.pace.measured(int(done), time.perf_counter() - started)
            bar.update(runners.env_steps)
            # Part-way through: only where the checkpoint gets a new name (a run resumed part-way whose
            # furthest-behind seed already finished this chunk stops at the chunk's end instead).
            if self.stop_requested and chunk.unfinished(runners) and (
                    checkpoint_step(runners) != self.loop.checkpoint_step):
                self.stop_here(runners, chunk)
        self.loop.chunk = None
        totals = jax.device_get(chunk.totals)
        self.stop_if_not_finite(runners, totals)
        records = [chunk_record(totals, k, runners, self.trainer) for k in range(self.config.num_seeds)]
        bar.update(runners.env_steps, self.test_and_log(runners, records)[""][f"test_{self.headline}"])
        if checkpoint_due(self.config, self.loop.checkpoint_step, checkpoint_step(runners)):
            self.checkpoint(runners)
        return runners

    def new_chunk(self, runners: RunnerState) -> Chunk:
        stop_env_steps, stop_episodes = next_stop(self.config, runners)
        return Chunk(stop_env_steps, stop_episodes, self.trainer.fresh_totals(self.config.num_seeds))

    def test_and_log(self, runners: RunnerState, train_records: list[dict]) -> dict:
        config, loop = self.config, self.loop
        results = jax.device_get(self.trainer.evaluate_runs(runners.alg, evaluation_keys(config, loop.test_index)))
        loop.test_index += 1
        wall = self.clock.seconds()
        for k in range(config.num_seeds):
            steps = int(runners.env_steps[k])
            if steps == loop.last_logged[k]:
                continue  # this run already reached its budget; nothing new to log
            loop.last_logged[k] = steps
            record = {**train_records[k], **test_record(results, k), "wall_seconds": round(wall, 3),
                      "env_steps_per_second": steps / wall if wall > 0 else 0.0}
            self.logs[k].write(record)
            loop.history[k].append(record)
        return results

    def stop_if_not_finite(self, runners: RunnerState, totals) -> None:
        """The NaN guard: stop before a non-finite metric or parameter reaches a test, a log or a checkpoint."""
        params_finite = np.asarray(finite_runs(runners.alg))
        metrics_finite = {n: np.isfinite(np.asarray(totals[f"update_{n}"])) for n in self.trainer.metric_names}
        for k in range(self.config.num_seeds):
            bad = [n for n, ok in metrics_finite.items() if not ok[k]] + ([] if params_finite[k] else ["parameters"])
            if not bad:
                continue
            step = self.loop.checkpoint_step
            last = self.store.path(step) if step is not None else "none (no checkpoint was written yet)"
            raise NonFiniteError(
                f"non-finite {' and '.join(bad)} at env step {int(runners.env_steps[k]):,} "
                f"(run {k}, seed {self.config.seed + k}); last good checkpoint: {last}"
            )

    @property
    def stop_requested(self) -> bool:
        return self.stop is not None and self.stop.requested is not None

    def stop_here(self, runners: RunnerState, chunk: Chunk | None = None) -> None:
        """A stop was asked for (SIGINT, SIGTERM): checkpoint where the run is (with the chunk under way, if
        any), and say how to go on."""
        step = checkpoint_step(runners)
        if self.loop.checkpoint_step != step:
            if chunk is not None:  # part-way: the NaN guard has not seen this part yet
                self.stop_if_not_finite(runners, jax.device_get(chunk.totals))
            self.loop.chunk = chunk.to_dict() if chunk is not None else None
            self.checkpoint(runners)
        raise StopRequested(self.stop.requested, (
            f"stopped by {self.stop.name} at env step {step:,}; the checkpoint {self.store.path(step)} holds the "
            f"run: continue it with `qmix train --resume {self.run_dir}`"))

    def checkpoint(self, runners: RunnerState) -> None:
        step = checkpoint_step(runners)
        previous = self.loop.checkpoint_step
        self.loop.checkpoint_step = step
        self.loop.wall_seconds = self.clock.seconds()
        host = {"config": self.config.to_dict(), "loop": self.loop.to_dict()}
        need = self.checkpoint_bytes(runners, previous)
        try:
            # Refused before writing where it cannot fit: a write that fails part-way leaves the storage
            # library's background tasks printing tracebacks after the one line.
            if shutil.disk_usage(self.store.folder).free < need + SPACE_MARGIN_BYTES:
                raise OSError(errno.ENOSPC, "No space left on device")
            path = self.store.save(step, runners, host, self.config.save_replay)
        except Exception as error:  # noqa: BLE001  (a full disk surfaces as many kinds of error)
            self.loop.checkpoint_step = previous
            if _no_space(error):
                raise self._disk_full(step, previous, need) from None
            raise
        if self.on_checkpoint is not None:
            self.on_checkpoint(path)

    def checkpoint_bytes(self, runners: RunnerState, previous: int | None) -> int:
        """About what the checkpoint will take: the last one's size, else the bytes of what it saves."""
        if previous is not None:
            return _folder_bytes(self.store.path(previous))
        saved = runners if self.config.save_replay else runners.replace(replay=None)
        return sum(leaf.nbytes for leaf in jax.tree.leaves(saved))

    def _disk_full(self, step: int, previous: int | None, size: int) -> ConfigError:
        amount = f"{size / 2**20:,.1f} MiB" if size >= 2**20 else f"{max(size, 1024) / 1024:,.0f} KiB"
        need = f" (a checkpoint takes about {amount})" if size else ""
        then = (f"the checkpoint at env step {previous:,} is kept: free some space and continue with"
                if previous is not None else "no checkpoint was kept: free some space, and")
        again = "" if previous is not None else " starts it again from step 0"
        return ConfigError(
            f"no space left on the device of '{self.store.folder}' for the checkpoint at env step {step:,}{need}; "
            f"{then} `qmix train --resume {self.run_dir}`{again}"
        )

    def write_final_params(self, runners: RunnerState) -> None:
        for k, folder in enumerate(self.folders):
            saved = self.trainer.algorithm.saved_parameters(jax.device_get(run_slice(runners.alg, k)))
            for name, tree in saved.items():
                write_atomic(folder / parameter_file(name), serialization.to_bytes(tree))
            write_parameter_manifest(folder, [parameter_file(name) for name in saved],
                                     parameter_binding(self.config, self.trainer.env))


def _no_space(error: BaseException) -> bool:
    while error is not None:
        if getattr(error, "errno", None) == 28 or "No space left on device" in str(error):  # ENOSPC
            return True
        error = error.__cause__ or error.__context__
    return False


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0
