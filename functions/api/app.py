"""The Kairos HTTP API handler: events, customer profiles, erasure, OpenAPI document."""

from __future__ import annotations

import time
from functools import lru_cache
from typing import TYPE_CHECKING, Annotated, Any, Literal

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query
from aws_lambda_powertools.metrics import MetricUnit

from kairos import __version__, wiring
from kairos.audiences import segments as audiences
from kairos.audiences.domain import SegmentIn, SegmentList, SegmentView
from kairos.core import timeutil
from kairos.core.config import require, settings
from kairos.core.errors import InvalidInputError, NotFoundError
from kairos.core.observability import logger, metrics, tracer
from kairos.customers import ingest
from kairos.customers import profiles as customers
from kairos.customers.schemas import (
    _ID_PATTERN,
    MAX_BODY_BYTES,
    SCOPES,
    CustomerProfileIn,
    CustomerView,
    ErasureReport,
    EventBatch,
    IngestResult,
    MessageList,
    MessageView,
    RecommendationView,
)
from kairos.http.api import API_KEY_SCHEME, caller, check_filter_values, make_resolver
from kairos.insights import analyses
from kairos.insights.domain import (
    CampaignResults,
    CohortMatrix,
    ForecastIn,
    ForecastView,
    GlobalControlReport,
    RfmReport,
    SegmentPreview,
    SegmentPreviewIn,
)
from kairos.journeys import campaigns, definitions, intents
from kairos.journeys.campaign_domain import CampaignIn, CampaignList, CampaignView
from kairos.journeys.domain import JourneyIn, JourneyList, JourneyResults, JourneyStatusIn, JourneyView
from kairos.journeys.intent_domain import IntentIn, IntentList, IntentView
from kairos.journeys.results import journey_results
from kairos.messaging.policy import DEFAULT_POLICY, SendPolicy
from kairos.models import recommendations
from kairos.models.catalogue import ProductIn, ProductView

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from kairos.audiences.ports import SegmentStore
    from kairos.customers.ports import CustomerStore, DecisionLog, EventArchive
    from kairos.insights.ports import InsightStore
    from kairos.journeys.ports import JourneyStore
    from kairos.messaging.ports import MessageLog, PolicyStore
    from kairos.models.ports import ProductCatalogue

# The settings this function needs: a deployment without one fails here, at cold start, naming it.
require(
    "events_table",
    "customers_table",
    "archive_bucket",
    "messages_table",
    "segments_table",
    "products_table",
    "journeys_table",
    "journey_paths_table",
    "insights_table",
)


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
def decision_log() -> DecisionLog:
    return wiring.decision_log(settings())


@lru_cache(maxsize=1)
def segment_store() -> SegmentStore:
    return wiring.segment_store(settings())


@lru_cache(maxsize=1)
def catalogue() -> ProductCatalogue:
    return wiring.product_catalogue(settings())


@lru_cache(maxsize=1)
def policy_store() -> PolicyStore:
    return wiring.policy_store(settings())


@lru_cache(maxsize=1)
def insight_store() -> InsightStore:
    return wiring.insight_store(settings())


@lru_cache(maxsize=1)
def journey_store() -> JourneyStore:
    return wiring.journey_store(settings())


INTENTS_TTL_S = 60.0
_intents: dict[str, Any] = {"at": float("-inf"), "list": []}


def known_intents() -> list[dict[str, Any]]:
    """The intents, read at most once a minute per sandbox (a new intent tags messages within a minute)."""
    if time.monotonic() - _intents["at"] > INTENTS_TTL_S:
        _intents["list"] = journey_store().list_intents()
        _intents["at"] = time.monotonic()
    return _intents["list"]


@app.endpoint(
    "POST",
    "/v1/events",
    scope="ingest",
    summary="Ingest a batch of 1 to 500 events",
    description="A `message_inbound` event's `text` is tagged with the intents it expresses: "
    "`properties.intents` (and `properties.stage`) are added to the stored event.",
    tags=["events"],
)
def post_events(batch: Annotated[EventBatch, Body()]) -> IngestResult:
    cfg = settings()
    tagged = [
        intents.enrich(e, known_intents()) if isinstance(e, dict) and e.get("type") == "message_inbound" else e
        for e in batch.events
    ]
    result = ingest.ingest_events(tagged, store(), timeutil.now(), cfg.retention, cfg.clock_skew)
    metrics.add_metric(name="EventsAccepted", unit=MetricUnit.Count, value=result.accepted)
    metrics.add_metric(name="EventsRejected", unit=MetricUnit.Count, value=len(result.rejected))
    logger.info(
        "events ingested",
        extra={"accepted": result.accepted, "duplicates": result.duplicates, "rejected": len(result.rejected)},
    )
    return result


