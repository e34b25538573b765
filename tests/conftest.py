"""The whole test session shares one persistent compilation cache (qmix/compile_cache.py).

A program compiled once, in this process, in a subprocess or in a Ray worker, is loaded from disk by every
later test that builds it and by the next session: a second `make test` skips most compilation. The folder
is pytest's cache folder (`.pytest_cache`, emptied by `pytest --cache-clear`); QMIX_COMPILE_CACHE set
before the session wins (`off`: every session compiles everything, as on a fresh clone).

The default set (not `-m slow`) compiles with XLA's cheapest CPU settings (LLVM at O0, no expensive passes,
the classic fusion emitters): its programs run for milliseconds, while compiling them is most of the
session. That changes the order of some floating-point operations, never what a program computes: checks
compare within the session or to a tolerance, and the golden runs, which pin every count and every float to
rounding, are pinned as compiled so (test_golden.py trains them in a subprocess that compiles so when the
session does not). The slow set, whose runs are long, keeps XLA's defaults; so does QMIX_TEST_QUICK_XLA=0.
"""

import os
from pathlib import Path

import pytest

from qmix.compile_cache import ENV_VARIABLE, enable_compile_cache


def _session_folder(config: pytest.Config) -> Path:
    cache = getattr(config, "cache", None)  # None with `-p no:cacheprovider`
    if cache is not None:
        return cache.mkdir("qmix-jax")
    return Path.home() / ".cache" / "qmix" / "jax-tests"


# XLA's cheapest CPU compile: as options of one compile (`lowered.compile(QUICK_COMPILE)`), and as XLA_FLAGS.
# The classic fusion code generator compiles the suite's programs in 60% of the time of the newer MLIR one.
QUICK_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True,
                 "xla_cpu_use_fusion_emitters": False}
QUICK_XLA_FLAGS = " ".join(f"--{name}={str(value).lower()}" for name, value in QUICK_COMPILE.items())


def _runs_only_quick_tests(config: pytest.Config) -> bool:
    marks = (config.getoption("markexpr", "") or "").replace(" ", "")
    return marks == "notslow" and os.environ.get("QMIX_TEST_QUICK_XLA", "1") != "0"


def pytest_configure(config: pytest.Config) -> None:
    # before any test module is imported: XLA reads XLA_FLAGS once, when JAX first starts its backend
    if _runs_only_quick_tests(config):
        os.environ["XLA_FLAGS"] = QUICK_XLA_FLAGS
    if ENV_VARIABLE not in os.environ:
        os.environ[ENV_VARIABLE] = str(_session_folder(config))  # subprocesses and Ray workers inherit it
    folder = enable_compile_cache()
    if folder is not None:
        # scripts that tests run train without the command line: they read JAX's own variables
        os.environ["JAX_COMPILATION_CACHE_DIR"] = str(folder)
        os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
        os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "-1"


@pytest.fixture(scope="session")
def compile_cache_folder() -> Path | None:
    """The session's compilation cache folder; None when QMIX_COMPILE_CACHE turned it off."""
    return enable_compile_cache()


# How `make test` shares its two processes (pytest-xdist, `--dist loadfile` without its reordering): every test
# belongs to a unit, a whole file or the files of one group below; a process takes the next unit, in collection
# order, when it is nearly done with its own.
# Files that build the same programs form one unit: the first to build a trainer (the golden runs' tiny 3m
# one, the two-step preset's) traces and compiles it, the others take it from make_trainer instead of tracing
# it again in another process.
SAME_PROGRAMS = {
    "test_golden.py": "tiny_3m", "test_train.py": "tiny_3m", "test_resume.py": "tiny_3m",
    "test_evaluate.py": "two_step_preset", "test_robustness.py": "two_step_preset", "test_cli.py": "two_step_preset",
    "test_policy_average.py": "two_step_preset", "test_metrics.py": "two_step_preset",
}
# The units are handed out heaviest first (the longest processing time first: the processes then finish
# together), as measured on a fresh clone (docs/benchmarks.md's "Test suite"); files not listed, the light
# ones, follow by name.
HEAVIEST_FIRST = (
    "tiny_3m", "test_contracts.py", "two_step_preset", "test_extending.py", "test_pqn.py", "test_packing.py",
    "test_smax.py", "test_mixers.py", "test_lbf.py", "test_coma.py", "test_smax_drawn.py", "test_rware.py",
    "test_sweep.py", "test_weighted_qmix.py", "test_independent_ppo.py", "test_targets.py", "test_sc2_backend.py",
    "test_mpe.py", "test_qplex.py",
)


def _unit(file_name: str) -> str:
    return SAME_PROGRAMS.get(file_name, file_name)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> tuple:
        unit = _unit(item.path.name)
        heavy = HEAVIEST_FIRST.index(unit) if unit in HEAVIEST_FIRST else len(HEAVIEST_FIRST)
        return heavy, unit, list(SAME_PROGRAMS).index(item.path.name) if unit != item.path.name else 0

    items.sort(key=rank)  # stable: a file's tests keep their order


def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """`--dist loadfile`, with the files of one SAME_PROGRAMS group as one unit."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class UnitScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            file_path = super()._split_scope(nodeid)
            return _unit(Path(file_path).name) if Path(file_path).name in SAME_PROGRAMS else file_path

    return UnitScheduling(config, log)
