"""The whole test session shares one persistent compilation cache (qmix/compile_cache.py).

A program compiled once, in this process, in a subprocess or in a Ray worker, is loaded from disk by every
later test that builds it and by the next session: a second `make test` skips most compilation. The folder
is pytest's cache folder (`.pytest_cache`, emptied by `pytest --cache-clear`); QMIX_COMPILE_CACHE set
before the session wins (`off`: every session compiles everything, as on a fresh clone).
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


def pytest_configure(config: pytest.Config) -> None:
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
