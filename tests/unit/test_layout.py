"""The tree's promises about who imports whom (docs/development.md, "Where a request goes").

* Transports (``http_service``, ``grpc_service``, and ``inference_protocol`` under both) reach the request core only through ``serving``
  (the facade, its options and answers) and ``common``: never ``model``, the runtime behind it.
* ``model`` knows nothing of requests, nor of the transports.
* Tools and tests share ``harness``; ``scripts`` and ``tests`` never import each other.
* No import cycle between modules, counting what a module imports as it loads.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("common", "model", "serving", "inference_protocol", "http_service", "grpc_service", "exporters", "harness",
            "launcher",
            "scripts", "tests", "client", "proto")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (REPO_ROOT / package).rglob("*.py"):
            if not path.name.endswith("_pb2.py") and not path.name.endswith("_pb2_grpc.py"):
                found[_module_name(path)] = path
    return found


MODULES = _modules()


def _target(name: str) -> str | None:
    """The project module ``name`` names, or the nearest package of it that is one; None if not ours."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str, load_time_only: bool) -> set[str]:
    """The project modules ``module`` imports: all of them, or only those it imports as it loads."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(), str(path))
    nodes = ast.iter_child_nodes(tree) if load_time_only else ast.walk(tree)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            names = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for name in names:
            target = _target(name)
            if target is not None and target != module:
                found.add(target)
    return found


# What speaks to callers: each reaches the request core through serving's facade only.
TRANSPORTS = ("http_service", "grpc_service", "inference_protocol")


def _top(module: str) -> str:
    return module.split(".")[0]


def test_transports_reach_the_core_only_through_the_facade():
    offenders = {
        module: sorted(t for t in _imports(module, load_time_only=False) if _top(t) in ("model", "exporters"))
        for module in MODULES if _top(module) in TRANSPORTS
    }
    assert {m: t for m, t in offenders.items() if t} == {}


def test_the_model_knows_nothing_of_requests_or_transports():
    offenders = {
        module: sorted(t for t in _imports(module, load_time_only=False)
                       if _top(t) in ("serving", *TRANSPORTS, "harness", "scripts", "tests"))
        for module in MODULES if _top(module) in ("model", "common")
    }
    assert {m: t for m, t in offenders.items() if t} == {}


@pytest.mark.parametrize("importer, imported", [("scripts", "tests"), ("tests", "scripts"), ("harness", "tests"),
                                                ("harness", "scripts")])
def test_tools_and_tests_share_the_harness_and_never_import_each_other(importer: str, imported: str):
    offenders = {
        module: sorted(t for t in _imports(module, load_time_only=False) if _top(t) == imported)
        for module in MODULES if _top(module) == importer
    }
    assert {m: t for m, t in offenders.items() if t} == {}


def test_no_module_imports_itself_back_as_it_loads():
    graph = {module: _imports(module, load_time_only=True) for module in MODULES}
    cycles: list[list[str]] = []
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                cycles.append(path[path.index(target):] + [target])
            elif target not in state:
                visit(target, path + [target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_the_checks_see_the_tree():
    """A guard on the guards: the graph holds the facade and the transports' imports of it."""
    assert "serving.service" in MODULES and "http_service.app" in MODULES
    assert "serving" in _imports("http_service.app", load_time_only=True)
