"""The shape of the source tree: no import cycle between the package's modules, no module over 400 lines."""

import ast
from pathlib import Path

import pytest

SOURCE = Path(__file__).parent.parent / "src" / "qmix"
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = path.relative_to(SOURCE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(SOURCE.rglob("*.py"))}


def imported_modules(path: Path) -> set[str]:
    """Every qmix module `path` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}  # `from qmix import cli`
    return {name for name in found if name in MODULES}


def test_no_import_cycle_anywhere():
    graph = {name: imported_modules(path) - {name} for name, path in MODULES.items()}
    state: dict[str, str] = {}

    def visit(name, trail):
        state[name] = "open"
        for dep in sorted(graph[name]):
            if state.get(dep) == "open":
                cycle = trail[trail.index(dep):] + [dep]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep, [*trail, dep])
        state[name] = "done"

    for name in graph:
        if name not in state:
            visit(name, [name])


@pytest.mark.parametrize("name", list(MODULES))
def test_no_module_is_over_400_lines(name):
    lines = len(MODULES[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"{MODULES[name]} has {lines} lines; split it by job"


def test_the_loop_and_the_algorithms_do_not_import_each_other_or_the_registries():
    """The loop is handed its algorithm and environment; an algorithm sees episodes, never the loop."""
    registries = {"qmix.algorithms", "qmix.envs", "qmix.build"}
    for name, path in MODULES.items():
        imported = imported_modules(path)
        if name.startswith("qmix.learn"):
            assert not {m for m in imported if m.startswith("qmix.algorithms")} | (imported & registries), name
        if name.startswith("qmix.algorithms"):
            assert not {m for m in imported if m.startswith("qmix.learn")}, name


def test_the_test_schedule_names_only_files_that_exist():
    """conftest.py's units: a renamed or removed file must leave them, not silently fall to the end."""
    from conftest import HEAVIEST_FIRST, SAME_PROGRAMS

    here = Path(__file__).parent
    assert all((here / name).is_file() for name in SAME_PROGRAMS)
    units = set(SAME_PROGRAMS.values())
    assert all(name in units or (here / name).is_file() for name in HEAVIEST_FIRST)
