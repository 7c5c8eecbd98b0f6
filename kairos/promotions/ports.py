"""What promotions need from outside: the pools of codes."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import datetime

    from kairos.promotions.domain import PromoCodesAdded, PromoPoolView, TakenCode


class PromoPools(ABC):
    """Pools of promo codes: each code goes to one holder, each holder gets one code of a pool."""

    @abstractmethod
    def add_codes(self, pool: str, codes: Sequence[str], low_water: int | None, now: datetime) -> PromoCodesAdded:
        """Add the distinct ``codes`` the pool has never had (free or taken); set ``low_water`` unless ``None``.

        A code handed out before is never added again, so it can never go to a second holder. The pool is created
        by its first codes.
        """

    @abstractmethod
    def take(self, pool: str, holder: str, now: datetime) -> TakenCode | None:
        """The holder's code of the pool: the one it was given before, else a free one, now the holder's.

        Safe under concurrency: no code goes to two holders and no holder gets two codes, whoever asks at the same
        time. ``None`` when the pool has no free code (or does not exist). ``holder`` is an opaque key.

        Raises :class:`kairos.core.errors.ConflictError` when every try lost a race (retry later).
        """

    @abstractmethod
    def counts(self, pool: str) -> PromoPoolView:
        """The pool's counts; :class:`kairos.core.errors.NotFoundError` when no code was ever uploaded to it."""
