"""Domain errors. Adapters turn ClientError into these; the API maps them to HTTP in one place."""


class KairosError(Exception):
    """Base of every domain error."""


class NotFoundError(KairosError):
    pass


class InvalidInputError(KairosError):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class ConflictError(KairosError):
    """A conditional write lost a race; the caller reloads and tries again."""


class InUseError(KairosError):
    """The resource is used by others (an active campaign or journey) and cannot go: 409."""


class StoreError(KairosError):
    """A storage backend failed in a way a retry inside this request will not fix."""


class ThrottledError(StoreError):
    pass


class ProviderError(KairosError):
    """A provider refused the message for good (bad address, blocked, rejected content)."""


class ProviderThrottled(KairosError):  # noqa: N818 - the state machine's Retry matches this name
    """The provider (or the account's quota) throttled the call: retry later."""


class ProviderUnavailable(KairosError):  # noqa: N818 - the state machine's Retry matches this name
    """The provider failed transiently (5xx, timeout, network): retry later."""


class ProviderOutcomeUnknown(KairosError):  # noqa: N818 - named like the other provider outcomes
    """The call reached the provider but no answer came back (a read timeout, a dropped connection): the
    message may have been accepted, so it must not be sent again."""


class SendInProgress(KairosError):  # noqa: N818 - the state machine's Retry matches this name
    """Another attempt holds the message's claim and has not recorded an outcome yet: retry later."""
