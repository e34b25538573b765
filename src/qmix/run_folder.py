"""The one owner of a run folder's layout: what `qmix train` writes where, and how it is found again.

RUN_DIR/
  config.yaml                 every resolved setting (and config_format)
  metrics.jsonl               one line per test point (one per seed folder with num_seeds > 1)
  tensorboard/                the same numbers for TensorBoard
  params.msgpack              the final parameters (and other files an algorithm keeps, e.g. averaged_agent)
  checkpoints/<env step>/     whole-state checkpoints for --resume
  seed_<s>/                   with num_seeds > 1: each run's config.yaml, metrics, tensorboard, parameters
  evaluation*.json            written by `qmix evaluate`
  kept.json                   only in a kept copy (`qmix reproduce --keep`): what was left out; such a copy
                              holds metrics.jsonl.gz, its test lines compressed, in place of metrics.jsonl
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import shutil
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import yaml

from qmix.errors import ConfigError
from qmix.files import COMPRESSED_SUFFIX, read_jsonl, write_atomic

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.jsonl"
KEPT_METRICS_FILE = METRICS_FILE + COMPRESSED_SUFFIX  # a kept copy's log (qmix.files.read_jsonl reads it)
TENSORBOARD_FOLDER = "tensorboard"
CHECKPOINT_FOLDER = "checkpoints"
CHECKPOINT_MARKER = "qmix_complete.json"  # written last into a checkpoint step: a step without it was never finished
PARAMS_FILE = "params.msgpack"  # a run's final parameters, in each seed folder
EVALUATION_FILE = "evaluation.json"
PARAMETER_MANIFEST = "parameters.json"  # size, SHA-256 and finiteness of every final parameter file
KEPT_FILE = "kept.json"  # a copy of a finished run's small files, its parameters left out (qmix.sweep.keep)
SEED_FOLDER = re.compile(r"seed_(\d+)")  # a seed's folder of a --seeds K run
LOCK_FILE = ".qmix.lock"  # held (flock) by the one process training the run
INT32_MAX = 2**31 - 1
# What `qmix train` and `qmix evaluate` write: all of it goes when a run is started again with --force.
WRITTEN = (CONFIG_FILE, METRICS_FILE, KEPT_METRICS_FILE, TENSORBOARD_FOLDER, CHECKPOINT_FOLDER,
           PARAMETER_MANIFEST, "*.msgpack", "evaluation*.json", "learning_curve.*", "episode_seed*.gif", "seed_*")


def parameter_file(name: str) -> str:
    """The file an algorithm's saved pytree `name` goes to ("params" -> params.msgpack)."""
    return f"{name}.msgpack"


def default_run_dir(config, root: Path = Path("runs")) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    tag = f"-{config.tag}" if config.tag else ""
    return root / f"{stamp}-{config.alg}-{config.map}{tag}"


def seed_folders(run_dir: Path, config) -> list[Path]:
    """One run: the run folder itself; many seeds: run_dir/seed_<seed>/ each."""
    if config.num_seeds == 1:
        return [Path(run_dir)]
    return [Path(run_dir) / f"seed_{config.seed + k}" for k in range(config.num_seeds)]


def metrics_logs(path: Path) -> list[Path]:
    """The metrics logs at or under `path`, each named as metrics.jsonl (read_jsonl reads a kept copy's
    compressed one under that name), sorted."""
    names = (METRICS_FILE, KEPT_METRICS_FILE)
    if path.is_file():
        found = [path] if path.name in names else []
    else:
        found = [log for name in names for log in path.rglob(name)]
    return sorted({log.with_name(METRICS_FILE) for log in found})


def seed_of_folder(folder: Path) -> int | None:
    """n for a folder named seed_<n> (a seed's folder of a --seeds K run), else None."""
    match = SEED_FOLDER.fullmatch(Path(folder).name)
    return int(match.group(1)) if match else None


