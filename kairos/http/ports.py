"""Ports of the HTTP part: where the web console's files are published."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable


class ConsoleBucket(ABC):
    """The store a deployment serves the web console from (an S3 bucket behind CloudFront)."""

    @abstractmethod
    def put(self, key: str, body: bytes, content_type: str, cache_control: str) -> None:
        """Write one file with the headers it is served with."""

    @abstractmethod
    def keys(self, prefix: str) -> list[str]:
        """The keys under ``prefix`` (empty when the store is gone)."""

    @abstractmethod
    def delete(self, keys: Iterable[str]) -> None:
        """Delete the keys (a missing one is not an error)."""
