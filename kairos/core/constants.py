"""Names and limits shared by the handlers, the logic and the template."""

# The built-in event types: the models read them, each with its meaning. Any other type whose name matches
# EVENT_TYPE_PATTERN is a shop's own (order_shipped, points_earned): stored, archived, counted, and usable in
# journeys and segments, never read by the models.
EVENT_TYPE_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
EVENT_TYPES = (
    "session",
    "message_open",
    "message_click",
    "purchase",
    "cart_add",
    "cart_abandon",
    "product_view",
    "message_inbound",
    "unsubscribe",
)
# What counts as the customer engaging at a moment: the target of the send-time model.
ENGAGEMENT_TYPES = frozenset({"session", "message_open", "message_click", "purchase"})
# Engagement with a message: what ends a journey's wait for an open, and what results count per message.
MESSAGE_ENGAGEMENT = ("message_open", "message_click")
PRODUCT_TYPES = frozenset({"purchase", "cart_add", "product_view"})
CHANNELS = ("email", "sms", "push", "messenger")
CURRENCY_PATTERN = r"^[A-Z]{3}$"  # ISO 4217
# What an API key may do: ``ingest`` events, write ``profiles``, ``read`` customers, recommendations, campaigns and
# segments, ``manage`` campaigns and segments, ``erase`` customers. Here, not beside the API's models, so that the
# authorizer reads them without loading those.
SCOPES: tuple[str, ...] = ("ingest", "profiles", "read", "manage", "erase")

MAX_BATCH_EVENTS = 500
# The send-time decision window (offset, weights): an engagement within one hour of the send counts for it.
DEFAULT_WINDOW: tuple[int, tuple[float, ...]] = (-1, (1.0, 1.0, 1.0))
HOURS_PER_WEEK = 168

# Environment variable names (values are parsed once in kairos.core.config).
ENV_EVENTS_TABLE = "EVENTS_TABLE_NAME"
ENV_CUSTOMERS_TABLE = "CUSTOMERS_TABLE_NAME"
ENV_API_KEYS_TABLE = "API_KEYS_TABLE_NAME"
ENV_ARCHIVE_BUCKET = "ARCHIVE_BUCKET_NAME"
ENV_SEGMENTS_TABLE = "SEGMENTS_TABLE_NAME"
ENV_RETENTION_DAYS = "KAIROS_EVENT_RETENTION_DAYS"
ENV_MESSAGE_RETENTION_DAYS = "KAIROS_MESSAGE_RETENTION_DAYS"
ENV_ENTRY_SHARDS = "KAIROS_ENTRY_SHARDS"
ENV_CLOCK_SKEW_SECONDS = "KAIROS_CLOCK_SKEW_SECONDS"
# The Cognito user pool whose people sign in to the console, and the console's app client (empty: API keys only).
ENV_USER_POOL_ID = "KAIROS_USER_POOL_ID"
ENV_USER_POOL_CLIENT_ID = "KAIROS_USER_POOL_CLIENT_ID"

ARCHIVE_EVENTS_PREFIX = "events"
ENV_MESSAGES_TABLE = "MESSAGES_TABLE_NAME"
ENV_JOURNEYS_TABLE = "JOURNEYS_TABLE_NAME"
ENV_PRODUCTS_TABLE = "PRODUCTS_TABLE_NAME"
ENV_INSIGHTS_TABLE = "INSIGHTS_TABLE_NAME"
ENV_GLOBAL_CONTROL_SHARE = "KAIROS_GLOBAL_CONTROL_SHARE"
ENV_JOURNEY_PATHS_TABLE = "JOURNEY_PATHS_TABLE_NAME"
ENV_JOURNEY_STEP_STATE_MACHINE_ARN = "JOURNEY_STEP_STATE_MACHINE_ARN"
ENV_TASK_EVENT_BUS = "KAIROS_TASK_EVENT_BUS"
ENV_SENDER_EMAIL = "SENDER_EMAIL"
ENV_SES_CONFIGURATION_SET = "SES_CONFIGURATION_SET"
ENV_SMS_PROVIDER = "SMS_PROVIDER"
ENV_SMS_ORIGINATION_IDENTITY = "SMS_ORIGINATION_IDENTITY"
ENV_PUSH_PLATFORM_APPLICATION_ARN = "PUSH_PLATFORM_APPLICATION_ARN"
ENV_TELEGRAM_TOKEN_PARAMETER = "TELEGRAM_TOKEN_PARAMETER"
ENV_PUBLIC_URL = "KAIROS_PUBLIC_URL"
ENV_UNSUBSCRIBE_KEY_PARAMETER = "KAIROS_UNSUBSCRIBE_KEY_PARAMETER"
ENV_UNSUBSCRIBE_MAILTO = "KAIROS_UNSUBSCRIBE_MAILTO"
ENV_ERASURE_KEY_PARAMETER = "KAIROS_ERASURE_KEY_PARAMETER"
ENV_MODELS_BUCKET = "MODELS_BUCKET_NAME"
ENV_MODEL_CACHE_DIR = "KAIROS_MODEL_CACHE_DIR"

# What a marketing message is about: a customer may unsubscribe from one topic and keep the others.
TOPIC_PATTERN = r"^[a-z][a-z0-9_-]{0,39}$"
DEFAULT_TOPIC = "general"
# A pool of promo codes a message hands out.
POOL_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
# A shop's event saying a promo code was used (properties.code); a purchase may name it in properties.promo_code.
PROMO_REDEEMED = "promo_redeemed"
ENV_PROMO_TABLE = "KAIROS_PROMO_TABLE"
