"""The package's layers, read from its imports (those inside functions and TYPE_CHECKING blocks
too): no import cycle, each layer imports only those below it, torch only in ``cuda/``, and
pytest never reachable from analysis, judging, measuring or report."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "pytest_gpuperf"

# layer -> the package layers it may import (the plugin layer is the top-level modules).
ALLOWED = {
    "analysis": set(),
    "judging": {"analysis"},
    "measuring": {"analysis", "judging"},
    "report": {"analysis", "judging", "measuring"},
    "cuda": {"measuring"},
    "plugin": {"analysis", "judging", "measuring", "report", "cuda"},
    "cli": {"analysis", "judging", "report"},
    "package": {"analysis", "judging", "measuring", "cuda"},  # __init__: the lazily exported names
}
# Leaf modules importing nothing, which every layer may import: pytest_gpuperf.errors (GpuperfError)
# and pytest_gpuperf.version.
BASE = "base"
BASE_MODULES = ("errors", "version")
# layer -> the third-party top-level packages it may import (the standard library is always allowed).
THIRD_PARTY = {
    "analysis": {"msgspec", "isal"},
    "judging": {"yaml"},
    "measuring": {"nvtx"},
    "report": set(),
    "cuda": {"torch", "pynvml"},
    "plugin": {"pytest", "pynvml"},
    "cli": set(),
    "package": set(),
    BASE: set(),
}
PURE = ("analysis", "judging", "measuring", "report")


def module_name(path: Path) -> str:
    parts = ["pytest_gpuperf", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "package"
    if parts[1] in ALLOWED and parts[1] not in ("plugin", "package"):
        return parts[1]
    if parts[1] in BASE_MODULES:
        return BASE
    return "cli" if parts[1] == "cli" else "plugin"


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth of its code."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            # `from pytest_gpuperf.report import terminal` imports the module pytest_gpuperf.report.terminal
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {
        name: {i for i in imports(path) if i in modules or not i.startswith("pytest_gpuperf")}
        for name, path in modules.items()
    }


def internal(edges: dict[str, set[str]], module: str) -> set[str]:
    """The package's own modules ``module`` imports, not counting a package's ``__init__`` met on the
    way to its submodule (``pytest_gpuperf.analysis`` on the way to ``pytest_gpuperf.analysis.load``)."""
    targets = {i for i in edges[module] if i.startswith("pytest_gpuperf")}
    return {t for t in targets if not any(other.startswith(t + ".") for other in targets)} - {module}


def test_the_package_has_no_import_cycle() -> None:
    edges = graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in sorted(internal(edges, module)):
            if state.get(target) == 1:
                cycle = [*path[path.index(target) :], target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        path.pop()
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module)


def test_each_layer_imports_only_the_layers_below_it_and_its_own_third_party_packages() -> None:
    edges = graph()
    wrong = []
    for module, targets in sorted(edges.items()):
        own = layer(module)
        for target in sorted(internal(edges, module)):
            if layer(target) not in ALLOWED[own] | {own, BASE} and layer(target) != "package":
                wrong.append(f"{module} ({own}) imports {target} ({layer(target)})")
        for target in sorted(targets):
            top = target.split(".")[0]
            if top != "pytest_gpuperf" and top not in sys.stdlib_module_names and top not in THIRD_PARTY[own]:
                wrong.append(f"{module} ({own}) imports {target}")
    assert not wrong, "\n".join(wrong)


def test_torch_is_imported_only_in_cuda() -> None:
    importers = sorted(m for m, targets in graph().items() if any(t.split(".")[0] == "torch" for t in targets))
    assert importers and all(m.startswith("pytest_gpuperf.cuda.") for m in importers), importers


def test_pytest_is_not_reachable_from_the_pure_layers() -> None:
    edges = graph()
    for start in sorted(m for m in edges if layer(m) in PURE):
        seen, todo = {start}, [start]
        while todo:
            module = todo.pop()
            assert "pytest" not in {t.split(".")[0] for t in edges[module]}, f"{start} reaches pytest via {module}"
            for target in internal(edges, module) - seen:
                seen.add(target)
                todo.append(target)


def test_the_layer_test_sees_a_cycle_and_a_wrong_import(tmp_path: Path) -> None:
    """The checks above can fail: a module that imports upward is found by the same reading."""
    source = PACKAGE / "analysis" / "results.py"
    found = imports(source)
    assert "pytest_gpuperf.report.terminal" not in found
    planted = tmp_path / "planted.py"
    planted.write_text("def late():\n    from pytest_gpuperf.report import terminal\n    import torch\n")
    assert {"pytest_gpuperf.report", "pytest_gpuperf.report.terminal", "torch"} <= imports(planted)
    assert layer("pytest_gpuperf.report.terminal") == "report" and "report" not in ALLOWED["analysis"]
