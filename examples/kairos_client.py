"""The HTTP client the example scripts share: the Kairos API with a key, and the local product's clock and outbox.

Standard library only, so the examples run with any Python 3.11+ and nothing installed.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import UTC, datetime
from typing import Any


class Api:
    def __init__(self, url: str, key: str, timeout_s: float = 60) -> None:
        self.url, self.key, self.timeout_s = url.rstrip("/"), key, timeout_s
        self.local: bool | None = None  # whether the server has the local clock; known after the first ask

    def raw(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, str]:
        """Status and text of one request, as sent (no key unless ``headers`` has it)."""
        req = urllib.request.Request(self.url + path, data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()

    def call(self, method: str, path: str, body: Any = None, ok: tuple[int, ...] = (200, 201)) -> Any:
        """The JSON answer of an API call with the key; exits naming the call when the status is not in ``ok``."""
        data = json.dumps(body).encode() if body is not None else None
        status, text = self.raw(
            method, path, data, {"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"}
        )
        if status not in ok:
            raise SystemExit(f"{method} {path} answered {status}: {text}")
        return json.loads(text) if text else None

    def clock(self) -> tuple[datetime, float]:
        """The product's now and its speed: the local server's simulated clock (``GET /_local/clock``), else this
        machine's clock at speed 1 (a deployed stack has no ``/_local/`` routes; asked once, then remembered)."""
        if self.local is not False:
            status, text = self.raw("GET", "/_local/clock")
            doc = _json(text) if status == 200 else None
            self.local = isinstance(doc, dict) and "now" in doc
            if self.local:
                return datetime.fromisoformat(doc["now"]), float(doc["speed"])
        return datetime.now(UTC), 1.0

    def now(self) -> datetime:
        """The time to stamp events with: the product's now (simulated on a local server), timezone-aware UTC."""
        return self.clock()[0]

    def outbox(self) -> list[dict[str, Any]]:
        """Every message the local product's providers received (``GET /_local/outbox``), oldest first."""
        return self.call("GET", "/_local/outbox")["messages"]


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None