def multi_seed_parent(folder: Path) -> Path | None:
    """The --seeds K run folder that `folder` is one seed's folder of, or None. Such a folder holds that seed's
    logs and parameters, but the run (its checkpoints, its config) is the parent's."""
    parent = Path(folder).absolute().parent
    if seed_of_folder(folder) is None or not (parent / CONFIG_FILE).is_file():
        return None
    try:
        saved = yaml.safe_load((parent / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    seeds = saved.get("num_seeds") if isinstance(saved, dict) else None
    return parent if isinstance(seeds, int) and seeds > 1 else None


def refuse_a_seed_folder(folder: Path) -> None:
    """Commands take a whole run: one line naming the run a seed's folder belongs to."""
    parent = multi_seed_parent(folder)
    if parent is not None:
        raise ConfigError(f"'{folder}' is one seed's folder of the --seeds run '{parent}'; pass that run folder "
                          "(every command covers all of its seeds)")


def write_configs(run_dir: Path, config) -> None:
    from qmix.config import config_to_yaml

    write_atomic(run_dir / CONFIG_FILE, config_to_yaml(config))
    for k, folder in enumerate(seed_folders(run_dir, config)):
        if folder != run_dir:
            seed_config = yaml.safe_load(config_to_yaml(config))
            write_atomic(folder / CONFIG_FILE, yaml.safe_dump({**seed_config, "seed": config.seed + k}, sort_keys=False))


def drop_records_after(path: Path, env_steps: int) -> int:
    """Keep only the log lines up to `env_steps` (those a checkpoint already covers); rewrite atomically.
    Returns how many lines were unreadable (cut short by a kill, or damaged) and dropped."""
    if not path.is_file():
        return 0
    log = read_jsonl(path)
    kept = [line + "\n" for line, record in zip(log.lines, log.records, strict=True)
            if record.get("env_steps", INT32_MAX) <= env_steps]
    write_atomic(path, "".join(kept))
    return log.unreadable


def marked_checkpoint_steps(run_dir: Path) -> list[int]:
    """The checkpoint steps that were finished (their marker written), oldest first: what "resumable" means
    everywhere (train, resume, sweeps). A step orbax renamed but never marked (killed while hashing) does not
    count; whether a marked one verifies is for the restore to say."""
    folder = run_dir / CHECKPOINT_FOLDER
    if not folder.is_dir():
        return []
    return sorted(int(p.name) for p in folder.iterdir()
                  if p.name.isdigit() and p.is_dir() and (p / CHECKPOINT_MARKER).is_file())


def never_checkpointed(run_dir: Path) -> bool:
    """A run that started (its config.yaml is written) but has no finished checkpoint and no final parameters:
    nothing of value is in it, so train, resume and sweeps all start it again from step 0."""
    return ((run_dir / CONFIG_FILE).is_file() and not marked_checkpoint_steps(run_dir)
            and not has_final_parameters(run_dir))


def holds_a_run(run_dir: Path) -> bool:
    return run_dir.is_dir() and any(p.name != LOCK_FILE for p in run_dir.iterdir())


def clear(run_dir: Path) -> None:
    """Remove everything an earlier run wrote in `run_dir` (and nothing else), for `--force`."""
    for pattern in WRITTEN:
        for path in run_dir.glob(pattern):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()


def check_can_create(run_dir: Path) -> None:
    """A one-line ConfigError when `run_dir` cannot become a run folder (a file, below a file, unwritable)."""
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"--out '{run_dir}' is a file; name a folder")
    existing = run_dir
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"--out '{run_dir}' is below '{existing}', which is a file; name a folder")
    check_writable(existing, f"cannot create the run folder '{run_dir}'")


def check_writable(folder: Path, what: str) -> None:
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(f"{what}: '{folder}' is not writable (read-only, or no permission); pick another folder")
    with contextlib.suppress(OSError):
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            raise ConfigError(f"{what}: '{folder}' is on a read-only file system; pick another folder")


