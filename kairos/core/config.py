"""Environment parsed once into a typed model (explicit argument > environment > default).

Every environment variable a Kairos function reads is a field here; handlers never read ``os.environ``, and
:mod:`kairos.wiring` builds the adapters from these settings. Resources (tables, buckets, state machines) have
no default: each handler declares the settings it needs (:func:`require`) and fails at cold start naming the
missing variable, instead of pointing at a table that does not exist.
"""

from __future__ import annotations

import os
from collections import ChainMap
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import timedelta
from functools import lru_cache
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from kairos.core import constants as c

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

# Field name -> environment variable (names in kairos.core.constants, as the template sets them).
ENVIRONMENT = {
    "events_table": c.ENV_EVENTS_TABLE,
    "customers_table": c.ENV_CUSTOMERS_TABLE,
    "api_keys_table": c.ENV_API_KEYS_TABLE,
    "archive_bucket": c.ENV_ARCHIVE_BUCKET,
    "segments_table": c.ENV_SEGMENTS_TABLE,
    "messages_table": c.ENV_MESSAGES_TABLE,
    "journeys_table": c.ENV_JOURNEYS_TABLE,
    "products_table": c.ENV_PRODUCTS_TABLE,
    "insights_table": c.ENV_INSIGHTS_TABLE,
    "promo_table": c.ENV_PROMO_TABLE,
    "global_control_share": c.ENV_GLOBAL_CONTROL_SHARE,
    "journey_paths_table": c.ENV_JOURNEY_PATHS_TABLE,
    "journey_step_state_machine_arn": c.ENV_JOURNEY_STEP_STATE_MACHINE_ARN,
    "task_event_bus": c.ENV_TASK_EVENT_BUS,
    "models_bucket": c.ENV_MODELS_BUCKET,
    "model_cache_dir": c.ENV_MODEL_CACHE_DIR,
    "sender_email": c.ENV_SENDER_EMAIL,
    "ses_configuration_set": c.ENV_SES_CONFIGURATION_SET,
    "sms_provider": c.ENV_SMS_PROVIDER,
    "sms_origination_identity": c.ENV_SMS_ORIGINATION_IDENTITY,
    "push_platform_application_arn": c.ENV_PUSH_PLATFORM_APPLICATION_ARN,
    "telegram_token_parameter": c.ENV_TELEGRAM_TOKEN_PARAMETER,
    "public_url": c.ENV_PUBLIC_URL,
    "unsubscribe_key_parameter": c.ENV_UNSUBSCRIBE_KEY_PARAMETER,
    "erasure_key_parameter": c.ENV_ERASURE_KEY_PARAMETER,
    "unsubscribe_mailto": c.ENV_UNSUBSCRIBE_MAILTO,
    "retention_days": c.ENV_RETENTION_DAYS,
    "message_retention_days": c.ENV_MESSAGE_RETENTION_DAYS,
    "clock_skew_seconds": c.ENV_CLOCK_SKEW_SECONDS,
    "entry_shards": c.ENV_ENTRY_SHARDS,
    "user_pool_id": c.ENV_USER_POOL_ID,
    "user_pool_client_id": c.ENV_USER_POOL_CLIENT_ID,
}


