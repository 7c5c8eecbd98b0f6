"""Insights kept between runs in DynamoDB (key ``kind`` + ``key``): RFM thresholds and partial summaries."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kairos.core.aws import STORE_RETRIES, LazyClient, call, from_item, to_item
from kairos.insights.ports import InsightStore

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


class DynamoInsightStore(InsightStore):
    client = LazyClient("dynamodb", STORE_RETRIES)

    def __init__(self, table: str, client: DynamoDBClient | None = None) -> None:
        self.table = table
        self.client = client

    def put(self, kind: str, key: str, doc: dict[str, Any], expires_at: int | None = None) -> None:
        item = {"kind": kind, "key": key, "doc": doc}
        if expires_at is not None:
            item["expires_at"] = expires_at
        call(self.client, "put_item", "DynamoDB", TableName=self.table, Item=to_item(item))

    def get(self, kind: str, key: str) -> dict[str, Any] | None:
        resp = call(
            self.client,
            "get_item",
            "DynamoDB",
            TableName=self.table,
            Key={"kind": {"S": kind}, "key": {"S": key}},
            ConsistentRead=True,
        )
        return from_item(resp["Item"])["doc"] if "Item" in resp else None

    def query(self, kind: str, prefix: str = "") -> list[tuple[str, dict[str, Any]]]:
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "#k = :k AND begins_with(#s, :p)",
            "ExpressionAttributeNames": {"#k": "kind", "#s": "key"},
            "ExpressionAttributeValues": {":k": {"S": kind}, ":p": {"S": prefix}},
            "ConsistentRead": True,
        }
        out = []
        while True:
            page = call(self.client, "query", "DynamoDB", **kwargs)
            out += [(doc["key"], doc["doc"]) for doc in map(from_item, page.get("Items", []))]
            if "LastEvaluatedKey" not in page:
                return out
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
