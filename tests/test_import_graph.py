"""obskit's modules import each other without cycles.

The graph is built from the source with ``ast``: every import that runs when a module is first
imported (module level, class bodies, ``try``/``if`` blocks) is an edge; imports inside functions
and under ``if TYPE_CHECKING:`` are not. Importing ``a.b.c`` also runs ``a/__init__.py`` and
``a/b/__init__.py``, so those packages are edges too (except the importing module's own
packages, which are already being imported when it runs).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from pathlib import Path

import obskit

SRC = Path(obskit.__file__).parent


def _modules(root: Path) -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is a package) for every module under package ``root``."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        package = parts[-1] == "__init__"
        if package:
            parts.pop()
        found[".".join(parts)] = (path, package)
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_time_statements(body: Iterable[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    """The import statements that run when a module with this body is imported."""
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                yield from _import_time_statements(node.body)
            yield from _import_time_statements(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody):
                yield from _import_time_statements(block)
            for handler in node.handlers:
                yield from _import_time_statements(handler.body)
        elif isinstance(node, ast.With | ast.ClassDef):
            yield from _import_time_statements(node.body)


def _with_packages(target: str, importer: str, known: dict[str, tuple[Path, bool]]) -> set[str]:
    """``target`` and the packages importing it runs, less the importer's own packages (which
    run before the importer: a cycle with one of those needs a name imported from it)."""
    own = {importer.rsplit(".", n)[0] for n in range(1, importer.count(".") + 1)}
    parts = target.split(".")
    packages = {".".join(parts[:n]) for n in range(1, len(parts))}
    edges = {name for name in packages if name in known and name not in own | {importer}}
    if target in known and target != importer:
        edges.add(target)
    return edges


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the modules of the same package tree its import runs (see the module doc)."""
    known = _modules(root)
    graph: dict[str, set[str]] = {}
    for name, (path, package) in known.items():
        here = name.split(".") if package else name.split(".")[:-1]
        edges: set[str] = set()
        for node in _import_time_statements(ast.parse(path.read_text()).body):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    edges |= _with_packages(alias.name, name, known)
                continue
            if node.level:
                base = ".".join(here[: len(here) - node.level + 1])
                source = f"{base}.{node.module}" if node.module else base
            else:
                source = node.module or ""
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                edges |= _with_packages(submodule if submodule in known else source, name, known)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (``a -> b -> ... -> a``) for each strongly connected group of modules."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(start: str) -> None:
        # Tarjan's algorithm, iterative (the graph is deep enough for recursion to be fragile).
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            for target in edges:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted(graph[target]))))
                    break
                if target in on_stack:
                    low[node] = min(low[node], index[target])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    group = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.add(member)
                        if member == node:
                            break
                    if len(group) > 1 or node in graph[node]:
                        groups.append(group)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_cycle_in(group, graph) for group in groups]


def _cycle_in(group: set[str], graph: dict[str, set[str]]) -> list[str]:
    """A shortest path from the group's first module back to itself, inside the group."""
    start = min(group)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for target in sorted(graph[node] & group):
                if target == start:
                    return [*paths[node], start]
                if target not in paths:
                    paths[target] = [*paths[node], target]
                    following.append(target)
        frontier = following
    raise AssertionError(f"no cycle through {start}")  # unreachable for a strong component


def test_obskit_has_no_import_cycle() -> None:
    """No chain of import-time imports leads from any obskit module back to itself."""
    graph = import_graph(SRC)
    assert len(graph) > 100  # the walk found the package, not an empty directory
    found = [" -> ".join(cycle) for cycle in cycles(graph)]
    assert [] == found


def test_runtime_imports_its_parts_plainly() -> None:
    """``obskit._runtime`` imports every part it builds at import time (nothing found by name)."""
    graph = import_graph(SRC)
    parts = {"obskit.tracing.wiring", "obskit.metrics.wiring", "obskit.metrics.use.wiring"}
    assert parts | {"obskit.web.wiring"} <= graph["obskit._runtime"]
    source = (SRC / "_runtime.py").read_text()
    assert "import_module" not in source
    assert "find_spec" not in source


def _write(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "pkg"


def test_finder_reports_cycles_and_only_import_time_ones(tmp_path: Path) -> None:
    """The finder sees direct, relative and package cycles, and ignores lazy and typing imports."""
    root = _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            # a <-> b only through a function-local import and a TYPE_CHECKING one: no cycle.
            "pkg/a.py": "from pkg import b\n",
            "pkg/b.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n    from pkg import a\n"
                "def f():\n    from pkg import a\n"
            ),
            # c -> d -> c at import time, one side relative and inside try.
            "pkg/c.py": "import pkg.d\n",
            "pkg/d.py": "try:\n    from . import c\nexcept ImportError:\n    pass\n",
            # e imports sub.x; importing it runs sub/__init__.py, which imports e.
            "pkg/e.py": "from pkg.sub.x import VALUE\n",
            "pkg/sub/__init__.py": "from pkg import e\n",
            "pkg/sub/x.py": "VALUE = 1\n",
            # A submodule importing a name from its own package's __init__, which imports it.
            "pkg/web/__init__.py": "from pkg.web.app import App\nNAME = 1\n",
            "pkg/web/app.py": "from pkg.web import NAME\nclass App: ...\n",
            # ... whereas a submodule importing a sibling is not a cycle with the package.
            "pkg/api/__init__.py": "from pkg.api.one import ONE\n",
            "pkg/api/one.py": "from pkg.api import two\nONE = two.TWO\n",
            "pkg/api/two.py": "TWO = 2\n",
        },
    )
    found = sorted(" -> ".join(cycle) for cycle in cycles(import_graph(root)))
    assert [
        "pkg.c -> pkg.d -> pkg.c",
        "pkg.e -> pkg.sub -> pkg.e",
        "pkg.web -> pkg.web.app -> pkg.web",
    ] == found
