"""A customer's path through a journey: its key, its step's name, and the guarded saves that move it.

A path is a record in the journey store, not a long-running execution: it holds the node the customer is at,
and while it waits, ``wake_at``. Every save is guarded by ``seq``, so two steps can never both move a path.
"""

from __future__ import annotations

import hashlib
import random
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from kairos.audiences.matching import compare
from kairos.core.constants import MESSAGE_ENGAGEMENT
from kairos.core.errors import ConflictError
from kairos.core.timeutil import utc_iso

if TYPE_CHECKING:
    from datetime import datetime

    from kairos.journeys.ports import JourneyStore

PATH_RETENTION = timedelta(days=400)

ENGAGEMENT = MESSAGE_ENGAGEMENT

WAITING_STATUS = "waiting"

MEMBER = "member"  # the entry id of a segment journey's membership marker (not a path)


def path_key(journey_id: str, entry_id: str) -> str:
    return f"{journey_id}#{entry_id}"


def message_prefix(path: dict[str, Any]) -> str:
    """The prefix of every message id of one path: journey, customer and entry (each id is then unique)."""
    return f"{path['journey_id']}.{path['customer_id']}.{path['entry_id']}."


def step_name(path: dict[str, Any]) -> str:
    """The execution name of a path's next step: fixed by path and ``seq``, so a step starts at most once."""
    digest = hashlib.sha256(f"{path['customer_id']}\x1f{path['key']}".encode()).hexdigest()[:32]
    return f"{path['journey_id'][:32]}-{digest}-{path['seq']}"


def step_payload(path: dict[str, Any]) -> dict[str, Any]:
    """The step's input: ids only (Step Functions keeps execution input for 90 days)."""
    return {"customer_id": path["customer_id"], "key": path["key"], "seq": path["seq"]}


def event_value(event: dict[str, Any], name: str) -> Any:
    if name.startswith("properties."):
        value: Any = event.get("properties") or {}
        for part in name.split(".")[1:]:
            if not isinstance(value, dict):
                return None
            value = value.get(part)
        return value
    return event.get(name)


def event_matches(event: dict[str, Any], event_type: str, where: list[Any]) -> bool:
    """Whether an event is of ``event_type`` and its own fields meet every condition of ``where``."""
    if event.get("type") != event_type:
        return False
    return all(compare(event_value(event, c.field), c.op, c.value) for c in where)


def save_path(path: dict[str, Any], store: JourneyStore, now: datetime) -> None:
    """Save a path as its next ``seq``, only if nobody saved it since it was read (else ConflictError)."""
    seq = path["seq"]
    path.update(seq=seq + 1, updated_at=utc_iso(now))
    store.save_path(path, seq)


def park(path: dict[str, Any], store: JourneyStore, now: datetime, until: datetime) -> dict[str, Any]:
    path["wake_at"] = utc_iso(max(until, now))
    save_path(path, store, now)
    return {"status": WAITING_STATUS, "node": path["node"], "wake_at": path["wake_at"]}


def finish(path: dict[str, Any], store: JourneyStore, now: datetime, status: str, reason: str) -> dict[str, Any]:
    path.pop("wake_at", None)
    path.update(status=status, exit_reason=reason, ended_at=utc_iso(now))
    save_path(path, store, now)
    return {"status": status, "node": path["node"], "reason": reason}


def fail_path(customer_id: str, key: str, error: str, store: JourneyStore, now: datetime) -> bool:
    """Mark a path ``failed`` after its step failed every retry (the state machine's Catch); ``False`` if gone."""
    for _ in range(5):
        path = store.get_path(customer_id, key)
        if path is None or path.get("status") != WAITING_STATUS:
            return False
        path.pop("wake_at", None)
        path.update(status="failed", exit_reason=error[:500], ended_at=utc_iso(now))
        try:
            save_path(path, store, now)
        except ConflictError:
            time.sleep(0.05 * random.random())
            continue
        return True
    return False
