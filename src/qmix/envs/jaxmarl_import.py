"""Import jaxmarl without the lines it prints on import.

Importing anything under `jaxmarl.environments` runs that package's `__init__`, which prints whether
jaxmarl's optional submoduled environments were found. qmix's own output must stay clean (`qmix config`
prints YAML that other tools parse), so every adapter imports jaxmarl inside `quiet_import()`:

    with quiet_import():
        from jaxmarl.environments.mpe import SimpleSpreadMPE
"""

from __future__ import annotations

import contextlib
import io
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def quiet_import() -> Iterator[None]:
    """Send what the block prints to stdout into a sink, then restore all four stream names.

    Some optional-backend imports reset sys.stdout/sys.stderr to sys.__stdout__/sys.__stderr__ before
    they print, so a plain redirect_stdout would miss those prints: both stdout names point at the sink.
    stderr is left alone, so warnings and errors still show.
    """
    saved = sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__
    sink = io.StringIO()
    sys.stdout = sys.__stdout__ = sink
    try:
        yield
    finally:
        sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__ = saved
