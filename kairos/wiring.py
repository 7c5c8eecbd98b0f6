"""Build the adapters of a deployment from its :class:`~kairos.core.config.Settings`: the one place that does.

Handlers call these factories once per sandbox (each handler module caches what it uses), so a function's
environment decides its backends and tests can swap any of them for a fake.

Example
-------
>>> from kairos.core.config import settings
>>> store = customer_store(settings())
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

# Every function calls AWS on every invocation: the SDK is imported here, at cold start. Each adapter's module
# (and what its domain brings: templates, journey models, ...) is imported by its factory, on first use, so a
# function loads only the adapters it builds (the authorizer: one; a route of the API: the stores it touches).
import boto3  # noqa: F401

from kairos.core.cache import ReadEvery

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from kairos.audiences.ports import SegmentStore
    from kairos.core.config import Settings
    from kairos.customers.ports import CustomerStore, DecisionLog, EventArchive, EventTypeCatalogue
    from kairos.http.adapters.api_keys import DynamoApiKeyStore
    from kairos.http.ports import ConsoleBucket
    from kairos.http.user_tokens import SignedInUser
    from kairos.insights.adapters.insights import DynamoInsightStore
    from kairos.insights.engine_settings import AnalyticsSettings
    from kairos.insights.ports import AnalyticsEngine
    from kairos.journeys.adapters.journey_store import EventBridgeTaskSink
    from kairos.journeys.ports import JourneyStarter, JourneyStore
    from kairos.journeys.runner import StepDeps
    from kairos.messaging.ports import ContactLinks, MessageLog, PolicyStore, Provider
    from kairos.models.adapters.model_store import ModelSource
    from kairos.models.adapters.products import DynamoProductCatalogue
    from kairos.models.ports import ModelCards
    from kairos.promotions.ports import PromoPools


POLICY_TTL_S = 60  # the send policy and the population's answer are read at most once a minute per sandbox


def customer_store(cfg: Settings) -> CustomerStore:
    """Customers, events and engagement moments (DynamoDB), events expiring after the retention; erasure
    tombstones keyed by the erasure key when the function has it."""
    from kairos.customers.adapters.dynamo import DynamoStore

    return DynamoStore(
        cfg.need("events_table"),
        cfg.need("customers_table"),
        retention_seconds=cfg.retention_days * 86400,
        erasure_key=erasure_key(cfg) if cfg.erasure_key_parameter else None,
    )


def erasure_key(cfg: Settings) -> Callable[[], bytes]:
    """The tombstones' HMAC key, read from SSM (the generated secret through its SSM reference) on first use."""

    def read() -> bytes:
        if not cache:
            from kairos.messaging.adapters.providers import ssm_secret

            cache.append(ssm_secret(cfg.erasure_key_parameter, what="SSM (erasure key)")().encode())
        return cache[0]

    cache: list[bytes] = []
    return read


def event_archive(cfg: Settings) -> EventArchive:
    """The S3 archive of accepted events."""
    from kairos.customers.adapters.archive import S3Archive

    return S3Archive(cfg.need("archive_bucket"))


def contact_links(cfg: Settings) -> ContactLinks:
    """Start-link tokens and the messenger chats they linked (reserved items of the customers table)."""
    from kairos.messaging.adapters.contact_links import DynamoContactLinks

    return DynamoContactLinks(cfg.need("customers_table"), cfg.need("events_table"))


def segment_store(cfg: Settings) -> SegmentStore:
    """Saved segments (DynamoDB)."""
    from kairos.audiences.adapters.segments import DynamoSegmentStore

    return DynamoSegmentStore(cfg.need("segments_table"))


def policy_store(cfg: Settings) -> PolicyStore:
    """The deployment's send policy (an item of the journeys table)."""
    from kairos.journeys.adapters.journey_store import DynamoPolicyStore

    return DynamoPolicyStore(cfg.need("journeys_table"))


def message_log(cfg: Settings) -> MessageLog:
    """The message log (DynamoDB) and its archive (S3)."""
    from kairos.messaging.adapters.messages import DynamoMessageLog

    return DynamoMessageLog(
        cfg.need("messages_table"), cfg.need("archive_bucket"), archive_retention_days=cfg.message_retention_days
    )


