"""Send function: one message of a journey, through the channel's provider, at most once, logged.

Event (from the journey state machine): ``{"message_id", "campaign_id", "customer_id", "channel", "step",
"decision"}``. Returns ``{"message_id", "status": "sent"|"failed"|"skipped", "reason", "duplicate"}``; raises
``ProviderThrottled`` or ``ProviderUnavailable`` for the state machine to retry with backoff and jitter.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics import MetricUnit

from kairos import timeutil
from kairos.adapters.campaigns import DynamoCampaignStore
from kairos.adapters.dynamo import DynamoStore
from kairos.adapters.messages import DynamoMessageLog
from kairos.adapters.providers import (
    EndUserMessagingSms,
    SesEmail,
    SnsPush,
    SnsSms,
    TelegramMessenger,
    ssm_secret,
)
from kairos.config import settings
from kairos.logic.recommendations import POPULATION_KEY
from kairos.logic.send import Provider, SendRequest, send_message
from kairos.observability import logger, metrics, tracer

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext


@lru_cache(maxsize=1)
def customers() -> DynamoStore:
    cfg = settings()
    return DynamoStore(cfg.events_table, cfg.customers_table)


@lru_cache(maxsize=1)
def campaigns() -> DynamoCampaignStore:
    cfg = settings()
    return DynamoCampaignStore(cfg.campaigns_table, cfg.segments_table)


@lru_cache(maxsize=1)
def message_log() -> DynamoMessageLog:
    cfg = settings()
    return DynamoMessageLog(cfg.messages_table, cfg.archive_bucket)


@lru_cache(maxsize=1)
def providers() -> dict[str, Provider]:
    """The providers this deployment has configured; a channel without one fails over to the next step."""
    cfg = settings()
    out: dict[str, Provider] = {}
    if cfg.sender_email:
        out["email"] = SesEmail(cfg.sender_email, cfg.ses_configuration_set or None)
    if cfg.sms_provider == "sns":
        out["sms"] = SnsSms()
    elif cfg.sms_origination_identity:
        out["sms"] = EndUserMessagingSms(cfg.sms_origination_identity)
    if cfg.push_platform_application_arn:
        out["push"] = SnsPush(cfg.push_platform_application_arn)
    if cfg.telegram_token_parameter:
        out["messenger"] = TelegramMessenger(ssm_secret(cfg.telegram_token_parameter))
    return out


def _population() -> dict[str, Any] | None:
    return customers().get_recommendation(POPULATION_KEY)


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    req = SendRequest.from_event(event)
    try:
        result = send_message(
            req, customers(), campaigns(), providers(), message_log(), timeutil.now(), population=_population
        )
    except Exception as exc:
        logger.warning("send retried", extra={"message_id": req.message_id, "error": type(exc).__name__})
        metrics.add_metric(name=f"Messages{type(exc).__name__}", unit=MetricUnit.Count, value=1)
        raise
    metrics.add_metric(name=f"Messages_{req.channel}_{result['status']}", unit=MetricUnit.Count, value=1)
    logger.info("send", extra={"channel": req.channel, "step": req.step, **result})
    return result
