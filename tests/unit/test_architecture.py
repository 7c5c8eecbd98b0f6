"""The layering holds: handler -> logic -> ports <- adapters, domain beneath all, the local runtime outside."""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING

import pytest

from kairos_local.template import ROOT, load_template

if TYPE_CHECKING:
    from pathlib import Path

PACKAGE = ROOT / "kairos"


def imports_of(path: Path) -> set[str]:
    """Every module a file imports, including imports under ``TYPE_CHECKING`` and inside functions."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def modules_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def offending(folder: Path, forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    out = {}
    for path in modules_under(folder):
        bad = sorted(m for m in imports_of(path) if m.startswith(forbidden))
        if bad:
            out[str(path.relative_to(ROOT))] = bad
    return out


CONTEXTS = ("customers", "messaging", "audiences", "journeys", "models", "insights", "promotions", "http")
DOMAIN_FILES = ("domain.py", "schemas.py", "content.py", "catalogue.py", "aggregates.py")
ROOTS = ("kairos/__init__.py", "kairos/wiring.py", "kairos/admin.py")  # the composition roots


def role(path: Path) -> str:
    """What a module of the package is: core, domain, ports, adapter, logic or root."""
    rel = path.relative_to(ROOT).as_posix()
    if rel in ROOTS:
        return "root"
    parts = rel.split("/")
    if parts[1] == "core":
        return "core"
    assert parts[1] in CONTEXTS, f"{rel} is in no part of the product ({', '.join(CONTEXTS)}) nor in core"
    if "adapters" in parts:
        return "adapter"
    if parts[-1] == "ports.py":
        return "ports"
    if parts[-1] in DOMAIN_FILES or parts[-1].endswith("_domain.py"):
        return "domain"
    return "logic"


def module_name(path: Path) -> str:
    return path.relative_to(ROOT).with_suffix("").as_posix().replace("/", ".").removesuffix(".__init__")


MODULES = {module_name(p): (p, role(p)) for p in modules_under(PACKAGE)}


def role_of(module: str) -> str | None:
    while module:
        if module in MODULES:
            return MODULES[module][1]
        module = module.rpartition(".")[0]
    return None


def bad_imports(of_role: str, forbidden_roles: tuple[str, ...], forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    out = {}
    for name, (path, r) in MODULES.items():
        if r != of_role:
            continue
        bad = sorted(
            m
            for m in imports_of(path)
            if m.startswith(forbidden) or (m.startswith("kairos.") and role_of(m) in forbidden_roles)
        )
        if bad:
            out[name] = bad
    return out


CONFIGURATION = ("kairos.core.config", "kairos.wiring", "os.environ")
OUTSIDE = ("kairos_local", "boto3", "botocore", "moto", "kairos.core.aws")


def test_every_module_is_in_a_part_of_the_product_or_in_core():
    # GIVEN the package  WHEN each module is classified  THEN none is left over (role() asserts it)
    assert {r for _, r in MODULES.values()} <= {"core", "domain", "ports", "adapter", "logic", "root"}


def test_logic_never_imports_an_adapter_or_reads_configuration():
    # GIVEN every logic module of every part  WHEN its imports are walked  THEN no adapter, AWS SDK or setting
    assert bad_imports("logic", ("adapter", "root"), OUTSIDE + CONFIGURATION) == {}
    for name, (path, r) in MODULES.items():
        if r == "logic":
            assert "os.environ" not in path.read_text(), f"{name} reads the environment"


def test_adapters_never_import_use_case_modules():
    assert bad_imports("adapter", ("logic", "root"), ("kairos_local",) + CONFIGURATION) == {}


def test_domain_and_ports_depend_on_nothing_above_them():
    forbidden = OUTSIDE + CONFIGURATION
    assert bad_imports("domain", ("logic", "adapter", "root"), forbidden) == {}
    assert bad_imports("ports", ("logic", "adapter", "root"), forbidden) == {}


def test_core_depends_on_no_part_of_the_product():
    assert bad_imports("core", ("domain", "ports", "logic", "adapter", "root"), ("kairos_local",)) == {}


def test_no_import_cycle_between_the_packages_modules():
    # GIVEN every import between the package's modules (type-only and function-level ones included)
    graph = {
        name: {m for i in imports_of(path) if (m := _module_of(i)) and m != name} for name, (path, _) in MODULES.items()
    }
    # WHEN the import graph is walked  THEN no path leads from a module back to itself
    assert _a_cycle(graph) is None


def _module_of(imported: str) -> str | None:
    """The package module an import names (``kairos.x.y.Name`` -> ``kairos.x.y``), ``None`` outside it."""
    while imported and imported not in MODULES:
        imported = imported.rpartition(".")[0]
    return imported or None


def _a_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of the graph, as the modules along it, or ``None`` (a depth-first walk)."""
    done: set[str] = set()
    for start in sorted(graph):
        if start in done:
            continue
        path, stack = [start], [iter(sorted(graph[start]))]
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                done.add(path.pop())
                stack.pop()
            elif nxt in path:
                return [*path[path.index(nxt) :], nxt]
            elif nxt not in done:
                path.append(nxt)
                stack.append(iter(sorted(graph[nxt])))
    return None


def test_no_module_is_over_600_lines():
    long = {name: n for name, (path, _) in MODULES.items() if (n := len(path.read_text().splitlines())) > 600}
    assert long == {}


@pytest.mark.parametrize("folder", ["kairos", "functions", "layers", "training"])
def test_production_code_never_imports_the_local_runtime(folder):
    # The local runtime (moto, simulation, demo) ships in no Lambda package and no production module needs it.
    assert offending(ROOT / folder, ("kairos_local", "moto")) == {}


def test_local_runtime_lives_outside_the_shipped_package():
    assert not (PACKAGE / "local").exists()
    layer_build = (ROOT / "layers" / "kairos" / "Makefile").read_text()
    assert '"$(ROOT)/kairos"' in layer_build and "kairos_local" not in layer_build


def test_every_function_has_its_own_folder_with_only_a_handler():
    # GIVEN the template's functions
    functions = {
        name: res["Properties"]
        for name, res in load_template()["Resources"].items()
        if res["Type"] == "AWS::Serverless::Function"
    }
    # THEN no two share a CodeUri, and each folder's app.py defines lambda_handler
    uris = [props["CodeUri"].rstrip("/") for props in functions.values()]
    assert len(set(uris)) == len(uris), uris
    for name, props in functions.items():
        assert props["Handler"] == "app.lambda_handler", name
        app = ROOT / props["CodeUri"] / "app.py"
        tree = ast.parse(app.read_text())
        assert any(isinstance(n, ast.FunctionDef) and n.name == "lambda_handler" for n in tree.body), name
        extra = sorted(p.name for p in app.parent.glob("*.py") if p.name != "app.py")
        assert extra == [], f"{name}: {extra} belong in the kairos package"


def test_handlers_build_adapters_only_through_wiring():
    # Handlers name ports for types; the one place that constructs adapters from settings is kairos.wiring.
    for app in sorted((ROOT / "functions").glob("*/app.py")):
        tree = ast.parse(app.read_text())
        runtime_imports = {
            node.module
            for node in tree.body
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("kairos.adapters")
        }
        assert runtime_imports == set(), f"{app.relative_to(ROOT)} imports {runtime_imports}"
        assert "os.environ" not in app.read_text(), f"{app.relative_to(ROOT)} reads the environment"
