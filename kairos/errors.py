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


class StoreError(KairosError):
    """A storage backend failed in a way a retry inside this request will not fix."""


class ThrottledError(StoreError):
    pass
