"""What every AWS adapter shares: a lazily created boto3 client, and ``ClientError`` turned into domain errors.

An adapter declares its clients as class attributes and takes an optional client per service in its
constructor, so tests inject a moto or Stubber client and Lambda creates one on first use (after the
environment is read, once per sandbox)::

    class S3Archive(EventArchive):
        s3 = LazyClient("s3")

        def __init__(self, bucket: str, client: S3Client | None = None) -> None:
            self.bucket = bucket
            self.s3 = client  # None: created on first use
"""

from __future__ import annotations

import base64
import json
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.config import Config
from botocore.exceptions import ClientError

from kairos.core.errors import ConflictError, InvalidInputError, NotFoundError, StoreError, ThrottledError

if TYPE_CHECKING:
    from collections.abc import Callable

# DynamoDB and S3 calls retry inside the SDK with the standard mode's backoff.
STORE_RETRIES = Config(retries={"mode": "standard", "max_attempts": 6})

# S3 answers a failed If-Match with PreconditionFailed (412) or, for a racing write, ConditionalRequestConflict.
CONFLICT_CODES = frozenset(
    {
        "ConditionalCheckFailedException",
        "TransactionCanceledException",
        "PreconditionFailed",
        "ConditionalRequestConflict",
    }
)
NOT_FOUND_CODES = frozenset({"NoSuchKey", "404"})
THROTTLE_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "SlowDown",
    }
)


class LazyClient:
    """A descriptor holding one boto3 client per adapter instance, created on first use.

    Parameters
    ----------
    service
        The boto3 service name (``"dynamodb"``, ``"s3"``, ``"stepfunctions"``, …).
    config
        The botocore ``Config`` of the client created when none was injected.
    """

    def __init__(self, service: str, config: Config | None = None) -> None:
        self.service = service
        self.config = config
        self.slot = f"_{service}_client"

    def __set_name__(self, owner: type, name: str) -> None:
        self.slot = f"_{name}_client"

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        client = instance.__dict__.get(self.slot)
        if client is None:
            client = boto3.client(self.service, config=self.config)
            instance.__dict__[self.slot] = client
        return client

    def __set__(self, instance: Any, client: Any) -> None:
        instance.__dict__[self.slot] = client


def error_code(exc: ClientError) -> str:
    """The AWS error code of a ``ClientError`` (empty when the response has none)."""
    return str(exc.response.get("Error", {}).get("Code", ""))


def domain_error(exc: ClientError, what: str) -> Exception:
    """The domain error for a failed AWS call.

    Parameters
    ----------
    exc
        The botocore error.
    what
        What was being done, for the message (``"DynamoDB put_item"``).

    Returns
    -------
    Exception
        :class:`~kairos.core.errors.NotFoundError` for a missing S3 object,
        :class:`~kairos.core.errors.ConflictError` for a failed condition,
        :class:`~kairos.core.errors.ThrottledError` for throttling, :class:`~kairos.core.errors.StoreError` otherwise.
    """
    code = error_code(exc)
    if code in NOT_FOUND_CODES:
        return NotFoundError(f"{what}: not found ({code})")
    if code in CONFLICT_CODES:
        return ConflictError(f"{what}: a condition did not hold ({code})")
    if code in THROTTLE_CODES:
        return ThrottledError(f"{what} throttled ({code})")
    return StoreError(f"{what} failed: {code or 'unknown error'}")


def call(client: Any, op: str, what: str, on_call: Callable[[], None] | None = None, **kwargs: Any) -> Any:
    """Call ``client.<op>(**kwargs)``; a ``ClientError`` becomes a domain error (see :func:`domain_error`).

    Parameters
    ----------
    client
        A boto3 client.
    op
        The client method's name.
    what
        The backend's name for messages (``"DynamoDB"``, ``"message log"``).
    on_call
        Called before each call (request counting for benchmarks).
    """
    if on_call is not None:
        on_call()
    try:
        return getattr(client, op)(**kwargs)
    except ClientError as exc:
        raise domain_error(exc, f"{what} {op}") from exc


# DynamoDB items <-> JSON-like documents, and scan keys <-> the API's page tokens.
_ser = TypeSerializer()
_deser = TypeDeserializer()


def to_dynamo(value: Any) -> Any:
    """Make a JSON-like value storable: floats become Decimals (DynamoDB has no binary floats)."""
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {k: to_dynamo(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_dynamo(v) for v in value]
    return value


def from_dynamo(value: Any) -> Any:
    """Decimals back to int or float, for JSON and for the fold."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: from_dynamo(v) for k, v in value.items()}
    if isinstance(value, list | set):
        return [from_dynamo(v) for v in value]
    return value


def to_item(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: _ser.serialize(to_dynamo(v)) for k, v in obj.items() if v is not None}


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {k: from_dynamo(_deser.deserialize(v)) for k, v in item.items()}


def encode_page_token(key: dict[str, Any] | None) -> str | None:
    """A scan's ``LastEvaluatedKey`` as the opaque ``next_token`` the API returns (``None`` at the end)."""
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode() if key else None


def decode_page_token(token: str, key_names: set[str]) -> dict[str, Any]:
    """A ``next_token`` back into the key it encodes (string attributes ``key_names``).

    Raises
    ------
    InvalidInputError
        Anything else: a client's mistake, not ours.
    """
    try:
        key = json.loads(base64.urlsafe_b64decode(token.encode() + b"=" * (-len(token) % 4)))
        if isinstance(key, dict) and set(key) == key_names and all(set(v) == {"S"} for v in key.values()):
            return key
    except (ValueError, TypeError, AttributeError):
        pass
    raise InvalidInputError("next_token", "not a token this API returned")
