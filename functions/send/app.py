"""Send function: one message of a journey, through the channel's provider, at most once, logged.

Event (from the journey state machine): ``{"message_id", "campaign_id", "customer_id", "channel", "step",
"decision"}``. Returns ``{"message_id", "status": "sent"|"failed"|"skipped", "reason", "duplicate"}``; raises
``ProviderThrottled`` or ``ProviderUnavailable`` for the state machine to retry with backoff and jitter.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics import MetricUnit

from kairos import timeutil, wiring
from kairos.config import settings
from kairos.domain.messages import SendRequest
from kairos.logic.recommendations import POPULATION_KEY
from kairos.logic.send import send_message
from kairos.observability import logger, metrics, tracer

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from kairos.ports import CampaignStore, CustomerStore, MessageLog, ProductCatalogue, Provider


@lru_cache(maxsize=1)
def customers() -> CustomerStore:
    return wiring.customer_store(settings())


@lru_cache(maxsize=1)
def campaigns() -> CampaignStore:
    return wiring.campaign_store(settings())


@lru_cache(maxsize=1)
def message_log() -> MessageLog:
    return wiring.message_log(settings())


@lru_cache(maxsize=1)
def providers() -> dict[str, Provider]:
    return wiring.providers(settings())


@lru_cache(maxsize=1)
def catalogue() -> ProductCatalogue:
    return wiring.product_catalogue(settings())


def _population() -> dict[str, Any] | None:
    return customers().get_recommendation(POPULATION_KEY)


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    req = SendRequest.from_event(event)
    try:
        result = send_message(
            req,
            customers(),
            campaigns(),
            providers(),
            message_log(),
            timeutil.now(),
            population=_population,
            products=catalogue().get_products,
        )
    except Exception as exc:
        logger.warning("send retried", extra={"message_id": req.message_id, "error": type(exc).__name__})
        metrics.add_metric(name=f"Messages{type(exc).__name__}", unit=MetricUnit.Count, value=1)
        raise
    metrics.add_metric(name=f"Messages_{req.channel}_{result['status']}", unit=MetricUnit.Count, value=1)
    logger.info("send", extra={"channel": req.channel, "step": req.step, **result})
    return result
