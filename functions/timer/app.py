"""Timer function (every minute): start the next step of every waiting path whose time has come, and let
customers into journeys whose entry is a date attribute or a schedule (campaigns).

The work is :func:`kairos.journeys.entry.start_due` and :func:`kairos.journeys.entry.scan_entries`, then
:func:`kairos.journeys.promotion.promote_winners` (content variants that won, at most hourly per journey). A step's
execution name is fixed by the path and its ``seq``, so a path seen again before its step moved it starts
nothing new; an entry scan saves its cursor after every page and the next tick resumes it.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

from kairos import wiring
from kairos.audiences.matching import CustomerHistory, needs_history
from kairos.core import timeutil
from kairos.core.config import require, settings
from kairos.core.observability import logger, metrics, tracer
from kairos.journeys.definitions import segment_filters
from kairos.journeys.domain import Journey
from kairos.journeys.entry import Entrance, scan_entries, start_due
from kairos.journeys.promotion import promote_winners
from kairos.journeys.runner import StepDeps, first_nodes

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from kairos.journeys.ports import JourneyStarter

# The settings this function needs: a deployment without one fails here, at cold start, naming it.
require(*wiring.STEP_SETTINGS, "journey_step_state_machine_arn")


BATCH = 1000


@lru_cache(maxsize=1)
def deps() -> StepDeps:
    return wiring.step_deps(settings())


@lru_cache(maxsize=1)
def steps() -> JourneyStarter:
    return wiring.journey_steps(settings())


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    d = deps()
    started = 0
    # Up to a few batches per minute; what is left is due at the next tick (its wake_at is in the past).
    while context.get_remaining_time_in_millis() > 10_000:
        n = start_due(d.journeys, steps(), timeutil.now(), BATCH, workers=settings().entry_shards)
        started += n
        if n < BATCH:
            break
    docs = d.journeys.active_journeys()
    active = [Journey.from_doc(doc) for doc in docs]
    cfg = settings()
    entrance = Entrance(
        customers=d.customers,
        store=d.journeys,
        starter=steps(),
        segment_filters=segment_filters(d.segments),
        first_run=lambda journey, path, record, now: first_nodes(journey, path, record, d, now),
        global_control_share=cfg.global_control_share,
        history=lambda filters: CustomerHistory(d.customers, d.messages) if needs_history(filters) else None,
    )
    entries = scan_entries(
        active,
        entrance,
        timeutil.now(),
        context.get_remaining_time_in_millis,
        shards=cfg.entry_shards,
        workers=cfg.entry_shards,
    )
    try:
        promoted = promote_winners(
            d.journeys, d.messages, d.customers, timeutil.now(), docs, context.get_remaining_time_in_millis
        )
    except Exception:  # noqa: BLE001 - a failed look for winners must not stop the steps and entries of the tick
        logger.exception("content variant winners not checked")
    else:
        for p in promoted:
            logger.info("content variant promoted", extra=p)
    logger.info("due journey steps started", extra={"started": started, **entries})
    return {"started": started, **entries}
