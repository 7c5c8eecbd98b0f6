"""DuckDB over a local copy of the event archive: the SQL Athena runs in AWS, run on one machine or in tests.

The copy keeps the bucket's layout under ``root``: ``events/dt=YYYY-MM-DD/<batch id>.jsonl.gz`` (gzip JSON Lines,
as ``kairos.customers.adapters.archive`` writes them) or, once compacted, ``events/dt=YYYY-MM-DD/*.parquet``.
A query names the partitions it needs (first and last ``dt``); only their files are read, as Athena's partition
projection reads only the partitions a query's ``dt`` predicates leave. The bytes a run scanned are those
Athena would bill: the whole of every gzip file read, and of a Parquet file the compressed column chunks of the
columns read (``parquet_metadata``).

DuckDB is a development and benchmark dependency, not a runtime one: it is imported when a query runs.
:class:`S3DuckDbEngine` is the local runtime's analytics engine: the same queries over a copy of the archive
bucket, kept up to date before each query.
"""

from __future__ import annotations

import re
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from kairos.core.aws import STORE_RETRIES, LazyClient, call, domain_error
from kairos.core.constants import ARCHIVE_EVENTS_PREFIX
from kairos.core.errors import StoreError
from kairos.insights.ports import AnalyticsEngine, Execution

if TYPE_CHECKING:
    from collections.abc import Sequence

    import duckdb

FORMATS = {"json": "*.jsonl.gz", "parquet": "*.parquet"}
# The archive's records (``Event.to_record()``) as DuckDB reads them; absent members are NULL. Properties stay
# JSON text: no analysis reads them, and a fixed schema keeps every file readable whatever its lines carry.
RECORD_COLUMNS = {
    "event_id": "VARCHAR",
    "customer_id": "VARCHAR",
    "type": "VARCHAR",
    "timestamp": "VARCHAR",
    "channel": "VARCHAR",
    "message_id": "VARCHAR",
    "product_id": "VARCHAR",
    "quantity": "BIGINT",
    "amount": "DOUBLE",
    "currency": "VARCHAR",
    "text": "VARCHAR",
    "properties": "JSON",
}


@dataclass(frozen=True)
class ArchiveFile:
    """One object of the archive copy: its path, partition and size in bytes."""

    path: str
    dt: str
    size: int


@dataclass
class QueryRun:
    """What a query returned and read: ``rows`` as dicts, ``bytes_scanned`` (what Athena would bill),
    ``files`` read and wall-clock ``seconds``."""

    rows: list[dict[str, Any]]
    bytes_scanned: int
    files: int
    seconds: float
    partitions: list[str] = field(default_factory=list)


_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _struct(columns: dict[str, str]) -> str:
    return "{" + ", ".join(f"{_quote(k)}: {_quote(v)}" for k, v in columns.items()) + "}"


