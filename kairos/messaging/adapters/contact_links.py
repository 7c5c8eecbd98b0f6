"""Contact links in the customers table, under reserved ids (``__…``: scans of customers skip them).

- ``__tglink#<token>``: a start-link token and the customer it links, expiring (TTL ``expires_at``), noted in the
  customer's own items of the events table (``l#<token>``) so that an erasure finds it;
- ``__tgchat#<chat id>``: the customer a Telegram chat was linked to;
- ``__phone#<E.164 number>``: the customer whose profile gave the number (two-way SMS replies).
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

from kairos.core.aws import STORE_RETRIES, LazyClient, call
from kairos.core.errors import ConflictError
from kairos.messaging.ports import ContactLinks

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

TOKEN_PREFIX, CHAT_PREFIX, PHONE_PREFIX = "__tglink#", "__tgchat#", "__phone#"
NOTE_PREFIX = "l#"  # the customer's note of a start link, in the events table


class DynamoContactLinks(ContactLinks):
    client = LazyClient("dynamodb", STORE_RETRIES)

    def __init__(self, customers_table: str, events_table: str, client: DynamoDBClient | None = None) -> None:
        self.table = customers_table
        self.events_table = events_table
        self.client = client

    def _call(self, op: str, **kwargs: Any) -> dict[str, Any]:
        return call(self.client, op, "messenger links", **kwargs)

    def create_token(self, customer_id: str, expires_at: int) -> str:
        # Telegram's start parameter: up to 64 of A-Z a-z 0-9 _ -; 16 random bytes cannot be guessed.
        token = secrets.token_urlsafe(16)
        item = {
            "customer_id": {"S": TOKEN_PREFIX + token},
            "linked": {"S": customer_id},
            "expires_at": {"N": str(expires_at)},
        }
        note = {"customer_id": {"S": customer_id}, "sk": {"S": NOTE_PREFIX + token}, "expires_at": item["expires_at"]}
        self._call("put_item", TableName=self.events_table, Item=note)  # first: an erasure finds every token
        self._call("put_item", TableName=self.table, Item=item)
        return token

    def customer_of_token(self, token: str, now_s: int) -> str | None:
        item = self._get(TOKEN_PREFIX + token)
        if item is None or int(item["expires_at"]["N"]) <= now_s:
            return None
        return item["linked"]["S"]

    def link_chat(self, chat_id: str, customer_id: str) -> None:
        item = {"customer_id": {"S": CHAT_PREFIX + chat_id}, "linked": {"S": customer_id}}
        self._call("put_item", TableName=self.table, Item=item)

    def customer_of_chat(self, chat_id: str) -> str | None:
        item = self._get(CHAT_PREFIX + chat_id)
        return item["linked"]["S"] if item else None

    def link_phone(self, phone: str, customer_id: str) -> None:
        item = {"customer_id": {"S": PHONE_PREFIX + phone}, "linked": {"S": customer_id}}
        self._call("put_item", TableName=self.table, Item=item)

    def customer_of_phone(self, phone: str) -> str | None:
        item = self._get(PHONE_PREFIX + phone)
        return item["linked"]["S"] if item else None

    def forget_phone(self, phone: str, customer_id: str) -> None:
        try:
            self._call(
                "delete_item",
                TableName=self.table,
                Key={"customer_id": {"S": PHONE_PREFIX + phone}},
                ConditionExpression="linked = :c",
                ExpressionAttributeValues={":c": {"S": customer_id}},
            )
        except ConflictError:
            return  # another customer gave the number since: it is theirs now

    def forget_customer(self, customer_id: str, chat_id: str | None, phone: str | None = None) -> None:
        if chat_id:
            self._call("delete_item", TableName=self.table, Key={"customer_id": {"S": CHAT_PREFIX + chat_id}})
        if phone:
            self.forget_phone(phone, customer_id)
        kwargs: dict[str, Any] = {
            "TableName": self.events_table,
            "KeyConditionExpression": "customer_id = :c AND begins_with(sk, :l)",
            "ExpressionAttributeValues": {":c": {"S": customer_id}, ":l": {"S": NOTE_PREFIX}},
            "ConsistentRead": True,
        }
        while True:
            page = self._call("query", **kwargs)
            for note in page.get("Items", []):
                token = note["sk"]["S"][len(NOTE_PREFIX) :]
                self._call("delete_item", TableName=self.table, Key={"customer_id": {"S": TOKEN_PREFIX + token}})
                self._call(
                    "delete_item",
                    TableName=self.events_table,
                    Key={"customer_id": note["customer_id"], "sk": note["sk"]},
                )
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _get(self, key: str) -> dict[str, Any] | None:
        return self._call("get_item", TableName=self.table, Key={"customer_id": {"S": key}}, ConsistentRead=True).get(
            "Item"
        )
