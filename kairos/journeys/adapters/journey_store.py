"""Journeys and customers' paths through them in DynamoDB; tasks on EventBridge.

``JourneysTable`` (``journey_id``, ``sk``): ``sk = "current"`` holds status, current version and the promoted
content variants (``promoted``, node -> variant, for every version); ``v#000001``... hold each version's
definition (kept, so a path finishes on the version it entered). Intents live in the same table
(``intent#<name>``, ``sk = "intent"``).

``JourneyPathsTable`` (``customer_id``, ``key`` = ``<journey_id>#<entry_id>``): the path as JSON in ``doc``;
``seq`` guards every save; ``wake_at`` and ``wake_shard`` exist only while the path waits, so the sparse index
``by_wake`` (``wake_shard``, ``wake_at``) holds exactly the waiting paths, spread over shards; ``by_journey``
(``journey_id``, ``key``) serves results; ``expires_at`` is the TTL.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from kairos.core.aws import (
    STORE_RETRIES,
    LazyClient,
    call,
    decode_page_token,
    domain_error,
    encode_page_token,
    error_code,
)
from kairos.core.errors import ConflictError, InvalidInputError, NotFoundError, StoreError
from kairos.journeys.ports import IntentStore, JourneyStarter, JourneyStore, TaskSink
from kairos.messaging.ports import PolicyStore

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_stepfunctions import SFNClient

CURRENT = "current"
INTENT = "intent"
SCAN = "scan"
CHECKED = "variants_checked_at"  # when the journey's content variants were last looked at for a winner
INTENT_PREFIX = "intent#"
POLICY_KEY = {"journey_id": {"S": "__policy"}, "sk": {"S": "policy"}}  # the send policy's one item
WAKE_INDEX = "by_wake"
JOURNEY_INDEX = "by_journey"
WAKE_SHARDS = 8  # waiting paths spread over this many index partitions (the timer reads each)


def _version_sk(version: int) -> str:
    return f"v#{version:06d}"


def _shard(customer_id: str) -> str:
    return str(int(hashlib.sha256(customer_id.encode()).hexdigest()[:8], 16) % WAKE_SHARDS)


class DynamoJourneyStore(JourneyStore, IntentStore):
    """The journey store on two DynamoDB tables."""

    client = LazyClient("dynamodb", STORE_RETRIES)

    def __init__(self, journeys_table: str, paths_table: str, client: DynamoDBClient | None = None) -> None:
        self.journeys_table = journeys_table
        self.paths_table = paths_table
        self.client = client

    def _call(self, op: str, **kwargs: Any) -> dict[str, Any]:
        return call(self.client, op, "DynamoDB", **kwargs)

    # -- journeys
    def _current_item(self, doc: dict[str, Any]) -> dict[str, Any]:
        extra = {"kind": {"S": doc["kind"]}} if doc.get("kind") else {}
        if doc.get("campaign") is not None:
            extra["campaign"] = {"S": json.dumps(doc["campaign"], separators=(",", ":"))}
        return {
            **extra,
            "journey_id": {"S": doc["journey_id"]},
            "sk": {"S": CURRENT},
            "status": {"S": doc["status"]},
            "version": {"N": str(doc["version"])},
            "name": {"S": doc["definition"]["name"]},
            "created_at": {"S": doc["created_at"]},
            "updated_at": {"S": doc["updated_at"]},
        }

    def _version_item(self, journey_id: str, version: int, definition: dict[str, Any]) -> dict[str, Any]:
        return {
            "journey_id": {"S": journey_id},
            "sk": {"S": _version_sk(version)},
            "definition": {"S": json.dumps(definition, separators=(",", ":"))},
        }

    def create_journey(self, doc: dict[str, Any]) -> None:
        self._call(
            "transact_write_items",
            TransactItems=[
                {
                    "Put": {
                        "TableName": self.journeys_table,
                        "Item": self._current_item(doc),
                        "ConditionExpression": "attribute_not_exists(journey_id)",
                    }
                },
                {
                    "Put": {
                        "TableName": self.journeys_table,
                        "Item": self._version_item(doc["journey_id"], doc["version"], doc["definition"]),
                    }
                },
            ],
        )

    def _get(self, journey_id: str, sk: str) -> dict[str, Any] | None:
        return self._call(
            "get_item",
            TableName=self.journeys_table,
            Key={"journey_id": {"S": journey_id}, "sk": {"S": sk}},
            ConsistentRead=True,
        ).get("Item")

    def _doc(self, current: dict[str, Any], version: int | None) -> dict[str, Any]:
        jid = current["journey_id"]["S"]
        v = version if version is not None else int(current["version"]["N"])
        item = self._get(jid, _version_sk(v))
        if item is None:
            raise NotFoundError(f"journey '{jid}' has no version {v}")
        return {
            "journey_id": jid,
            "status": current["status"]["S"],
            "version": v,
            "current_version": int(current["version"]["N"]),
            "definition": json.loads(item["definition"]["S"]),
            "created_at": current["created_at"]["S"],
            "updated_at": current["updated_at"]["S"],
            "kind": current.get("kind", {}).get("S", "journey"),
            **({"campaign": json.loads(current["campaign"]["S"])} if "campaign" in current else {}),
            # On the current item whatever the version read: a promotion holds for paths already under way.
            "promoted": {node: v["S"] for node, v in current.get("promoted", {}).get("M", {}).items()},
            **({"variants_checked_at": current[CHECKED]["S"]} if CHECKED in current else {}),
        }

    def get_journey(self, journey_id: str, version: int | None = None) -> dict[str, Any]:
        current = self._get(journey_id, CURRENT)
        if current is None:
            raise NotFoundError(f"journey '{journey_id}' not found")
        return self._doc(current, version)

    def put_version(self, doc: dict[str, Any], expected_version: int) -> None:
        new = expected_version + 1
        try:
            self._call(
                "transact_write_items",
                TransactItems=[
                    {
                        "Update": {
                            "TableName": self.journeys_table,
                            "Key": {"journey_id": {"S": doc["journey_id"]}, "sk": {"S": CURRENT}},
                            "UpdateExpression": "SET version = :new, updated_at = :now, #n = :name",
                            "ConditionExpression": "version = :expected",
                            "ExpressionAttributeNames": {"#n": "name"},
                            "ExpressionAttributeValues": {
                                ":new": {"N": str(new)},
                                ":expected": {"N": str(expected_version)},
                                ":now": {"S": doc["updated_at"]},
                                ":name": {"S": doc["definition"]["name"]},
                            },
                        }
                    },
                    {
                        "Put": {
                            "TableName": self.journeys_table,
                            "Item": self._version_item(doc["journey_id"], new, doc["definition"]),
                        }
                    },
                ],
            )
        except (ConflictError, InvalidInputError) as exc:
            raise ConflictError(f"journey {doc['journey_id']} changed") from exc

    def set_journey_status(self, journey_id: str, status: str, allowed_from: tuple[str, ...], now_iso: str) -> None:
        values: dict[str, Any] = {":s": {"S": status}, ":now": {"S": now_iso}}
        conds = []
        for i, s in enumerate(allowed_from):
            values[f":f{i}"] = {"S": s}
            conds.append(f"#s = :f{i}")
        self._call(
            "update_item",
            TableName=self.journeys_table,
            Key={"journey_id": {"S": journey_id}, "sk": {"S": CURRENT}},
            UpdateExpression="SET #s = :s, updated_at = :now",
            ConditionExpression="attribute_exists(journey_id) AND (" + " OR ".join(conds or ["#s = :s"]) + ")",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues=values,
        )

    def _update_current(self, journey_id: str, expression: str, condition: str, **kwargs: Any) -> None:
        self._call(
            "update_item",
            TableName=self.journeys_table,
            Key={"journey_id": {"S": journey_id}, "sk": {"S": CURRENT}},
            UpdateExpression=expression,
            ConditionExpression=condition,
            **kwargs,
        )

    def set_promoted(self, journey_id: str, node_id: str, variant: str | None, only_if_unset: bool = False) -> bool:
        # DynamoDB sets no path inside a map that is not there: the map is made first (a no-op when it exists).
        try:
            self._update_current(
                journey_id,
                "SET promoted = if_not_exists(promoted, :empty)",
                "attribute_exists(journey_id)",
                ExpressionAttributeValues={":empty": {"M": {}}},
            )
        except ConflictError as exc:
            raise NotFoundError(f"journey '{journey_id}' not found") from exc
        names = {"#n": node_id}
        try:
            if variant is None:
                self._update_current(
                    journey_id, "REMOVE promoted.#n", "attribute_exists(journey_id)", ExpressionAttributeNames=names
                )
            else:
                condition = "attribute_exists(journey_id)"
                if only_if_unset:
                    condition += " AND attribute_not_exists(promoted.#n)"
                self._update_current(
                    journey_id,
                    "SET promoted.#n = :v",
                    condition,
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues={":v": {"S": variant}},
                )
        except ConflictError:
            if only_if_unset:
                return False
            raise NotFoundError(f"journey '{journey_id}' not found") from None
        return True

    def set_variants_checked(self, journey_id: str, at_iso: str) -> None:
        self._update_current(
            journey_id,
            "SET variants_checked_at = :at",
            "attribute_exists(journey_id)",
            ExpressionAttributeValues={":at": {"S": at_iso}},
        )

    def _scan_current(
        self, token: dict[str, Any] | None, limit: int, status: str | None, kind: str | None = None
    ) -> dict[str, Any]:
        conditions = ["sk = :c"]
        values: dict[str, Any] = {":c": {"S": CURRENT}}
        names: dict[str, str] = {}
        if status:
            conditions.append("#s = :s")
            values[":s"] = {"S": status}
            names["#s"] = "status"
        if kind == "journey":  # journeys stored before campaigns were journeys carry no kind
            conditions.append("(attribute_not_exists(#k) OR #k = :k)")
        elif kind:
            conditions.append("#k = :k")
        if kind:
            values[":k"] = {"S": kind}
            names["#k"] = "kind"
        kwargs: dict[str, Any] = {
            "TableName": self.journeys_table,
            "FilterExpression": " AND ".join(conditions),
            "ExpressionAttributeValues": values,
            "Limit": limit,
        }
        if names:
            kwargs["ExpressionAttributeNames"] = names
        if token:
            kwargs["ExclusiveStartKey"] = token
        return self._call("scan", **kwargs)

    def list_journeys(
        self, limit: int, token: str | None, kind: str = "journey"
    ) -> tuple[list[dict[str, Any]], str | None]:
        start = decode_page_token(token, {"journey_id", "sk"}) if token else None
        items: list[dict[str, Any]] = []
        last = start
        while True:
            resp = self._scan_current(last, max(limit * 4, 25), None, kind)
            items += resp.get("Items", [])
            last = resp.get("LastEvaluatedKey")
            if not last or len(items) >= limit:
                break
        page = items[:limit]
        if len(items) > limit:
            last = {"journey_id": page[-1]["journey_id"], "sk": page[-1]["sk"]}
        return [self._doc(i, None) for i in page], encode_page_token(last)

    def active_journeys(self) -> list[dict[str, Any]]:
        out, last = [], None
        while True:
            resp = self._scan_current(last, 500, "active")
            out += [self._doc(i, None) for i in resp.get("Items", [])]
            last = resp.get("LastEvaluatedKey")
            if not last:
                return out

    # -- paths
    def _path_item(self, path: dict[str, Any]) -> dict[str, Any]:
        item: dict[str, Any] = {
            "customer_id": {"S": path["customer_id"]},
            "key": {"S": path["key"]},
            "journey_id": {"S": path["journey_id"]},
            "seq": {"N": str(path["seq"])},
            "doc": {"S": json.dumps(path, separators=(",", ":"), default=str)},
            "expires_at": {"N": str(int(path["expires_at"]))},
        }
        if path.get("wake_at"):
            item["wake_at"] = {"S": path["wake_at"]}
            item["wake_shard"] = {"S": _shard(path["customer_id"])}
        return item

    def create_path(self, path: dict[str, Any]) -> bool:
        try:
            self._call(
                "put_item",
                TableName=self.paths_table,
                Item=self._path_item(path),
                ConditionExpression="attribute_not_exists(customer_id)",
            )
        except ConflictError:
            return False
        return True

    def get_path(self, customer_id: str, key: str) -> dict[str, Any] | None:
        item = self._call(
            "get_item",
            TableName=self.paths_table,
            Key={"customer_id": {"S": customer_id}, "key": {"S": key}},
            ConsistentRead=True,
        ).get("Item")
        return json.loads(item["doc"]["S"]) if item else None

    def save_path(self, path: dict[str, Any], expected_seq: int) -> None:
        self._call(
            "put_item",
            TableName=self.paths_table,
            Item=self._path_item(path),
            ConditionExpression="seq = :expected",
            ExpressionAttributeValues={":expected": {"N": str(expected_seq)}},
        )

    def _query(self, kwargs: dict[str, Any]) -> list[dict[str, Any]]:
        out = []
        while True:
            resp = self._call("query", **kwargs)
            out += resp.get("Items", [])
            if "LastEvaluatedKey" not in resp:
                return out
            kwargs = {**kwargs, "ExclusiveStartKey": resp["LastEvaluatedKey"]}

    def customer_paths(self, customer_id: str, journey_id: str | None = None) -> list[dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "TableName": self.paths_table,
            "KeyConditionExpression": "customer_id = :c" + (" AND begins_with(#k, :j)" if journey_id else ""),
            "ExpressionAttributeValues": {":c": {"S": customer_id}},
            "ConsistentRead": True,
        }
        if journey_id:
            kwargs["ExpressionAttributeNames"] = {"#k": "key"}
            kwargs["ExpressionAttributeValues"][":j"] = {"S": f"{journey_id}#"}
        return [json.loads(i["doc"]["S"]) for i in self._query(kwargs)]

    def due_paths(self, now_iso: str, limit: int) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for shard in range(WAKE_SHARDS):
            resp = self._call(
                "query",
                TableName=self.paths_table,
                IndexName=WAKE_INDEX,
                KeyConditionExpression="wake_shard = :s AND wake_at <= :now",
                ExpressionAttributeValues={":s": {"S": str(shard)}, ":now": {"S": now_iso}},
                Limit=limit,
            )
            found += [json.loads(i["doc"]["S"]) for i in resp.get("Items", [])]
        return sorted(found, key=lambda p: p.get("wake_at") or "")[:limit]

    def journey_paths(self, journey_id: str) -> list[dict[str, Any]]:
        kwargs = {
            "TableName": self.paths_table,
            "IndexName": JOURNEY_INDEX,
            "KeyConditionExpression": "journey_id = :j",
            "ExpressionAttributeValues": {":j": {"S": journey_id}},
        }
        return [json.loads(i["doc"]["S"]) for i in self._query(kwargs)]

    def erase_customer(self, customer_id: str) -> int:
        keys = self._query(
            {
                "TableName": self.paths_table,
                "KeyConditionExpression": "customer_id = :c",
                "ExpressionAttributeValues": {":c": {"S": customer_id}},
                "ProjectionExpression": "customer_id, #k",
                "ExpressionAttributeNames": {"#k": "key"},
                "ConsistentRead": True,
            }
        )
        for k in keys:
            self._call(
                "delete_item", TableName=self.paths_table, Key={"customer_id": k["customer_id"], "key": k["key"]}
            )
        return len(keys)

    # -- entry scans (in the journeys table, next to the journey)
    def get_scan(self, journey_id: str) -> dict[str, Any] | None:
        item = self._get(journey_id, SCAN)
        return json.loads(item["doc"]["S"]) if item else None

    def put_scan(self, journey_id: str, state: dict[str, Any]) -> None:
        self._call(
            "put_item",
            TableName=self.journeys_table,
            Item={"journey_id": {"S": journey_id}, "sk": {"S": SCAN}, "doc": {"S": json.dumps(state)}},
        )

    # -- intents (in the journeys table, under their own sort key)
    def put_intent(self, doc: dict[str, Any]) -> None:
        self._call(
            "put_item",
            TableName=self.journeys_table,
            Item={
                "journey_id": {"S": f"{INTENT_PREFIX}{doc['name']}"},
                "sk": {"S": INTENT},
                "doc": {"S": json.dumps(doc, separators=(",", ":"))},
            },
        )

    def list_intents(self) -> list[dict[str, Any]]:
        out, last = [], None
        while True:
            kwargs: dict[str, Any] = {
                "TableName": self.journeys_table,
                "FilterExpression": "sk = :i",
                "ExpressionAttributeValues": {":i": {"S": INTENT}},
            }
            if last:
                kwargs["ExclusiveStartKey"] = last
            resp = self._call("scan", **kwargs)
            out += [json.loads(i["doc"]["S"]) for i in resp.get("Items", [])]
            last = resp.get("LastEvaluatedKey")
            if not last:
                return sorted(out, key=lambda d: d["name"])


class EventBridgeTaskSink(TaskSink):
    """Tasks as EventBridge events (source ``kairos.journeys``) on a bus: a rule routes them to a queue, a CRM,
    a webhook (API destination) or a person's inbox."""

    client = LazyClient("events", STORE_RETRIES)

    def __init__(self, bus: str = "default", client: EventBridgeClient | None = None) -> None:
        self.bus = bus
        self.client = client

    def emit(self, detail_type: str, detail: dict[str, Any]) -> None:
        resp = call(
            self.client,
            "put_events",
            "EventBridge",
            Entries=[
                {
                    "Source": "kairos.journeys",
                    "DetailType": detail_type,
                    "Detail": json.dumps(detail, default=str),
                    "EventBusName": self.bus,
                }
            ],
        )
        if resp.get("FailedEntryCount"):
            raise StoreError(f"EventBridge refused the task: {resp['Entries'][0].get('ErrorCode')}")


