"""Train and resume runs: the run folder, the compiled trainer and a Session that drives it.

`train(config, run_dir)` starts a run; `resume(run_dir)` continues one from its newest usable
checkpoint. Both return a RunSummary. The folder layout is run_folder.py's; the loop is session.py's.
"""

from __future__ import annotations

import functools
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import numpy as np

import qmix.run_folder as run_folder
from qmix.algorithms import ALGORITHMS
from qmix.algorithms.base import uses_replay
from qmix.build import make_trainer
from qmix.checkpoint import RESUMABLE_CHANGES, CheckpointStore, Restored
from qmix.config import Config, load_saved_config, replace
from qmix.errors import CheckpointError, ConfigError, NonFiniteError  # noqa: F401  (NonFiniteError: raised here)
from qmix.learn.loop import RunnerState, Trainer, seed_keys
from qmix.memory import check_replay_fits
from qmix.run_folder import (
    CONFIG_FILE,
    METRICS_FILE,
    default_run_dir,
    drop_records_after,
    seed_folders,
    write_configs,
)
from qmix.session import Clock, LoopState, Session
from qmix.stopping import GracefulStop, StopRequested

__all__ = ["WALL_CLOCK_FIELDS", "RunSummary", "load_run_config", "resume", "train"]

# The only logged fields that differ between two runs of one config and seed on one machine.
WALL_CLOCK_FIELDS = ("wall_seconds", "env_steps_per_second")


@dataclass
class RunSummary:
    run_dir: Path
    env_steps: list[int]
    headline: str  # the metric the run is summarised by: its environment's headline (win_rate, return, ...)
    final_test_headline: list[float]  # per seed, the headline at the last test
    best_test_headline: list[float]  # per seed, the highest headline over the tests
    final_test_return: list[float]
    wall_seconds: float
    history: list[list[dict]] = field(default_factory=list)  # per seed, every logged record
    config: Config | None = None


def summarise(session: Session, runners: RunnerState) -> RunSummary:
    history, key = session.loop.history, f"test_{session.headline}"
    return RunSummary(
        run_dir=session.run_dir,
        env_steps=[int(s) for s in np.asarray(runners.env_steps)],
        headline=session.headline,
        final_test_headline=[h[-1][key] for h in history],
        best_test_headline=[max(r[key] for r in h) for h in history],
        final_test_return=[h[-1]["test_return"] for h in history],
        wall_seconds=session.clock.seconds(),
        history=history,
        config=session.config,
    )


def check_run_dir(run_dir: Path, force: bool) -> bool:
    """Before anything is written: the folder can hold a run, and does not hold one unless --force.
    Returns True for a run that stopped before its first checkpoint: it is started again (nothing is lost)."""
    run_folder.check_can_create(run_dir)
    run_folder.refuse_a_seed_folder(run_dir)
    if force or not run_folder.holds_a_run(run_dir):
        return False
    if run_folder.never_checkpointed(run_dir):
        return True
    if not (run_dir / CONFIG_FILE).is_file():
        raise ConfigError(
            f"run folder '{run_dir}' holds files but no {CONFIG_FILE}, so no run qmix can continue; move them away, "
            "pick another --out, or pass --force to remove what a run writes there"
        )
    if not run_folder.marked_checkpoint_steps(run_dir) and run_folder.has_final_parameters(run_dir):
        raise ConfigError(
            f"run folder '{run_dir}' holds a finished run whose checkpoints were removed (it cannot be resumed); "
            "pick another --out, or pass --force to overwrite it and its final parameters"
        )
    raise ConfigError(
        f"run folder '{run_dir}' already holds a run; resume it with --resume {run_dir}, "
        "pick another --out, or pass --force to overwrite"
    )


def make_folder(run_dir: Path) -> None:
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"cannot create the run folder '{run_dir}': {error.strerror}") from None


def _stopped_during_start_up(stop: GracefulStop) -> None:
    if stop.requested:
        raise StopRequested(stop.requested, f"stopped by {stop.name} during start-up; nothing was trained")


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
    again = check_run_dir(run_dir, force)
    if again:
        print(f"qmix: note: '{run_dir}' stopped before its first checkpoint; starting it again from step 0",
              file=sys.stderr)
    with GracefulStop() as stop:
        trainer = trainer or make_trainer(config)
        check_replay_fits(config, trainer.algorithm.example_item())
        existed = run_dir.exists()
        make_folder(run_dir)
        with run_folder.exclusive(run_dir):
            try:  # start-up: until it succeeds, nothing of an earlier run is touched and nothing new is left
                runners = trainer.init_runs(seed_keys(config.seed, config.num_seeds))
                _stopped_during_start_up(stop)
                if force or again:
                    run_folder.clear(run_dir)
                write_configs(run_dir, config)
                store = CheckpointStore(run_dir, config.keep_checkpoints)
            except BaseException:
                if not existed:
                    shutil.rmtree(run_dir, ignore_errors=True)
                raise
            session = Session(config, run_dir, trainer, store, LoopState.fresh(config.num_seeds), Clock(),
                              tensorboard, on_checkpoint, stop=stop)
            return summarise(session, session.run(runners, progress, first_test=True))


