"""Launching a campaign on embedded AWS: audience, control group, consent, send times, idempotent journeys."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta

from kairos.adapters.campaigns import DynamoCampaignStore
from kairos.adapters.dynamo import DynamoStore
from kairos.adapters.journeys import S3DecisionLog, StepFunctionsJourneyStarter
from kairos.logic.schedule import launch_page
from tests.helpers import event, now

PASS_MACHINE = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}})


def _setup(runtime, client, n=60):
    t = now() - timedelta(days=3)
    for i in range(n):
        cid = f"c{i:03d}"
        consent = {"email": i % 10 != 0, "sms": i % 3 == 0}
        assert (
            client.request(
                "PUT",
                f"/v1/customers/{cid}",
                {
                    "timezone": "Europe/Berlin" if i % 2 else "America/New_York",
                    "contact": {"email": f"{cid}@example.com", "phone": "+491701234567"},
                    "consent": consent,
                    "attributes": {"tier": "gold" if i < 40 else "basic"},
                },
            ).status
            == 200
        )
        purchases = [event(f"{cid}-p{k}", customer_id=cid, ts=t - timedelta(days=k)) for k in range(i % 6)]
        if purchases:
            client.post_events(purchases)
    client.request(
        "PUT",
        "/v1/segments/buyers",
        {
            "name": "buyers",
            "filters": [
                {"field": "purchase_count", "op": "gte", "value": 2},
                {"field": "attributes.tier", "op": "eq", "value": "gold"},
            ],
        },
    )
    body = {
        "name": "autumn",
        "audience": {"segment": "buyers"},
        "messages": {"email": {"subject": "Hi", "text": "Hello"}, "sms": {"text": "Hello"}},
        "channels": ["email", "sms"],
        "expires_at": (datetime.now(UTC) + timedelta(days=5)).isoformat(),
        "control_share": 0.25,
        "quiet_hours": {"start": "21:00", "end": "08:00"},
        "send_time": {"mode": "fixed", "local_time": "10:30"},
    }
    resp = client.request("POST", "/v1/campaigns", body)
    assert resp.status == 201, resp.body
    sfn = runtime.session.client("stepfunctions")
    arn = sfn.create_state_machine(
        name="journey-test", definition=PASS_MACHINE, roleArn="arn:aws:iam::123456789012:role/x"
    )["stateMachineArn"]
    return resp.json()["campaign_id"], arn


def _launch(runtime, campaign_id, arn, segments=2):
    dep, session = runtime.dep, runtime.session
    customers = DynamoStore(
        dep.physical["EventsTable"], dep.physical["CustomersTable"], client=session.client("dynamodb")
    )
    campaigns = DynamoCampaignStore(
        dep.physical["CampaignsTable"], dep.physical["SegmentsTable"], session.client("dynamodb")
    )
    starter = StepFunctionsJourneyStarter(arn, session.client("stepfunctions"))
    log = S3DecisionLog(dep.physical["ArchiveBucket"], customers, client=session.client("s3"))
    totals: dict[str, int] = {}
    for seg in range(segments):
        cursor, done = None, False
        while not done:
            out = launch_page(
                campaign_id,
                customers,
                campaigns,
                starter,
                log,
                datetime.now(UTC),
                seg,
                segments,
                cursor,
                lambda: 10**9,
                page_size=9,
            )
            cursor, done = out["cursor"], out["done"]
            for k in ("scheduled", "control", "skipped", "already_started", "outside_audience"):
                totals[k] = totals.get(k, 0) + out[k]
    return totals


def test_launch_campaign_plans_everyone_once_and_starts_journeys_idempotently(runtime, client):
    # GIVEN 60 customers, a segment of gold buyers and a fixed-time campaign with a 25 % control group
    campaign_id, arn = _setup(runtime, client)
    # WHEN the campaign is launched over two scan segments, page by page, and then launched again
    first = _launch(runtime, campaign_id, arn)
    second = _launch(runtime, campaign_id, arn)
    # THEN the audience is exactly the segment, split into control, skipped and scheduled
    audience = [i for i in range(40) if i % 6 >= 2]
    assert first["scheduled"] + first["control"] + first["skipped"] == len(audience)
    assert first["outside_audience"] == 60 - len(audience)
    assert first["control"] >= 1 and first["already_started"] == 0
    # AND a relaunch makes the same decisions and starts nothing new (the journeys have already finished)
    assert {k: v for k, v in second.items() if k != "already_started"} == {
        k: v for k, v in first.items() if k != "already_started"
    }
    assert second["already_started"] == first["scheduled"]
    sfn = runtime.session.client("stepfunctions")
    executions = sfn.list_executions(stateMachineArn=arn)["executions"]
    assert len(executions) == first["scheduled"]
    # AND journey inputs carry no personal data, and the send time is 10:30 local outside quiet hours
    for ex in executions:
        payload = json.loads(sfn.describe_execution(executionArn=ex["executionArn"])["input"])
        assert "@" not in json.dumps(payload) and "+49" not in json.dumps(payload)
        assert payload["channels"][0] in ("email", "sms") and payload["decision"]["probability"] == 1.0
        send_at = datetime.fromisoformat(payload["send_at"].replace("Z", "+00:00"))
        from kairos.timeutil import zone

        local = send_at.astimezone(zone(payload["decision"]["timezone"]))
        assert (local.hour, local.minute) == (10, 30)
    # AND every decision is archived, controls and skips with their reasons
    s3 = runtime.session.client("s3")
    bucket = runtime.dep.physical["ArchiveBucket"]
    lines = []
    for obj in s3.list_objects_v2(Bucket=bucket, Prefix="decisions/")["Contents"]:
        lines += [
            json.loads(x)
            for x in gzip.decompress(s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()).decode().splitlines()
        ]
    by_customer = {r["customer_id"]: r for r in lines}
    assert len(by_customer) == len(audience)
    assert all(r["reason"] for r in lines)
    # a customer without email consent (every 10th) and without sms consent (not a multiple of 3) is skipped
    assert by_customer["c010"]["outcome"] in ("skipped", "control")


def test_launch_cancelled_campaign_starts_nothing(runtime, client):
    campaign_id, arn = _setup(runtime, client, n=12)
    client.request("POST", f"/v1/campaigns/{campaign_id}/cancel")
    totals = _launch(runtime, campaign_id, arn, segments=1)
    assert totals["scheduled"] == 0
    assert runtime.session.client("stepfunctions").list_executions(stateMachineArn=arn)["executions"] == []
