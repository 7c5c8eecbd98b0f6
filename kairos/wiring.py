"""Build the adapters of a deployment from its :class:`~kairos.config.Settings`: the one place that does.

Handlers call these factories once per sandbox (each handler module caches what it uses), so a function's
environment decides its backends and tests can swap any of them for a fake.

Example
-------
>>> from kairos.config import settings
>>> store = customer_store(settings())
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from kairos.adapters.api_keys import DynamoApiKeyStore
from kairos.adapters.archive import S3Archive
from kairos.adapters.campaigns import DynamoCampaignStore
from kairos.adapters.dynamo import DynamoStore
from kairos.adapters.insights import DynamoInsightStore
from kairos.adapters.journey_store import DynamoJourneyStore, EventBridgeTaskSink
from kairos.adapters.journeys import S3DecisionLog, StepFunctionsCampaignLauncher, StepFunctionsJourneyStarter
from kairos.adapters.messages import DynamoMessageLog
from kairos.adapters.products import DynamoProductCatalogue
from kairos.adapters.providers import EndUserMessagingSms, SesEmail, SnsPush, SnsSms, TelegramMessenger, ssm_secret

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from kairos.adapters.model_store import ModelSource
    from kairos.config import Settings
    from kairos.ports import (
        CampaignLauncher,
        CampaignStore,
        CustomerStore,
        DecisionLog,
        EventArchive,
        JourneyStarter,
        JourneyStore,
        MessageLog,
        Provider,
    )


def customer_store(cfg: Settings) -> CustomerStore:
    """Customers, events and engagement moments (DynamoDB), events expiring after the retention."""
    return DynamoStore(cfg.events_table, cfg.customers_table, retention_seconds=cfg.retention_days * 86400)


def event_archive(cfg: Settings) -> EventArchive:
    """The S3 archive of accepted events."""
    return S3Archive(cfg.archive_bucket)


def campaign_store(cfg: Settings) -> CampaignStore:
    """Campaigns and saved segments (DynamoDB)."""
    return DynamoCampaignStore(cfg.campaigns_table, cfg.segments_table)


def message_log(cfg: Settings) -> MessageLog:
    """The message log (DynamoDB) and its archive (S3)."""
    return DynamoMessageLog(cfg.messages_table, cfg.archive_bucket)


def decision_log(cfg: Settings) -> DecisionLog:
    """Launch decisions, archived in S3."""
    return S3DecisionLog(cfg.archive_bucket, customer_store(cfg), retention_days=cfg.message_retention_days)


def journey_starter(cfg: Settings) -> JourneyStarter:
    """Starts journey executions of the journey state machine."""
    return StepFunctionsJourneyStarter(cfg.journey_state_machine_arn)


def journey_store(cfg: Settings) -> JourneyStore:
    """Journey definitions and customers' paths through them (DynamoDB)."""
    return DynamoJourneyStore(cfg.journeys_table, cfg.journey_paths_table)


def product_catalogue(cfg: Settings) -> DynamoProductCatalogue:
    """Product names, pages and pictures (DynamoDB)."""
    return DynamoProductCatalogue(cfg.products_table)


def insight_store(cfg: Settings) -> DynamoInsightStore:
    """RFM thresholds and partial summaries of scoring runs (DynamoDB)."""
    return DynamoInsightStore(cfg.insights_table)


def journey_steps(cfg: Settings) -> JourneyStarter:
    """Starts one step of a customer's path (the journey step state machine)."""
    return StepFunctionsJourneyStarter(cfg.journey_step_state_machine_arn)


def task_sink(cfg: Settings) -> EventBridgeTaskSink:
    """Where journey task nodes hand customers over (EventBridge)."""
    return EventBridgeTaskSink(cfg.task_event_bus)


def campaign_launcher(cfg: Settings) -> CampaignLauncher | None:
    """Starts the launch state machine; ``None`` where the deployment has none (campaigns are only stored)."""
    if not cfg.launch_state_machine_arn:
        return None
    return StepFunctionsCampaignLauncher(cfg.launch_state_machine_arn, cfg.launch_segments)


def api_key_store(cfg: Settings) -> DynamoApiKeyStore:
    """Hashed, revocable API keys."""
    return DynamoApiKeyStore(cfg.api_keys_table)


def providers(cfg: Settings) -> dict[str, Provider]:
    """The providers this deployment has configured, by channel; a channel without one fails over to the next."""
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


def model_source(cfg: Settings, loader: Callable[[Path], Any], bundled: Path) -> ModelSource:
    """The newest model published to the models bucket, else the bundled one, cached in ``model_cache_dir``."""
    from kairos.adapters.model_store import ModelSource

    return ModelSource(loader, bundled, bucket=cfg.models_bucket or None, cache_dir=Path(cfg.model_cache_dir))
