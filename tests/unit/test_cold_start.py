"""A cold start imports what the function uses (bench/cold_start.py measures how long it takes)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from kairos_local.template import load_template

ROOT = Path(__file__).parents[2]
_spec = importlib.util.spec_from_file_location("cold_start_bench", ROOT / "bench" / "cold_start.py")
cold_start = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cold_start)


def loaded_after_import(function: str) -> set[str]:
    """The modules a fresh process has after importing the function's app.py, in its deployed environment."""
    template = load_template()
    env = cold_start.deployed_env(function, template, cold_start.function_ids(template))
    code = "import json, sys, app; print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT / "functions" / function, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.splitlines()[-1]))


def _any(modules: set[str], prefix: str) -> bool:
    return any(m == prefix or m.startswith(prefix + ".") for m in modules)


def test_authorizer_cold_start_loads_the_sdk_and_not_templates_journeys_or_tracing():
    # GIVEN / WHEN the authorizer's cold start
    modules = loaded_after_import("authorizer")
    # THEN the AWS SDK is there (every request reads a key), and what only other functions use is not
    assert "boto3" in modules
    for unused in ("aws_xray_sdk", "liquid", "babel", "mjml", "kairos.journeys", "kairos.customers.schemas"):
        assert not _any(modules, unused), unused


@pytest.mark.parametrize("function", ["api", "advance", "trigger", "timer", "feedback", "preferences", "score"])
def test_traced_functions_load_the_xray_sdk_on_their_first_call_not_at_import(function):
    modules = loaded_after_import(function)
    assert "boto3" in modules
    assert not _any(modules, "aws_xray_sdk")
    assert not _any(modules, "requests")  # the SDK used to patch (and so import) every library it knows


def test_api_cold_start_leaves_the_openapi_models_to_the_document_route():
    modules = loaded_after_import("api")
    assert not _any(modules, "aws_lambda_powertools.event_handler.openapi.models")
