"""Import one environment of a JAX suite without the suite's package `__init__`s, and without their prints.

jaxmarl's and jumanji's package `__init__`s import every environment they ship before the one asked for:
`import jaxmarl` takes ~2.9 s of CPU here, 2.3 s of it for environments qmix never plays (STORM alone
1.4 s), and jumanji's takes ~0.9 s. Every process that plays an environment paid that: each `qmix train`,
each sweep task, each test process. jaxmarl's also prints whether its optional submoduled environments were
found, and qmix's own output must stay clean (`qmix config` prints YAML that other tools parse).

So every adapter imports its suite inside `lean_import`, naming the packages to leave bare:

    with lean_import("jaxmarl.environments"):
        from jaxmarl.environments.mpe import SimpleSpreadMPE

Inside the block, `jaxmarl` and `jaxmarl.environments` (unless imported before) are registered as packages
whose `__init__` has not run, so the import reads only the modules it needs. A bare package still serves
code that asks more of it (`jaxmarl.make`, a later `import jaxmarl` elsewhere in the process): its first
missing attribute that is not a submodule runs its real `__init__`. What the block prints to stdout is
dropped; stderr is left alone, so warnings and errors still show.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.machinery
import importlib.util
import io
import sys
from collections.abc import Iterator
from types import ModuleType


def _find_spec(name: str):
    parent, _, _ = name.rpartition(".")
    search = sys.modules[parent].__path__ if parent else None  # the parent is in sys.modules by now
    return importlib.machinery.PathFinder.find_spec(name, search)


def _register_bare(name: str) -> None:
    """`name` in sys.modules as a package whose `__init__` has not run yet."""
    spec = _find_spec(name)
    if spec is None or spec.submodule_search_locations is None:
        raise ModuleNotFoundError(f"no package named {name!r}", name=name)
    package = importlib.util.module_from_spec(spec)
    package.__getattr__ = lambda attribute: _complete(package, attribute)  # PEP 562: only for missing names
    sys.modules[name] = package
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, package)


def _complete(package: ModuleType, attribute: str):
    """A bare package's missing attribute: a submodule is imported alone; anything else runs the package's
    real `__init__` first, once."""
    if _find_spec(f"{package.__name__}.{attribute}") is not None:
        return importlib.import_module(f"{package.__name__}.{attribute}")
    if "__getattr__" not in vars(package):
        raise AttributeError(f"module {package.__name__!r} has no attribute {attribute!r}")
    del package.__getattr__
    package.__spec__.loader.exec_module(package)
    return getattr(package, attribute)


@contextlib.contextmanager
def lean_import(*packages: str) -> Iterator[None]:
    """Imports in the block see `packages` (dotted names; each parent too) bare, and print nothing to stdout.

    Some optional-backend imports reset sys.stdout/sys.stderr to sys.__stdout__/sys.__stderr__ before
    they print, so a plain redirect_stdout would miss those prints: both stdout names point at the sink.
    """
    for dotted in packages:
        parts = dotted.split(".")
        for depth in range(1, len(parts) + 1):
            name = ".".join(parts[:depth])
            if name not in sys.modules:
                _register_bare(name)
    saved = sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__
    sink = io.StringIO()
    sys.stdout = sys.__stdout__ = sink
    try:
        yield
    finally:
        sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__ = saved