class StepFunctionsJourneyStarter(JourneyStarter):
    """Starts the journey step state machine's executions by name: a name used before is refused."""

    client = LazyClient("stepfunctions")

    def __init__(self, state_machine_arn: str, client: SFNClient | None = None) -> None:
        self.state_machine_arn = state_machine_arn
        self.client = client

    def start(self, name: str, payload: dict[str, Any]) -> bool:
        try:
            self.client.start_execution(
                stateMachineArn=self.state_machine_arn, name=name, input=json.dumps(payload, sort_keys=True)
            )
        except ClientError as exc:
            if error_code(exc) == "ExecutionAlreadyExists":
                return False
            raise domain_error(exc, "Step Functions StartExecution") from exc
        return True


class DynamoPolicyStore(PolicyStore):
    """The send policy as one item of the journeys table."""

    client = LazyClient("dynamodb", STORE_RETRIES)

    def __init__(self, journeys_table: str, client: DynamoDBClient | None = None) -> None:
        self.journeys_table = journeys_table
        self.client = client

    def get_policy(self) -> dict[str, Any] | None:
        item = call(self.client, "get_item", "DynamoDB", TableName=self.journeys_table, Key=POLICY_KEY).get("Item")
        return json.loads(item["doc"]["S"]) if item else None

    def put_policy(self, doc: dict[str, Any]) -> None:
        item = {**POLICY_KEY, "doc": {"S": json.dumps(doc, separators=(",", ":"), default=str)}}
        call(self.client, "put_item", "DynamoDB", TableName=self.journeys_table, Item=item)
