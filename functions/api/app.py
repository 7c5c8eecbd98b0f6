"""The Kairos HTTP API handler: events, customer profiles, erasure, OpenAPI document."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Annotated

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query
from aws_lambda_powertools.metrics import MetricUnit

from kairos import __version__, timeutil, wiring
from kairos.api import make_resolver
from kairos.config import settings
from kairos.domain.campaigns import CampaignIn, CampaignList, CampaignView, SegmentIn, SegmentList, SegmentView
from kairos.errors import InvalidInputError
from kairos.logic import campaigns, customers, ingest, recommendations
from kairos.observability import logger, metrics, tracer
from kairos.schemas import (
    _ID_PATTERN,
    CustomerProfileIn,
    CustomerView,
    ErasureReport,
    EventBatch,
    IngestResult,
    RecommendationView,
)

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from kairos.ports import CampaignLauncher, CampaignStore, CustomerStore, EventArchive, MessageLog

app = make_resolver()

CustomerId = Annotated[str, Path(pattern=_ID_PATTERN, description="The customer's id in your systems")]


@lru_cache(maxsize=1)
def store() -> CustomerStore:
    return wiring.customer_store(settings())


@lru_cache(maxsize=1)
def archive() -> EventArchive:
    return wiring.event_archive(settings())


@lru_cache(maxsize=1)
def message_log() -> MessageLog:
    return wiring.message_log(settings())


@lru_cache(maxsize=1)
def campaign_store() -> CampaignStore:
    return wiring.campaign_store(settings())


@lru_cache(maxsize=1)
def launcher() -> CampaignLauncher | None:
    return wiring.campaign_launcher(settings())


@app.post("/v1/events", summary="Ingest a batch of 1 to 500 events", tags=["events"])
def post_events(batch: Annotated[EventBatch, Body()]) -> IngestResult:
    cfg = settings()
    result = ingest.ingest_events(batch.events, store(), timeutil.now(), cfg.retention, cfg.clock_skew)
    metrics.add_metric(name="EventsAccepted", unit=MetricUnit.Count, value=result.accepted)
    metrics.add_metric(name="EventsRejected", unit=MetricUnit.Count, value=len(result.rejected))
    logger.info(
        "events ingested",
        extra={"accepted": result.accepted, "duplicates": result.duplicates, "rejected": len(result.rejected)},
    )
    return result


@app.put("/v1/customers/<customer_id>", summary="Create or replace a customer profile", tags=["customers"])
def put_customer(customer_id: CustomerId, profile: Annotated[CustomerProfileIn, Body()]) -> CustomerView:
    return customers.put_profile(customer_id, profile, store(), timeutil.now())


@app.get("/v1/customers/<customer_id>", summary="A profile with its aggregates", tags=["customers"])
def get_customer(customer_id: CustomerId) -> CustomerView:
    return customers.get_customer(customer_id, store())


@app.delete("/v1/customers/<customer_id>", summary="Erase a customer (right to be forgotten)", tags=["customers"])
def delete_customer(customer_id: CustomerId) -> ErasureReport:
    report = customers.erase_customer(customer_id, store(), archive(), message_log())
    logger.info("customer erased", extra=report.model_dump())
    return report


CampaignId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="The id Kairos gave the campaign")]
SegmentName = Annotated[str, Path(pattern=_ID_PATTERN, description="The segment's name")]


@app.put("/v1/segments/<name>", summary="Save an audience segment (all filters must hold)", tags=["campaigns"])
def put_segment(name: SegmentName, segment: Annotated[SegmentIn, Body()]) -> SegmentView:
    if segment.name != name:
        raise InvalidInputError("name", f"the body names '{segment.name}' but the path '{name}'")
    return SegmentView.model_validate(campaigns.save_segment(segment, campaign_store(), timeutil.now()))


@app.get("/v1/segments/<name>", summary="A saved segment", tags=["campaigns"])
def get_segment(name: SegmentName) -> SegmentView:
    return SegmentView.model_validate(campaign_store().get_segment(name))


@app.get("/v1/segments", summary="All saved segments", tags=["campaigns"])
def list_segments() -> SegmentList:
    return SegmentList(segments=[SegmentView.model_validate(s) for s in campaign_store().list_segments()])


@app.post("/v1/campaigns", summary="Create a campaign", tags=["campaigns"])
def post_campaign(campaign: Annotated[CampaignIn, Body()]) -> Response[CampaignView]:
    doc = campaigns.create_campaign(campaign, campaign_store(), timeutil.now(), launcher())
    return Response(
        status_code=201,
        content_type=content_types.APPLICATION_JSON,
        body=CampaignView.model_validate(doc).model_dump(mode="json"),
    )


@app.get("/v1/campaigns/<campaign_id>", summary="A campaign", tags=["campaigns"])
def get_campaign(campaign_id: CampaignId) -> CampaignView:
    return CampaignView.model_validate(campaign_store().get_campaign(campaign_id))


@app.get("/v1/campaigns", summary="Campaigns, a page at a time", tags=["campaigns"])
def list_campaigns(
    limit: Annotated[int, Query(ge=1, le=100)] = 50, next_token: Annotated[str | None, Query()] = None
) -> CampaignList:
    items, token = campaign_store().list_campaigns(limit, next_token)
    return CampaignList(campaigns=[CampaignView.model_validate(i) for i in items], next_token=token)


@app.post("/v1/campaigns/<campaign_id>/cancel", summary="Cancel a campaign", tags=["campaigns"])
def cancel_campaign(campaign_id: CampaignId) -> CampaignView:
    return CampaignView.model_validate(campaigns.cancel_campaign(campaign_id, campaign_store(), timeutil.now()))


@app.get(
    "/v1/customers/<customer_id>/recommendation",
    summary="Best hour to message the customer and the products to offer",
    tags=["customers"],
)
def get_recommendation(customer_id: CustomerId) -> RecommendationView:
    return RecommendationView.model_validate(recommendations.get_recommendation(customer_id, store()))


@app.get("/v1/openapi.json", summary="This document", tags=["meta"], include_in_schema=False)
def openapi_document():  # noqa: ANN201 - a raw document, not a model
    return Response(status_code=200, content_type=content_types.APPLICATION_JSON, body=openapi_json())


@lru_cache(maxsize=1)
def openapi_json() -> str:
    return app.get_openapi_json_schema(
        title="Kairos API",
        version=__version__,
        description="Send-time optimization and multichannel messaging. Every route but this document needs "
        "`Authorization: Bearer <api key>`.",
        security_schemes={"apiKey": HTTPBearer(description="A Kairos API key (python -m kairos.admin create-key)")},
        security=[{"apiKey": []}],
    )


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