@contextlib.contextmanager
def exclusive(run_dir: Path) -> Iterator[None]:
    """Hold the run folder's lock while training: a second process gets one line, and the lock goes with the
    holder however it ends (the system releases an flock when the process dies)."""
    path = run_dir / LOCK_FILE
    try:
        handle = open(path, "a+")  # noqa: SIM115  (held for the whole run)
    except OSError as error:
        raise ConfigError(f"cannot lock the run folder '{run_dir}': {error.strerror}") from None
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            handle.seek(0)
            owner = handle.read().strip() or "unknown"
            raise ConfigError(
                f"run folder '{run_dir}' is being trained by another process (pid {owner}); wait for it to end "
                "or stop it (it checkpoints on SIGTERM), then resume"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        handle.close()


def has_final_parameters(run_dir: Path) -> bool:
    """Whether the folder holds a run's final parameters (its own, or a seed folder's of a --seeds K run)."""
    return (run_dir / PARAMS_FILE).is_file() or any(run_dir.glob(f"seed_*/{PARAMS_FILE}"))


def parameter_binding(config, spec) -> dict:
    """What a run's final parameters belong to: its algorithm and every one of its settings, the map, and the
    environment's shapes. The manifest holds it, so parameters copied into another run's folder (another
    algorithm, other network sizes, another map) are refused rather than played as that run's."""
    import dataclasses

    binding = {"alg": config.alg, "map": config.map, "backend": config.backend,
               "settings": dataclasses.asdict(config.algorithm),
               "shapes": {key: getattr(spec, key) for key in ("n_agents", "n_actions", "obs_dim", "state_dim")}}
    return json.loads(json.dumps(binding))  # as it reads back: tuples as lists


def write_parameter_manifest(folder: Path, names: list[str], binding: dict | None = None) -> None:
    """Record each final parameter file's size and SHA-256, written after the files themselves, and what they
    belong to (`parameter_binding`)."""
    import hashlib

    files = {}
    for name in names:
        data = (folder / name).read_bytes()
        files[name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    manifest = {"files": files} if binding is None else {"files": files, "run": binding}
    write_atomic(folder / PARAMETER_MANIFEST, json.dumps(manifest, indent=1) + "\n")


def _binding_difference(kept: dict, expected: dict) -> str | None:
    """The first thing in which a manifest's binding differs from the run's, in words; None: they agree."""
    for key in ("alg", "map", "backend", "shapes"):
        if kept.get(key) != expected.get(key):
            return f"{key} {kept.get(key)!r}, not {expected.get(key)!r}"
    kept_settings, settings = kept.get("settings", {}), expected.get("settings", {})
    for key in sorted(set(kept_settings) | set(settings)):
        if kept_settings.get(key, "(none)") != settings.get(key, "(none)"):
            return f"{key} {kept_settings.get(key, '(none)')!r}, not {settings.get(key, '(none)')!r}"
    return None


def parameter_checksums(folder: Path) -> dict:
    """The manifest's entry per final parameter file ({name: {bytes, sha256}}); {} where there is none."""
    try:
        return json.loads((folder / PARAMETER_MANIFEST).read_text(encoding="utf-8"))["files"]
    except (FileNotFoundError, ValueError, KeyError, TypeError, UnicodeDecodeError):
        return {}


def has_verified_final_parameters(folder: Path) -> bool:
    """Whether `folder` holds final parameters that match their manifest: what "finished" means wherever it
    is asked (a sweep's state as much as `qmix evaluate`)."""
    try:
        verified_parameter_bytes(folder / PARAMS_FILE)
    except (ConfigError, OSError):
        return False
    return True


def verified_parameter_bytes(path: Path, binding: dict | None = None) -> bytes:
    """The bytes of a final parameter file, checked against the folder's manifest (and, given the run's
    `parameter_binding`, against what the manifest says they belong to), or a one-line ConfigError."""
    import hashlib

    manifest = path.parent / PARAMETER_MANIFEST
    try:
        content = json.loads(manifest.read_text(encoding="utf-8"))
        expected = content["files"][path.name]
    except FileNotFoundError:
        raise ConfigError(f"'{path}' has no checksum ({manifest.name} is missing: the run may have stopped while "
                          "writing its final parameters); finish it with `qmix train --resume` on its run folder") from None
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise ConfigError(f"'{manifest}' does not list '{path.name}' or is unreadable; the parameter files cannot be "
                          "checked (restore them from a copy, or evaluate a checkpoint with --checkpoint)") from None
    data = path.read_bytes()
    if len(data) != expected["bytes"] or hashlib.sha256(data).hexdigest() != expected["sha256"]:
        raise ConfigError(f"'{path}' does not match its checksum in {manifest.name} (corrupted or replaced); restore "
                          "it from a copy, or evaluate the run's newest checkpoint with --checkpoint")
    # manifests written before the binding existed hold none: their checksums are all there is to check
    difference = None if binding is None or "run" not in content else _binding_difference(content["run"], binding)
    if difference is not None:
        raise ConfigError(f"'{path}' belongs to another run ({manifest.name} says {difference} against the run's "
                          f"config.yaml): restore this run's own parameters, or evaluate the run they came from")
    return data
