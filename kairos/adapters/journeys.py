"""Adapters of the schedule logic: journeys in Step Functions, decisions in the S3 archive."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from kairos import timeutil
from kairos.adapters.archive import decode_lines, encode_lines, remove_lines
from kairos.adapters.aws import STORE_RETRIES, LazyClient, call, domain_error, error_code
from kairos.ports import CampaignLauncher, DecisionLog, JourneyStarter

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import date, datetime

    from mypy_boto3_s3 import S3Client
    from mypy_boto3_stepfunctions import SFNClient

    from kairos.ports import CustomerStore

DECISIONS_PREFIX = "decisions"


class _StateMachine:
    """One state machine's executions, started by name: a name used before is refused by Step Functions."""

    client = LazyClient("stepfunctions")

    def __init__(self, state_machine_arn: str, client: SFNClient | None = None) -> None:
        self.state_machine_arn = state_machine_arn
        self.client = client

    def _start(self, name: str, payload: dict[str, Any]) -> bool:
        """Start a named execution; ``False`` when the name was used before."""
        try:
            self.client.start_execution(
                stateMachineArn=self.state_machine_arn, name=name, input=json.dumps(payload, sort_keys=True)
            )
        except ClientError as exc:
            if error_code(exc) == "ExecutionAlreadyExists":
                return False
            raise domain_error(exc, "Step Functions StartExecution") from exc
        return True


class StepFunctionsJourneyStarter(_StateMachine, JourneyStarter):
    """Starts journey executions; a name already used means the journey was started before."""

    def start(self, name: str, payload: dict[str, Any]) -> bool:
        return self._start(name, payload)


class StepFunctionsCampaignLauncher(_StateMachine, CampaignLauncher):
    """Starts the launch state machine, one execution per campaign (named by the campaign id)."""

    def __init__(self, state_machine_arn: str, total_segments: int = 4, client: SFNClient | None = None) -> None:
        super().__init__(state_machine_arn, client)
        self.total_segments = total_segments

    def launch(self, campaign_id: str, launch_at: datetime) -> None:
        payload = {
            "campaign_id": campaign_id,
            "launch_at": timeutil.utc_iso(launch_at),
            "total_segments": self.total_segments,
        }
        self._start(campaign_id, payload)  # False: launched before, nothing to do


class S3DecisionLog(DecisionLog):
    """``decisions/dt=YYYY-MM-DD/<campaign>/<page>.jsonl.gz`` in the archive bucket; a retried page overwrites.

    Parameters
    ----------
    bucket
        The archive bucket.
    customers
        Where each customer's decision objects are noted, so an erasure finds every object naming them.
    retention_days
        How long decision objects live (the bucket's lifecycle rule); their notes expire with them.
    """

    client = LazyClient("s3", STORE_RETRIES)

    def __init__(
        self,
        bucket: str,
        customers: CustomerStore,
        retention_days: int = 400,
        client: S3Client | None = None,
    ) -> None:
        self.bucket = bucket
        self.customers = customers
        self.retention_days = retention_days
        self.client = client

    def write(self, campaign_id: str, page_key: str, records: list[dict[str, Any]]) -> None:
        now = timeutil.now()
        key = f"{DECISIONS_PREFIX}/dt={now:%Y-%m-%d}/{campaign_id}/{page_key}.jsonl.gz"
        named = {r["customer_id"] for r in records if r.get("customer_id")}
        # Note first, write second, check third: an erasure that runs at any point either finds the note and
        # purges the object after it is written, or is seen by the check below, which purges it here.
        self.customers.note_decisions(named, key, int(now.timestamp()) + (self.retention_days + 1) * 86400)
        call(self.client, "put_object", "decision log", Bucket=self.bucket, Key=key, Body=encode_lines(records))
        gone = named - set(self.customers.get_customers(named))
        if gone:
            remove_lines(self.client, self.bucket, key, lambda r: r.get("customer_id") in gone, "decision log")

    def read(self, campaign_id: str, days: Iterable[date]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for day in sorted(set(days)):
            prefix = f"{DECISIONS_PREFIX}/dt={day:%Y-%m-%d}/{campaign_id}/"
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
            for page in pages:
                for obj in page.get("Contents", []):
                    got = call(self.client, "get_object", "decision log", Bucket=self.bucket, Key=obj["Key"])
                    out += decode_lines(got["Body"].read())
        # A page retried on another day is written twice: one decision per customer, the latest.
        latest: dict[str, dict[str, Any]] = {}
        for rec in out:
            cid = rec.get("customer_id")
            if cid and (cid not in latest or rec.get("decided_at", "") >= latest[cid].get("decided_at", "")):
                latest[cid] = rec
        return [latest[c] for c in sorted(latest)]

    def purge_customer(self, customer_id: str, objects: Iterable[str]) -> tuple[int, int]:
        count, lines = 0, 0
        for key in sorted(set(objects)):
            removed = remove_lines(
                self.client, self.bucket, key, lambda r: r.get("customer_id") == customer_id, "decision log"
            )
            count += removed > 0
            lines += removed
        return count, lines
