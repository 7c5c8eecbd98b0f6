"""Questions the event archive answers, asked through the API without waiting: start, poll, and a cache per
state of the archive.

A question (cohorts by first purchase month, the forecast of every customer, RFM thresholds) becomes a query of
:mod:`kairos.insights.sql` on an :class:`~kairos.insights.ports.AnalyticsEngine` (Athena in AWS, DuckDB
locally). Its id is a hash of the question, the UTC day it is asked on and the archive's *data version*, so:

- a question already answered over the same archive state answers at once, from the insight store;
- a question being answered points at the running query (no second scan);
- anything else starts a query, and the caller polls ``GET /v1/insights/queries/{id}`` until it is done.

The data version is one document of the insight store that the archive function rewrites whenever it writes or
purges archive objects (:func:`note_archive_change`): reading it costs one key lookup, whatever the archive's
size. The day is part of the question because "as of now" moves: a month's cohorts gain reachable periods and
recency grows with the date, with or without new events.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from kairos.core.errors import InvalidInputError, KairosError, NotFoundError
from kairos.insights import sql, stage_report
from kairos.insights.measures import comparable_periods, forecast_from_outcomes, split_by_history

if TYPE_CHECKING:
    from kairos.insights.ports import AnalyticsEngine, InsightStore

ANALYSES = ("cohorts", "forecast", "rfm_thresholds", "stages")
QUERY_KIND = "analytics_query"  # the insight store's kind of the queries' documents, keyed by query id
ARCHIVE_KIND, VERSION_KEY = "archive", "version"  # the archive's data version
NO_VERSION = "0"  # before the archive function ever wrote
QUERY_TTL = timedelta(days=7)  # the store forgets a query's document (and answer) after this
RETRY_AFTER_S = 2  # seconds a poller waits between polls: most archive queries take a few seconds to a minute


class AnalyticsQueryFailedError(KairosError):
    """The engine failed or cancelled a query (``reason`` is the engine's); asking again starts a new one."""

    def __init__(self, query_id: str, reason: str) -> None:
        super().__init__(f"the analytics query {query_id} failed: {reason}")
        self.query_id = query_id
        self.reason = reason


@dataclass(frozen=True)
class Answer:
    """Where a question stands: ``result`` when done (the analysis' view, with its ``query`` info), else
    ``None`` and the seconds to wait before polling."""

    query_id: str
    analysis: str
    started_at: str
    result: dict[str, Any] | None = None
    retry_after: int = RETRY_AFTER_S

    @property
    def done(self) -> bool:
        return self.result is not None


# ---------------------------------------------------------------------------------------------- data version


def archive_version(store: InsightStore) -> str:
    """The archive's data version: changes whenever an archive object is written or purged."""
    doc = store.get(ARCHIVE_KIND, VERSION_KEY)
    return str(doc["version"]) if doc else NO_VERSION


def note_archive_change(store: InsightStore, now: datetime) -> str:
    """Give the archive a new data version (after writing or purging objects); returns it.

    A fresh random token rather than a counter: two archivers writing at once each leave a version that no
    earlier answer was computed over, without a read-modify-write.
    """
    version = f"{now.astimezone(UTC).strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:12]}"
    store.put(ARCHIVE_KIND, VERSION_KEY, {"version": version, "changed_at": now.isoformat()})
    return version


# ---------------------------------------------------------------------------------------------- questions


def cohorts_question(metric: str, max_periods: int) -> tuple[str, dict[str, Any]]:
    """Cohorts by first purchase month (``by=first_purchase_month``)."""
    return "cohorts", {"metric": metric, "max_periods": int(max_periods)}


def forecast_question(start: date, end: date, years: int, previous_periods: int) -> tuple[str, dict[str, Any]]:
    """The forecast of every customer (no segment, filters or journey).

    Raises
    ------
    InvalidInputError
        Neither earlier years nor previous periods: nothing to compare with.
    """
    if years == 0 and previous_periods == 0:
        raise InvalidInputError("years", "with previous_periods 0, give at least one earlier year to compare with")
    return "forecast", {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "years": int(years),
        "previous_periods": int(previous_periods),
    }


def rfm_thresholds_question() -> tuple[str, dict[str, Any]]:
    """RFM quintile cut points over every customer with a purchase."""
    return "rfm_thresholds", {}


def stages_question() -> tuple[str, dict[str, Any]]:
    """Customers per funnel stage, conversion between stages and the days between (``stage_report``)."""
    return "stages", {}


def query_id(analysis: str, params: dict[str, Any], day: str, version: str) -> str:
    """The id of a question asked on ``day`` over the archive at ``version`` (32 hex digits)."""
    text = json.dumps([analysis, params, day, version], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _forecast_periods(params: dict[str, Any], as_of: datetime) -> list[dict[str, Any]]:
    start, end = date.fromisoformat(params["start"]), date.fromisoformat(params["end"])
    today = as_of.astimezone(UTC).date()
    return comparable_periods(start, end, today, params["years"], params["previous_periods"])


def archive_query(analysis: str, params: dict[str, Any], as_of: datetime, dialect: str, table: str) -> sql.ArchiveQuery:
    """The SQL of a question as of ``as_of`` in the engine's ``dialect``, reading ``table``."""
    if analysis == "cohorts":
        return sql.cohorts_query(as_of, params["max_periods"], dialect, table)
    if analysis == "rfm_thresholds":
        return sql.rfm_thresholds_query(as_of, dialect, table)
    if analysis == "stages":
        return stage_report.stages_query(as_of, dialect, table)
    if analysis == "forecast":
        periods = [(p["start"], p["end"]) for p in _forecast_periods(params, as_of)]
        if not periods:
            raise InvalidInputError("years", "no earlier period to compare with")
        return sql.period_outcomes_query(periods, as_of, dialect, table)
    raise ValueError(f"analysis must be one of {', '.join(ANALYSES)}")


def answer_from_rows(analysis: str, params: dict[str, Any], rows: list[dict[str, Any]], as_of: datetime) -> dict:
    """The rows of a finished query as the view the synchronous answer of the same analysis has."""
    if analysis == "cohorts":
        matrix = sql.cohort_matrix_from_rows(rows, params["metric"], params["max_periods"], as_of.date())
        return {**matrix, "customers": sum(c["size"] for c in matrix["cohorts"])}
    if analysis == "rfm_thresholds":
        return sql.rfm_thresholds_from_row(rows, as_of).to_dict()
    if analysis == "stages":
        return stage_report.stages_from_rows(rows)
    comparable = _forecast_periods(params, as_of)
    got = sql.period_outcomes_from_row(rows, [(p["start"], p["end"]) for p in comparable])
    # As the forecast from aggregates: periods the data does not stand behind are left out, and listed.
    kept, left_out = split_by_history(comparable, got["earliest"])
    outcomes = {(p["start"], p["end"]): o for p, o in zip(comparable, got["outcomes"], strict=True)}
    observed = [(p, outcomes[(p["start"], p["end"])]) for p in kept]
    start, end = date.fromisoformat(params["start"]), date.fromisoformat(params["end"])
    return forecast_from_outcomes(got["audience"], observed, start, end, left_out=left_out)


# ---------------------------------------------------------------------------------------------- ask and poll


def ask(analysis: str, params: dict[str, Any], engine: AnalyticsEngine, store: InsightStore, now: datetime) -> Answer:
    """Answer a question from the cache, or point at its running query, or start one.

    Parameters
    ----------
    analysis, params
        A question (:func:`cohorts_question`, :func:`forecast_question`, :func:`rfm_thresholds_question`).
    engine
        Where the query runs.
    store
        Holds the data version and the queries' documents.
    now
        The time of the request: the answer is as of it.

    Returns
    -------
    Answer
        Done (``result``) when the same question was answered over the same archive state today; otherwise
        running, with the ``query_id`` to poll.

    Raises
    ------
    InvalidInputError
        The question has nothing to compute.
    StoreError
        The store or the engine failed (``ThrottledError``: the engine is busy, retry).
    """
    version = archive_version(store)
    qid = query_id(analysis, params, now.astimezone(UTC).date().isoformat(), version)
    doc = store.get(QUERY_KIND, qid)
    if doc is not None and doc["status"] != "failed":
        try:
            return _advance(qid, doc, engine, store)
        except AnalyticsQueryFailedError:
            pass  # a failed query is asked again: a new execution under the same id
    query = archive_query(analysis, params, now, engine.dialect, engine.table)
    execution_id = engine.start(query.sql, columns=query.columns, first_day=query.first_day, last_day=query.last_day)
    doc = {
        "analysis": analysis,
        "params": params,
        "as_of": now.isoformat(),
        "data_version": version,
        "engine": engine.dialect,
        "execution_id": execution_id,
        "status": "running",
        "started_at": now.isoformat(),
    }
    store.put(QUERY_KIND, qid, doc, expires_at=int((now + QUERY_TTL).timestamp()))
    return Answer(qid, analysis, doc["started_at"])


def poll(query_id: str, engine: AnalyticsEngine, store: InsightStore) -> Answer:
    """Where a started question stands; its answer once the query is done.

    Raises
    ------
    NotFoundError
        No such query (never started, or forgotten after ``QUERY_TTL``).
    AnalyticsQueryFailedError
        The engine failed or cancelled the query.
    """
    doc = store.get(QUERY_KIND, query_id)
    if doc is None:
        raise NotFoundError(f"no analytics query {query_id}: ask the question again")
    return _advance(query_id, doc, engine, store)


def _advance(qid: str, doc: dict[str, Any], engine: AnalyticsEngine, store: InsightStore) -> Answer:
    if doc["status"] == "succeeded":
        return Answer(qid, doc["analysis"], doc["started_at"], doc["result"])
    if doc["status"] == "failed":
        raise AnalyticsQueryFailedError(qid, doc.get("reason") or "no reason given")
    state = engine.execution(doc["execution_id"])
    if state.state == "running":
        return Answer(qid, doc["analysis"], doc["started_at"])
    expires_at = int((datetime.fromisoformat(doc["started_at"]) + QUERY_TTL).timestamp())
    if state.state == "failed":
        store.put(QUERY_KIND, qid, {**doc, "status": "failed", "reason": state.reason}, expires_at=expires_at)
        raise AnalyticsQueryFailedError(qid, state.reason or "no reason given")
    as_of = datetime.fromisoformat(doc["as_of"])
    result = answer_from_rows(doc["analysis"], doc["params"], engine.rows(doc["execution_id"]), as_of)
    result["query"] = {
        "query_id": qid,
        "engine": doc["engine"],
        "as_of": doc["as_of"],
        "data_version": doc["data_version"],
        "bytes_scanned": state.bytes_scanned,
        "cost_usd": round(sql.athena_price(state.bytes_scanned), 6) if doc["engine"] == "athena" else 0.0,
    }
    store.put(QUERY_KIND, qid, {**doc, "status": "succeeded", "result": result}, expires_at=expires_at)
    return Answer(qid, doc["analysis"], doc["started_at"], result)
