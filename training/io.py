"""Read events and profiles: JSON Lines (plain or gzip), Parquet, S3 archive prefixes, raw dataset CSVs.

Events are validated with ``kairos.customers.schemas.Event`` (what the API would accept), except those made by
our own adapters in-process, which are trusted.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from kairos.core.constants import EVENT_TYPES
from kairos.core.timeutil import parse_ts
from kairos.customers.schemas import Event, validate_timezone
from kairos.messaging.domain import DELIVERED
from training import progress
from training.adapters import (
    find_online_retail_files,
    iter_online_retail,
    online_retail_profiles,
    online_retail_records,
    parse_timestamp,
    record_to_event,
)
from training.columns import EventTable, TableBuilder

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Sequence

log = logging.getLogger(__name__)

EVENT_SUFFIXES = (".jsonl", ".jsonl.gz", ".json.gz", ".ndjson", ".parquet")
PROGRESS_LINES = 50_000  # raw dataset lines between two looks at the progress meter


@dataclass
class Profile:
    """What training needs of a customer profile: the zone and free attributes (e.g. country)."""

    # None: no zone given; the customer's zone is inferred from their events' offsets, as ingestion does.
    timezone: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass
class LoadedData:
    events: list[Event]
    profiles: dict[str, Profile]
    rejected: int = 0


def _is_event_file(name: str) -> bool:
    return name.lower().endswith(EVENT_SUFFIXES)


def _s3_objects(uri: str, client: Any = None) -> Iterator[tuple[str, bytes]]:
    import boto3  # only needed for S3 sources

    client = client or boto3.client("s3")
    bucket, _, prefix = uri[len("s3://") :].partition("/")
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            key = obj["Key"]
            if _is_event_file(key):
                yield key, client.get_object(Bucket=bucket, Key=key)["Body"].read()


def _records_from_bytes(name: str, data: bytes) -> Iterator[dict[str, Any]]:
    lower = name.lower()
    if lower.endswith(".parquet"):
        import pyarrow.parquet as pq

        for rec in pq.read_table(io.BytesIO(data)).to_pylist():
            yield {k: v for k, v in rec.items() if v is not None}
        return
    if lower.endswith(".gz"):
        data = gzip.decompress(data)
    for line in data.splitlines():
        line = line.strip()
        if line:
            yield json.loads(line)


def _local_files(path: Path) -> list[Path]:
    if path.is_dir():
        return [p for p in sorted(path.rglob("*")) if p.is_file() and _is_event_file(p.name)]
    return [path]


def _event_files(sources: Sequence[str], raw: set[Path], s3_client: Any) -> Iterator[tuple[str, bytes]]:
    """``(name, bytes)`` of every event file under the sources (S3 prefixes, files, directories), one at a time;
    the raw dataset CSVs in ``raw`` are read by their adapter instead."""
    for src in sources:
        if src.startswith("s3://"):
            yield from _s3_objects(src, s3_client)
            continue
        for path in _local_files(Path(src)):
            if path not in raw and _is_event_file(path.name):
                yield path.name, path.read_bytes()


def load_events(sources: Sequence[str], profiles_path: str | None = None, s3_client: Any = None) -> LoadedData:
    """Load events (and profiles) from local paths, directories, ``s3://bucket/prefix`` or raw CSVs.

    Parameters
    ----------
    sources
        Files (``.jsonl``, ``.jsonl.gz``, ``.parquet``, Online Retail II ``.csv[.gz]``), directories
        (read recursively) or S3 prefixes (every event object under them).
    profiles_path
        Optional JSON Lines of ``{"customer_id", "timezone", "attributes"}``. Profiles made by an
        adapter from raw CSVs are used when no file is given.
    s3_client
        boto3 S3 client to use (created lazily otherwise).

    Returns
    -------
    LoadedData
        Events deduplicated by ``(customer_id, event_id)``, profiles by customer, and the number of
        records rejected by validation.
    """
    events: list[Event] = []
    profiles: dict[str, Profile] = {}
    rejected = 0
    local_paths = [Path(s) for s in sources if not s.startswith("s3://")]
    raw_csvs = find_online_retail_files(local_paths)
    if raw_csvs:
        records, adapted_profiles = online_retail_records(raw_csvs)
        events.extend(record_to_event(r) for r in records)
        for p in adapted_profiles:
            profiles[p["customer_id"]] = Profile(p["timezone"], p["attributes"])

    def validated(records: Iterable[dict[str, Any]]) -> Iterator[Event]:
        nonlocal rejected
        for rec in records:
            try:
                ev = Event.model_validate(rec)
            except ValidationError:
                rejected += 1
                continue
            if ev.type in EVENT_TYPES:  # a shop's own types are valid, but no model reads them
                yield ev

    for name, data in _event_files(sources, set(raw_csvs), s3_client):
        events.extend(validated(_records_from_bytes(name, data)))
    if rejected:
        log.warning("rejected %d invalid event records", rejected)

    if profiles_path:
        profiles.update(load_profiles(profiles_path))
    seen: set[tuple[str, str]] = set()
    unique = []
    for ev in events:
        key = (ev.customer_id, ev.event_id)
        if key not in seen:
            seen.add(key)
            unique.append(ev)
    return LoadedData(unique, profiles, rejected)


@dataclass
class LoadedTable:
    """Events as columns (:class:`training.columns.EventTable`), profiles, and how many records were rejected."""

    table: EventTable
    profiles: dict[str, Profile]
    rejected: int = 0


def load_table(
    sources: Sequence[str],
    profiles_path: str | None = None,
    s3_client: Any = None,
    keep: Callable[[str], bool] | None = None,
) -> LoadedTable:
    """Load events as columns, holding no Python object per event (the training path).

    Sources are as for :func:`load_events`. JSON Lines and Parquet are read by Arrow and validated in bulk
    (:meth:`training.columns.TableBuilder.add_arrow`); a JSON Lines file Arrow cannot read as one table (a
    field of the wrong type, a broken line) is read line by line with the API's own validation instead.
    Raw dataset CSVs go straight from the adapter into the columns. Duplicates of ``(customer_id, event_id)``
    keep the first. ``keep`` selects customers (a shard's): the others' events are dropped as they are read.
    """
    builder = TableBuilder(keep)
    profiles: dict[str, Profile] = {}
    local_paths = [Path(s) for s in sources if not s.startswith("s3://")]
    raw_csvs = find_online_retail_files(local_paths)
    meter = progress.Meter("reading events", noun="lines")
    if raw_csvs:
        countries: dict[str, Counter[str]] = defaultdict(Counter)
        for n, rec in enumerate(iter_online_retail(raw_csvs, countries), 1):
            if n % PROGRESS_LINES == 0:
                meter.update(n)
            builder.add(
                rec["customer_id"],
                rec["event_id"],
                rec["type"],
                parse_timestamp(rec["timestamp"]),
                product_id=rec.get("product_id"),
                quantity=rec.get("quantity"),
                amount=rec.get("amount"),
            )
        meter.update(len(builder) + builder.rejected)
        for p in online_retail_profiles(countries):
            profiles[p["customer_id"]] = Profile(p["timezone"], p["attributes"])
    for name, data in _event_files(sources, set(raw_csvs), s3_client):
        _add_blob(builder, name, data)
        meter.update(len(builder) + builder.rejected)
    meter.close()
    if builder.rejected:
        log.warning("rejected %d invalid event records", builder.rejected)
    if profiles_path:
        profiles.update(load_profiles(profiles_path))
    return LoadedTable(builder.finish(), profiles, builder.rejected)


def _add_blob(builder: TableBuilder, name: str, data: bytes) -> None:
    """Add one file's events: Parquet batch by batch, JSON Lines as an Arrow table (or line by line)."""
    import pyarrow as pa

    lower = name.lower()
    if lower.endswith(".parquet"):
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(io.BytesIO(data)).iter_batches(batch_size=65_536):
            builder.add_arrow(pa.Table.from_batches([batch]))
        return
    if lower.endswith(".gz"):
        data = gzip.decompress(data)
    import pyarrow.json as pa_json

    try:
        table = pa_json.read_json(
            io.BytesIO(data),
            parse_options=pa_json.ParseOptions(explicit_schema=JSON_SCHEMA(), unexpected_field_behavior="ignore"),
        )
    except pa.ArrowInvalid:
        for line in data.splitlines():
            try:
                ev = Event.model_validate_json(line) if line.strip() else None
            except ValidationError:
                builder.rejected += 1
                continue
            if ev is not None:
                builder.add_event(ev)
        return
    builder.add_arrow(table)


def JSON_SCHEMA() -> Any:  # noqa: N802 - a constant made on first use (pyarrow is imported lazily)
    import pyarrow as pa

    strings = ("customer_id", "event_id", "type", "timestamp", "channel", "product_id", "message_id")
    return pa.schema([*((n, pa.string()) for n in strings), ("quantity", pa.float64()), ("amount", pa.float64())])


def load_profiles(path: str) -> dict[str, Profile]:
    """Read profile JSON Lines (``customer_id``, optional ``timezone`` and ``attributes``), local or ``s3://``."""
    out: dict[str, Profile] = {}
    if path.startswith("s3://"):
        import boto3

        bucket, _, key = path[len("s3://") :].partition("/")
        body = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
        lines: Iterable[str] = (gzip.decompress(body) if path.endswith(".gz") else body).decode().splitlines()
    else:
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    for line in lines:
        if not line.strip():
            continue
        rec = json.loads(line)
        tz = rec.get("timezone")
        out[str(rec["customer_id"])] = Profile(validate_timezone(tz) if tz else None, dict(rec.get("attributes") or {}))
    return out


def write_jsonl(path: str | Path, records: Iterable[dict[str, Any]]) -> int:
    """Write records as JSON Lines, gzipped when the name ends in ``.gz``; returns the count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    opener = gzip.open if path.name.endswith(".gz") else open
    n = 0
    meter = progress.Meter(f"writing {path.name}", noun="records")
    with opener(path, "wt", encoding="utf-8") as fh:
        for rec in records:
            fh.write(json.dumps(rec, separators=(",", ":"), sort_keys=True))
            fh.write("\n")
            n += 1
            if n % PROGRESS_LINES == 0:
                meter.update(n)
    meter.update(n)
    meter.close()
    return n


# ----------------------------------------------------------------------------- the message log

ENGAGED_BY_MESSAGE = frozenset({"message_open", "message_click", "purchase", "message_inbound"})


@dataclass
class MessageOutcome:
    """One message of the log, as retraining reads it: what was sent, when, and what the policy saw."""

    message_id: str
    campaign_id: str
    customer_id: str
    channel: str
    step: int
    status: str  # sent | unconfirmed | failed | skipped | throttled | unavailable
    reason: str
    attempt: int
    sent_at: datetime | None
    hour_of_week: int | None  # the local hour of week the policy chose (step 0's; later steps follow waits)
    probability: float | None  # the probability the policy gave that hour (propensity)
    policy: str | None
    model_version: str | None
    timezone: str | None
    features: dict[str, Any]


def _message_outcome(rec: dict[str, Any]) -> MessageOutcome:
    return MessageOutcome(
        message_id=str(rec["message_id"]),
        campaign_id=str(rec["campaign_id"]),
        customer_id=str(rec["customer_id"]),
        channel=str(rec["channel"]),
        step=int(rec.get("step") or 0),
        status=str(rec["status"]),
        reason=str(rec.get("reason") or ""),
        attempt=int(rec.get("attempt") or 1),
        sent_at=parse_ts(rec.get("sent_at") or None),
        hour_of_week=None if rec.get("hour_of_week") is None else int(rec["hour_of_week"]),
        probability=None if rec.get("probability") is None else float(rec["probability"]),
        policy=rec.get("policy"),
        model_version=rec.get("model_version"),
        timezone=rec.get("timezone"),
        features=dict(rec.get("features") or {}),
    )


def read_messages(sources: Sequence[str], s3_client: Any = None) -> list[MessageOutcome]:
    """The message log archive (``s3://<archive>/messages/`` or local copies): the last attempt per message.

    Each attempt of a message is its own record (a throttled attempt, then the sent one); training wants
    the outcome, so the record with the highest attempt wins.
    """
    latest: dict[str, MessageOutcome] = {}
    for src in sources:
        if src.startswith("s3://"):
            blobs: Iterable[tuple[str, bytes]] = _s3_objects(src, s3_client)
        else:
            blobs = ((p.name, p.read_bytes()) for p in _local_files(Path(src)))
        for name, data in blobs:
            for rec in _records_from_bytes(name, data):
                out = _message_outcome(rec)
                seen = latest.get(out.message_id)
                if seen is None or out.attempt > seen.attempt:
                    latest[out.message_id] = out
    return sorted(latest.values(), key=lambda m: (m.sent_at or datetime.max.replace(tzinfo=UTC), m.message_id))


def message_training_rows(
    messages: Iterable[MessageOutcome], events: Iterable[Event], window: timedelta = timedelta(hours=24)
) -> list[dict[str, Any]]:
    """One row per sent message: did the customer engage with it within ``window``, and with what weight.

    ``weight`` is the inverse of the propensity of the chosen hour (clipped at 20), so an estimate over
    these rows corrects for the policy having chosen hours it already believed in (inverse propensity
    scoring); ``hour_of_week`` is the customer's local hour of the actual send.
    """
    engaged: dict[str, datetime] = {}
    for ev in events:
        if ev.message_id and ev.type in ENGAGED_BY_MESSAGE:
            at = ev.timestamp.astimezone(UTC)
            if ev.message_id not in engaged or at < engaged[ev.message_id]:
                engaged[ev.message_id] = at
    rows = []
    for m in messages:
        if m.status not in DELIVERED or m.sent_at is None:
            continue
        first = engaged.get(m.message_id)
        tz = m.timezone or "UTC"
        local = m.sent_at.astimezone(ZoneInfo(tz))
        p = m.probability if m.probability and m.probability > 0 else None
        rows.append(
            {
                "message_id": m.message_id,
                "campaign_id": m.campaign_id,
                "customer_id": m.customer_id,
                "channel": m.channel,
                "step": m.step,
                "sent_at": m.sent_at.isoformat(),
                "hour_of_week": local.weekday() * 24 + local.hour,
                "timezone": tz,
                "engaged": bool(first is not None and m.sent_at <= first < m.sent_at + window),
                "minutes_to_engage": None if first is None else round((first - m.sent_at).total_seconds() / 60, 1),
                "propensity": p,
                "weight": min(1.0 / p, 20.0) if p else 1.0,
                "policy": m.policy,
                "model_version": m.model_version,
                "features": m.features,
            }
        )
    return rows
