"""What audiences need from outside: saved segments."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any


class SegmentStore(ABC):
    """Saved segments: named audiences (``name``, ``filters``, ``updated_at``)."""

    @abstractmethod
    def put_segment(self, segment: dict[str, Any]) -> None:
        """Create or replace a saved segment (key ``name``)."""

    @abstractmethod
    def get_segment(self, name: str) -> dict[str, Any]:
        """Raises :class:`kairos.core.errors.NotFoundError` when there is none."""

    @abstractmethod
    def delete_segment(self, name: str) -> None:
        """Delete a saved segment; ``NotFoundError`` when there is none."""

    @abstractmethod
    def list_segments(self) -> list[dict[str, Any]]:
        """Every saved segment, by name."""