@app.endpoint(
    "PUT",
    "/v1/customers/<customer_id>",
    scope="profiles",
    summary="Create or replace a customer profile",
    tags=["customers"],
)
def put_customer(customer_id: CustomerId, profile: Annotated[CustomerProfileIn, Body()]) -> CustomerView:
    return customers.put_profile(customer_id, profile, store(), timeutil.now())


@app.endpoint(
    "GET",
    "/v1/customers/<customer_id>",
    scope="read",
    errors=(400, 404),
    summary="A profile with its aggregates",
    tags=["customers"],
)
def get_customer(customer_id: CustomerId) -> CustomerView:
    return customers.get_customer(customer_id, store())


@app.endpoint(
    "DELETE",
    "/v1/customers/<customer_id>",
    scope="erase",
    errors=(400, 404),
    summary="Erase a customer (right to be forgotten)",
    tags=["customers"],
)
def delete_customer(customer_id: CustomerId) -> ErasureReport:
    # An erasure is audited with the key that asked for it, whether or not there was anything to erase.
    who = caller(app.current_event.raw_event)
    logger.info("customer erasure requested", extra={"customer_id": customer_id, **who})
    report = customers.erase_customer(
        customer_id, store(), archive(), message_log(), decision_log(), timeutil.now(), journeys=journey_store()
    )
    logger.info("customer erased", extra={**report.model_dump(), **who})
    return report


CampaignId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="The id Kairos gave the campaign")]
SegmentName = Annotated[str, Path(pattern=_ID_PATTERN, description="The segment's name")]


@app.endpoint(
    "PUT",
    "/v1/segments/<name>",
    scope="manage",
    summary="Save an audience segment (all filters must hold)",
    description="The body's `name` must equal the path's name (else 400 naming `name`). A filter's `value` "
    "follows the limits of profile attributes.",
    tags=["campaigns"],
)
def put_segment(name: SegmentName, segment: Annotated[SegmentIn, Body()]) -> SegmentView:
    if segment.name != name:
        raise InvalidInputError("name", f"the body names '{segment.name}' but the path '{name}'")
    check_filter_values(segment.filters, "filters")
    return SegmentView.model_validate(audiences.save_segment(segment, segment_store(), timeutil.now()))


@app.endpoint(
    "GET", "/v1/segments/<name>", scope="read", errors=(400, 404), summary="A saved segment", tags=["campaigns"]
)
def get_segment(name: SegmentName) -> SegmentView:
    return SegmentView.model_validate(segment_store().get_segment(name))


@app.endpoint(
    "DELETE",
    "/v1/segments/<name>",
    scope="manage",
    status_code=204,
    errors=(400, 404, 409),
    summary="Delete a saved segment",
    description="409 when a scheduled or running campaign, or an active or paused journey, uses it (named in the "
    "message).",
    tags=["campaigns"],
)
def delete_segment(name: SegmentName) -> None:
    audiences.delete_segment(name, segment_store(), journey_store())


@app.endpoint(
    "POST",
    "/v1/segments/preview",
    scope="read",
    errors=(400,),
    summary="How many customers an audience holds now, with a sample of their ids",
    description="The audience is a saved segment's name or filters (groups with `all`, `any`, `not` included). "
    "Every customer is read once; counts over a window (`events.<type>`, `messages.<status>`) also read the "
    "history of the customers that reach them.",
    tags=["campaigns"],
)
def preview_segment(body: Annotated[SegmentPreviewIn, Body()]) -> SegmentPreview:
    check_filter_values(body.filters, "filters")
    filters = list(body.filters)
    if body.segment:
        try:
            doc = segment_store().get_segment(body.segment)
        except NotFoundError as exc:
            raise InvalidInputError("segment", f"no segment '{body.segment}'") from exc
        filters = SegmentIn.model_validate({k: v for k, v in doc.items() if k != "updated_at"}).filters
    out = audiences.preview_segment(filters, store(), timeutil.now(), message_log(), body.sample)
    return SegmentPreview.model_validate(out)


@app.endpoint("GET", "/v1/segments", scope="read", summary="All saved segments", tags=["campaigns"])
def list_segments() -> SegmentList:
    return SegmentList(segments=[SegmentView.model_validate(s) for s in segment_store().list_segments()])


