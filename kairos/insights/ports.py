"""What insights need from outside: documents kept between scoring runs."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any


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
