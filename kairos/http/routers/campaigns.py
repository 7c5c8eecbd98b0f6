"""Campaigns: create, read, list, cancel, and what they brought."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query

from kairos.core import timeutil
from kairos.http.api import KairosRouter
from kairos.http.deps import Deps  # noqa: TC001 - Powertools reads route annotations at run time
from kairos.insights.domain import CampaignResults
from kairos.journeys import campaigns
from kairos.journeys.campaign_domain import CampaignIn, CampaignList, CampaignView
from kairos.journeys.variant_domain import PromoteIn, PromotionView

router = KairosRouter()

CampaignId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="The id Kairos gave the campaign")]


@router.endpoint(
    "POST",
    "/v1/campaigns",
    scope="manage",
    status_code=201,
    summary="Create a campaign (it launches at starts_at, or now)",
    description="A filter's `value` follows the limits of profile attributes.",
    links={"/v1/campaigns/{campaign_id}": {"campaign_id": "$response.body#/campaign_id"}},
    tags=["campaigns"],
)
def post_campaign(campaign: Annotated[CampaignIn, Body()], deps: Deps) -> CampaignView:
    doc = campaigns.create_campaign(campaign, deps.journeys(), deps.segments(), timeutil.now())
    return CampaignView.model_validate(doc)


@router.endpoint(
    "GET", "/v1/campaigns/<campaign_id>", scope="read", errors=(400, 404), summary="A campaign", tags=["campaigns"]
)
def get_campaign(campaign_id: CampaignId, deps: Deps) -> CampaignView:
    return CampaignView.model_validate(campaigns.get_campaign(campaign_id, deps.journeys(), timeutil.now()))


@router.endpoint(
    "GET",
    "/v1/campaigns/<campaign_id>/results",
    scope="read",
    errors=(400, 404),
    summary="What a campaign brought: per step, channel and day, against its control group",
    description="Conversions are orders within the campaign's `attribution_days` after the launch, measured "
    "alike in the messaged and the control group; uplift intervals are 95%.",
    tags=["campaigns"],
)
def get_campaign_results(campaign_id: CampaignId, deps: Deps) -> CampaignResults:
    return CampaignResults.model_validate(
        campaigns.campaign_results(campaign_id, deps.journeys(), deps.messages(), deps.customers(), timeutil.now())
    )


@router.endpoint(
    "GET", "/v1/campaigns", scope="read", errors=(400,), summary="Campaigns, a page at a time", tags=["campaigns"]
)
def list_campaigns(
    deps: Deps,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    next_token: Annotated[
        str | None, Query(max_length=2048, description="The next_token of the previous page, as returned")
    ] = None,
) -> CampaignList:
    items, token = campaigns.list_campaigns(deps.journeys(), limit, next_token, timeutil.now())
    return CampaignList(campaigns=[CampaignView.model_validate(i) for i in items], next_token=token)


@router.endpoint(
    "POST",
    "/v1/campaigns/<campaign_id>/cancel",
    scope="manage",
    errors=(404,),
    summary="Cancel a campaign",
    tags=["campaigns"],
)
def cancel_campaign(campaign_id: CampaignId, deps: Deps) -> CampaignView:
    return CampaignView.model_validate(campaigns.cancel_campaign(campaign_id, deps.journeys(), timeutil.now()))


@router.endpoint(
    "POST",
    "/v1/campaigns/<campaign_id>/promote",
    scope="manage",
    errors=(404,),
    summary="Promote one of the campaign's content variants: it takes all its traffic from the next message on",
    description='`{"variant": null}` splits the traffic by weight again. Results per variant: `variants_by_node` '
    "of the campaign's results.",
    tags=["campaigns"],
)
def post_promote_campaign_variant(
    campaign_id: CampaignId, body: Annotated[PromoteIn, Body()], deps: Deps
) -> PromotionView:
    promoted = campaigns.promote_campaign_variant(campaign_id, body.variant, deps.journeys(), timeutil.now())
    return PromotionView.model_validate(promoted)