@app.endpoint(
    "POST",
    "/v1/campaigns",
    scope="manage",
    status_code=201,
    summary="Create a campaign (it launches at starts_at, or now)",
    description="A filter's `value` follows the limits of profile attributes.",
    tags=["campaigns"],
)
def post_campaign(campaign: Annotated[CampaignIn, Body()]) -> CampaignView:
    check_filter_values(campaign.audience.filters, "audience.filters")
    doc = campaigns.create_campaign(campaign, journey_store(), segment_store(), timeutil.now())
    return CampaignView.model_validate(doc)


@app.endpoint(
    "GET", "/v1/campaigns/<campaign_id>", scope="read", errors=(400, 404), summary="A campaign", tags=["campaigns"]
)
def get_campaign(campaign_id: CampaignId) -> CampaignView:
    return CampaignView.model_validate(campaigns.get_campaign(campaign_id, journey_store(), timeutil.now()))


@app.endpoint(
    "GET",
    "/v1/campaigns/<campaign_id>/results",
    scope="read",
    errors=(400, 404),
    summary="What a campaign brought: per step, channel and day, against its control group",
    description="Conversions are orders within the campaign's `attribution_days` after the launch, measured "
    "alike in the messaged and the control group; uplift intervals are 95%.",
    tags=["campaigns"],
)
def get_campaign_results(campaign_id: CampaignId) -> CampaignResults:
    return CampaignResults.model_validate(
        campaigns.campaign_results(campaign_id, journey_store(), message_log(), store(), timeutil.now())
    )


@app.endpoint(
    "GET", "/v1/campaigns", scope="read", errors=(400,), summary="Campaigns, a page at a time", tags=["campaigns"]
)
def list_campaigns(
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    next_token: Annotated[
        str | None, Query(max_length=2048, description="The next_token of the previous page, as returned")
    ] = None,
) -> CampaignList:
    items, token = campaigns.list_campaigns(journey_store(), limit, next_token, timeutil.now())
    return CampaignList(campaigns=[CampaignView.model_validate(i) for i in items], next_token=token)


@app.endpoint(
    "POST",
    "/v1/campaigns/<campaign_id>/cancel",
    scope="manage",
    errors=(404,),
    summary="Cancel a campaign",
    tags=["campaigns"],
)
def cancel_campaign(campaign_id: CampaignId) -> CampaignView:
    return CampaignView.model_validate(campaigns.cancel_campaign(campaign_id, journey_store(), timeutil.now()))


@app.endpoint(
    "GET",
    "/v1/customers/<customer_id>/recommendation",
    scope="read",
    errors=(400, 404),
    summary="Best hour to message the customer and the products to offer",
    tags=["customers"],
)
def get_recommendation(customer_id: CustomerId) -> RecommendationView:
    return RecommendationView.model_validate(recommendations.get_recommendation(customer_id, store()))


@app.endpoint(
    "GET",
    "/v1/customers/<customer_id>/messages",
    scope="read",
    errors=(400,),
    summary="The customer's messages with their status (the message log), newest first",
    tags=["customers"],
)
def get_customer_messages(customer_id: CustomerId) -> MessageList:
    rows = sorted(message_log().for_customer(customer_id), key=lambda r: r.get("claimed_at") or "", reverse=True)
    return MessageList(customer_id=customer_id, messages=[MessageView.model_validate(r) for r in rows])


JourneyId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="The id Kairos gave the journey")]


def _journey_view(doc: dict) -> JourneyView:
    return JourneyView.model_validate(doc)


@app.endpoint(
    "POST",
    "/v1/journeys",
    scope="manage",
    status_code=201,
    summary="Create a journey (a draft: activate it to let customers in)",
    description="Errors name the node and the field, e.g. `nodes.wait_open.on_timeout`.",
    tags=["journeys"],
)
def post_journey(journey: Annotated[JourneyIn, Body()]) -> JourneyView:
    return _journey_view(definitions.create_journey(journey, journey_store(), timeutil.now()))


@app.endpoint(
    "GET", "/v1/journeys", scope="read", errors=(400,), summary="Journeys, a page at a time", tags=["journeys"]
)
def list_journeys(
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    next_token: Annotated[
        str | None, Query(max_length=2048, description="The next_token of the previous page, as returned")
    ] = None,
) -> JourneyList:
    items, token = journey_store().list_journeys(limit, next_token)
    return JourneyList(journeys=[_journey_view(i) for i in items], next_token=token)


