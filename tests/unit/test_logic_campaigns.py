"""Campaign lifecycle on the in-memory store: create and launch, refuse what cannot run, cancel, save segments."""

from __future__ import annotations

from datetime import timedelta

import pytest

from kairos.domain.campaigns import Campaign, CampaignIn, SegmentIn
from kairos.errors import InvalidInputError, NotFoundError, StoreError
from kairos.logic.campaigns import cancel_campaign, create_campaign, save_segment
from tests.fakes import RecordingLauncher
from tests.unit.conftest import NOW, campaign_body


def _campaign(**over) -> CampaignIn:
    return CampaignIn.model_validate(campaign_body(**over))


def test_create_campaign_stores_it_scheduled_and_launches_now(campaigns, launcher):
    # GIVEN a campaign without a start time
    # WHEN it is created
    doc = create_campaign(_campaign(), campaigns, NOW, launcher)
    # THEN it is stored scheduled with its definition, and its launch starts now
    stored = Campaign.from_doc(campaigns.get_campaign(doc["campaign_id"]))
    assert stored.status == "scheduled" and stored.is_active
    assert stored.definition == _campaign()
    assert campaigns.get_campaign(doc["campaign_id"])["created_at"] == NOW.isoformat()
    assert launcher.launched == [(doc["campaign_id"], NOW)]


@pytest.mark.parametrize(
    ("offset", "expected_offset"), [(timedelta(hours=6), timedelta(hours=6)), (-timedelta(hours=1), timedelta(0))]
)
def test_create_campaign_launches_at_the_later_of_start_and_now(campaigns, launcher, offset, expected_offset):
    # GIVEN a campaign starting in six hours, or one whose start is already past
    campaign = _campaign(starts_at=(NOW + offset).isoformat())
    # WHEN it is created
    doc = create_campaign(campaign, campaigns, NOW, launcher)
    # THEN its launch waits for the start, but never for a time already gone
    assert launcher.launched == [(doc["campaign_id"], NOW + expected_offset)]


def test_create_campaign_gives_each_campaign_a_new_id(campaigns, launcher):
    # GIVEN the same definition twice
    # WHEN both are created
    a = create_campaign(_campaign(), campaigns, NOW, launcher)["campaign_id"]
    b = create_campaign(_campaign(), campaigns, NOW, launcher)["campaign_id"]
    # THEN they are two campaigns
    assert a != b and set(campaigns.campaigns) == {a, b}


def test_create_campaign_with_missing_segment_is_invalid_on_the_segment(campaigns, launcher):
    # GIVEN no saved segment "vip"
    campaign = _campaign(audience={"segment": "vip"})
    # WHEN it is created
    with pytest.raises(InvalidInputError) as exc:
        create_campaign(campaign, campaigns, NOW, launcher)
    # THEN the error names the field, and nothing is stored or launched
    assert exc.value.field == "audience.segment"
    assert campaigns.campaigns == {} and launcher.launched == []


def test_create_campaign_with_saved_segment_is_accepted(campaigns, launcher):
    # GIVEN a saved segment "vip"
    save_segment(SegmentIn(name="vip", filters=[{"field": "purchase_count", "op": "gt", "value": 2}]), campaigns, NOW)
    # WHEN a campaign for it is created
    doc = create_campaign(_campaign(audience={"segment": "vip"}), campaigns, NOW, launcher)
    # THEN it is stored and launched
    assert campaigns.get_campaign(doc["campaign_id"])["definition"]["audience"]["segment"] == "vip"
    assert len(launcher.launched) == 1


@pytest.mark.parametrize("expires", [NOW, NOW - timedelta(minutes=1)])
def test_create_campaign_already_expired_is_invalid_on_expires_at(campaigns, launcher, expires):
    # GIVEN a campaign expiring now or in the past
    campaign = _campaign(expires_at=expires.isoformat())
    # WHEN it is created
    with pytest.raises(InvalidInputError) as exc:
        create_campaign(campaign, campaigns, NOW, launcher)
    # THEN the error names expires_at, and nothing is stored
    assert exc.value.field == "expires_at"
    assert campaigns.campaigns == {} and launcher.launched == []


def test_create_campaign_launch_failure_cancels_it_and_propagates(campaigns):
    # GIVEN a launcher that fails
    launcher = RecordingLauncher(fail=StoreError("Step Functions is down"))
    # WHEN a campaign is created
    with pytest.raises(StoreError):
        create_campaign(_campaign(), campaigns, NOW, launcher)
    # THEN the campaign that was stored is cancelled, so nothing half-made can send
    (doc,) = campaigns.campaigns.values()
    assert doc["status"] == "cancelled" and doc["status_changed_at"] == NOW.isoformat()
    assert not Campaign.from_doc(doc).is_active


@pytest.mark.parametrize("status", ["scheduled", "running"])
def test_cancel_campaign_stops_an_active_campaign(campaigns, add_campaign, status):
    # GIVEN a scheduled or running campaign
    cid = add_campaign()
    campaigns.campaigns[cid]["status"] = status
    # WHEN it is cancelled
    later = NOW + timedelta(hours=1)
    doc = cancel_campaign(cid, campaigns, later)
    # THEN it is cancelled, with the time it changed
    assert doc["status"] == "cancelled" and doc["status_changed_at"] == later.isoformat()
    assert campaigns.get_campaign(cid)["status"] == "cancelled"


def test_cancel_campaign_twice_is_invalid_on_status(campaigns, add_campaign):
    # GIVEN a cancelled campaign
    cid = add_campaign()
    cancel_campaign(cid, campaigns, NOW)
    # WHEN it is cancelled again
    with pytest.raises(InvalidInputError) as exc:
        cancel_campaign(cid, campaigns, NOW + timedelta(hours=1))
    # THEN the error names the status, and the first cancellation time stays
    assert exc.value.field == "status"
    assert campaigns.get_campaign(cid)["status_changed_at"] == NOW.isoformat()


def test_cancel_campaign_completed_is_invalid(campaigns, add_campaign):
    # GIVEN a completed campaign
    cid = add_campaign()
    campaigns.campaigns[cid]["status"] = "completed"
    # WHEN / THEN it cannot be cancelled, and stays completed
    with pytest.raises(InvalidInputError):
        cancel_campaign(cid, campaigns, NOW)
    assert campaigns.get_campaign(cid)["status"] == "completed"


def test_cancel_campaign_unknown_is_not_found(campaigns):
    # GIVEN no campaign
    # WHEN / THEN
    with pytest.raises(NotFoundError):
        cancel_campaign("nope", campaigns, NOW)


def test_save_segment_stores_it_with_its_time_and_replaces_by_name(campaigns):
    # GIVEN a segment saved once
    save_segment(SegmentIn(name="vip", filters=[{"field": "purchase_count", "op": "gt", "value": 2}]), campaigns, NOW)
    # WHEN it is saved again under the same name with other filters
    later = NOW + timedelta(days=1)
    doc = save_segment(
        SegmentIn(name="vip", filters=[{"field": "attributes.tier", "op": "eq", "value": "gold"}]), campaigns, later
    )
    # THEN the store holds the latest version only, with its time, and it reads back as the same segment
    assert campaigns.list_segments() == [doc]
    stored = campaigns.get_segment("vip")
    assert stored["updated_at"] == later.isoformat()
    assert SegmentIn.model_validate({k: v for k, v in stored.items() if k != "updated_at"}).filters[0].value == "gold"