def decision_log(cfg: Settings) -> DecisionLog:
    """Launch decisions earlier versions archived in S3 (an erasure still purges them)."""
    from kairos.customers.adapters.archive import S3DecisionLog

    return S3DecisionLog(cfg.need("archive_bucket"))


def journey_store(cfg: Settings) -> JourneyStore:
    """Journey definitions and customers' paths through them (DynamoDB)."""
    from kairos.journeys.adapters.journey_store import DynamoJourneyStore

    return DynamoJourneyStore(cfg.need("journeys_table"), cfg.need("journey_paths_table"))


def product_catalogue(cfg: Settings) -> DynamoProductCatalogue:
    """Product names, pages and pictures (DynamoDB)."""
    from kairos.models.adapters.products import DynamoProductCatalogue

    return DynamoProductCatalogue(cfg.need("products_table"))


def event_type_catalogue(cfg: Settings) -> EventTypeCatalogue:
    """The event types seen, with counts and property names (items of the insights table)."""
    from kairos.customers.adapters.event_types import DynamoEventTypes

    return DynamoEventTypes(cfg.need("insights_table"))


def insight_store(cfg: Settings) -> DynamoInsightStore:
    """RFM thresholds and partial summaries of scoring runs (DynamoDB)."""
    from kairos.insights.adapters.insights import DynamoInsightStore

    return DynamoInsightStore(cfg.need("insights_table"))


def analytics_settings() -> AnalyticsSettings:
    """The analytics engine's settings from this function's environment (see ``kairos.insights.engine_settings``)."""
    from kairos.core.config import environment
    from kairos.insights.engine_settings import AnalyticsSettings

    return AnalyticsSettings.from_env(environment())


def analytics_engine(cfg: Settings, analytics: AnalyticsSettings) -> AnalyticsEngine | None:
    """What runs queries over the event archive: Athena (AWS), DuckDB over the archive bucket (the local
    runtime), or ``None`` when the deployment has no engine."""
    if analytics.engine == "athena":
        from kairos.insights.adapters.athena_engine import AthenaArchive

        return AthenaArchive(analytics.workgroup, analytics.database, analytics.table)
    if analytics.engine == "duckdb":
        from kairos.insights.adapters.duckdb_engine import S3DuckDbEngine

        return S3DuckDbEngine(cfg.need("archive_bucket"), table=analytics.table)
    return None


def promo_pools(cfg: Settings) -> PromoPools:
    """Promo code pools (DynamoDB)."""
    from kairos.promotions.adapters.dynamo import DynamoPromoPools

    return DynamoPromoPools(cfg.need("promo_table"))


def promo_taker(cfg: Settings) -> Callable[[str, str], str | None]:
    """(pool, holder) -> the holder's code of the pool, taken once; low and empty pools become CloudWatch metrics."""
    from kairos.core import timeutil
    from kairos.promotions.adapters.alerts import emf_alert
    from kairos.promotions.pools import take_code

    pools = promo_pools(cfg)
    return lambda pool, holder: take_code(pools, pool, holder, timeutil.now(), notify=emf_alert)


def journey_steps(cfg: Settings) -> JourneyStarter:
    """Starts one step of a customer's path (the journey step state machine)."""
    from kairos.journeys.adapters.journey_store import StepFunctionsJourneyStarter

    return StepFunctionsJourneyStarter(cfg.need("journey_step_state_machine_arn"))


def task_sink(cfg: Settings) -> EventBridgeTaskSink:
    """Where journey task nodes hand customers over (EventBridge)."""
    from kairos.journeys.adapters.journey_store import EventBridgeTaskSink

    return EventBridgeTaskSink(cfg.task_event_bus)


def api_key_store(cfg: Settings) -> DynamoApiKeyStore:
    """Hashed, revocable API keys."""
    from kairos.http.adapters.api_keys import DynamoApiKeyStore

    return DynamoApiKeyStore(cfg.need("api_keys_table"))


def user_token_verifier(cfg: Settings) -> Callable[[str, float], SignedInUser] | None:
    """Verifies people's sign-in tokens of the deployment's user pool; ``None`` when it has none (keys only)."""
    if not cfg.user_pool_id:
        return None
    from kairos.http.adapters.jwks import HttpJwks
    from kairos.http.user_tokens import UserPool, verify_user_token

    pool = UserPool(cfg.user_pool_id, cfg.need("user_pool_client_id"))
    keys = HttpJwks(pool.jwks_url)  # fetched on the first token, then kept for the sandbox's life

    def verify(token: str, now: float) -> SignedInUser:
        return verify_user_token(token, pool, keys.key, now)

    return verify


