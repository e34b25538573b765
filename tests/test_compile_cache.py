"""The persistent compilation cache: where it lives, how it is moved or turned off, and that an unwritable
folder costs one warning line, never the run; and the listing commands start without JAX."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from qmix.compile_cache import ENV_VARIABLE, cache_folder, enable_compile_cache, usable_cpus


def test_the_cache_folder_is_per_user_and_movable_or_off(tmp_path):
    cpus = f"cpus-{usable_cpus()}"
    assert cache_folder({}) == Path.home() / ".cache" / "qmix" / "jax" / cpus
    assert cache_folder({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "qmix" / "jax" / cpus
    assert cache_folder({ENV_VARIABLE: str(tmp_path / "mine"), "XDG_CACHE_HOME": "/x"}) == tmp_path / "mine" / cpus
    for off in ("off", "OFF", "0", "false", "no", "none"):
        assert cache_folder({ENV_VARIABLE: off}) is None


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs two CPUs and CPU affinity")
def test_processes_that_may_use_other_cpu_counts_keep_apart_caches(tmp_path):
    """XLA compiles for the CPUs a process may use and JAX's key does not hold them, so a program compiled
    under one CPU must not be loaded by a process with two (its rounding differs)."""
    one_cpu = f"import os\nos.sched_setaffinity(0, {{{min(os.sched_getaffinity(0))}}})\n"
    show = "from qmix.compile_cache import cache_folder\nprint(cache_folder())\n"
    folders = [subprocess.run([sys.executable, "-c", prefix + show], capture_output=True, text=True, timeout=60,
                              env={**os.environ, ENV_VARIABLE: str(tmp_path)}).stdout.strip()
               for prefix in (one_cpu, "")]
    assert folders[0] == str(tmp_path / "cpus-1") and folders[1] == str(tmp_path / f"cpus-{usable_cpus()}")


def test_an_unwritable_cache_folder_is_one_warning_line_and_no_cache(tmp_path, capsys):
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder\n")
    assert enable_compile_cache({ENV_VARIABLE: str(a_file / "cache")}) is None
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("qmix: warning: compilation cache off: cannot write to")
    assert enable_compile_cache({ENV_VARIABLE: "off"}) is None
    assert capsys.readouterr().err == ""


def test_help_the_listings_and_the_compiling_commands_own_help_import_no_heavy_library():
    heavy = ("jax", "flax", "optax", "jaxmarl", "jumanji", "ray", "matplotlib")
    listings = (["maps"], ["algs"], ["config"], ["config", "--alg", "ippo", "--map", "simple_spread"],
                ["config", "--alg", "coma", "--map", "lbf-8x8-2p-2f-coop"])
    for argv in (["--help"], ["train", "--help"], [], *listings):
        script = ("import sys\nfrom qmix.cli import main\n"
                  f"sys.argv = ['qmix', *{argv!r}]\n"
                  "try:\n    main()\nexcept SystemExit:\n    pass\n"
                  f"print(sorted(m for m in {heavy!r} if m in sys.modules))\n")
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip().splitlines()[-1] == "[]", (argv, done.stdout[-300:])
