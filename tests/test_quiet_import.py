"""qmix prints only what it means to: importing the environments (and so jaxmarl) prints nothing, and
`qmix config` prints YAML that parses as it stands."""

from __future__ import annotations

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


def test_importing_the_environments_prints_nothing():
    done = run_python("import qmix.envs, qmix.envs.mpe, qmix.envs.smax")
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""


def test_qmix_config_for_simple_spread_prints_valid_yaml():
    done = run_python("import sys; from qmix.cli import main; sys.argv[0] = 'qmix'; main()",
                      "config", "--map", "simple_spread")
    assert done.returncode == 0, done.stderr
    settings = yaml.safe_load(done.stdout)
    assert settings["map"] == "simple_spread" and settings["agents"] == 3 and settings["episode_limit"] == 25
