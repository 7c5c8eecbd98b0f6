"""A value read again at most once per interval in a sandbox (settings-like documents that change rarely)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable

T = TypeVar("T")


class ReadEvery(Generic[T]):
    """``read()`` at most once per ``ttl_s``; calls in between get the last value.

    Parameters
    ----------
    ttl_s
        How long a read serves: a change made elsewhere holds here within this time.
    read
        Reads the value from its store.

    Example
    -------
    >>> policy = ReadEvery(60, policies.get_policy)
    >>> policy()  # a store read, then the same value for a minute
    """

    def __init__(self, ttl_s: float, read: Callable[[], T]) -> None:
        self._ttl_s = ttl_s
        self._read = read
        self._at = float("-inf")
        self._value: T | None = None

    def __call__(self) -> T:
        if time.monotonic() - self._at > self._ttl_s:
            self._value = self._read()
            self._at = time.monotonic()
        return self._value  # type: ignore[return-value]

    def forget(self) -> None:
        """Read again at the next call (the sandbox that changed the value sees it at once)."""
        self._at = float("-inf")
