"""Contracts between template.yaml, the state machines and the handlers."""

from __future__ import annotations

import json
import re
from pathlib import Path

from kairos_local.template import ROOT, load_template

TEMPLATE = load_template()


def _state_machines():
    for lid, res in TEMPLATE["Resources"].items():
        if res["Type"] == "AWS::Serverless::StateMachine":
            yield lid, res["Properties"], json.loads((ROOT / res["Properties"]["DefinitionUri"]).read_text())


def _states(definition):
    for name, state in definition["States"].items():
        yield name, state, definition["States"]
        if state["Type"] == "Map":
            yield from _states(state.get("ItemProcessor") or state["Iterator"])
        for branch in state.get("Branches", []):
            yield from _states(branch)


def test_state_machines_every_substitution_is_provided_and_used():
    for lid, props, _ in _state_machines():
        text = (ROOT / props["DefinitionUri"]).read_text()
        used = set(re.findall(r"\$\{(\w+)\}", text))
        provided = set(props.get("DefinitionSubstitutions", {}))
        assert used == provided, (lid, used ^ provided)


def test_state_machines_every_next_exists_and_every_task_retries():
    for lid, _, definition in _state_machines():
        assert definition["StartAt"] in definition["States"], lid
        for name, state, siblings in _states(definition):
            targets = [state.get("Next"), state.get("Default")]
            targets += [c.get("Next") for c in state.get("Choices", [])]
            targets += [c.get("Next") for c in state.get("Catch", [])]
            for target in filter(None, targets):
                assert target in siblings, (lid, name, target)
            if state["Type"] == "Task":
                assert state.get("Retry"), (lid, name, "a Task without Retry")
                assert all(r.get("JitterStrategy") == "FULL" for r in state["Retry"]), (lid, name)
            if state["Type"] not in ("Choice", "Succeed", "Fail"):
                assert state.get("End") or state.get("Next"), (lid, name)


def test_api_routes_in_template_match_the_handler_routes(monkeypatch):
    # GIVEN the API events declared in the template and the routes the handler's OpenAPI document has
    import importlib.util

    from kairos.core.config import ENVIRONMENT, Settings

    for field, var in ENVIRONMENT.items():  # the function's resources (its cold start checks they are set)
        if Settings.model_fields[field].default == "":
            monkeypatch.setenv(var, f"test-{field}")

    events = TEMPLATE["Resources"]["ApiFunction"]["Properties"]["Events"].values()
    declared = {(e["Properties"]["Method"].upper(), e["Properties"]["Path"]) for e in events}
    spec = importlib.util.spec_from_file_location("api_app_contract", ROOT / "functions/api/app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    doc = json.loads(module.openapi_json())
    served = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    # THEN every documented route is deployed, and every deployed route but the document itself is documented
    assert served == declared - {("GET", "/v1/openapi.json")}


def test_function_code_uris_and_handlers_exist():
    for lid, res in TEMPLATE["Resources"].items():
        if res["Type"] != "AWS::Serverless::Function":
            continue
        props = res["Properties"]
        module = props["Handler"].rsplit(".", 1)[0]
        assert (ROOT / props["CodeUri"] / f"{module}.py").exists(), lid
        assert Path(ROOT / props["CodeUri"]).is_dir()


def _references(value, names: set[str]) -> set[str]:
    """The resources a template value names (Ref, GetAtt, Sub), as CloudFormation orders creation by."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "Ref" and inner in names:
                found.add(inner)
            elif key == "Fn::GetAtt":
                target = inner[0] if isinstance(inner, list) else str(inner).split(".")[0]
                found |= {target} & names
            elif key == "Fn::Sub":
                text = inner[0] if isinstance(inner, list) else inner
                found |= {m.split(".")[0] for m in re.findall(r"\$\{([\w.]+)\}", text)} & names
                if isinstance(inner, list):
                    found |= _references(inner[1], names)
            else:
                found |= _references(inner, names)
    elif isinstance(value, list):
        for inner in value:
            found |= _references(inner, names)
    return found


def test_template_has_no_dependency_cycle():
    # GIVEN every resource's references, with what SAM adds: every function takes the Globals, and an API's
    # definition names the functions its routes call (a route's RestApiId does not make the function wait)
    resources = TEMPLATE["Resources"]
    names = set(resources)
    glob = TEMPLATE.get("Globals", {}).get("Function", {})
    deps: dict[str, set[str]] = {}
    for lid, res in resources.items():
        props = {k: v for k, v in res.get("Properties", {}).items() if k != "Events"}
        deps[lid] = _references(props, names) | set(res.get("DependsOn", []))
        if res["Type"] == "AWS::Serverless::Function":
            deps[lid] |= _references(glob, names)
            for event in res["Properties"].get("Events", {}).values():
                if event["Type"] == "Api":
                    deps.setdefault(event["Properties"]["RestApiId"]["Ref"], set()).add(lid)
    # WHEN the graph is walked THEN no resource waits, through others, for itself
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        if state.get(node) == 2:
            return
        assert state.get(node) != 1, " -> ".join([*path, node])
        state[node] = 1
        for nxt in sorted(deps.get(node, ())):
            visit(nxt, [*path, node])
        state[node] = 2

    for lid in sorted(deps):
        visit(lid, [])