class DuckDbArchive:
    """Runs archive queries (``kairos.insights.sql``) with DuckDB over a local copy of the archive.

    Parameters
    ----------
    root
        The folder holding ``events/dt=.../`` (a bucket's layout, copied or synced).
    fmt
        ``json`` (the archive as written) or ``parquet`` (a compacted copy, :func:`compact_to_parquet`).
    table
        The name the queries read the events by (the Glue table's name in Athena).
    threads, memory_limit
        DuckDB's limits (``None``: DuckDB's defaults, every core and 80% of memory).

    Example
    -------
    >>> engine = DuckDbArchive("/data/archive")
    >>> run = engine.run("SELECT COUNT(*) AS n FROM events", columns=("customer_id",), first_day=None, last_day=None)
    >>> run.rows, run.bytes_scanned
    """

    dialect = "duckdb"

    def __init__(
        self,
        root: str | Path,
        fmt: str = "json",
        table: str = "events",
        threads: int | None = None,
        memory_limit: str | None = None,
    ) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"fmt must be one of {', '.join(FORMATS)}")
        if not _NAME.match(table):
            raise ValueError(f"not a table name: {table!r}")
        self.root = Path(root)
        self.fmt = fmt
        self.table = table
        self.threads = threads
        self.memory_limit = memory_limit
        self._column_bytes: dict[str, dict[str, int]] = {}

    def files(self, first_day: str | None = None, last_day: str | None = None) -> list[ArchiveFile]:
        """The archive's files in the partitions ``first_day`` .. ``last_day`` (inclusive), by path."""
        out = []
        for part in sorted((self.root / ARCHIVE_EVENTS_PREFIX).glob("dt=*")):
            dt = part.name.removeprefix("dt=")
            if (first_day is not None and dt < first_day) or (last_day is not None and dt > last_day):
                continue
            out += [ArchiveFile(str(p), dt, p.stat().st_size) for p in sorted(part.glob(FORMATS[self.fmt]))]
        return out

    def connect(self) -> duckdb.DuckDBPyConnection:
        import duckdb  # here, not at the top: a development dependency, not shipped in the Lambda layer

        con = duckdb.connect()
        # Sessions in UTC: a TIMESTAMPTZ's date and month would otherwise follow the machine's zone.
        con.execute("SET TimeZone = 'UTC'")
        if self.threads is not None:
            con.execute(f"SET threads = {int(self.threads)}")
        if self.memory_limit is not None:
            con.execute(f"SET memory_limit = {_quote(self.memory_limit)}")
        con.execute("SET preserve_insertion_order = false")
        # Sorts and joins past the memory limit spill here, not into the working directory.
        con.execute(f"SET temp_directory = {_quote(str(Path(tempfile.gettempdir()) / 'kairos-duckdb'))}")
        return con

    def source(self, files: Sequence[ArchiveFile], columns: Sequence[str]) -> str:
        """The ``SELECT`` reading ``files`` as the events table (``dt`` from the path, as a string)."""
        wanted = {c: RECORD_COLUMNS[c] for c in dict.fromkeys(columns)}
        if not files:
            nothing = ", ".join(f'CAST(NULL AS {t}) AS "{c}"' for c, t in wanted.items())
            return f"SELECT {nothing}, CAST(NULL AS VARCHAR) AS dt WHERE false"
        paths = "[" + ", ".join(_quote(f.path) for f in files) + "]"
        names = ", ".join(f'"{c}"' for c in wanted)
        hive = "hive_partitioning = true, hive_types = {'dt': 'VARCHAR'}"
        if self.fmt == "parquet":
            return f"SELECT {names}, dt FROM read_parquet({paths}, {hive})"
        reader = (
            f"read_json({paths}, format = 'newline_delimited', compression = 'gzip', "
            f"columns = {_struct(wanted)}, {hive})"
        )
        return f"SELECT {names}, dt FROM {reader}"

    def bytes_scanned(self, files: Sequence[ArchiveFile], columns: Sequence[str], con: Any) -> int:
        """Athena's billed bytes for reading ``columns`` of ``files`` (whole files for gzip JSON)."""
        if self.fmt == "json":
            return sum(f.size for f in files)
        missing = [f.path for f in files if f.path not in self._column_bytes]
        if missing:
            paths = "[" + ", ".join(_quote(p) for p in missing) + "]"
            sizes = con.execute(
                "SELECT file_name, path_in_schema, SUM(total_compressed_size) "
                f"FROM parquet_metadata({paths}) GROUP BY ALL"
            ).fetchall()
            for path in missing:
                self._column_bytes[path] = {}
            for path, column, size in sizes:
                self._column_bytes[path][column] = int(size)
        return sum(self._column_bytes[f.path].get(c, 0) for f in files for c in set(columns))

    def run(
        self, sql: str, *, columns: Sequence[str], first_day: str | None = None, last_day: str | None = None
    ) -> QueryRun:
        """Run ``sql`` (reading the events as ``self.table``) over the partitions ``first_day`` .. ``last_day``.

        Raises
        ------
        StoreError
            DuckDB could not read the archive or run the query.
        """
        import duckdb

        files = self.files(first_day, last_day)
        started = time.perf_counter()
        con = self.connect()
        try:
            con.execute(f"CREATE TEMP VIEW {self.table} AS {self.source(files, columns)}")
            cursor = con.execute(sql)
            names = [d[0] for d in cursor.description or ()]
            rows = [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]
            seconds = time.perf_counter() - started
            scanned = self.bytes_scanned(files, columns, con)
        except duckdb.Error as exc:
            raise StoreError(f"analytics: {exc}") from exc
        finally:
            con.close()
        return QueryRun(rows, scanned, len(files), seconds, sorted({f.dt for f in files}))


def compact_to_parquet(
    archive: DuckDbArchive, dest: str | Path, compression: str = "zstd", row_group_size: int = 122_880
) -> QueryRun:
    """Copy a JSON archive to Parquet with the same layout (``dest/events/dt=.../data_0.parquet``), one file per
    day, every record field kept (Zstandard by default, which Athena reads); the run's ``bytes_scanned`` is the
    JSON read.

    Raises
    ------
    StoreError
        DuckDB could not read or write.
    """
    import duckdb

    if archive.fmt != "json":
        raise ValueError("compact a JSON archive")
    files = archive.files()
    target = Path(dest) / ARCHIVE_EVENTS_PREFIX
    target.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    con = archive.connect()
    try:
        # Sorted by customer within a day: the ids and types compress into runs, and a customer's lines are
        # together for whoever reads them.
        con.execute(
            f'COPY ({archive.source(files, list(RECORD_COLUMNS))} ORDER BY dt, customer_id, "timestamp") '
            f"TO {_quote(str(target))} (FORMAT PARQUET, COMPRESSION {compression}, "
            f"ROW_GROUP_SIZE {int(row_group_size)}, PARTITION_BY (dt), OVERWRITE_OR_IGNORE)"
        )
    except duckdb.Error as exc:
        raise StoreError(f"analytics: {exc}") from exc
    finally:
        con.close()
    return QueryRun([], sum(f.size for f in files), len(files), time.perf_counter() - started)


