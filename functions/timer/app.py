"""Timer function (every minute): start the next step of every waiting path whose time has come, look again at
customers whose segment may have changed with time alone, and let customers into journeys whose entry is a date
attribute or a schedule (campaigns), or who are in a segment journey's segment when it is activated.

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
from kairos.journeys.entrance import Entrance
from kairos.journeys.entry import scan_entries, start_due
from kairos.journeys.membership import recheck_members
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
    started = 0
    members = dict.fromkeys(("due", "rechecked", "entered", "control", "skipped", "already_entered"), 0)

    def recheck(markers: list[dict[str, Any]]) -> None:
        members["due"] += len(markers)
        for k, v in recheck_members(markers, active, entrance, timeutil.now()).items():
            members[k] += v

    # Up to a few batches per minute; what is left is due at the next tick (its wake_at is in the past).
    while context.get_remaining_time_in_millis() > 10_000:
        due_before = members["due"]
        n = start_due(d.journeys, steps(), timeutil.now(), BATCH, workers=cfg.entry_shards, recheck=recheck)
        started += n
        if n + members["due"] - due_before < BATCH:
            break
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
    segments_in_time = {f"segment_{k}": v for k, v in members.items()}
    logger.info("due journey steps started", extra={"started": started, **entries, **segments_in_time})
    return {"started": started, **entries, **segments_in_time}
