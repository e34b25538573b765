"""Find run folders on disk and load their test curves.

A run folder holds `config.yaml` (with `alg`, `map`, `seed`) and `metrics.jsonl` (one JSON object per
line, every line with `env_steps`; test lines with `test_<metric>` for each metric the environment declares:
`test_return`, `test_length`, `test_win_rate` where episodes can be won, and the environment's own measures).
A multi-seed run is a folder with `config.yaml` and one `seed_<k>/metrics.jsonl` per seed; each seed folder is
one run. Every test point is kept, with whatever test metrics it has.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from qmix.files import read_jsonl
from qmix.paper import PAPER_MAPS
from qmix.run_folder import CONFIG_FILE, METRICS_FILE, metrics_logs, seed_of_folder

log = logging.getLogger(__name__)

UNKNOWN = "unknown"
TEST_PREFIX = "test_"  # a logged test metric: test_<metric>, or test_<metric>_<policy> for other test policies

# Display order: the paper's methods and maps first, anything else after, alphabetically.
KNOWN_ALGS = ("qmix", "vdn", "iql", "qmix_ns", "qmix_lin", "vdn_s")



@dataclass(frozen=True, eq=False)
class Run:
    """One training run: where it lives, what it trained, and its test points sorted by env steps."""

    path: Path
    alg: str
    map: str
    seed: int | None
    env_steps: np.ndarray  # [P] the env steps of its P test points
    tests: dict[str, np.ndarray]  # test metric (test_return, ...) -> [P] values, NaN where a point lacks it

    def values(self, key: str) -> np.ndarray:
        """[P] values of one test metric, all NaN if the run never logged it."""
        return self.tests.get(key, np.full(self.env_steps.shape, np.nan))

    @property
    def test_win_rate(self) -> np.ndarray:
        return self.values("test_win_rate")

    @property
    def test_return(self) -> np.ndarray:
        return self.values("test_return")

    @property
    def label(self) -> str:
        seed = "?" if self.seed is None else str(self.seed)
        return f"{self.alg}/{self.map}/seed {seed}"

    def curve(self, key: str = "test_win_rate") -> tuple[np.ndarray, np.ndarray]:
        """(env_steps, values) of one test metric, without the points where it was not logged."""
        if not key.startswith(TEST_PREFIX):
            raise ValueError(f"Unknown test metric {key!r}: a test metric is named test_<metric>, e.g. test_return.")
        values = self.values(key)
        logged = np.isfinite(values)
        return self.env_steps[logged], values[logged]


def logged_metrics(runs: Iterable[Run]) -> list[str]:
    """The test metrics any of the runs logged, in the order first seen."""
    return list(dict.fromkeys(key for run in runs for key in run.tests))


def load_runs(paths: Iterable[str | Path]) -> list[Run]:
    """Load every run under `paths`: run folders, multi-seed folders, or folders of many runs.

    Runs without a single test point yet are skipped. Raises ValueError when a path holds no runs.
    """
    runs: list[Run] = []
    seen: set[Path] = set()
    for path in map(Path, paths):
        found = [run for run in _load_runs_under(path) if run.path not in seen]
        seen.update(run.path for run in found)
        runs.extend(found)
    return sorted(runs, key=_run_sort_key)


def alg_sort_key(alg: str) -> tuple[int, str]:
    return (KNOWN_ALGS.index(alg), "") if alg in KNOWN_ALGS else (len(KNOWN_ALGS), alg)


def map_sort_key(map_name: str) -> tuple[int, str]:
    return (PAPER_MAPS.index(map_name), "") if map_name in PAPER_MAPS else (len(PAPER_MAPS), map_name)


def group_by_map_alg(runs: Iterable[Run]) -> dict[str, dict[str, list[Run]]]:
    """{map: {alg: [runs]}}, maps and algs in display order."""
    groups: dict[str, dict[str, list[Run]]] = {}
    for run in runs:
        groups.setdefault(run.map, {}).setdefault(run.alg, []).append(run)
    return {
        map_name: {alg: groups[map_name][alg] for alg in sorted(groups[map_name], key=alg_sort_key)}
        for map_name in sorted(groups, key=map_sort_key)
    }


def _run_sort_key(run: Run) -> tuple:
    seed = -1 if run.seed is None else run.seed
    return (map_sort_key(run.map), alg_sort_key(run.alg), seed, str(run.path))


def _load_runs_under(path: Path) -> list[Run]:
    if not path.exists():
        raise ValueError(
            f"No runs at {path}: the path does not exist; pass a run folder or a folder of runs."
        )
    metrics_files = metrics_logs(path)
    runs = [run for run in map(_load_run, metrics_files) if run is not None]
    if not runs:
        if metrics_files:
            why = f"{len(metrics_files)} {METRICS_FILE} file(s) but no test results in them yet"
        else:
            why = f"no {METRICS_FILE} found"
        raise ValueError(
            f"No runs in {path}: {why}; pass a run folder written by `qmix train` (or a folder of them)."
        )
    return runs


def _load_run(metrics_file: Path) -> Run | None:
    run_dir = metrics_file.parent.resolve()
    steps, tests = _read_test_points(metrics_file)
    if steps.size == 0:
        log.warning("Skipping %s: no test results logged yet.", run_dir)
        return None
    own_config, parent_config = _read_configs(run_dir)
    config = {**parent_config, **own_config}
    return Run(
        path=run_dir,
        alg=str(config.get("alg") or UNKNOWN),
        map=str(config.get("map") or UNKNOWN),
        seed=_first_int(own_config.get("seed"), seed_of_folder(run_dir), parent_config.get("seed")),
        env_steps=steps,
        tests=tests,
    )


def _read_configs(run_dir: Path) -> tuple[dict, dict]:
    """(the run's own config, its multi-seed parent's config or {}): a seed folder inherits alg and map."""
    own_config = _read_yaml(run_dir / CONFIG_FILE)
    is_seed_folder = seed_of_folder(run_dir) is not None
    parent_config = _read_yaml(run_dir.parent / CONFIG_FILE) if is_seed_folder else {}
    return own_config, parent_config


def _first_int(*candidates: object) -> int | None:
    # The seed folder's own config or name beats the parent's seed, which in a multi-seed run is the first one.
    for candidate in candidates:
        value = _as_int(candidate)
        if value is not None:
            return value
    return None


def _as_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        content = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        log.warning("Ignoring unreadable %s: %s", path, error)
        return {}
    except UnicodeDecodeError as error:
        log.warning("Ignoring %s: not UTF-8 text (byte %d)", path, error.start)
        return {}
    return content if isinstance(content, dict) else {}


def _read_test_points(metrics_file: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """([P] env steps, {test metric: [P] values}) of the lines with any test metric, sorted by env steps;
    a step logged twice (a resumed run) keeps its last line."""
    by_step: dict[int, dict[str, float]] = {}
    for record in read_jsonl(metrics_file).records:
        step = _as_int(record.get("env_steps"))
        tests = {key: value for key, value in ((k, _as_float(v)) for k, v in record.items())
                 if key.startswith(TEST_PREFIX) and value is not None}
        if step is not None and tests:
            by_step[step] = tests
    steps = np.array(sorted(by_step), dtype=np.int64)
    names = dict.fromkeys(key for step in steps for key in by_step[step])
    return steps, {key: np.array([by_step[step].get(key, np.nan) for step in steps], np.float64) for key in names}


def _as_float(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)
