"""Trigger function: the events table's stream -> customers entering journeys (on an event, or on entering or
leaving a saved segment), and waiting paths woken early.

The work is :func:`kairos.logic.journeys.on_stream`; a failing record is reported (ReportBatchItemFailures)
and the stream resumes from it. Active journeys are read once per batch (one small scan for up to 500
events), so an event that arrives right after an activation is not missed by a stale cache.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

from kairos import timeutil, wiring
from kairos.config import settings
from kairos.domain.journeys import Journey
from kairos.logic import journeys as journeys_logic
from kairos.logic.journeys import on_stream
from kairos.observability import logger, metrics, tracer

if TYPE_CHECKING:
    from collections.abc import Callable

    from aws_lambda_powertools.utilities.typing import LambdaContext

    from kairos.domain.campaigns import Filter
    from kairos.ports import CampaignStore, CustomerStore, JourneyStarter, JourneyStore


@lru_cache(maxsize=1)
def customers() -> CustomerStore:
    return wiring.customer_store(settings())


@lru_cache(maxsize=1)
def journeys() -> JourneyStore:
    return wiring.journey_store(settings())


@lru_cache(maxsize=1)
def steps() -> JourneyStarter:
    return wiring.journey_steps(settings())


@lru_cache(maxsize=1)
def campaigns() -> CampaignStore:
    return wiring.campaign_store(settings())


@lru_cache(maxsize=1)
def segment_filters() -> Callable[[str], list[Filter] | None]:
    return journeys_logic.segment_filters(campaigns())


def active_journeys() -> list[Journey]:
    return [Journey.from_doc(d) for d in journeys().active_journeys()]


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = on_stream(
        event.get("Records", []), active_journeys(), customers(), journeys(), steps(), timeutil.now(), segment_filters()
    )
    logger.info("journey triggers", extra={k: v for k, v in result.items() if k != "batchItemFailures"})
    return {"batchItemFailures": result["batchItemFailures"]}
