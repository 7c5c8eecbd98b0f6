"""Journeys, the intents that tag inbound messages, and the send policy every journey and campaign obeys."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query

from kairos.core import timeutil
from kairos.customers.schemas import _ID_PATTERN
from kairos.http.api import KairosRouter
from kairos.http.deps import Deps  # noqa: TC001 - Powertools reads route annotations at run time
from kairos.journeys import definitions, promotion
from kairos.journeys.domain import JourneyIn, JourneyList, JourneyResults, JourneyStatusIn, JourneyView
from kairos.journeys.intent_domain import IntentIn, IntentList, IntentView
from kairos.journeys.results import journey_results
from kairos.journeys.variant_domain import PromoteIn, PromotionView
from kairos.messaging.policy import DEFAULT_POLICY, SendPolicy

router = KairosRouter()

JourneyId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="The id Kairos gave the journey")]
NodeName = Annotated[str, Path(pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,63}$", description="A node of the journey")]
IntentName = Annotated[str, Path(pattern=_ID_PATTERN, description="The intent's name")]


def _journey_view(doc: dict) -> JourneyView:
    return JourneyView.model_validate(doc)


@router.endpoint(
    "POST",
    "/v1/journeys",
    scope="manage",
    status_code=201,
    summary="Create a journey (a draft: activate it to let customers in)",
    description="Errors name the node and the field, e.g. `nodes.wait_open.on_timeout`.",
    links={"/v1/journeys/{journey_id}": {"journey_id": "$response.body#/journey_id"}},
    tags=["journeys"],
)
def post_journey(journey: Annotated[JourneyIn, Body()], deps: Deps) -> JourneyView:
    return _journey_view(definitions.create_journey(journey, deps.journeys(), timeutil.now()))


@router.endpoint(
    "GET", "/v1/journeys", scope="read", errors=(400,), summary="Journeys, a page at a time", tags=["journeys"]
)
def list_journeys(
    deps: Deps,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    next_token: Annotated[
        str | None, Query(max_length=2048, description="The next_token of the previous page, as returned")
    ] = None,
) -> JourneyList:
    items, token = deps.journeys().list_journeys(limit, next_token)
    return JourneyList(journeys=[_journey_view(i) for i in items], next_token=token)


@router.endpoint(
    "GET",
    "/v1/journeys/<journey_id>",
    scope="read",
    errors=(400, 404),
    summary="A journey (its current version, or ?version=n)",
    tags=["journeys"],
)
def get_journey(journey_id: JourneyId, deps: Deps, version: Annotated[int | None, Query(ge=1)] = None) -> JourneyView:
    return _journey_view(deps.journeys().get_journey(journey_id, version))


@router.endpoint(
    "PUT",
    "/v1/journeys/<journey_id>",
    scope="manage",
    errors=(404,),
    summary="A new version of a journey (paths already under way finish on the version they entered)",
    tags=["journeys"],
)
def put_journey(journey_id: JourneyId, journey: Annotated[JourneyIn, Body()], deps: Deps) -> JourneyView:
    return _journey_view(definitions.update_journey(journey_id, journey, deps.journeys(), timeutil.now()))


@router.endpoint(
    "POST",
    "/v1/journeys/<journey_id>/status",
    scope="manage",
    errors=(404,),
    summary="Activate, pause or archive a journey (draft -> active <-> paused -> archived)",
    tags=["journeys"],
)
def post_journey_status(journey_id: JourneyId, change: Annotated[JourneyStatusIn, Body()], deps: Deps) -> JourneyView:
    return _journey_view(definitions.set_status(journey_id, change.status, deps.journeys(), timeutil.now()))


@router.endpoint(
    "GET",
    "/v1/journeys/<journey_id>/results",
    scope="read",
    errors=(400, 404),
    summary="Where the journey's customers are, how their paths ended, what it sent and what it brought",
    description="Conversions are orders within the journey's `attribution_days` after a customer entered, "
    "measured alike for entrants and the journey's control group; uplift intervals are 95%.",
    tags=["journeys"],
)
def get_journey_results(journey_id: JourneyId, deps: Deps) -> JourneyResults:
    return JourneyResults.model_validate(
        journey_results(journey_id, deps.journeys(), deps.messages(), deps.customers())
    )


@router.endpoint(
    "POST",
    "/v1/journeys/<journey_id>/nodes/<node_id>/promote",
    scope="manage",
    errors=(404,),
    summary="Promote a content variant of a message or cycle node: it takes all the node's traffic",
    description='From the next message on, running paths included; `{"variant": null}` splits the traffic by '
    "weight again. Results per variant: `variants_by_node` of the journey's results.",
    tags=["journeys"],
)
def post_promote_variant(
    journey_id: JourneyId, node_id: NodeName, body: Annotated[PromoteIn, Body()], deps: Deps
) -> PromotionView:
    return PromotionView.model_validate(promotion.promote_variant(journey_id, node_id, body.variant, deps.journeys()))


@router.endpoint(
    "PUT",
    "/v1/intents/<name>",
    scope="manage",
    summary="Save an intent: keywords and phrases (English and Russian, any word form) that tag inbound messages",
    tags=["journeys"],
)
def put_intent(name: IntentName, intent: Annotated[IntentIn, Body()], deps: Deps) -> IntentView:
    doc = {**intent.model_dump(mode="json"), "name": name, "updated_at": timeutil.now().isoformat()}
    deps.journeys().put_intent(doc)
    deps.intents.forget()
    return IntentView.model_validate(doc)


@router.endpoint("GET", "/v1/intents", scope="read", summary="Every intent", tags=["journeys"])
def list_intents(deps: Deps) -> IntentList:
    return IntentList(intents=[IntentView.model_validate(d) for d in deps.journeys().list_intents()])


@router.endpoint(
    "GET",
    "/v1/policy",
    scope="read",
    summary="The send policy: default quiet hours per channel and frequency caps",
    description="Every journey and campaign obeys it unless it is `transactional`. Before any `PUT` this is the "
    "built-in default.",
    tags=["journeys"],
)
def get_policy(deps: Deps) -> SendPolicy:
    doc = deps.policy().get_policy()
    return SendPolicy.model_validate(doc) if doc is not None else DEFAULT_POLICY


@router.endpoint(
    "PUT",
    "/v1/policy",
    scope="manage",
    summary="Set the send policy (replaces it whole; holds everywhere within a minute)",
    description="`quiet_hours` per channel in the customer's local time; `frequency_caps` per channel and `all` "
    "(across channels), each with `per_day` and/or `per_week`. An empty object lifts every default.",
    tags=["journeys"],
)
def put_policy(policy: Annotated[SendPolicy, Body()], deps: Deps) -> SendPolicy:
    deps.policy().put_policy(policy.model_dump(mode="json"))
    return policy
