"""The code's layout rules, checked on the source: no import cycles between modules, the media core free of
transports, the development harness out of what runs in the image, package `__init__`s that do not import
the modules that import them back."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("videobg", "services", "devstack")
TRANSPORTS = (
    "grpc",
    "nats",
    "minio",
    "fastapi",
    "starlette",
    "uvicorn",
    "httpx",
    "services",
    "vbg",
    "devstack",
)


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py")}


def _eager_imports(name: str, path: Path) -> set[str]:
    """Dotted names a module imports when it is loaded: module level, class bodies, if/try blocks; not
    function bodies (imported when called) nor `if TYPE_CHECKING:` blocks."""
    found: set[str] = set()
    is_pkg = path.name == "__init__.py"

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    here = name.split(".") if is_pkg else name.split(".")[:-1]
                    here = here[: len(here) - (node.level - 1)]
                    base = ".".join([*here, base] if base else here)
                found.add(base)
                found.update(f"{base}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.If):
                if "TYPE_CHECKING" not in ast.unparse(node.test):
                    visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)
                visit(node.orelse)
                visit(node.finalbody)
            elif isinstance(node, (ast.ClassDef, ast.With)):
                visit(node.body)

    visit(ast.parse(path.read_text()).body)
    return found


def _graph() -> dict[str, set[str]]:
    """module -> the project modules it makes Python load (a dotted name loads each of its prefixes)."""
    mods = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        edges: set[str] = set()
        for dotted in _eager_imports(name, path):
            parts = dotted.split(".")
            for k in range(1, len(parts) + 1):
                target = ".".join(parts[:k])
                # a submodule's own ancestors are loaded before it anyway: not an edge of its making
                if target in mods and target != name and not name.startswith(target + "."):
                    edges.add(target)
        graph[name] = edges
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_checker_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    assert _cycles(_graph()) == []


def test_media_core_imports_no_transport_or_service_code():
    offenders = {
        name: sorted(d for d in _eager_imports(name, path) if d.split(".")[0] in TRANSPORTS)
        for name, path in _modules().items()
        if name.startswith("videobg")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_services_do_not_import_the_development_harness():
    offenders = {
        name: sorted(d for d in _eager_imports(name, path) if d.split(".")[0] == "devstack")
        for name, path in _modules().items()
        if name.startswith("services")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_package_inits_of_services_import_none_of_their_own_modules():
    """A service package's `__init__` that imports its submodules makes every sibling import re-enter a
    half-loaded package (the dialects registry lived there once); registries are modules of their own."""
    mods = _modules()
    offenders = {}
    for name, path in mods.items():
        if path.name != "__init__.py" or not name.startswith("services"):
            continue
        own = sorted(d for d in _eager_imports(name, path) if d.startswith(name + ".") and d in mods)
        if own:
            offenders[name] = own
    assert offenders == {}
