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
