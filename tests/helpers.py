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


def runtime_store(runtime: Any, cls: Any = None, **kw: Any) -> Any:
    """The deployment's customer store, as its API function builds it (its tables and its erasure key)."""
    from kairos.customers.adapters.dynamo import DynamoStore

    name = runtime.dep.function_environment("ApiFunction")["KAIROS_ERASURE_KEY_PARAMETER"]
    ssm = runtime.session.client("ssm")
    key = ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"].encode()
    return (cls or DynamoStore)(
        runtime.dep.physical["EventsTable"],
        runtime.dep.physical["CustomersTable"],
        client=runtime.session.client("dynamodb"),
        erasure_key=lambda: key,
        **kw,
    )


def send_message(req, customers, journeys, providers, log, now, population=None, policy=None):  # noqa: ANN001, ANN201
    """Send one message of a campaign as its journey's step does: the content, cap and expiry of the campaign's
    offer node (``kairos.journeys.campaigns``), through :func:`kairos.messaging.send.deliver`."""
    from kairos.journeys.campaigns import OFFER
    from kairos.journeys.domain import JourneyIn
    from kairos.messaging.send import Content, deliver

    doc = journeys.get_journey(req.journey_id)
    definition = JourneyIn.model_validate(doc["definition"])
    offer = definition.nodes[OFFER]

    def prepare() -> Content | str:
        if doc["status"] != "active":
            return f"campaign {doc['status']}"
        return Content(offer.content, definition.frequency_cap, offer.expires_at, policy)

    return deliver(req, customers, prepare, providers, log, now, population)


class DiesAfterAccept:
    """A message log whose first write of an outcome fails after the provider accepted the message: what a step
    sees when its Lambda runs out of time, or a store write fails, between the provider call and the log."""

    def __init__(self, log: Any) -> None:
        self.log, self.failed = log, False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.log, name)

    def finish(self, record: dict[str, Any]) -> None:
        if not self.failed:
            self.failed = True
            raise RuntimeError("the Lambda ran out of time writing the outcome")
        self.log.finish(record)


def store_bulk_customers(runtime: Any, count: int, aggregates: Any) -> None:
    """``count`` customers (``bulk-00000``...) written straight to the deployment's customers table as ingestion
    lays them out (the core item only, each with ``aggregates``): many customers in seconds, without the API."""
    from kairos.customers.adapters import layout

    ddb = runtime.session.client("dynamodb")
    table = runtime.dep.physical["CustomersTable"]
    core = layout.encode_core(aggregates, layout.Core())
    for start in range(0, count, 25):
        items = [
            {
                "PutRequest": {
                    "Item": {
                        "customer_id": {"S": f"bulk-{i:05d}"},
                        "version": {"N": "1"},
                        "updated_at": {"S": "2026-11-20T12:00:00+00:00"},
                        "core": {"B": core},
                    }
                }
            }
            for i in range(start, min(start + 25, count))
        ]
        assert not ddb.batch_write_item(RequestItems={table: items}).get("UnprocessedItems")