@app.endpoint(
    "GET",
    "/v1/journeys/<journey_id>",
    scope="read",
    errors=(400, 404),
    summary="A journey (its current version, or ?version=n)",
    tags=["journeys"],
)
def get_journey(journey_id: JourneyId, version: Annotated[int | None, Query(ge=1)] = None) -> JourneyView:
    return _journey_view(journey_store().get_journey(journey_id, version))


@app.endpoint(
    "PUT",
    "/v1/journeys/<journey_id>",
    scope="manage",
    errors=(404,),
    summary="A new version of a journey (paths already under way finish on the version they entered)",
    tags=["journeys"],
)
def put_journey(journey_id: JourneyId, journey: Annotated[JourneyIn, Body()]) -> JourneyView:
    return _journey_view(definitions.update_journey(journey_id, journey, journey_store(), timeutil.now()))


@app.endpoint(
    "POST",
    "/v1/journeys/<journey_id>/status",
    scope="manage",
    errors=(404,),
    summary="Activate, pause or archive a journey (draft -> active <-> paused -> archived)",
    tags=["journeys"],
)
def post_journey_status(journey_id: JourneyId, change: Annotated[JourneyStatusIn, Body()]) -> JourneyView:
    return _journey_view(definitions.set_status(journey_id, change.status, journey_store(), timeutil.now()))


@app.endpoint(
    "GET",
    "/v1/journeys/<journey_id>/results",
    scope="read",
    errors=(400, 404),
    summary="Where the journey's customers are, how their paths ended, what it sent and what it brought",
    description="Conversions are orders within the journey's `attribution_days` after a customer entered, "
    "measured alike for entrants and the journey's control group; uplift intervals are 95%.",
    tags=["journeys"],
)
def get_journey_results(journey_id: JourneyId) -> JourneyResults:
    return JourneyResults.model_validate(journey_results(journey_id, journey_store(), message_log(), store()))


@app.endpoint(
    "GET",
    "/v1/insights/rfm",
    scope="read",
    errors=(404,),
    summary="RFM segments of the latest scoring run: counts, revenue, the grid and movement",
    description="Recency, frequency and monetary quintile scores of every customer with a purchase, recomputed "
    "by each scoring run; 404 until a run has computed them.",
    tags=["insights"],
)
def get_rfm() -> RfmReport:
    report = analyses.rfm_report(insight_store())
    if report is None:
        raise NotFoundError("no scoring run has computed RFM yet")
    return RfmReport.model_validate(report)


@app.endpoint(
    "GET",
    "/v1/insights/cohorts",
    scope="read",
    errors=(400,),
    summary="Cohorts by first purchase month or a profile attribute: retention or revenue by month",
    tags=["insights"],
)
def get_cohorts(
    by: Annotated[
        str, Query(max_length=200, description="first_purchase_month, or attributes.<name> (e.g. the source)")
    ] = "first_purchase_month",
    metric: Annotated[Literal["retention", "revenue"], Query()] = "retention",
    max_periods: Annotated[int, Query(ge=1, le=60, description="months since the first purchase")] = 24,
) -> CohortMatrix:
    return CohortMatrix.model_validate(analyses.cohorts(store(), by, metric, max_periods, timeutil.now()))


@app.endpoint(
    "GET",
    "/v1/insights/global-control",
    scope="read",
    errors=(400,),
    summary="Incremental revenue of everything sent: everybody else against the global control group",
    description="The global control group is a stable share (GlobalControlShare) of all customers that no "
    "campaign or journey messages. 400 when the deployment has none.",
    tags=["insights"],
)
def get_global_control(days: Annotated[int, Query(ge=1, le=365)] = 30) -> GlobalControlReport:
    share = settings().global_control_share
    if share <= 0:
        raise InvalidInputError("GlobalControlShare", "this deployment has no global control group (set it > 0)")
    return GlobalControlReport.model_validate(analyses.global_control_report(store(), timeutil.now(), days, share))


@app.endpoint(
    "POST",
    "/v1/insights/forecast",
    scope="read",
    errors=(400, 404),
    summary="Pessimistic, neutral and optimistic conversions and revenue of an audience over a period",
    description="From the minimum, mean and maximum of comparable past periods (the same dates in earlier "
    "years, the periods just before) and of finished campaigns to the same segment, scaled to the audience.",
    tags=["insights"],
)
def post_forecast(body: Annotated[ForecastIn, Body()]) -> ForecastView:
    check_filter_values(body.filters, "filters")
    out = analyses.forecast_audience(body, store(), segment_store(), timeutil.now(), journey_store(), message_log())
    return ForecastView.model_validate(out)


