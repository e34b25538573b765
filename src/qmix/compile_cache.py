"""JAX's persistent compilation cache, on by default for the commands that compile.

Compiling the training program is most of a short run's time; with the cache, a second run of the same
program (same settings' shapes, same JAX, same machine) loads the compiled code from disk instead. The
cache changes no result: a cached program is the very executable the first run compiled.

XLA compiles a CPU program for the CPUs the process may use (its threads split some reductions, and so
their rounding), which JAX's cache key does not hold: a program compiled under `taskset -c 1` and loaded by
a process with two CPUs rounds unlike one that process compiles itself, enough to break a bit-exact
resume. So the cache keeps one subfolder per number of usable CPUs (`cpus-2`).

QMIX_COMPILE_CACHE moves the cache to another folder, or turns it off (`off`). The default folder is
$XDG_CACHE_HOME/qmix/jax, else ~/.cache/qmix/jax. A folder that cannot be written costs one warning line,
never the run.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ENV_VARIABLE = "QMIX_COMPILE_CACHE"
OFF = frozenset({"off", "0", "false", "no", "none"})


def cache_folder(environ: dict[str, str] | None = None) -> Path | None:
    """Where compiled programs are kept; None when QMIX_COMPILE_CACHE turns the cache off."""
    environ = os.environ if environ is None else environ
    chosen = environ.get(ENV_VARIABLE, "").strip()
    if chosen.lower() in OFF:
        return None
    if chosen:
        root = Path(chosen).expanduser()
    else:
        root = Path(environ.get("XDG_CACHE_HOME", "").strip() or Path.home() / ".cache") / "qmix" / "jax"
    return root / f"cpus-{usable_cpus()}"


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity, where the system has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _writable(folder: Path) -> str | None:
    """None if programs can be written to `folder` (made if missing); otherwise the reason why not."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".probe-"):
            pass
    except OSError as error:
        return error.strerror or type(error).__name__
    return None


def enable_compile_cache(environ: dict[str, str] | None = None) -> Path | None:
    """Turn the persistent compilation cache on (idempotent); returns its folder, None if it is off."""
    folder = cache_folder(environ)
    if folder is None:
        return None
    problem = _writable(folder)
    if problem is not None:
        print(f"qmix: warning: compilation cache off: cannot write to '{folder}' ({problem}); "
              f"set {ENV_VARIABLE} to another folder, or to 'off'", file=sys.stderr)
        return None
    import jax
    from jax.experimental.compilation_cache import compilation_cache

    if jax.config.jax_compilation_cache_dir != str(folder):
        compilation_cache.reset_cache()  # a cache already opened elsewhere would otherwise be kept
        jax.config.update("jax_compilation_cache_dir", str(folder))
    # JAX's defaults skip programs that compile in under a second; ours are small, and all worth keeping
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    return folder
