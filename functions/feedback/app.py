"""Provider feedback function: SES events (EventBridge) become Kairos events (``kairos.messaging.feedback``)."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

from kairos import wiring
from kairos.core import timeutil
from kairos.core.config import require, settings
from kairos.core.observability import logger, metrics, tracer
from kairos.messaging.feedback import ingest_feedback

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from kairos.customers.ports import CustomerStore


# The settings this function needs: a deployment without one fails here, at cold start, naming it.
require(
    "events_table",
    "customers_table",
)


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