def load_run_config(run_dir: Path, changes: dict[str, Any] | None = None) -> Config:
    """The resolved config a run saved in `run_dir`, with `changes` applied; only the budget may change."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise ConfigError(f"run folder '{run_dir}' does not exist")
    run_folder.refuse_a_seed_folder(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"'{run_dir}' is a file, not a run folder; pass the folder `qmix train` wrote")
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(f"'{run_dir}' is not a run folder (it has no {CONFIG_FILE}); pass a folder `qmix train` wrote")
    saved = load_saved_config(path)
    wanted = replace(saved, **(changes or {}))
    saved_values, wanted_values = saved.to_dict(), wanted.to_dict()
    changed = [key for key in wanted_values if key not in RESUMABLE_CHANGES and wanted_values[key] != saved_values[key]]
    if changed:
        listing = ", ".join(f"{key} ({saved_values[key]!r} -> {wanted_values[key]!r})" for key in changed)
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
    written after the restored checkpoint are dropped, so they are logged again exactly as before. A run that
    stopped before its first finished checkpoint starts again from step 0 with its saved settings.
    """
    run_dir = Path(run_dir)
    config = load_run_config(run_dir, changes)
    run_folder.check_writable(run_dir, f"cannot resume '{run_dir}'")
    with GracefulStop() as stop, run_folder.exclusive(run_dir):
        again = run_folder.never_checkpointed(run_dir)  # nothing to continue: started afresh below
        if not again:
            return _continue(run_dir, config, changes, progress, tensorboard, trainer, on_checkpoint, stop)
        _stopped_during_start_up(stop)
    return train(config, run_dir, progress=progress, tensorboard=tensorboard, trainer=trainer,
                 on_checkpoint=on_checkpoint)


def _continue(run_dir: Path, config: Config, changes: dict[str, Any] | None, progress: bool, tensorboard: bool,
              trainer: Trainer | None, on_checkpoint: Callable[[Path], None] | None, stop: GracefulStop
              ) -> RunSummary:
    """Resume's work on a run that has a finished checkpoint (or says why it cannot), holding its folder."""
    if not run_folder.marked_checkpoint_steps(run_dir):
        raise CheckpointError(
            f"'{run_dir}' is a finished run whose checkpoints were removed, so it cannot be continued; evaluate "
            f"it as it is, or train a longer run into another folder (`qmix train --config "
            f"{run_dir / CONFIG_FILE} --out NEW_FOLDER --env-steps N`)"
        )
    store = CheckpointStore(run_dir, config.keep_checkpoints, create=False)
    get_trainer = functools.cache(lambda: trainer or make_trainer(config))  # built once a checkpoint verifies
    restored = _restore_newest(store, config, get_trainer)
    _refuse_a_lower_budget(run_dir, config, restored, store, changes)
    check_replay_fits(config, get_trainer().algorithm.example_item())
    _stopped_during_start_up(stop)
    store.discard_after(restored.step)  # the unusable newer steps, which would block writing new ones
    _report_restore(run_dir, config, restored)
    _rewind_run_folder(run_dir, config, restored)
    loop = LoopState.from_dict(restored.host["loop"])
    purge_steps = [int(steps) + 1 for steps in np.asarray(restored.runners.env_steps)]
    session = Session(config, run_dir, get_trainer(), store, loop, Clock(loop.wall_seconds), tensorboard,
                      on_checkpoint, purge_steps, stop=stop)
    return summarise(session, session.run(restored.runners, progress, first_test=False))


def _refuse_a_lower_budget(run_dir: Path, config: Config, restored: Restored, store: CheckpointStore,
                           changes: dict[str, Any] | None) -> None:
    trained = int(np.max(np.asarray(restored.runners.env_steps)))
    # The run's own budget is no change: a run killed after its last checkpoint (which overshoots the
    # budget by up to one iteration) but before its final parameters just finishes.
    lowered = changes and "env_steps" in changes and config.env_steps != load_run_config(run_dir).env_steps
    if lowered and config.env_steps < trained:
        store.close()
        raise ConfigError(
            f"'{run_dir}' has trained {trained:,} env steps (its newest checkpoint); --env-steps {config.env_steps:,} "
            f"is below that: pass at least {trained:,}, or leave --env-steps out"
        )


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
        warn(line)
    if not restored.replay_restored and uses_replay(ALGORITHMS.entry(config.alg)):  # on-policy: no replay to miss
        warn(
            "the replay buffer was not restored (the run has save_replay=false): it starts empty and learning "
            "waits until it holds batch_size episodes again, so the results will differ from an uninterrupted run"
        )
    say(f"resuming '{run_dir}' from its checkpoint at env step {restored.step:,}")
    if restored.step >= config.env_steps:
        say(f"the run already reached its budget of {config.env_steps:,} env steps; raise it with --env-steps")


def _rewind_run_folder(run_dir: Path, config: Config, restored: Restored) -> None:
    """Make the run folder match the checkpoint: drop later log lines; record a raised budget."""
    for k, folder in enumerate(seed_folders(run_dir, config)):
        unreadable = drop_records_after(folder / METRICS_FILE, int(restored.runners.env_steps[k]))
        if unreadable:
            warn(f"dropped {unreadable} unreadable line(s) of {folder / METRICS_FILE} (cut short or damaged)")
    if config.env_steps != restored.host["config"]["env_steps"]:
        write_configs(run_dir, config)


def say(message: str) -> None:
    print(f"qmix: {message}", file=sys.stderr)


def warn(message: str) -> None:
    print(f"qmix: warning: {message}", file=sys.stderr)
