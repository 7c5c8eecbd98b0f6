"""Provider feedback function: SES events (EventBridge) become Kairos events (``kairos.logic.feedback``)."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

from kairos import timeutil, wiring
from kairos.config import settings
from kairos.logic.feedback import ingest_feedback
from kairos.observability import logger, metrics, tracer

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from kairos.ports import CustomerStore


@lru_cache(maxsize=1)
def store() -> CustomerStore:
    return wiring.customer_store(settings())


def handle(events: list[dict[str, Any]]) -> dict[str, Any]:
    """EventBridge delivers one event per invocation; a list keeps batching (and tests) simple."""
    cfg = settings()
    return ingest_feedback(events, store(), timeutil.now(), cfg.retention, cfg.clock_skew)


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = handle([event])
    logger.info("provider feedback", extra={"detail_type": event.get("detail-type"), **result})
    return result
