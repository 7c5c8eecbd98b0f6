"""Campaigns and saved segments in DynamoDB."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kairos.adapters.aws import STORE_RETRIES, LazyClient, call
from kairos.adapters.dynamo import decode_page_token, encode_page_token, from_item, to_item
from kairos.domain.campaigns import ACTIVE_STATUSES
from kairos.errors import ConflictError, NotFoundError
from kairos.ports import CampaignStore

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


class DynamoCampaignStore(CampaignStore):
    """Campaign definitions (key ``campaign_id``) and saved segments (key ``name``)."""

    client = LazyClient("dynamodb", STORE_RETRIES)

    def __init__(self, campaigns_table: str, segments_table: str, client: DynamoDBClient | None = None) -> None:
        self.campaigns_table = campaigns_table
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

    def create_campaign(self, campaign: dict[str, Any]) -> None:
        self._call(
            "put_item",
            TableName=self.campaigns_table,
            Item=to_item(campaign),
            ConditionExpression="attribute_not_exists(campaign_id)",
        )

    def get_campaign(self, campaign_id: str) -> dict[str, Any]:
        item = self._call(
            "get_item", TableName=self.campaigns_table, Key={"campaign_id": {"S": campaign_id}}, ConsistentRead=True
        ).get("Item")
        if item is None:
            raise NotFoundError(f"campaign '{campaign_id}' not found")
        return from_item(item)

    def list_campaigns(self, limit: int, token: str | None) -> tuple[list[dict[str, Any]], str | None]:
        kwargs: dict[str, Any] = {"TableName": self.campaigns_table, "Limit": limit}
        if token:
            kwargs["ExclusiveStartKey"] = decode_page_token(token, {"campaign_id"})
        resp = self._call("scan", **kwargs)
        last = resp.get("LastEvaluatedKey")
        return [from_item(i) for i in resp.get("Items", [])], encode_page_token(last)

    def set_status(self, campaign_id: str, status: str, allowed_from: tuple[str, ...], now_iso: str) -> None:
        names = {"#s": "status"}
        values = {":s": {"S": status}, ":now": {"S": now_iso}}
        conds = []
        for i, s in enumerate(allowed_from):
            values[f":f{i}"] = {"S": s}
            conds.append(f"#s = :f{i}")
        self._call(
            "update_item",
            TableName=self.campaigns_table,
            Key={"campaign_id": {"S": campaign_id}},
            UpdateExpression="SET #s = :s, status_changed_at = :now",
            ConditionExpression="attribute_exists(campaign_id) AND (" + " OR ".join(conds) + ")",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    def record_failure(self, campaign_id: str, kind: str, reason: str, now_iso: str, fail: bool) -> None:
        try:
            self._call(
                "update_item",
                TableName=self.campaigns_table,
                Key={"campaign_id": {"S": campaign_id}},
                UpdateExpression="ADD #k :one SET last_failure = :why",
                ConditionExpression="attribute_exists(campaign_id)",
                ExpressionAttributeNames={"#k": f"{kind}_failures"},
                ExpressionAttributeValues={
                    ":one": {"N": "1"},
                    ":why": {"M": {"kind": {"S": kind}, "reason": {"S": reason[:1000]}, "at": {"S": now_iso}}},
                },
            )
        except ConflictError:
            return  # no such campaign
        if fail:
            try:
                self.set_status(campaign_id, "failed", ACTIVE_STATUSES, now_iso)
            except ConflictError:
                pass  # cancelled or finished meanwhile: that status stands

    def record_launch(self, campaign_id: str, totals: dict[str, int], now_iso: str) -> dict[str, Any]:
        """Keep the launch totals; a ``scheduled`` campaign becomes ``running`` (a cancelled one stays so)."""
        self._call(
            "update_item",
            TableName=self.campaigns_table,
            Key={"campaign_id": {"S": campaign_id}},
            UpdateExpression="SET launch = :t",
            ConditionExpression="attribute_exists(campaign_id)",
            ExpressionAttributeValues={":t": to_item({"v": totals})["v"]},
        )
        try:
            self.set_status(campaign_id, "running", ("scheduled",), now_iso)
        except ConflictError:
            pass  # already running (a retried step) or cancelled meanwhile: leave it
        return self.get_campaign(campaign_id)
