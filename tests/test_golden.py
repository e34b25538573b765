"""Tiny runs whose logs (wall clock aside) and final parameters must not change: see golden_runs.py."""

import json

import pytest

from golden_runs import CASES, GOLDEN, parameters, records, run_case, seed_dirs


@pytest.mark.parametrize("name", list(CASES))
def test_a_golden_run_logs_and_ends_as_pinned(name, tmp_path):
    run_dir = run_case(name, tmp_path / name)
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
