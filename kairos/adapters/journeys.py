"""Adapters of the schedule logic: journeys in Step Functions, decisions in the S3 archive."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import ClientError

from kairos import timeutil
from kairos.adapters.archive import encode_lines
from kairos.errors import StoreError, ThrottledError
from kairos.logic.campaigns import CampaignLauncher
from kairos.logic.schedule import DecisionLog, JourneyStarter

if TYPE_CHECKING:
    from datetime import datetime

    from mypy_boto3_s3 import S3Client
    from mypy_boto3_stepfunctions import SFNClient


class _StateMachine:
    """One state machine's executions, started by name: a name used before is refused by Step Functions."""

    def __init__(self, state_machine_arn: str, client: SFNClient | None = None) -> None:
        self.state_machine_arn = state_machine_arn
        self._client = client

    @property
    def client(self) -> SFNClient:
        if self._client is None:
            self._client = boto3.client("stepfunctions")
        return self._client

    def _start(self, name: str, payload: dict[str, Any]) -> bool:
        """Start a named execution; ``False`` when the name was used before."""
        try:
            self.client.start_execution(
                stateMachineArn=self.state_machine_arn, name=name, input=json.dumps(payload, sort_keys=True)
            )
        except ClientError as exc:
            code = exc.response["Error"]["Code"]
            if code == "ExecutionAlreadyExists":
                return False
            if code in ("ThrottlingException", "TooManyRequestsException"):
                raise ThrottledError("Step Functions throttled StartExecution") from exc
            raise StoreError(f"StartExecution failed: {code}") from exc
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
    """``decisions/dt=YYYY-MM-DD/<campaign>/<page>.jsonl.gz`` in the archive bucket; a retried page overwrites."""

    def __init__(self, bucket: str, client: S3Client | None = None) -> None:
        self.bucket = bucket
        self._client = client

    @property
    def client(self) -> S3Client:
        if self._client is None:
            self._client = boto3.client("s3")
        return self._client

    def write(self, campaign_id: str, page_key: str, records: list[dict[str, Any]]) -> None:
        date = timeutil.now().strftime("%Y-%m-%d")
        try:
            self.client.put_object(
                Bucket=self.bucket,
                Key=f"decisions/dt={date}/{campaign_id}/{page_key}.jsonl.gz",
                Body=encode_lines(records),
            )
        except ClientError as exc:
            raise StoreError(f"decision log write failed: {exc.response['Error']['Code']}") from exc
