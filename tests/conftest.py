"""Shared fixtures: embedded AWS with the real template, an HTTP client through the local API."""

from __future__ import annotations

import json
import os
from typing import Any

# Powertools reads these at import; tests never trace or publish metrics.
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
os.environ.setdefault("AWS_DEFAULT_REGION", "eu-west-1")

import pytest

from kairos_local.embedded import auth_header, embedded_aws


@pytest.fixture
def runtime():
    with embedded_aws(api_key="test-key") as rt:
        yield rt


class Client:
    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime
        self.headers = auth_header(runtime)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        raw: bytes | str | None = None,
    ):
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        return self.runtime.http(method, path, headers if headers is not None else self.headers, data)

    def post_events(self, events: list[dict]) -> Any:
        return self.request("POST", "/v1/events", {"events": events})


@pytest.fixture
def client(runtime):
    return Client(runtime)
