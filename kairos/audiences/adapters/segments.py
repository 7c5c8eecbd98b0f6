"""Saved segments (audiences) in DynamoDB."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kairos.audiences.ports import SegmentStore
from kairos.core.aws import STORE_RETRIES, LazyClient, call, from_item, to_item
from kairos.core.errors import ConflictError, NotFoundError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


class DynamoSegmentStore(SegmentStore):
    """Saved segments, key ``name``."""

    client = LazyClient("dynamodb", STORE_RETRIES)

    def __init__(self, segments_table: str, client: DynamoDBClient | None = None) -> None:
        self.segments_table = segments_table
        self.client = client

    def _call(self, op: str, **kwargs: Any) -> dict[str, Any]:
        return call(self.client, op, "DynamoDB", **kwargs)

    def put_segment(self, segment: dict[str, Any]) -> None:
        self._call("put_item", TableName=self.segments_table, Item=to_item(segment))

    def get_segment(self, name: str) -> dict[str, Any]:
        item = self._call("get_item", TableName=self.segments_table, Key={"name": {"S": name}}).get("Item")
        if item is None:
            raise NotFoundError(f"segment '{name}' not found")
        return from_item(item)

    def delete_segment(self, name: str) -> None:
        try:
            self._call(
                "delete_item",
                TableName=self.segments_table,
                Key={"name": {"S": name}},
                ConditionExpression="attribute_exists(#n)",
                ExpressionAttributeNames={"#n": "name"},
            )
        except ConflictError as exc:
            raise NotFoundError(f"segment '{name}' not found") from exc

    def list_segments(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for page in self.client.get_paginator("scan").paginate(TableName=self.segments_table):
            out += [from_item(i) for i in page.get("Items", [])]
        return sorted(out, key=lambda s: s["name"])
