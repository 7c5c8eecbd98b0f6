"""Each function declares the settings it needs and fails at cold start naming a missing one."""

from __future__ import annotations

import importlib.util
import uuid

import pytest

from kairos.core.config import ENVIRONMENT, MissingSettingError, Settings
from kairos_local.template import ROOT

HANDLERS = sorted(p for p in (ROOT / "functions").glob("*/app.py"))


def _import(path):
    spec = importlib.util.spec_from_file_location(f"cold_start_{uuid.uuid4().hex}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# The console's publisher reads no setting: the stack passes its bucket as the custom resource's properties.
WITHOUT_SETTINGS = {"console_publish"}


@pytest.mark.parametrize(
    "path", [p for p in HANDLERS if p.parent.name not in WITHOUT_SETTINGS], ids=lambda p: p.parent.name
)
def test_handler_cold_start_names_the_missing_variable(path, monkeypatch):
    # GIVEN an environment without any Kairos setting
    for var in ENVIRONMENT.values():
        monkeypatch.delenv(var, raising=False)
    # WHEN the handler module is imported (a cold start)
    # THEN it fails, naming a variable of the deployment's environment
    with pytest.raises(MissingSettingError) as err:
        _import(path)
    assert any(str(err.value).startswith(var) for var in ENVIRONMENT.values()), err.value


@pytest.mark.parametrize("path", HANDLERS, ids=lambda p: p.parent.name)
def test_handler_cold_start_with_every_setting_builds_no_client(path, monkeypatch):
    # GIVEN every setting (nothing is called at import: clients are built on first use)
    for field, var in ENVIRONMENT.items():
        if Settings.model_fields[field].default == "":  # the resources: tables, buckets, state machines
            monkeypatch.setenv(var, f"test-{field}")
    # WHEN / THEN the import succeeds
    assert hasattr(_import(path), "lambda_handler")


def test_a_resource_setting_has_no_silent_default():
    # A table name that was never set is an error, not a guess at a table called kairos-events.
    with pytest.raises(MissingSettingError, match="EVENTS_TABLE_NAME"):
        Settings().need("events_table")
