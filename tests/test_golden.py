"""Tiny runs whose logs (wall clock aside) and final parameters must not change: see golden_runs.py.

They are pinned as compiled with conftest.QUICK_XLA_FLAGS: trained here when the session compiles so (the
default set), else in a subprocess that does (another order of floating-point sums would change bits).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import QUICK_XLA_FLAGS
from golden_runs import CASES, GOLDEN, parameters, records, run_case, seed_dirs


@pytest.fixture(scope="module")
def golden_runs_trained(tmp_path_factory) -> Path:
    into = tmp_path_factory.mktemp("golden")
    if os.environ.get("XLA_FLAGS", "") == QUICK_XLA_FLAGS:
        for name in CASES:
            run_case(name, into / name)
        return into
    done = subprocess.run([sys.executable, str(Path(__file__).parent / "golden_runs.py"), "--into", str(into)],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return into


@pytest.mark.parametrize("name", list(CASES))
def test_a_golden_run_logs_and_ends_as_pinned(name, golden_runs_trained):
    run_dir = golden_runs_trained / name
    folders = seed_dirs(run_dir)
    assert [f.relative_to(run_dir) for f in folders] == [
        p.parent.relative_to(GOLDEN / name) for p in sorted((GOLDEN / name).rglob("parameters.json"))
    ]
    for folder in folders:
        expected_dir = GOLDEN / name / folder.relative_to(run_dir)
        assert records(folder) == json.loads((expected_dir / "metrics.json").read_text())
        expected = json.loads((expected_dir / "parameters.json").read_text())
        actual = parameters(folder)
        assert actual.keys() == expected.keys()
        for key, value in expected.items():
            assert actual[key] == value, key  # bit-identical values
