"""`qmix ARGS` run in the test's own process, so its compiled functions are shared with the other tests."""

import sys

import pytest


def qmix_cli(capsys, *args: str) -> tuple[int, str, str]:
    """-> exit code, stdout, stderr."""
    from qmix import cli

    old, sys.argv = sys.argv, ["qmix", *args]
    try:
        with pytest.raises(SystemExit) as stopped:
            cli.main()
    finally:
        sys.argv = old
    captured = capsys.readouterr()
    return stopped.value.code, captured.out, captured.err


def evaluates_and_plots_its_return(capsys, run, out_dir) -> None:
    """`qmix evaluate` and `qmix plot --metric test_return` of a finished run both succeed."""
    code, out, err = qmix_cli(capsys, "evaluate", str(run), "--episodes", "4")
    assert code == 0 and "return" in out, err
    code, out, err = qmix_cli(capsys, "plot", str(run), "--metric", "test_return", "--out", str(out_dir / "curve"))
    assert code == 0 and (out_dir / "curve.png").is_file(), err
