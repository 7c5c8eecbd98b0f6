"""A bounded read of the customers for answers inside an API request: every customer of a small store, a sample
of a large one.

An API request has 29 seconds (API Gateway's limit), so it reads at most ``limit`` customers. A store the
store's own estimate (``approximate_count``) puts above the limit is read as one segment of a parallel scan cut
into ``ceil(estimate / limit)`` segments: DynamoDB splits a table into scan segments by the hash of the key, so
one segment is a sample spread over the whole table, not the first ids. Counts over the sample are scaled to the
estimate. The estimate is hours old; a read that reaches ``limit`` anyway stops there and says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator

    from kairos.customers.domain import CustomerRecord
    from kairos.customers.ports import CustomerStore

# Customers one request reads at most: at the store's page size of 1000, ten pages (a few seconds of reads).
SAMPLE_LIMIT = 10_000


@dataclass
class CustomerSample:
    """The customers a request reads: iterate once; afterwards ``read``, ``sampled`` and ``scale`` say what it was.

    Parameters
    ----------
    store
        The customer store.
    limit
        The most customers read.
    page_size
        Customers per scan page.

    Example
    -------
    >>> sample = CustomerSample(customers)
    >>> matched = sum(1 for r in sample if matches(r, filters, now))
    >>> sample.estimate(matched), sample.view()
    """

    store: CustomerStore
    limit: int = SAMPLE_LIMIT
    page_size: int = 1000
    read: int = 0
    segments: int = 1
    stopped: bool = False
    total: int | None = field(default=None, init=False)

    def __iter__(self) -> Iterator[CustomerRecord]:
        self.total = self.store.approximate_count()
        if self.total is not None and self.total > self.limit:
            self.segments = math.ceil(self.total / self.limit)
        cursor: str | None = None
        while True:
            size = min(self.page_size, self.limit - self.read)
            records, cursor = self.store.scan_customers(0, self.segments, cursor, size)
            for record in records:
                if record.erased:
                    continue
                self.read += 1
                yield record
            if cursor is None:
                return
            if self.read >= self.limit:
                self.stopped = True
                return

    @property
    def sampled(self) -> bool:
        """Whether only part of the store was read."""
        return self.segments > 1 or self.stopped

    @property
    def scale(self) -> float:
        """Customers in the store per customer read (1.0 when every customer was read)."""
        if not self.sampled or not self.read:
            return 1.0
        if self.segments > 1 and not self.stopped:
            return float(self.segments)
        return max(float(self.total or 0), float(self.read)) / self.read

    def estimate(self, count: int) -> int:
        """``count`` among the customers read, scaled to the whole store."""
        return round(count * self.scale)

    def view(self) -> dict[str, Any]:
        """What an answer says about its sample: ``sampled``, ``sample_size`` and ``sample_fraction``."""
        return {"sampled": self.sampled, "sample_size": self.read, "sample_fraction": round(1.0 / self.scale, 6)}
