"""Schedule function: launches campaigns page by page and answers a running journey's questions.

Events:

- ``{"action": "launch", "campaign_id", "segment", "total_segments", "cursor"}``: plan and start the journeys of
  one scan segment, resuming after ``cursor`` (a Step Functions Map over segments loops until ``done``).
- ``{"action": "launched", "campaign_id", "pages"}``: record the launch totals; the campaign is now running.
- ``{"action": "check", "campaign_id", "customer_id", "journey_started_at"}``: stop the journey or go on.
- ``{"action": "wait_until", "campaign_id", "step"}``: when to check again after a send.
- ``{"action": "failed", "campaign_id", "kind": "launch"|"journey", "error": {"Error", "Cause"}}``: a state
  machine's ``Catch`` reports a failure; a failed launch marks the campaign ``failed``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

from kairos import timeutil, wiring
from kairos.config import settings
from kairos.logic import journey, schedule
from kairos.observability import logger, metrics, tracer
from kairos.timeutil import parse_ts

if TYPE_CHECKING:
    from datetime import datetime

    from aws_lambda_powertools.utilities.typing import LambdaContext

    from kairos.ports import CampaignStore, CustomerStore, DecisionLog, JourneyStarter, MessageLog


@lru_cache(maxsize=1)
def customers() -> CustomerStore:
    return wiring.customer_store(settings())


@lru_cache(maxsize=1)
def campaigns() -> CampaignStore:
    return wiring.campaign_store(settings())


@lru_cache(maxsize=1)
def starter() -> JourneyStarter:
    return wiring.journey_starter(settings())


@lru_cache(maxsize=1)
def message_log() -> MessageLog:
    return wiring.message_log(settings())


@lru_cache(maxsize=1)
def decision_log() -> DecisionLog:
    return wiring.decision_log(settings())


def handle(event: dict[str, Any], time_left_ms: Any, now: datetime) -> dict[str, Any]:
    action = event.get("action")
    if action == "launch":
        return schedule.launch_page(
            event["campaign_id"],
            customers(),
            campaigns(),
            starter(),
            decision_log(),
            now,
            int(event.get("segment", 0)),
            int(event.get("total_segments", 1)),
            event.get("cursor"),
            time_left_ms,
            carried=event,
            messages=message_log(),
        )
    if action == "launched":
        return schedule.finish_launch(event["campaign_id"], list(event.get("pages") or []), campaigns(), now)
    if action == "check":
        started = parse_ts(event["journey_started_at"])
        assert started is not None
        return journey.check_journey(event["campaign_id"], event["customer_id"], started, customers(), campaigns(), now)
    if action == "wait_until":
        return journey.wait_until(event["campaign_id"], int(event.get("step", 0)), campaigns(), now)
    if action == "failed":
        return schedule.record_failure(
            event["campaign_id"], event["kind"], event.get("error"), campaigns(), now, event.get("customer_id")
        )
    raise ValueError(f"unknown action {action!r}")


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = handle(event, context.get_remaining_time_in_millis, timeutil.now())
    logger.info("schedule action", extra={"action": event.get("action"), **result})
    return result