class Settings(BaseModel):
    """A deployment's settings, as its functions' environment gives them."""

    model_config = ConfigDict(frozen=True)

    events_table: str = ""
    customers_table: str = ""
    api_keys_table: str = ""
    archive_bucket: str = ""
    segments_table: str = ""
    messages_table: str = ""
    journeys_table: str = ""
    products_table: str = ""
    insights_table: str = ""
    promo_table: str = Field(default="", description="promo code pools (DynamoDB)")
    global_control_share: float = Field(
        default=0.0,
        ge=0.0,
        le=0.5,
        description="share of all customers no campaign or journey messages (a stable draw per customer)",
    )
    journey_paths_table: str = ""
    journey_step_state_machine_arn: str = Field(default="", description="runs one step of a customer's path")
    task_event_bus: str = Field(default="default", description="where journey task nodes publish")
    models_bucket: str = Field(default="", description="empty: score with the bundled model only")
    model_cache_dir: str = Field(default="/tmp/kairos-models")  # noqa: S108 - Lambda's only writable place
    sender_email: str = Field(default="")
    ses_configuration_set: str = Field(default="")
    sms_provider: str = Field(default="eum", pattern="^(eum|sns)$")
    sms_origination_identity: str = Field(default="")
    push_platform_application_arn: str = Field(default="")
    telegram_token_parameter: str = Field(default="")
    public_url: str = Field(default="", description="the API's public base URL: unsubscribe and preference links")
    unsubscribe_key_parameter: str = Field(default="", description="SSM parameter of the links' HMAC key")
    unsubscribe_mailto: str = Field(default="", description="a mailbox for List-Unsubscribe mailto (optional)")
    erasure_key_parameter: str = Field(default="", description="SSM parameter of the erasure tombstones' HMAC key")
    retention_days: int = Field(default=400, ge=1, le=36500)
    message_retention_days: int = Field(
        default=400, ge=1, le=36500, description="how long messages/ and decisions/ objects live in the archive"
    )
    clock_skew_seconds: int = Field(default=300, ge=0, le=86400)
    entry_shards: int = Field(
        default=16,
        ge=1,
        le=64,
        description="a scheduled or date entry scans the customers in this many shards at once (threads of the timer)",
    )
    user_pool_id: str = Field(default="", description="Cognito user pool of the console's people (empty: keys only)")
    user_pool_client_id: str = Field(default="", description="the console's app client of that pool")

    def need(self, field: str) -> str:
        """The value of a resource setting, or :class:`MissingSettingError` naming its variable when unset."""
        value = getattr(self, field)
        if value in ("", None):
            raise MissingSettingError(f"{ENVIRONMENT[field]} is not set ({field.replace('_', ' ')})")
        return str(value)

    @property
    def retention(self) -> timedelta:
        return timedelta(days=self.retention_days)

    @property
    def clock_skew(self) -> timedelta:
        return timedelta(seconds=self.clock_skew_seconds)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read the settings from an environment (default: this function's, :func:`environment`); unset or empty
        keeps the default."""
        env = environment() if environ is None else environ
        return cls(**{field: env[var] for field, var in ENVIRONMENT.items() if env.get(var)})


class MissingSettingError(RuntimeError):
    """A function started without an environment variable it needs (its message names the variable)."""


def require(*fields: str) -> Settings:
    """The settings, after checking that every one of ``fields`` is set: a handler calls this at import, so a
    function deployed without a variable fails at cold start naming it.

    Raises
    ------
    MissingSettingError
        Naming the first missing environment variable and the setting it holds.

    Example
    -------
    >>> SETTINGS = require("customers_table", "events_table")  # in a handler module, at import
    """
    cfg = settings()
    for field in fields:
        cfg.need(field)
    return cfg


def settings() -> Settings:
    """The settings of this function's environment (:func:`environment`), parsed once per distinct environment.

    A Lambda sandbox has one environment; the local runtime runs several functions, and deployments, in one process.
    """
    env = environment()
    return _settings_for(tuple(env.get(v, "") for v in ENVIRONMENT.values()))


@lru_cache(maxsize=8)
def _settings_for(values: tuple[str, ...]) -> Settings:
    return Settings.from_env(dict(zip(ENVIRONMENT.values(), values, strict=True)))


# The variables of the function running in this context, over the process's (None: the process's alone). A Lambda
# sandbox's process environment is its function's; the local runtime runs every function of a template in one
# process, at once, so each invocation (and each handler's import) sets its function's variables here instead of
# swapping os.environ under the others. A context variable, so concurrent invocations on their threads each see
# their own; a thread a handler starts begins with an empty context and sees the process environment.
_FUNCTION_ENVIRONMENT: ContextVar[dict[str, str] | None] = ContextVar("kairos_function_environment", default=None)


def environment() -> Mapping[str, str]:
    """The environment this function reads its settings from: the process's, with the variables of the function
    the local runtime is running in this context (:func:`function_environment`) over it.

    Returns
    -------
    Mapping[str, str]
        ``os.environ`` itself in Lambda (and anywhere no function environment is set).
    """
    overlay = _FUNCTION_ENVIRONMENT.get()
    return os.environ if overlay is None else ChainMap(overlay, os.environ)


@contextmanager
def function_environment(variables: Mapping[str, str]) -> Iterator[None]:
    """Run the block as a function whose environment has ``variables`` over the process's, without touching
    ``os.environ``: :func:`settings` and :func:`environment` read them, in this context only.

    Parameters
    ----------
    variables
        The function's environment variables (its template ``Environment``).

    Example
    -------
    >>> with function_environment({"EVENTS_TABLE_NAME": "events"}):
    ...     settings().events_table
    'events'
    """
    token = _FUNCTION_ENVIRONMENT.set(dict(variables))
    try:
        yield
    finally:
        _FUNCTION_ENVIRONMENT.reset(token)
