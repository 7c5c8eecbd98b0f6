"""The event types seen, as items of the insights table (kind ``event_type``, key the type): a counter and the
set of property names, added to atomically, so concurrent ingests never lose a count."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kairos.core.aws import STORE_RETRIES, LazyClient, call
from kairos.core.timeutil import utc_iso
from kairos.customers.ports import EventTypeCatalogue

if TYPE_CHECKING:
    from datetime import datetime

    from mypy_boto3_dynamodb import DynamoDBClient

EVENT_TYPE_KIND = "event_type"


class DynamoEventTypes(EventTypeCatalogue):
    """One item per event type: a counter and the set of property names, added to atomically (``ADD``)."""

    client = LazyClient("dynamodb", STORE_RETRIES)

    def __init__(self, table: str, client: DynamoDBClient | None = None) -> None:
        self.table = table
        self.client = client

    def note(self, seen: dict[str, tuple[int, set[str]]], now: datetime) -> None:
        for type_, (count, names) in sorted(seen.items()):
            values: dict[str, Any] = {":n": {"N": str(count)}, ":now": {"S": utc_iso(now)}}
            update = "ADD #n :n SET first_seen = if_not_exists(first_seen, :now), last_seen = :now"
            if names:  # a string set cannot be empty
                values[":p"] = {"SS": sorted(names)}
                update = "ADD #n :n, properties :p SET first_seen = if_not_exists(first_seen, :now), last_seen = :now"
            call(
                self.client,
                "update_item",
                "DynamoDB",
                TableName=self.table,
                Key={"kind": {"S": EVENT_TYPE_KIND}, "key": {"S": type_}},
                UpdateExpression=update,
                ExpressionAttributeNames={"#n": "count"},
                ExpressionAttributeValues=values,
            )

    def event_types(self) -> list[dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "#k = :k",
            "ExpressionAttributeNames": {"#k": "kind"},
            "ExpressionAttributeValues": {":k": {"S": EVENT_TYPE_KIND}},
        }
        out = []
        while True:
            page = call(self.client, "query", "DynamoDB", **kwargs)
            for item in page.get("Items", []):
                out.append(
                    {
                        "type": item["key"]["S"],
                        "count": int(item["count"]["N"]),
                        "properties": sorted(item.get("properties", {}).get("SS", [])),
                        "first_seen": item["first_seen"]["S"],
                        "last_seen": item["last_seen"]["S"],
                    }
                )
            if "LastEvaluatedKey" not in page:
                return sorted(out, key=lambda t: t["type"])
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
