"""Local-only fixes to moto, in force inside ``embedded_aws`` and undone when it ends.

moto 5 snapshots every table a transaction touches with ``copy.deepcopy`` before running it, so one
TransactWriteItems costs time proportional to the whole table: 500 events took 40 s on a fresh table and it
grows with every batch. DynamoDB itself checks all conditions first and then writes all items; this does the
same, which needs no snapshot.

moto 5 also answers a Query on a table's key by sorting every item of the table and keeping the partition's:
with the events table of a demo that is tens of thousands of items per query, and a running journey queries
it at every step. DynamoDB reads one partition; so does the patched query. A state machine definition that
moto validated once is not parsed again.

moto handles a request without a lock, and the local runtime runs functions at once: two conditional writes of one
item could both pass their condition, and a scan could meet a dict changing size. Each request is handled whole here
(one at a time), as a service applies each call atomically; SQS is left out, where a long poll waits inside moto.
Nothing here runs in Lambda.
"""

from __future__ import annotations

import re
import threading
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from moto.core.botocore_stubber import BotocoreStubber
from moto.dynamodb.comparisons import get_filter_expression
from moto.dynamodb.exceptions import (
    MultipleTransactionsException,
    TooManyTransactionsException,
    TransactionCanceledException,
    TransactWriteSingleOpException,
)
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table import Table
from moto.stepfunctions.parser.models import StepFunctionsParserBackend

from kairos_local.nested_patch import NestedPatch

if TYPE_CHECKING:
    from collections.abc import Iterator
    from contextlib import AbstractContextManager

    from botocore.awsrequest import AWSPreparedRequest

_ORIGINAL = DynamoDBBackend.transact_write_items


def _transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    seen: set[tuple[str, str]] = set()
    plan: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
    errors: list[tuple[str | None, str | None, Any]] = []
    for item in transact_items:
        if len(item) > 1:
            raise TransactWriteSingleOpException
        op_type, op = next(iter(item.items()))
        table = self.get_table(op["TableName"])
        if op_type == "Put":
            attrs = op["Item"]
            key = {table.hash_key_attr: attrs[table.hash_key_attr]}
            if table.range_key_attr is not None:
                key[table.range_key_attr] = attrs[table.range_key_attr]
        else:
            key = op["Key"]
        marker = (op["TableName"], str(sorted(key.items())))
        if marker in seen:
            raise MultipleTransactionsException()
        seen.add(marker)
        current = self.get_item(op["TableName"], key)
        cond = op.get("ConditionExpression")
        if cond is not None and not get_filter_expression(
            cond, op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
        ).expr(current):
            errors.append(("ConditionalCheckFailed", "The conditional request failed", None))
        else:
            errors.append((None, None, None))
        plan.append((op_type, op, key))
    if any(code is not None for code, _, _ in errors):
        raise TransactionCanceledException(errors)
    for op_type, op, key in plan:
        names, values = op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
        if op_type == "Put":
            self.put_item(
                op["TableName"], op["Item"], expression_attribute_names=names, expression_attribute_values=values
            )
        elif op_type == "Delete":
            self.delete_item(op["TableName"], key, expression_attribute_names=names, expression_attribute_values=values)
        elif op_type == "Update":
            self.update_item(
                op["TableName"],
                key,
                update_expression=op["UpdateExpression"],
                expression_attribute_names=names,
                expression_attribute_values=values,
            )


_QUERY = Table.query
_ALL_ITEMS = Table.all_items
_partition = threading.local()


def _all_items(self: Table) -> list[Any]:
    narrowed = getattr(_partition, "query", None)
    if narrowed is None or narrowed[0] is not self:
        return _ALL_ITEMS(self)
    part = self.items.get(narrowed[1])
    if part is None:
        return []
    if not self.range_key_attr:
        return [part]  # type: ignore[list-item]
    return sorted(part.values(), key=lambda x: x.range_key)  # type: ignore[union-attr]


def _query(self: Table, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
    if kwargs.get("index_name") or hash_key is None or (len(args) > 6 and args[6]):
        return _QUERY(self, hash_key, *args, **kwargs)
    _partition.query = (self, hash_key)  # this thread's query reads one partition
    try:
        return _QUERY(self, hash_key, *args, **kwargs)
    finally:
        _partition.query = None


_VALIDATE = StepFunctionsParserBackend.__dict__["_validate_definition"]
_valid_definitions: set[str] = set()


def _validate_definition(definition: str) -> None:
    # Parsing a definition with ANTLR (pure Python) costs a tenth of a second each; a test session deploys the
    # same few definitions hundreds of times, and a definition that parsed once parses again.
    if definition not in _valid_definitions:
        _VALIDATE.__func__(definition)
        _valid_definitions.add(definition)


_PROCESS_REQUEST = BotocoreStubber.process_request
# Reentrant: a request whose handling makes another (moto delivering to a subscriber) must not wait for itself.
_requests = threading.RLock()
_LONG_POLLS = re.compile(r"^https?://(sqs\.|[^/]*\.queue\.)")


def _process_request(self: BotocoreStubber, request: AWSPreparedRequest) -> Any:
    if _LONG_POLLS.match(request.url or ""):
        return _PROCESS_REQUEST(self, request)
    with _requests:
        return _PROCESS_REQUEST(self, request)


@contextmanager
def atomic() -> Iterator[None]:
    """Read or change moto's backends directly, with no request handled meanwhile (as :func:`patched` handles each)."""
    with _requests:
        yield


_PATCHES = (
    (BotocoreStubber, "process_request", _PROCESS_REQUEST, _process_request),
    (StepFunctionsParserBackend, "_validate_definition", _VALIDATE, staticmethod(_validate_definition)),
    (DynamoDBBackend, "transact_write_items", _ORIGINAL, _transact_write_items),
    (Table, "query", _QUERY, _query),
    (Table, "all_items", _ALL_ITEMS, _all_items),
)


def _apply() -> None:
    for owner, name, _, fixed in _PATCHES:
        setattr(owner, name, fixed)


def _undo() -> None:
    for owner, name, original, _ in _PATCHES:
        setattr(owner, name, original)


_nested = NestedPatch(_apply, _undo)


def patched() -> AbstractContextManager[None]:
    """Apply the fixes for the duration of the context; nested contexts share them, the outermost undoes them.

    Outside the context moto is exactly as installed, so other code in the same process (a test that uses
    plain ``mock_aws``) never sees these changes.
    """
    return _nested()


def active() -> bool:
    """Whether the fixes are in force now."""
    return DynamoDBBackend.transact_write_items is _transact_write_items
