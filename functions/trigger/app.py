"""Trigger function: the events table's stream -> customers entering journeys (on an event, or on entering or
leaving a saved segment), and waiting paths woken early.

The work is :func:`kairos.journeys.entry.on_stream`; a failing record is reported (ReportBatchItemFailures)
and the stream resumes from it. Active journeys are read once per batch (one small scan for up to 500
events), so an event that arrives right after an activation is not missed by a stale cache.
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
from kairos.journeys.entry import on_stream
from kairos.journeys.runner import StepDeps, first_nodes

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext


# The settings this function needs: a deployment without one fails here, at cold start, naming it.
require(*wiring.STEP_SETTINGS, "journey_step_state_machine_arn")


@lru_cache(maxsize=1)
def deps() -> StepDeps:
    return wiring.step_deps(settings())


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    d = deps()
    active = [Journey.from_doc(doc) for doc in d.journeys.active_journeys()]
    entrance = Entrance(
        customers=d.customers,
        store=d.journeys,
        starter=wiring.journey_steps(settings()),
        segment_filters=segment_filters(d.segments),
        first_run=lambda journey, path, record, now: first_nodes(journey, path, record, d, now),
        global_control_share=settings().global_control_share,
        history=lambda filters: CustomerHistory(d.customers, d.messages) if needs_history(filters) else None,
    )
    result = on_stream(event.get("Records", []), active, entrance, timeutil.now())
    logger.info("journey triggers", extra={k: v for k, v in result.items() if k != "batchItemFailures"})
    return {"batchItemFailures": result["batchItemFailures"]}
