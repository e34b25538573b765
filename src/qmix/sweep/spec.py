"""The sweep file: which maps, algorithms, seeds and settings to train, and where the runs go.

    maps: [3m, 2s3z]            # required
    algs: [qmix, vdn]           # default [qmix]
    seeds: 3                    # 3 -> seeds 0, 1, 2; or a list, e.g. [0, 1, 5]
    seed_group: auto            # seeds trained side by side in one task; auto: as many as fit in memory
    preset: default
    env_steps: 200000
    settings: {lr: 0.001}       # applied to every run
    grid: {td_lambda: [0.0, 0.6]}  # every combination is its own set of runs
    out: sweeps/example         # storage: every run folder goes under it
    retries: 3                  # attempts after a lost worker or node
    resources: {cpus: 1, gpus: 0}  # per task
    evaluate_episodes: 512      # greedy episodes on each run's final parameters, as `qmix evaluate`; default 0

Every mistake is one line naming the file, the key and the fix (a ConfigError: exit code 2).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from qmix.config import SEED_LIMIT, build_config
from qmix.errors import ConfigError

KEYS = ("maps", "algs", "seeds", "seed_group", "preset", "env_steps", "settings", "grid", "out", "retries",
        "resources", "evaluate_episodes")
RESOURCE_KEYS = ("cpus", "gpus")


@dataclass(frozen=True)
class SweepSpec:
    maps: list[str]
    algs: list[str]
    seeds: list[int]
    seed_group: int | None  # None: as many as fit in the memory of a node
    preset: str
    env_steps: int | None
    settings: dict[str, Any]
    grid: dict[str, list[Any]]
    out: Path
    retries: int = 3
    cpus: float = 1.0
    gpus: float = 0.0
    evaluate_episodes: int = 0
    source: str = "sweep"  # where the spec came from, for error messages

    def grid_points(self) -> list[dict[str, Any]]:
        if not self.grid:
            return [{}]
        keys = list(self.grid)
        return [dict(zip(keys, values, strict=True)) for values in itertools.product(*self.grid.values())]


def _fail(where: str, message: str) -> None:
    raise ConfigError(f"{where}: {message}")


KIND_WORDS = {int: "a whole number", str: "a name", str | int: "a name"}


def _as_list(value: Any, where: str, key: str, kind: Any) -> list:
    values = value if isinstance(value, list) else [value]
    for v in values:
        if not isinstance(v, kind) or isinstance(v, bool):
            _fail(where, f"'{key}' must be {KIND_WORDS[kind]} or a list of them, got {v!r}")
    if not values:
        _fail(where, f"'{key}' is empty; list at least one")
    return values


def _seeds(value: Any, where: str) -> list[int]:
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            _fail(where, f"'seeds' must be at least 1, got {value}")
        return list(range(value))
    seeds = _as_list(value, where, "seeds", int)
    if len(set(seeds)) != len(seeds) or min(seeds) < 0:
        _fail(where, f"'seeds' must be distinct seeds >= 0, got {seeds}")
    if max(seeds) >= SEED_LIMIT:  # here, before Ray starts, rather than in the task that runs it
        _fail(where, f"'seeds' must be below {SEED_LIMIT:,} (32-bit random keys), got {max(seeds):,}")
    return sorted(seeds)


def _seed_group(value: Any, where: str) -> int | None:
    if value in (None, "auto"):
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        _fail(where, f"'seed_group' must be a whole number >= 1 or auto, got {value!r}")
    return value


def _resources(value: Any, where: str) -> tuple[float, float]:
    value = value or {}
    if not isinstance(value, dict):
        _fail(where, "'resources' must be a mapping, e.g. {cpus: 1, gpus: 0}")
    for key, amount in value.items():
        if key not in RESOURCE_KEYS:
            _fail(where, f"unknown resource '{key}' in 'resources': use {' or '.join(RESOURCE_KEYS)}")
        if isinstance(amount, bool) or not isinstance(amount, int | float) or amount < 0:
            _fail(where, f"'resources.{key}' must be a number >= 0, got {amount!r}")
    return float(value.get("cpus", 1)), float(value.get("gpus", 0))


def parse_spec(data: Any, source: str, out: Path | None = None) -> SweepSpec:
    """Check every key of a loaded sweep file; `out` (the command line's --out) wins over the file's."""
    where = f"sweep file '{source}'"
    if not isinstance(data, dict):
        _fail(where, "must hold a mapping with at least 'maps', e.g. maps: [3m]")
    for key in data:
        if key not in KEYS:
            from difflib import get_close_matches

            close = get_close_matches(str(key), KEYS, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            _fail(where, f"unknown key '{key}'{hint}; the keys are {', '.join(KEYS)}")
    if "maps" not in data:
        _fail(where, "'maps' is missing; add e.g. maps: [3m]")
    settings = data.get("settings") or {}
    grid = data.get("grid") or {}
    if not isinstance(settings, dict):
        _fail(where, "'settings' must be a mapping of setting: value, e.g. {lr: 0.001}")
    if not isinstance(grid, dict) or not all(isinstance(v, list) and v for v in grid.values()):
        _fail(where, "'grid' must map each setting to a non-empty list of values, e.g. {lr: [0.001, 0.0005]}")
    for key in ("map", "alg", "seed", "num_seeds", "env_steps"):
        if key in settings or key in grid:
            _fail(where, f"'{key}' is set by the sweep's own keys (maps, algs, seeds, seed_group, env_steps); "
                  "remove it from settings/grid")
    env_steps = data.get("env_steps")
    if env_steps is not None and (isinstance(env_steps, bool) or not isinstance(env_steps, int) or env_steps < 1):
        _fail(where, f"'env_steps' must be a whole number >= 1, got {env_steps!r}")
    retries, evaluate_episodes = data.get("retries", 3), data.get("evaluate_episodes", 0)
    for key, value in (("retries", retries), ("evaluate_episodes", evaluate_episodes)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            _fail(where, f"'{key}' must be a whole number >= 0, got {value!r}")
    cpus, gpus = _resources(data.get("resources"), where)
    target = out or data.get("out")
    if target is None:
        _fail(where, "no storage folder: add out: <folder> to the file or pass --out")
    if Path(target).exists() and not Path(target).is_dir():
        _fail(where, f"the storage folder '{target}' is a file; name a folder (out: or --out)")
    spec = SweepSpec(
        maps=[str(m) for m in _as_list(data["maps"], where, "maps", str | int)],
        algs=[str(a) for a in _as_list(data.get("algs", ["qmix"]), where, "algs", str)],
        seeds=_seeds(data.get("seeds", 1), where),
        seed_group=_seed_group(data.get("seed_group"), where),
        preset=str(data.get("preset", "default")),
        env_steps=env_steps,
        settings=dict(settings),
        grid={k: list(v) for k, v in grid.items()},
        out=Path(target),
        retries=retries,
        cpus=cpus,
        gpus=gpus,
        evaluate_episodes=evaluate_episodes,
        source=source,
    )
    check_settings(spec, where)
    return spec


def check_settings(spec: SweepSpec, where: str) -> None:
    """Build one config per map, algorithm and grid point: build_config's own errors name the fix."""
    applied: set[str] = set()
    for map_name, alg, point in itertools.product(spec.maps, spec.algs, spec.grid_points()):
        try:
            config = build_config(preset=spec.preset, shared=spec.settings, overrides=point, map=map_name, alg=alg,
                                  env_steps=spec.env_steps)
        except ConfigError as error:
            # build_config names the sources "shared settings" and "override"; here: the file's settings, grid
            message = str(error).replace("shared settings: ", "settings: ", 1).replace("override: ", "grid: ", 1)
            raise ConfigError(f"{where}: {message}") from None
        applied.update(config.to_dict())
        if spec.evaluate_episodes and config.backend != "smax":
            _fail(where, f"'evaluate_episodes' plays SMAX maps and the two-step game, not backend={config.backend} "
                  f"({map_name}); set it to 0 (the runs' test win rates are in their metrics)")
    unused = [key for key in spec.settings if key not in applied]
    if unused:
        _fail(where, f"'settings' holds {', '.join(unused)}, which no algorithm or map of the sweep has "
              f"(algs: {', '.join(spec.algs)}; maps: {', '.join(spec.maps)}); drop it or add an algorithm that uses it")


def load_spec(path: Path, out: Path | None = None) -> SweepSpec:
    if not path.is_file():
        raise ConfigError(f"sweep file '{path}' does not exist; pass a YAML file (docs/sweeps.md has an example)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ConfigError(f"sweep file '{path}' is not valid YAML: {str(error).splitlines()[0]}") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"sweep file '{path}' is not UTF-8 text (byte {error.start}); save it as UTF-8") from None
    return parse_spec(data, str(path), out)
