"""Promo code pools: the shop uploads codes; journeys and campaigns hand one to each path."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Body, Path

from kairos.core import timeutil
from kairos.core.constants import POOL_NAME_PATTERN
from kairos.http.api import KairosRouter
from kairos.http.deps import Deps  # noqa: TC001 - Powertools reads route annotations at run time
from kairos.promotions import pools
from kairos.promotions.domain import PromoCodesAdded, PromoCodesIn, PromoPoolView  # noqa: TC001 - as Deps

router = KairosRouter()

PoolName = Annotated[str, Path(pattern=POOL_NAME_PATTERN, description="The pool's name, as messages name it")]


@router.endpoint(
    "PUT",
    "/v1/promo-pools/<name>/codes",
    scope="manage",
    summary="Add promo codes to a pool (the first codes create it)",
    description="1 to 10,000 codes per request. A code the pool already has, free or handed out, is not added "
    "again (`already_present`): a code handed out never goes to a second customer. A code repeated in the body "
    "counts once. `low_water`, when given, replaces the pool's mark: a message that leaves fewer codes publishes "
    "the metric `PromoPoolLow`.",
    links={"/v1/promo-pools/{name}": {"name": "$request.path.name"}},
    tags=["promotions"],
)
def put_promo_codes(name: PoolName, body: Annotated[PromoCodesIn, Body()], deps: Deps) -> PromoCodesAdded:
    return pools.upload_codes(deps.promo_pools(), name, body, timeutil.now())


@router.endpoint(
    "GET",
    "/v1/promo-pools/<name>",
    scope="read",
    errors=(400, 404),
    summary="A promo pool's counts: codes left, codes handed out, low-water mark",
    tags=["promotions"],
)
def get_promo_pool(name: PoolName, deps: Deps) -> PromoPoolView:
    return pools.pool_counts(deps.promo_pools(), name)
