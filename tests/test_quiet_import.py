"""qmix prints only what it means to: importing the environments (and so jaxmarl) prints nothing, and
`qmix config` prints YAML that parses as it stands."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import yaml

import qmix

SOURCE = str(Path(qmix.__file__).parents[1])  # the qmix under test, first on the child's path


def run_python(code: str, *arguments: str) -> subprocess.CompletedProcess:
    path = os.pathsep.join(p for p in (SOURCE, os.environ.get("PYTHONPATH")) if p)
    return subprocess.run([sys.executable, "-c", code, *arguments], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": path})


ADAPTERS = "qmix.envs.smax, qmix.envs.mpe, qmix.envs.mpe_communication, qmix.envs.lbf, qmix.envs.rware"
UNPLAYED = ("jaxmarl.environments.storm", "jaxmarl.environments.overcooked", "jaxmarl.environments.hanabi",
            "jumanji.environments.logic", "jumanji.environments.packing")


def test_importing_the_environments_prints_nothing_reads_only_what_they_play_and_serves_the_rest_later():
    # one process: importing the adapters prints nothing and leaves the suites' other environments unread;
    # then the packages left bare run their own __init__ when asked for more (jaxmarl.make, jumanji.make)
    done = run_python(f"import sys, {ADAPTERS}\n"
                      "sys.stderr.write(repr(sorted(sys.modules)) + '\\n'); sys.stdout.write('---\\n')\n"
                      "import jaxmarl, jumanji\n"
                      "print(jaxmarl.make('MPE_simple_spread_v3').num_agents)\n"
                      "from jaxmarl.environments import InTheGrid\n"
                      "print(jumanji.make('LevelBasedForaging-v0').num_agents, InTheGrid.__name__)")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("---\n"), "importing the environments printed something"
    # the names of every module the process held then (a warning may come first on stderr)
    imported = ast.literal_eval(next(line for line in done.stderr.splitlines() if line.startswith("['")))
    assert "jaxmarl.environments.smax.smax_env" in imported and "jumanji.environments.routing.lbf.env" in imported
    assert not [name for name in imported if name.startswith(UNPLAYED)], "a suite's other environments were read"
    assert done.stdout.splitlines()[-2:] == ["3", "2 InTheGrid"]


def test_qmix_config_for_simple_spread_prints_valid_yaml():
    done = run_python("import sys; from qmix.cli import main; sys.argv[0] = 'qmix'; main()",
                      "config", "--map", "simple_spread")
    assert done.returncode == 0, done.stderr
    settings = yaml.safe_load(done.stdout)
    assert settings["map"] == "simple_spread" and settings["agents"] == 3 and settings["episode_limit"] == 25