class S3DuckDbEngine(AnalyticsEngine):
    """The analytics engine of the local runtime: DuckDB over a copy of the archive bucket's ``events/``.

    ``start`` brings the copy up to date (objects added, rewritten or deleted since, by ETag; only the
    partitions the query reads) and runs the query at once; ``execution`` and ``rows`` answer from what it
    kept. Nothing leaves the process: the bucket is the local runtime's embedded S3.

    Parameters
    ----------
    bucket
        The archive bucket.
    root
        Where the copy lives (default: a temporary folder of this process).
    client
        A boto3 S3 client; created on first use when omitted.
    """

    dialect = "duckdb"
    client = LazyClient("s3", STORE_RETRIES)
    KEPT_RUNS = 256  # finished executions remembered (a poll after more than this many queries finds none)

    def __init__(self, bucket: str, root: str | Path | None = None, client: Any = None, table: str = "events") -> None:
        self.bucket = bucket
        self._tmp = None if root is not None else tempfile.TemporaryDirectory(prefix="kairos-archive-")
        self.root = Path(root if root is not None else self._tmp.name)  # type: ignore[union-attr]
        self.table = table
        self.client = client
        self._etags: dict[str, str] = {}
        self._runs: dict[str, QueryRun | StoreError] = {}
        self._lock = threading.Lock()

    def sync(self, first_day: str | None = None, last_day: str | None = None) -> int:
        """Copy the bucket's archive objects of the days ``first_day`` .. ``last_day`` that changed; how many."""
        copied = 0
        listed: set[str] = set()
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=f"{ARCHIVE_EVENTS_PREFIX}/dt="):
                for obj in page.get("Contents", []):
                    key = obj["Key"]
                    dt = key.split("/")[1].removeprefix("dt=")
                    if (first_day is not None and dt < first_day) or (last_day is not None and dt > last_day):
                        continue
                    listed.add(key)
                    if self._etags.get(key) == obj["ETag"]:
                        continue
                    path = self.root / key
                    path.parent.mkdir(parents=True, exist_ok=True)
                    body = call(self.client, "get_object", "archive", Bucket=self.bucket, Key=key)["Body"].read()
                    path.write_bytes(body)
                    self._etags[key] = obj["ETag"]
                    copied += 1
        except ClientError as exc:
            raise domain_error(exc, "archive list_objects_v2") from exc
        # Objects gone from the bucket (an erasure emptied them, the lifecycle expired them) go from the copy.
        for key in [k for k in self._etags if k not in listed]:
            dt = key.split("/")[1].removeprefix("dt=")
            if (first_day is None or dt >= first_day) and (last_day is None or dt <= last_day):
                (self.root / key).unlink(missing_ok=True)
                del self._etags[key]
        return copied

    def start(
        self, sql: str, *, columns: Sequence[str], first_day: str | None = None, last_day: str | None = None
    ) -> str:
        execution_id = uuid.uuid4().hex
        with self._lock:
            try:
                self.sync(first_day, last_day)
                run: QueryRun | StoreError = DuckDbArchive(self.root, table=self.table).run(
                    sql, columns=columns, first_day=first_day, last_day=last_day
                )
            except StoreError as exc:
                run = exc
            self._runs[execution_id] = run
            while len(self._runs) > self.KEPT_RUNS:
                del self._runs[next(iter(self._runs))]
        return execution_id

    def execution(self, execution_id: str) -> Execution:
        run = self._runs.get(execution_id)
        if run is None:
            return Execution("failed", 0, "the local engine no longer knows this query (it restarted): ask again")
        if isinstance(run, StoreError):
            return Execution("failed", 0, str(run))
        return Execution("succeeded", run.bytes_scanned)

    def rows(self, execution_id: str) -> list[dict[str, Any]]:
        run = self._runs.get(execution_id)
        if not isinstance(run, QueryRun):
            raise StoreError(f"analytics: no rows for execution {execution_id}")
        return [dict(r) for r in run.rows]
