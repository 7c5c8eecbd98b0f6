"""The tracer costs nothing at import: Powertools' Tracer (and the X-Ray SDK) come with the first traced call."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import aws_lambda_powertools

from kairos.core.observability import TRACED_MODULES, LazyTracer

ROOT = Path(__file__).parents[2]


class FakeTracer:
    made: list[dict] = []

    def __init__(self, **kwargs) -> None:
        FakeTracer.made.append(kwargs)

    def capture_lambda_handler(self, handler, **options):
        return lambda event, context: ("traced", handler(event, context), options)


def test_observability_import_leaves_the_xray_sdk_unloaded():
    # GIVEN a fresh process in a Lambda-like environment  WHEN it imports the observability module
    code = "import sys, kairos.core.observability; print(any(m.startswith('aws_xray_sdk') for m in sys.modules))"
    env = {"PYTHONPATH": str(ROOT), "LAMBDA_TASK_ROOT": str(ROOT), "AWS_REGION": "eu-west-1", "PATH": "/usr/bin"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    # THEN the X-Ray SDK is not loaded
    assert out.stdout.strip() == "False"


def test_lazy_tracer_calls_the_handler_itself_when_tracing_is_off(monkeypatch):
    # GIVEN tracing turned off
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.setattr(aws_lambda_powertools, "Tracer", FakeTracer)
    tracer = LazyTracer("test")

    @tracer.capture_lambda_handler
    def handler(event, context):
        return event

    # WHEN called twice  THEN the handler answers and no tracer is made
    assert handler(1, None) == 1
    assert handler(2, None) == 2
    assert tracer._tracer is None


def test_lazy_tracer_makes_the_powertools_tracer_on_the_first_traced_call(monkeypatch):
    # GIVEN a Lambda environment with tracing on
    monkeypatch.delenv("POWERTOOLS_TRACE_DISABLED", raising=False)
    monkeypatch.setenv("LAMBDA_TASK_ROOT", "/var/task")
    monkeypatch.setattr(aws_lambda_powertools, "Tracer", FakeTracer)
    FakeTracer.made = []
    tracer = LazyTracer("test")

    @tracer.capture_lambda_handler(capture_response=False)
    def handler(event, context):
        return event

    # WHEN the handler is decorated, THEN nothing is made yet
    assert FakeTracer.made == []
    # WHEN it is called twice
    first, second = handler(1, None), handler(2, None)
    # THEN one tracer was made, patching only what Kairos calls, and both calls went through it
    assert FakeTracer.made == [{"service": "test", "patch_modules": TRACED_MODULES}]
    assert first == ("traced", 1, {"capture_response": False})
    assert second == ("traced", 2, {"capture_response": False})
