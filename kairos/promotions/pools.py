"""Promo code pools: upload codes, hand one to each journey path, and tell when a pool runs low or empty.

A holder is the journey path a code goes to (``"<journey_id>.<customer_id>.<entry_id>"``). Pools store only a
SHA-256 digest of it: no customer id reaches the pools' table, so erasing a customer leaves nothing there to
remove (the code a customer was sent lives in their path and message log, which the erasure deletes).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from kairos.core.errors import InvalidInputError
from kairos.promotions.domain import PROMO_POOL_EMPTY, PROMO_POOL_LOW, PoolAlert

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from kairos.promotions.domain import PromoCodesAdded, PromoCodesIn, PromoPoolView
    from kairos.promotions.ports import PromoPools


def holder_key(holder: str) -> str:
    """The key a holder is stored under: the SHA-256 digest of its name, so no customer id is stored."""
    return hashlib.sha256(holder.encode("utf-8")).hexdigest()


def upload_codes(pools: PromoPools, pool: str, body: PromoCodesIn, now: datetime) -> PromoCodesAdded:
    """Add a shop's codes to a pool (created by its first codes).

    Parameters
    ----------
    pools
        The pools' store.
    pool
        The pool's name.
    body
        The codes (a code repeated in the body counts once) and, optionally, the pool's new low-water mark.
    now
        When the codes were uploaded.

    Returns
    -------
    PromoCodesAdded
        How many codes were new and how many the pool had already (free or handed out: a code handed out is
        never handed out again), and the pool's counts after the upload.

    Example
    -------
    >>> upload_codes(pools, "summer", PromoCodesIn(codes=["A1", "B2"], low_water=100), now).added
    2
    """
    codes = list(dict.fromkeys(body.codes))
    return pools.add_codes(pool, codes, body.low_water, now)


def take_code(
    pools: PromoPools,
    pool: str,
    holder: str,
    now: datetime,
    notify: Callable[[PoolAlert], None] | None = None,
) -> str | None:
    """The holder's code of a pool: taken once, the same code every time the holder asks again.

    Parameters
    ----------
    pools
        The pools' store.
    pool
        The pool's name.
    holder
        Who the code is for: a journey path, ``f"{journey_id}.{customer_id}.{entry_id}"``.
    now
        When the code is taken.
    notify
        Told when this take leaves fewer codes than the pool's low-water mark (``PROMO_POOL_LOW``) or finds no
        code (``PROMO_POOL_EMPTY``); the handlers pass
        :func:`kairos.promotions.adapters.alerts.emf_alert` (CloudWatch metrics).

    Returns
    -------
    str | None
        The code, or ``None`` when the pool has none left or does not exist.

    Raises
    ------
    InvalidInputError
        An empty holder.
    ConflictError
        Every try lost a race for a code (the pool is very busy): retry later.

    Example
    -------
    >>> take_code(pools, "summer", "j1.c42.e1", now)
    'A1'
    >>> take_code(pools, "summer", "j1.c42.e1", now)  # the same path again: the same code
    'A1'
    """
    if not holder:
        raise InvalidInputError("holder", "empty")
    taken = pools.take(pool, holder_key(holder), now)
    if taken is None:
        if notify is not None:
            notify(PoolAlert(PROMO_POOL_EMPTY, pool))
        return None
    counts = taken.counts
    # Only a code handed out now changes the count: a holder asking again raises no second alert.
    if notify is not None and taken.fresh and counts is not None and counts.available < counts.low_water:
        notify(PoolAlert(PROMO_POOL_LOW, pool, counts.available, counts.low_water))
    return taken.code


def pool_counts(pools: PromoPools, pool: str) -> PromoPoolView:
    """A pool's counts (codes left, codes handed out, low-water mark).

    Raises
    ------
    NotFoundError
        No code was ever uploaded to the pool.
    """
    return pools.counts(pool)
