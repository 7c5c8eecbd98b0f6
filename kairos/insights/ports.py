"""What insights need from outside: documents kept between runs, and an engine that runs archive queries."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence


class InsightStore(ABC):
    """Documents kept between runs by kind and key (RFM thresholds and partial summaries of scoring runs)."""

    @abstractmethod
    def put(self, kind: str, key: str, doc: dict[str, Any], expires_at: int | None = None) -> None:
        """Create or replace a document; ``expires_at`` (Unix seconds) lets the store forget it."""

    @abstractmethod
    def get(self, kind: str, key: str) -> dict[str, Any] | None:
        """One document, or ``None``."""

    @abstractmethod
    def query(self, kind: str, prefix: str = "") -> list[tuple[str, dict[str, Any]]]:
        """``(key, document)`` of a kind whose key starts with ``prefix``, in key order."""


@dataclass(frozen=True)
class Execution:
    """Where an analytics query stands: ``state`` (``running``, ``succeeded`` or ``failed``), the bytes it
    scanned so far and, when it failed, why."""

    state: str
    bytes_scanned: int = 0
    reason: str = ""


class AnalyticsEngine(ABC):
    """Runs archive queries (``kairos.insights.sql``) in two steps, so no request waits for a scan: ``start``
    returns an execution id at once, ``execution`` says where it stands, ``rows`` reads a finished one.

    One adapter per engine: Athena in AWS (``adapters.athena_engine``), DuckDB over a copy of the archive bucket
    locally (``adapters.duckdb_engine.S3DuckDbEngine``).
    """

    dialect: str
    table: str

    @abstractmethod
    def start(self, sql: str, *, columns: Sequence[str], first_day: str | None, last_day: str | None) -> str:
        """Start a query of ``kairos.insights.sql`` (its SQL, the record fields and the days it reads, as an
        ``ArchiveQuery`` has them); its execution id."""

    @abstractmethod
    def execution(self, execution_id: str) -> Execution:
        """Where the execution stands (:class:`Execution`)."""

    @abstractmethod
    def rows(self, execution_id: str) -> list[dict[str, Any]]:
        """The rows of a succeeded execution, as dicts typed by the engine's result metadata."""
