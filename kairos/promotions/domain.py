"""Promo code pools: what the API accepts and answers, what a take returns, and the alerts a take raises."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from kairos.core.schema_rules import JSON_INTEGER

# Codes are printed in messages and typed back at checkout: letters, digits, "_" and "-" only.
CODE_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
# 10,000 codes are read and written in batches well within API Gateway's 29 s (see the adapter).
MAX_CODES_PER_REQUEST = 10_000
MAX_LOW_WATER = 1_000_000_000

# The CloudWatch metrics a take publishes (one metric each, the pool named in the record's properties).
PROMO_POOL_LOW = "PromoPoolLow"
PROMO_POOL_EMPTY = "PromoPoolEmpty"

PromoCode = Annotated[str, Field(pattern=CODE_PATTERN)]


class PromoCodesIn(BaseModel):
    """``PUT /v1/promo-pools/{name}/codes``: codes to add to the pool, and optionally its low-water mark."""

    model_config = ConfigDict(extra="forbid")

    codes: Annotated[
        list[PromoCode],
        Field(
            min_length=1,
            max_length=MAX_CODES_PER_REQUEST,
            description="1 to 10,000 codes of 1 to 64 letters, digits, '_' or '-'. A code already in the pool "
            "(free or handed out) is not added again; a code repeated in the body counts once.",
        ),
    ]
    low_water: Annotated[
        int | None,
        Field(
            ge=0,
            le=MAX_LOW_WATER,
            description="alert (metric PromoPoolLow) when fewer codes than this are left; omitted: unchanged "
            "(0 for a new pool: no alert before the pool is empty)",
        ),
        JSON_INTEGER,
    ] = None


class PromoPoolView(BaseModel):
    """A pool's counts: codes left to hand out, codes handed out, and its low-water mark."""

    pool: str
    available: int = Field(description="codes uploaded and not handed out yet")
    taken: int = Field(description="codes handed out, one per journey path")
    low_water: int = Field(description="PromoPoolLow is published when fewer codes than this are left")


class PromoCodesAdded(PromoPoolView):
    """What an upload did, and the pool's counts after it."""

    added: int = Field(description="codes new to the pool")
    already_present: int = Field(description="codes the pool already had (free or handed out): not added again")


@dataclass(frozen=True)
class TakenCode:
    """A holder's code of a pool.

    ``fresh``: handed out by this take (else the holder's code from before); ``counts``: the pool's counts right
    after a fresh take (``None`` when not known).
    """

    code: str
    fresh: bool
    counts: PromoPoolView | None = None


@dataclass(frozen=True)
class PoolAlert:
    """A pool running low (``PROMO_POOL_LOW``) or found empty (``PROMO_POOL_EMPTY``) by a take."""

    metric: str
    pool: str
    available: int = 0
    low_water: int = 0
