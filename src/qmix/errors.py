"""The errors the command line turns into one line and an exit code (never a traceback)."""

from __future__ import annotations

NON_FINITE_EXIT_CODE = 3


class ConfigError(ValueError):
    """Wrong input (a setting, a file, a folder). The message is one line: what, where, how to fix. Exit 2."""


class CheckpointError(ConfigError):
    """A checkpoint is missing, unfinished, corrupt or of another format: wrong input too (exit 2)."""


class NonFiniteError(RuntimeError):
    """A loss or parameter became NaN or infinite; the run stopped without writing a checkpoint (exit 3)."""
