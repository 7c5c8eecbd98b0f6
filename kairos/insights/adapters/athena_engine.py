"""Amazon Athena over the event archive: the Glue table ``events`` (gzip JSON Lines, ``dt`` by partition
projection) in the deployment's workgroup, which holds the results location and the bytes-scanned cutoff.

A query is started and polled, never waited for inside an API request (``start``, ``execution``, ``rows``);
``run`` waits, for callers that may (the nightly scoring run, the command line). Athena bills the bytes a query
scans (``kairos.insights.sql.athena_price``): ``Statistics.DataScannedInBytes`` of its execution.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kairos.core.aws import STORE_RETRIES, LazyClient, call
from kairos.core.errors import StoreError
from kairos.insights.ports import AnalyticsEngine, Execution

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from mypy_boto3_athena import AthenaClient

# Athena's states (QueryExecutionStatus.State) as the engine port names them.
STATES = {
    "QUEUED": "running",
    "RUNNING": "running",
    "SUCCEEDED": "succeeded",
    "FAILED": "failed",
    "CANCELLED": "failed",
}
# Trino's result types (ResultSetMetadata.ColumnInfo[].Type) -> Python; anything else stays a string.
_INTEGER = {"tinyint", "smallint", "integer", "int", "bigint"}
_REAL = {"double", "float", "real"}
PAGE_ROWS = 1000  # GetQueryResults' largest page


def _typed(value: str | None, kind: str) -> Any:
    if value is None:
        return None
    kind = kind.lower()
    if kind in _INTEGER:
        return int(value)
    if kind in _REAL or kind.startswith("decimal"):
        return float(value)
    if kind == "boolean":
        return value.lower() == "true"
    return value


@dataclass
class AthenaRun:
    """A finished query: ``rows`` as dicts, ``bytes_scanned`` (what Athena bills), its ``execution_id`` and the
    wall-clock ``seconds`` waited."""

    rows: list[dict[str, Any]]
    bytes_scanned: int
    execution_id: str
    seconds: float


class AthenaArchive(AnalyticsEngine):
    """Runs archive queries on Athena in a workgroup.

    Parameters
    ----------
    workgroup
        The workgroup (its results location, encryption and ``BytesScannedCutoffPerQuery`` are enforced).
    database
        The Glue database holding the events table.
    table
        The events table's name, as the queries read it.
    client
        A boto3 Athena client; created on first use when omitted.

    Example
    -------
    >>> engine = AthenaArchive("kairos-analytics", "kairos_analytics")
    >>> query = cohorts_query(now, dialect="athena")
    >>> execution_id = engine.start(query.sql, columns=query.columns, first_day=None, last_day=query.last_day)
    >>> engine.execution(execution_id).state
    'running'
    """

    dialect = "athena"
    client = LazyClient("athena", STORE_RETRIES)

    def __init__(
        self, workgroup: str, database: str, table: str = "events", client: AthenaClient | None = None
    ) -> None:
        self.workgroup = workgroup
        self.database = database
        self.table = table
        self.client = client

    def start(
        self, sql: str, *, columns: Sequence[str] = (), first_day: str | None = None, last_day: str | None = None
    ) -> str:
        """Start ``sql`` in the workgroup; its execution id (Athena prunes the days by the query's own predicates).

        Raises
        ------
        ThrottledError
            Athena refused for now (too many queries at once).
        StoreError
            Athena refused the query.
        """
        resp = call(
            self.client,
            "start_query_execution",
            "Athena",
            QueryString=sql,
            QueryExecutionContext={"Database": self.database},
            WorkGroup=self.workgroup,
        )
        return str(resp["QueryExecutionId"])

    def execution(self, execution_id: str) -> Execution:
        """The execution's state, bytes scanned and, when it failed or was cancelled, Athena's reason."""
        got = call(self.client, "get_query_execution", "Athena", QueryExecutionId=execution_id)["QueryExecution"]
        status = got.get("Status") or {}
        athena_state = str(status.get("State", "QUEUED"))
        scanned = int((got.get("Statistics") or {}).get("DataScannedInBytes") or 0)
        reason = str(status.get("StateChangeReason") or "")
        if athena_state == "CANCELLED" and not reason:
            reason = "the query was cancelled"
        return Execution(STATES.get(athena_state, "running"), scanned, reason)

    def rows(self, execution_id: str) -> list[dict[str, Any]]:
        """Every row of a succeeded execution, page by page, typed by the result's column types.

        The first row of a SELECT's first page holds the column names, not data: it is left out.
        """
        kwargs: dict[str, Any] = {"QueryExecutionId": execution_id, "MaxResults": PAGE_ROWS}
        out: list[dict[str, Any]] = []
        first = True
        while True:
            page = call(self.client, "get_query_results", "Athena", **kwargs)
            result = page.get("ResultSet") or {}
            info = (result.get("ResultSetMetadata") or {}).get("ColumnInfo") or []
            names = [c.get("Label") or c["Name"] for c in info]
            kinds = [str(c.get("Type", "varchar")) for c in info]
            for raw in result.get("Rows") or []:
                values = [d.get("VarCharValue") for d in raw.get("Data") or []]
                if first and values == names:
                    first = False
                    continue
                first = False
                out.append({n: _typed(v, k) for n, v, k in zip(names, values, kinds, strict=False)})
            if not page.get("NextToken"):
                return out
            kwargs["NextToken"] = page["NextToken"]

    def stop(self, execution_id: str) -> None:
        """Cancel an execution (what it scanned so far is billed)."""
        call(self.client, "stop_query_execution", "Athena", QueryExecutionId=execution_id)

    def run(
        self,
        sql: str,
        *,
        columns: Sequence[str],
        first_day: str | None = None,
        last_day: str | None = None,
        timeout_s: float = 600.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> AthenaRun:
        """Run ``sql`` and wait for its rows (the ``ArchiveEngine`` protocol of ``kairos.insights.sql``).

        ``columns`` and the days are what the query's own predicates say; Athena prunes by them itself.

        Raises
        ------
        StoreError
            The query failed, was cancelled, or ran past ``timeout_s`` (it is then cancelled).
        """
        started = time.monotonic()
        execution_id = self.start(sql, columns=columns, first_day=first_day, last_day=last_day)
        wait = 0.25
        while True:
            state = self.execution(execution_id)
            if state.state == "succeeded":
                rows = self.rows(execution_id)
                return AthenaRun(rows, state.bytes_scanned, execution_id, time.monotonic() - started)
            if state.state == "failed":
                raise StoreError(f"analytics: the Athena query failed: {state.reason or 'no reason given'}")
            if time.monotonic() - started > timeout_s:
                self.stop(execution_id)
                raise StoreError(f"analytics: the Athena query ran past {timeout_s:.0f} s and was cancelled")
            sleep(wait)
            wait = min(wait * 2, 5.0)
