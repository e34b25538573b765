"""Tiny runs whose logs (wall clock aside) and final parameters must not change: see golden_runs.py.

They are pinned as compiled with conftest.QUICK_XLA_FLAGS: trained here when the session compiles so (the
default set), else in a subprocess that does (XLA's default settings sum floats in another order). Counts,
episodes and flags must be equal; floats, to float rounding (ROUNDING), which is all that another CPU moves.
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


# Another CPU compiles other vector code (another order of float sums): across the CPUs that run this suite the
# same runs agree to ~2e-7 relative, while any change to what a run computes moves its numbers far beyond this.
ROUNDING = 1e-5


def same_up_to_rounding(actual, expected) -> bool:
    if isinstance(expected, float):
        return actual == pytest.approx(expected, rel=ROUNDING, abs=0.0)
    return type(actual) is type(expected) and actual == expected  # counts and flags: exactly


def assert_same_logs(actual: list[dict], expected: list[dict]) -> None:
    assert len(actual) == len(expected)
    for row, (got, want) in enumerate(zip(actual, expected, strict=True)):
        assert got.keys() == want.keys(), row
        moved = {key: (got[key], want[key]) for key in want if not same_up_to_rounding(got[key], want[key])}
        assert not moved, f"log line {row}: {moved}"


def assert_same_parameters(actual: dict[str, dict], expected: dict[str, dict]) -> None:
    assert actual.keys() == expected.keys()
    for leaf, want in expected.items():
        got = actual[leaf]
        assert (got["dtype"], got["shape"]) == (want["dtype"], want["shape"]), leaf
        assert got["abs_sum"] == pytest.approx(want["abs_sum"], rel=ROUNDING, abs=0.0), leaf
        assert got["square_sum"] == pytest.approx(want["square_sum"], rel=ROUNDING, abs=0.0), leaf
        # a sum near zero has no relative scale of its own: measure it against the leaf's absolute sum
        assert abs(got["sum"] - want["sum"]) <= ROUNDING * want["abs_sum"], leaf


@pytest.mark.parametrize("name", list(CASES))
def test_a_golden_run_logs_and_ends_as_pinned(name, golden_runs_trained):
    run_dir = golden_runs_trained / name
    folders = seed_dirs(run_dir)
    assert [f.relative_to(run_dir) for f in folders] == [
        p.parent.relative_to(GOLDEN / name) for p in sorted((GOLDEN / name).rglob("parameters.json"))
    ]
    for folder in folders:
        expected_dir = GOLDEN / name / folder.relative_to(run_dir)
        assert_same_logs(records(folder), json.loads((expected_dir / "metrics.json").read_text()))
        assert_same_parameters(parameters(folder), json.loads((expected_dir / "parameters.json").read_text()))


def test_the_comparison_lets_float_rounding_pass_and_nothing_more():
    logs = [{"episodes": 8, "loss": 0.25, "won": False}]
    assert_same_logs([{"episodes": 8, "loss": 0.25 * (1 + 2e-7), "won": False}], logs)
    for moved in ({"episodes": 9, "loss": 0.25, "won": False}, {"episodes": 8, "loss": 0.25 * (1 + 1e-4), "won": False},
                  {"episodes": 8.0, "loss": 0.25, "won": False}, {"episodes": 8, "loss": 0.25, "won": True}):
        with pytest.raises(AssertionError):
            assert_same_logs([moved], logs)
    leaf = {"dtype": "float32", "shape": [2], "sum": 0.0, "abs_sum": 2.0, "square_sum": 2.0}
    assert_same_parameters({"w": dict(leaf, sum=1e-6)}, {"w": leaf})
    for moved in (dict(leaf, sum=1e-3), dict(leaf, abs_sum=2.001), dict(leaf, shape=[1, 2]), dict(leaf, dtype="float64")):
        with pytest.raises(AssertionError):
            assert_same_parameters({"w": moved}, {"w": leaf})
