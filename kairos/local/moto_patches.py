"""Local-only fixes to moto, applied by ``embedded_aws``.

moto 5 snapshots every table a transaction touches with ``copy.deepcopy`` before running it, so one
TransactWriteItems costs time proportional to the whole table: 500 events took 40 s on a fresh table and it
grows with every batch. DynamoDB itself checks all conditions first and then writes all items; this does the
same, which needs no snapshot.

moto 5 also answers a Query on a table's key by sorting every item of the table and keeping the partition's:
with the events table of a demo that is tens of thousands of items per query, and a running journey queries
it at every step. DynamoDB reads one partition; so does the patched query. Nothing here runs in Lambda.
"""

from __future__ import annotations

import threading
from typing import Any

from moto.dynamodb.comparisons import get_filter_expression
from moto.dynamodb.exceptions import (
    MultipleTransactionsException,
    TooManyTransactionsException,
    TransactionCanceledException,
    TransactWriteSingleOpException,
)
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table import Table

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


def apply() -> None:
    DynamoDBBackend.transact_write_items = _transact_write_items  # type: ignore[method-assign]
    Table.query = _query  # type: ignore[method-assign]
    Table.all_items = _all_items  # type: ignore[method-assign]