IntentName = Annotated[str, Path(pattern=_ID_PATTERN, description="The intent's name")]


@app.endpoint(
    "PUT",
    "/v1/intents/<name>",
    scope="manage",
    summary="Save an intent: keywords and phrases (English and Russian, any word form) that tag inbound messages",
    tags=["journeys"],
)
def put_intent(name: IntentName, intent: Annotated[IntentIn, Body()]) -> IntentView:
    doc = {**intent.model_dump(mode="json"), "name": name, "updated_at": timeutil.now().isoformat()}
    journey_store().put_intent(doc)
    _intents["at"] = float("-inf")
    return IntentView.model_validate(doc)


@app.endpoint("GET", "/v1/intents", scope="read", summary="Every intent", tags=["journeys"])
def list_intents() -> IntentList:
    return IntentList(intents=[IntentView.model_validate(d) for d in journey_store().list_intents()])


@app.endpoint(
    "GET",
    "/v1/policy",
    scope="read",
    summary="The send policy: default quiet hours per channel and frequency caps",
    description="Every journey and campaign obeys it unless it is `transactional`. Before any `PUT` this is the "
    "built-in default.",
    tags=["journeys"],
)
def get_policy() -> SendPolicy:
    doc = policy_store().get_policy()
    return SendPolicy.model_validate(doc) if doc is not None else DEFAULT_POLICY


@app.endpoint(
    "PUT",
    "/v1/policy",
    scope="manage",
    summary="Set the send policy (replaces it whole; holds everywhere within a minute)",
    description="`quiet_hours` per channel in the customer's local time; `frequency_caps` per channel and `all` "
    "(across channels), each with `per_day` and/or `per_week`. An empty object lifts every default.",
    tags=["journeys"],
)
def put_policy(policy: Annotated[SendPolicy, Body()]) -> SendPolicy:
    policy_store().put_policy(policy.model_dump(mode="json"))
    return policy


ProductId = Annotated[str, Path(pattern=_ID_PATTERN, description="The product's id, as events carry it")]


@app.endpoint(
    "PUT",
    "/v1/products/<product_id>",
    scope="manage",
    summary="Save a product: the name, page and picture messages show for it",
    tags=["products"],
)
def put_product(product_id: ProductId, product: Annotated[ProductIn, Body()]) -> ProductView:
    doc = {**product.model_dump(mode="json"), "product_id": product_id, "updated_at": timeutil.now().isoformat()}
    catalogue().put_product(doc)
    return ProductView.model_validate(doc)


@app.endpoint(
    "GET", "/v1/products/<product_id>", scope="read", errors=(400, 404), summary="A product", tags=["products"]
)
def get_product(product_id: ProductId) -> ProductView:
    found = catalogue().get_products([product_id])
    if product_id not in found:
        raise NotFoundError(f"product '{product_id}' not found")
    return ProductView.model_validate(found[product_id])


@app.get("/v1/openapi.json", summary="This document", tags=["meta"], include_in_schema=False)
def openapi_document():  # noqa: ANN201 - a raw document, not a model
    return Response(status_code=200, content_type=content_types.APPLICATION_JSON, body=openapi_json())


@lru_cache(maxsize=1)
def openapi_json() -> str:
    return app.openapi_document(
        title="Kairos API",
        version=__version__,
        description="Send-time optimization and multichannel messaging. Every operation needs "
        "`Authorization: Bearer <api key>` with the scope it lists under `security`. Bodies are UTF-8 "
        f"`application/json` of at most {MAX_BODY_BYTES} bytes, nested at most 32 levels, without NaN or "
        "Infinity. Every error answer is an `ErrorBody` whose `message` starts with the offending field.",
        security_schemes={
            API_KEY_SCHEME: HTTPBearer(
                description="A Kairos API key (`python -m kairos.admin create-key --scope ...`) with scopes: "
                + ", ".join(f"`{s}`" for s in SCOPES)
                + ". `ingest`: POST /v1/events; `profiles`: PUT /v1/customers/{id}; `read`: every GET; "
                "`manage`: segments, campaigns (create, cancel), journeys (create, version, status) and the send "
                "policy; "
                "`erase`: DELETE /v1/customers/{id}. "
                "Keys made before scopes existed hold every scope."
            )
        },
    )


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
