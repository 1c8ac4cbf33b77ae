"""The import graph of src/pkpo has no cycle, counting the imports inside functions too.

The graph is read from the source with :mod:`ast` (nothing is imported): an edge A -> B for every
``import B`` / ``from B import x`` in module A, and A -> B.x when ``B.x`` is itself a module (then
``from B import x`` needs B only as the parent package of B.x, as ``import B.x`` does, and adds no
edge to B). A package imported as a parent is not an edge: each package imports its own children.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def module_names(src: Path) -> dict[str, Path]:
    """Dotted module name -> file of every ``.py`` file under ``src`` (a package: its __init__)."""
    names = {}
    for path in src.rglob("*.py"):
        parts = path.relative_to(src).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def imported_modules(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The modules of ``modules`` that module ``name`` imports anywhere in its file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            parts = package.split(".")
            base = parts[: len(parts) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            submodules = {f"{target}.{alias.name}" for alias in node.names} & set(modules)
            # ``from P import a`` of submodules needs P only as their parent (as ``import P.a``);
            # any other name is read from P itself
            found |= submodules if len(submodules) == len(node.names) else submodules | {target}
    return {m for m in found if m in modules and m != name}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a list of nodes (first == last), or None (depth-first search)."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def import_graph(src: Path) -> dict[str, set[str]]:
    modules = module_names(src)
    return {name: imported_modules(name, path, modules) for name, path in modules.items()}


def test_no_import_cycle_in_src():
    cycle = find_cycle(import_graph(SRC))
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_check_finds_a_cycle_through_a_lazy_import(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .b import f\n")
    (pkg / "b.py").write_text("def f():\n    from . import a\n")
    (pkg / "c.py").write_text("import pkg.a\nfrom pkg import VERSION, b\n")
    graph = import_graph(tmp_path)
    assert graph["pkg.a"] == {"pkg.b"} and graph["pkg.b"] == {"pkg.a"}
    assert graph["pkg.c"] == {"pkg", "pkg.a", "pkg.b"}
    assert find_cycle(graph) == ["pkg.a", "pkg.b", "pkg.a"]


def test_importing_pkpo_rl_does_not_import_torch():
    code = (
        "import sys, pkpo.rl, pkpo.rl.config, pkpo.rl.cli\n"
        "assert pkpo.rl.TrainConfig is pkpo.rl.config.TrainConfig\n"
        "print(sorted(m for m in ('torch', 'matplotlib') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(SRC)},
        check=True,
    )
    assert result.stdout.strip() == "[]"
