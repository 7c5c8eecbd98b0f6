"""Customers a page at a time, to browse them (the console's list): each page is one bounded read of the store.

The store is read in its own order (DynamoDB's: by a hash of the id, neither by id nor by age), at most ``limit``
customers a request, and only their core item: no parts, no events. A page may hold fewer than ``limit`` (erased
customers and reserved items are read but not shown); ``next_cursor`` is ``null`` only at the end.
"""

from __future__ import annotations

from datetime import datetime  # noqa: TC003 - pydantic reads the annotations at run time
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from kairos.customers.aggregates import unix_to_dt

if TYPE_CHECKING:
    from kairos.customers.domain import CustomerRecord
    from kairos.customers.ports import CustomerReader

DEFAULT_PAGE = 50
MAX_PAGE = 100
# A cursor is the store's key to resume after, in hex: it may be a reserved item's key (a contact link's phone).
CURSOR_PATTERN = r"^(?:[0-9a-f]{2}){1,1024}$"


class CustomerSummary(BaseModel):
    """A customer as a list shows them: figures from the stored core, without the profile."""

    customer_id: str
    updated_at: datetime | None = None
    purchase_count: int = 0
    monetary_total: float = 0.0
    last_purchase_at: datetime | None = None
    last_engagement_at: datetime | None = None
    engagement_moments: int = 0


class CustomerPage(BaseModel):
    customers: list[CustomerSummary]
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` for the next page; `null` at the end of the store"
    )


def _summary(record: CustomerRecord) -> CustomerSummary:
    agg = record.aggregates
    return CustomerSummary(
        customer_id=record.customer_id,
        updated_at=record.updated_at,
        purchase_count=agg.purchase_count,
        monetary_total=agg.monetary_total,
        last_purchase_at=unix_to_dt(agg.last_purchase_s),
        last_engagement_at=unix_to_dt(agg.last_engaged_s),
        engagement_moments=agg.engagement_moments,
    )


def encode_cursor(key: str) -> str:
    return key.encode().hex()


def decode_cursor(cursor: str) -> str:
    """The key a cursor stands for; any cursor the pattern admits names a place to resume (bytes that are not
    UTF-8 become U+FFFD), so a made-up one answers some page rather than an error."""
    return bytes.fromhex(cursor).decode(errors="replace")


def list_customers(store: CustomerReader, cursor: str | None = None, limit: int = DEFAULT_PAGE) -> CustomerPage:
    """One page of customers, reading at most ``limit`` of the store's items.

    Parameters
    ----------
    store
        The customers.
    cursor
        The ``next_cursor`` of the previous page, or ``None`` for the first.
    limit
        How many items to read (1 to :data:`MAX_PAGE`).

    Returns
    -------
    CustomerPage
        The customers read and the cursor of the next page (``None`` at the end).

    Example
    -------
    >>> page = list_customers(store, limit=50)
    >>> more = list_customers(store, page.next_cursor) if page.next_cursor else None
    """
    records, after = store.list_customers(decode_cursor(cursor) if cursor else None, limit)
    return CustomerPage(
        customers=[_summary(r) for r in records], next_cursor=encode_cursor(after) if after is not None else None
    )
