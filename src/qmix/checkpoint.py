"""Whole-state checkpoints of a run: save, verify, restore the newest usable one, keep the last few.

A checkpoint is one orbax step folder `RUN_DIR/checkpoints/<env step>/` holding three items:
  runner  the RunnerState without its replay: online and target parameters, optimizer state, the random
          key, env-step / episode / update counters, update credit, the last target update;
  replay  the replay buffer (only with save_replay=true: it can be gigabytes);
  host    JSON: the host loop's state (test index, logged history, wall clock) and the resolved config.
Orbax writes each step into a temporary folder and renames it when done, so a process killed while
writing never leaves a step that looks finished. On top of that, a marker file listing every file's size
and SHA-256 is written last: a step without it, or whose files no longer match it (deleted, truncated,
corrupted), is skipped in favour of the one before, with a warning.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from qmix.errors import CheckpointError
from qmix.files import write_atomic  # noqa: F401  (re-exported: the writer of every run file)
from qmix.run_folder import CHECKPOINT_FOLDER, CHECKPOINT_MARKER

MARKER = CHECKPOINT_MARKER  # written last: a step folder without it was never finished
FORMAT_VERSION = 2  # 2: the algorithm's own state in the runner (`alg`), settings owned by their modules
# Settings that may differ between a checkpoint and the run resuming it (the budget can be extended).
RESUMABLE_CHANGES = ("env_steps", "final_evaluation_episodes")  # neither changes what is trained


@dataclass
class Restored:
    """What `CheckpointStore.restore_latest` found."""

    runners: Any  # RunnerState, seed axis first
    host: dict[str, Any]  # the host loop's saved state
    step: int
    path: Path
    replay_restored: bool
    skipped: list[str] = field(default_factory=list)  # one line per newer checkpoint that was unusable


@contextmanager
def _quiet_orbax() -> Iterator[None]:
    """Orbax logs through absl, and its writer threads print their own tracebacks, for failures we report
    ourselves in one clear line (a full disk, a damaged checkpoint)."""
    logger = logging.getLogger("absl")
    level, hook = logger.level, threading.excepthook
    logger.setLevel(logging.CRITICAL)
    threading.excepthook = lambda args: None  # the error reaches the caller too: it is reported there
    try:
        yield
    finally:
        logger.setLevel(level)
        threading.excepthook = hook


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _list_files(folder: Path) -> dict[str, dict[str, Any]]:
    """Every file under `folder` (but the marker): relative path -> size and SHA-256."""
    files = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name != MARKER:
            files[path.relative_to(folder).as_posix()] = {"bytes": path.stat().st_size, "sha256": _file_digest(path)}
    return files


def _marker_problem(folder: Path) -> str | None:
    """Why the step in `folder` cannot be trusted, or None when every file matches its marker."""
    marker = folder / MARKER
    if not marker.is_file():
        return "unfinished (no completion marker: the run probably stopped while writing it)"
    try:
        files = json.loads(marker.read_text())["files"]
    except (ValueError, KeyError, TypeError):
        return f"its marker {MARKER} is unreadable"
    for name, expected in files.items():
        path = folder / name
        if not path.is_file():
            return f"file '{name}' is missing"
        size = path.stat().st_size
        if size != expected["bytes"]:
            return f"file '{name}' has {size} bytes, expected {expected['bytes']} (truncated?)"
        if _file_digest(path) != expected["sha256"]:
            return f"file '{name}' does not match its checksum (corrupted)"
    return None


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"


def _settings_problem(saved: dict[str, Any], current: dict[str, Any]) -> str | None:
    changed = [key for key in sorted(set(saved) | set(current))
               if key not in RESUMABLE_CHANGES and saved.get(key) != current.get(key)]
    if not changed:
        return None
    return ", ".join(f"{key}: {saved.get(key)!r} in the checkpoint, {current.get(key)!r} now" for key in changed)


def _abstract(tree: Any) -> Any:
    return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)


def _typed_like(spec: Any, value: Any) -> jax.Array:
    """`value` as a fresh, uncommitted array with `spec`'s exact type, weak types included.

    The compiled training loop is keyed on both; arrays as orbax returns them (committed, never weakly
    typed) would make it compile a second time.
    """
    host = np.asarray(value)
    if getattr(spec, "weak_type", False):
        return jax.lax.full(host.shape, host.dtype.type(0).item()).at[...].set(host)
    return jnp.asarray(host)


class CheckpointStore:
    """The checkpoints of one run folder: newest last, at most `keep` of them kept."""

    def __init__(self, run_dir: Path, keep: int, create: bool = True, read_only: bool = False):
        """`read_only`: only read (e.g. to evaluate a run that may still be training and saving)."""
        self.folder = Path(run_dir).absolute() / CHECKPOINT_FOLDER
        self.keep = keep
        if (not create or read_only) and not self.folder.is_dir():
            raise CheckpointError(f"no checkpoint in '{run_dir}': it has no {CHECKPOINT_FOLDER}/ folder")
        options = ocp.CheckpointManagerOptions(
            max_to_keep=None,  # pruned here, and only after a newer checkpoint is complete
            create=not read_only,
            enable_async_checkpointing=False,  # the host waits anyway; a finished save is a durable one
            # leftovers of a save cut short by a kill; a reader must not touch a save in progress
            cleanup_tmp_directories=not read_only,
        )
        with _quiet_orbax():
            self.manager = ocp.CheckpointManager(self.folder, options=options)

    def path(self, step: int) -> Path:
        return self.folder / str(step)

    def steps(self) -> list[int]:
        """Every step folder orbax finished writing, oldest first (not yet verified)."""
        with _quiet_orbax():
            self.manager.reload()
            return sorted(self.manager.all_steps())

    def complete_steps(self) -> list[int]:
        """Steps whose completion marker was written, oldest first (files not re-hashed)."""
        return [step for step in self.steps() if (self.path(step) / MARKER).is_file()]

    # ----- saving -----
    def save(self, step: int, runners: Any, host: dict[str, Any], save_replay: bool) -> Path:
        """Write the whole state as checkpoint `step`, mark it complete, then drop the oldest beyond `keep`."""
        items = {
            "runner": ocp.args.StandardSave(runners.replace(replay=None)),
            "host": ocp.args.JsonSave({**host, "format": FORMAT_VERSION, "replay_saved": save_replay}),
        }
        save_replay = save_replay and runners.replay is not None  # an on-policy run keeps no replay
        if save_replay:
            items["replay"] = ocp.args.StandardSave(runners.replay)
        with _quiet_orbax():
            saved = self.manager.save(step, args=ocp.args.Composite(**items), force=True)
        if not saved:  # orbax skips a step not newer than the latest: never expected here
            raise CheckpointError(f"checkpoint {self.path(step)} was not written: a newer one exists")
        self._mark_complete(step)
        self._prune()
        return self.path(step)

    def _mark_complete(self, step: int) -> None:
        folder = self.path(step)
        marker = {"format": FORMAT_VERSION, "step": step, "files": _list_files(folder)}
        write_atomic(folder / MARKER, json.dumps(marker, indent=1))

    def _prune(self) -> None:
        kept = set(self.complete_steps()[-self.keep:])
        for step in self.steps():
            if step not in kept:
                self.delete(step)

    def delete(self, step: int) -> None:
        with _quiet_orbax():
            self.manager.delete(step)

    def discard_after(self, step: int) -> list[int]:
        """Delete the steps newer than `step` (unusable ones, found while restoring); return them."""
        newer = [s for s in self.steps() if s > step]
        for s in newer:
            self.delete(s)
        return newer

    # ----- restoring -----
    def restore_latest(
        self, make_template: Callable[[], Any], fresh_replay: Callable[[], Any], settings: dict[str, Any],
        at_most: int | None = None,
    ) -> Restored:
        """Restore the newest checkpoint that verifies; skip (and report) newer ones that do not.
        `at_most`: consider only the checkpoints of that env step or older (to read an earlier one).

        `make_template()` gives a RunnerState of the right structure, abstract (`jax.eval_shape`) or
        concrete: the shapes and types to restore into. It is called once, and only when a checkpoint
        verifies, so a run without a usable one fails fast. `fresh_replay()` gives the empty replay to use
        when the checkpoint holds none. `settings` is the run's resolved config; a checkpoint written with
        other settings is refused.
        """
        steps = self.steps()
        if not steps:
            raise CheckpointError(
                f"no checkpoint in '{self.folder}': nothing to resume (set checkpoint_interval_env_steps "
                "to write them during a run)"
            )
        if at_most is not None:
            kept = steps
            steps = [step for step in steps if step <= at_most]
            if not steps:
                raise CheckpointError(
                    f"no checkpoint at or before env step {at_most} in '{self.folder}' (it keeps "
                    f"{', '.join(map(str, kept))}); name one of those"
                )
        skipped: list[str] = []
        template = None
        for step in reversed(steps):
            problem = _marker_problem(self.path(step))
            host = None
            if problem is None:
                host, problem = self._read_host(step)
            if problem is None:
                self._refuse_other_settings(step, host, settings)
                template = template if template is not None else make_template()
                runners, problem = self._read_state(step, template, host["replay_saved"])
            if problem is None:
                if not host["replay_saved"]:
                    runners = runners.replace(replay=fresh_replay())
                return Restored(runners, host, step, self.path(step), host["replay_saved"], skipped)
            skipped.append(f"skipped checkpoint {self.path(step)}: {problem}")
        raise CheckpointError(f"no usable checkpoint in '{self.folder}': " + "; ".join(skipped))

    def _read_host(self, step: int) -> tuple[dict[str, Any] | None, str | None]:
        try:
            with _quiet_orbax():
                host = self.manager.restore(step, args=ocp.args.Composite(host=ocp.args.JsonRestore())).host
        except Exception as error:  # any failure to read means the step is unusable; say why and move on
            return None, f"its host state could not be read ({_first_line(error)})"
        if not isinstance(host, dict) or not isinstance(host.get("format"), int):
            return None, "its host state names no checkpoint format"
        if host["format"] != FORMAT_VERSION:
            raise CheckpointError(
                f"checkpoint {self.path(step)} has format {host['format']} (written by "
                f"{'an earlier' if host['format'] < FORMAT_VERSION else 'a later'} version of qmix); this version "
                f"reads format {FORMAT_VERSION}: resume it with the version that wrote it, or train again"
            )
        return host, None

    def _refuse_other_settings(self, step: int, host: dict[str, Any], settings: dict[str, Any]) -> None:
        problem = _settings_problem(host.get("config", {}), settings)
        if problem:
            raise CheckpointError(
                f"checkpoint {self.path(step)} was written with other settings than the run's config.yaml "
                f"({problem}); put the run's settings back in config.yaml"
            )

    def _read_state(self, step: int, template: Any, replay_saved: bool) -> tuple[Any, str | None]:
        items = {"runner": ocp.args.StandardRestore(_abstract(template.replace(replay=None)))}
        if replay_saved:
            items["replay"] = ocp.args.StandardRestore(_abstract(template.replay))
        try:
            with _quiet_orbax():
                restored = self.manager.restore(step, args=ocp.args.Composite(**items))
        except Exception as error:  # any failure to read means the step is unusable; say why and move on
            return None, f"its arrays could not be read ({_first_line(error)})"
        if replay_saved:
            return jax.tree.map(_typed_like, template, restored.runner.replace(replay=restored.replay)), None
        return jax.tree.map(_typed_like, template.replace(replay=None), restored.runner), None

    def close(self) -> None:
        self.manager.close()
