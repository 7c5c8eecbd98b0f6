"""The product catalogue in DynamoDB (key ``product_id``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kairos.core.aws import STORE_RETRIES, LazyClient, call, from_item, to_item
from kairos.models.ports import ProductCatalogue

if TYPE_CHECKING:
    from collections.abc import Iterable

    from mypy_boto3_dynamodb import DynamoDBClient

MAX_BATCH_GET = 100


class DynamoProductCatalogue(ProductCatalogue):
    client = LazyClient("dynamodb", STORE_RETRIES)

    def __init__(self, table: str, client: DynamoDBClient | None = None) -> None:
        self.table = table
        self.client = client

    def put_product(self, doc: dict[str, Any]) -> None:
        call(self.client, "put_item", "DynamoDB", TableName=self.table, Item=to_item(doc))

    def get_products(self, product_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        ids = sorted(set(product_ids))
        out: dict[str, dict[str, Any]] = {}
        for start in range(0, len(ids), MAX_BATCH_GET):
            request = {self.table: {"Keys": [{"product_id": {"S": i}} for i in ids[start : start + MAX_BATCH_GET]]}}
            while request:
                resp = call(self.client, "batch_get_item", "DynamoDB", RequestItems=request)
                for item in resp.get("Responses", {}).get(self.table, []):
                    doc = from_item(item)
                    out[doc["product_id"]] = doc
                request = resp.get("UnprocessedKeys") or {}
        return out
