"""The journey engine on the fakes, driven as Step Functions and the timer would drive it (a test helper)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from kairos.customers.ingest import ingest_events
from kairos.journeys import definitions, entrance, entry, membership, runner
from kairos.journeys.domain import Journey, JourneyIn
from tests.fakes import FakeProvider, InMemoryJourneyStore, RecordingJourneyStarter, RecordingTaskSink
from tests.unit.conftest import NOW, RETENTION, SKEW, make_event

# The journey engine's entry points, by the names these tests use.
jl = SimpleNamespace(
    StepDeps=runner.StepDeps,
    advance=runner.advance,
    create_journey=definitions.create_journey,
    set_status=definitions.set_status,
    segment_filters=definitions.segment_filters,
    on_events=entry.on_events,
    scan_entries=entry.scan_entries,
    start_due=entry.start_due,
)
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "journeys"


def example(name: str) -> dict[str, Any]:
    return json.loads((EXAMPLES / f"{name}.json").read_text())


class World:
    """The fakes plus a clock: events go in through ingest and the trigger path, steps run as they are started."""

    def __init__(self, customers, campaigns, messages) -> None:
        self.customers, self.campaigns, self.messages = customers, campaigns, messages
        self.store = InMemoryJourneyStore()
        self.starter = RecordingJourneyStarter()
        self.tasks = RecordingTaskSink()
        self.providers = {ch: FakeProvider(ch) for ch in ("email", "sms", "push", "messenger")}
        self.now = NOW
        self.ran: set[str] = set()
        self.steps = 0

    def deps(self) -> jl.StepDeps:
        return jl.StepDeps(self.customers, self.store, self.campaigns, self.messages, self.providers, self.tasks)

    def entrance(self, segment_filters: Any = None, global_control_share: float = 0.0) -> entrance.Entrance:
        """Entries as the trigger and timer functions make them: the path's first nodes run in place."""
        return entrance.Entrance(
            self.customers,
            self.store,
            self.starter,
            segment_filters=segment_filters,
            first_run=self.first_run,
            global_control_share=global_control_share,
        )

    def first_run(self, journey: Journey, path: dict[str, Any], record: Any, now: Any) -> None:
        runner.first_nodes(journey, path, record, self.deps(), now)

    def journey(self, body: dict[str, Any], activate: bool = True) -> str:
        doc = jl.create_journey(JourneyIn.model_validate(body), self.store, self.now)
        if activate:
            jl.set_status(doc["journey_id"], "active", self.store, self.now)
        return doc["journey_id"]

    def active(self) -> list[Journey]:
        return [Journey.from_doc(d) for d in self.store.active_journeys()]

    def event(self, event_id: str, customer_id: str, type: str, **extra: Any) -> dict[str, int]:  # noqa: A002
        raw = make_event(event_id, customer_id, type, ts=self.now, **extra)
        result = ingest_events([raw], self.customers, self.now, RETENTION, SKEW)
        assert result.accepted == 1, result
        stored = next(e for e in self.customers.customer_events(customer_id) if e["event_id"] == event_id)
        out = jl.on_events([stored], self.active(), self.entrance(), self.now)
        self.drain()
        return out

    def drain(self) -> None:
        """Run every started step not run yet (as Step Functions would, at once)."""
        while True:
            todo = [(n, p) for n, p in self.starter.started.items() if n not in self.ran]
            if not todo:
                return
            for name, payload in todo:
                self.ran.add(name)
                self.steps += 1
                jl.advance(payload["customer_id"], payload["key"], payload["seq"], self.deps(), self.now)

    def advance_clock(self, hours: float, tick_minutes: int = 60, segment_filters: Any = None) -> None:
        """Move time forward; the timer runs every ``tick_minutes`` (looking again at due segment members)."""
        end = self.now + timedelta(hours=hours)
        while self.now < end:
            self.now = min(end, self.now + timedelta(minutes=tick_minutes))
            gate = self.entrance(segment_filters)
            jl.start_due(
                self.store,
                self.starter,
                self.now,
                recheck=lambda markers, e=gate: membership.recheck_members(markers, self.active(), e, self.now),
            )
            self.drain()

    def sent(self, channel: str | None = None) -> list[tuple[str, str]]:
        return [
            (m["channel"], m["message_id"])
            for m in sorted(self.messages.records.values(), key=lambda r: r["claimed_at"])
            if m["status"] == "sent" and (channel is None or m["channel"] == channel)
        ]

    def paths(self, customer_id: str) -> list[dict[str, Any]]:
        return self.store.customer_paths(customer_id)
