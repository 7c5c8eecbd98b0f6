"""Event builders shared by tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def event(
    event_id: str,
    customer_id: str = "c1",
    type: str = "purchase",
    ts: datetime | None = None,  # noqa: A002
    **extra: Any,
) -> dict[str, Any]:
    ts = ts or now() - timedelta(hours=1)
    return {"event_id": event_id, "customer_id": customer_id, "type": type, "timestamp": ts.isoformat(), **extra}
