"""Imports run one way: the library (layers, models, data, metrics, checkpoint, inference, fast,
runtime, ...) never imports the commands (``fplnet.engine``, ``fplnet.cli``), the commands never
import the CLI, and no fplnet module imports itself back through others.

Read from the source with ``ast``, so imports inside functions count too: a lazy import is
still a dependency, and lazy imports are how the cycles this test guards against used to hide.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE_ROOT = Path(__file__).resolve().parents[1] / "src" / "fplnet"
COMMANDS = ("fplnet.engine", "fplnet.cli")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in PACKAGE_ROOT.rglob("*.py")}


def _resolve(importer: str, is_package: bool, level: int, target: str) -> str:
    """The absolute name of ``from <level dots><target> import ...`` written in ``importer``."""
    if level == 0:
        return target
    base = importer.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def _known(name: str) -> str | None:
    """The fplnet module that importing ``name`` loads (a package's ``__init__`` included)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(name: str) -> set[str]:
    path = MODULES[name]
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(name, is_package, node.level, node.module or "")
            # ``from pkg import sub`` imports the submodule ``pkg.sub`` when there is one.
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        found.update(t for t in map(_known, targets) if t and t.startswith("fplnet") and t != name)
    return found


GRAPH = {name: imports_of(name) for name in MODULES}


def is_command(name: str) -> bool:
    return any(name == c or name.startswith(c + ".") for c in COMMANDS)


@pytest.mark.parametrize("name", sorted(n for n in MODULES if not is_command(n)))
def test_the_library_never_imports_the_commands(name):
    assert not [t for t in GRAPH[name] if is_command(t)], f"{name} imports a command module"


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.startswith("fplnet.engine")))
def test_commands_never_import_the_cli(name):
    assert "fplnet.cli" not in GRAPH[name]


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle as [a, b, ..., a], or [] (depth-first search, three colours)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return []


def test_no_import_cycles():
    cycle = find_cycle(GRAPH)
    assert not cycle, "import cycle: " + " -> ".join(cycle)


def test_the_checker_sees_lazy_imports_and_cycles():
    # The two kinds of mistake it exists for, on a made-up graph and on a lazy import it must see.
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) == []
    assert "fplnet.inference" in GRAPH["fplnet"]      # imported inside fplnet.__getattr__
    assert "fplnet.models" in GRAPH["fplnet.engine.evaluate"]
