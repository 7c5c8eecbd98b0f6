"""Timer function (every minute): start the next step of every waiting path whose time has come, and let
customers into journeys whose entry is a date attribute or a schedule.

The work is :func:`kairos.logic.journeys.start_due` and :func:`kairos.logic.journeys.scan_entries`.
A step's execution name is fixed by the path and its
``seq``, so a path seen again before its step moved it starts nothing new.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

from kairos import timeutil, wiring
from kairos.config import settings
from kairos.domain.journeys import Journey
from kairos.logic import journeys as journeys_logic
from kairos.logic.journeys import scan_entries, start_due
from kairos.observability import logger, metrics, tracer

if TYPE_CHECKING:
    from collections.abc import Callable

    from aws_lambda_powertools.utilities.typing import LambdaContext

    from kairos.domain.campaigns import Filter
    from kairos.ports import CampaignStore, CustomerStore, JourneyStarter, JourneyStore

BATCH = 1000


@lru_cache(maxsize=1)
def journeys() -> JourneyStore:
    return wiring.journey_store(settings())


@lru_cache(maxsize=1)
def steps() -> JourneyStarter:
    return wiring.journey_steps(settings())


@lru_cache(maxsize=1)
def customers() -> CustomerStore:
    return wiring.customer_store(settings())


@lru_cache(maxsize=1)
def campaigns() -> CampaignStore:
    return wiring.campaign_store(settings())


@lru_cache(maxsize=1)
def segment_filters() -> Callable[[str], list[Filter] | None]:
    return journeys_logic.segment_filters(campaigns())


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    started = 0
    # Up to a few batches per minute; what is left is due at the next tick (its wake_at is in the past).
    while context.get_remaining_time_in_millis() > 10_000:
        n = start_due(journeys(), steps(), timeutil.now(), BATCH)
        started += n
        if n < BATCH:
            break
    active = [Journey.from_doc(d) for d in journeys().active_journeys()]
    entries = scan_entries(
        active,
        customers(),
        journeys(),
        steps(),
        timeutil.now(),
        segment_filters(),
        context.get_remaining_time_in_millis,
    )
    logger.info("due journey steps started", extra={"started": started, **entries})
    return {"started": started, **entries}