def providers(cfg: Settings) -> dict[str, Provider]:
    """The providers this deployment has configured, by channel; a channel without one fails over to the next."""
    from kairos.messaging.adapters.providers import (
        EndUserMessagingSms,
        SesEmail,
        SnsPush,
        SnsSms,
        TelegramMessenger,
        ssm_secret,
    )

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
    from kairos.models.adapters.model_store import ModelSource

    return ModelSource(loader, bundled, bucket=cfg.models_bucket or None, cache_dir=Path(cfg.model_cache_dir))


def model_cards(cfg: Settings, bundled: Path) -> ModelCards:
    """The metadata of the model the score function serves (the models bucket's newest, else ``bundled``)."""
    from kairos.models.adapters.model_store import PublishedModelCards

    return PublishedModelCards(bundled, bucket=cfg.models_bucket or None)


# What a journey step reads and writes (the trigger, timer and advance functions require these settings).
STEP_SETTINGS = (
    "events_table",
    "customers_table",
    "journeys_table",
    "journey_paths_table",
    "segments_table",
    "messages_table",
    "archive_bucket",
    "products_table",
    "public_url",
    "unsubscribe_key_parameter",
)


def unsubscribe_links(cfg: Settings, base: str | None = None) -> Callable[[str, str], dict[str, str]]:
    """(customer_id, topic) -> the signed one-click unsubscribe and preference URLs, and the List-Unsubscribe value.

    The links point at ``public_url``, else at ``base`` (the API's URL as a request reached it). The HMAC key is
    read from SSM once per sandbox, on first use."""
    from kairos.messaging.unsubscribe import links

    key = unsubscribe_key(cfg)
    base, mailto = cfg.public_url or base or cfg.need("public_url"), cfg.unsubscribe_mailto or None
    return lambda customer_id, topic: links(base, key(), customer_id, topic, mailto)


def unsubscribe_key(cfg: Settings) -> Callable[[], bytes]:
    """The links' HMAC key, read from SSM (a SecureString, or the generated secret through its SSM reference)."""
    from kairos.messaging.adapters.providers import ssm_secret

    secret = ssm_secret(cfg.need("unsubscribe_key_parameter"), what="SSM (unsubscribe key)")
    return lambda: secret().encode()


def step_deps(cfg: Settings) -> StepDeps:
    """What a journey step reads and writes; the entries' first run uses the same (it sends nothing)."""
    from kairos.journeys.runner import StepDeps
    from kairos.messaging.policy import DEFAULT_POLICY, SendPolicy
    from kairos.models.recommendations import POPULATION_KEY

    customers = customer_store(cfg)
    policies = policy_store(cfg)
    # The population's answer changes once a scoring run and the policy rarely: read each once a minute, not
    # once per customer (an entry of a large audience asks for everybody not scored yet).
    population = ReadEvery(POLICY_TTL_S, lambda: customers.get_recommendation(POPULATION_KEY))
    stored_policy = ReadEvery(POLICY_TTL_S, policies.get_policy)

    def policy() -> SendPolicy:
        doc = stored_policy()
        return SendPolicy.model_validate(doc) if doc is not None else DEFAULT_POLICY

    return StepDeps(
        customers=customers,
        journeys=journey_store(cfg),
        segments=segment_store(cfg),
        messages=message_log(cfg),
        providers=providers(cfg),
        tasks=task_sink(cfg),
        population=population,
        products=product_catalogue(cfg).get_products,
        policy=policy,
        links=unsubscribe_links(cfg),
        # Only the advance function hands out codes (the entries' first run sends nothing): it alone has the table.
        promo=promo_taker(cfg) if cfg.promo_table else None,
    )


def console_bucket(name: str) -> ConsoleBucket:
    """The bucket the web console is published to (named by the ConsolePublish resource, not the environment)."""
    from kairos.http.adapters.console_bucket import S3ConsoleBucket

    return S3ConsoleBucket(name)
