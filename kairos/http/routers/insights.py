"""Insights: RFM groups, cohorts, the global control group and audience forecasts.

What the event archive answers for every customer (cohorts by first purchase month, the forecast of the whole
base, RFM thresholds) runs as a query on the analytics engine: ``202 Accepted`` with a ``Location`` to poll, then
``200`` with the answer, at once for a question already answered over the same archive state today
(:mod:`kairos.insights.analytics`). The rest reads a bounded number of customers (:mod:`kairos.insights.analyses`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from aws_lambda_powertools.event_handler import Request, Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query

from kairos.audiences.sampling import CustomerSample
from kairos.core import timeutil
from kairos.core.errors import NotFoundError
from kairos.http.api import KairosRouter
from kairos.http.deps import Deps  # noqa: TC001 - Powertools reads route annotations at run time
from kairos.insights import analyses, analytics
from kairos.insights import measures as insights
from kairos.insights.analyses import COHORT_BY_PATTERN
from kairos.insights.domain import (
    CohortMatrix,
    ForecastIn,
    ForecastView,
    GlobalControlReport,
    QueryAccepted,
    RfmReport,
    RfmThresholdsView,
)
from kairos.insights.stage_domain import StagesReport

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse

router = KairosRouter()

POLL_PATH = "/v1/insights/queries/{query_id}"
QueryId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="the query's id (a 202's `query_id`)")]


def _answers(model: type, what: str) -> dict[int, OpenAPIResponse]:
    """The OpenAPI answers of a question the archive answers: 200 with the answer, or 202 and where to poll."""
    return {
        200: {
            "description": f"{what}. At once when the same question was answered over the same archive state "
            "today (the answer's `query` says which query, as of when, and the bytes it scanned).",
            "content": {content_types.APPLICATION_JSON: {"model": model}},
        },
        202: {
            "description": "The query started (or is still running): poll `Location` (GET /v1/insights/queries/"
            "{query_id}) after `Retry-After` seconds until it answers 200.",
            "headers": {
                "Location": {"description": "the URL to poll", "schema": {"type": "string"}},
                "Retry-After": {"description": "seconds to wait before polling", "schema": {"type": "integer"}},
            },
            "content": {content_types.APPLICATION_JSON: {"model": QueryAccepted}},
        },
    }


def _poll_location(request: Request, query_id: str) -> str:
    """The poll URL as the caller reached the API: behind API Gateway its domain and stage (or base path)."""
    path = POLL_PATH.format(query_id=query_id)
    event = request.resolved_event
    ctx = event.request_context
    domain, seen = ctx.domain_name, ctx.path or ""
    if not domain:  # no API Gateway in front (the local runtime serves the routes at its root)
        return path
    base = seen[: -len(event.path)] if event.path and seen.endswith(event.path) else ""
    return f"https://{domain}{base}{path}"


def _respond(answer: analytics.Answer, request: Request) -> Response:
    if answer.done:
        return _ok(answer.result)
    location = _poll_location(request, answer.query_id)
    accepted = QueryAccepted(
        query_id=answer.query_id,
        analysis=answer.analysis,  # type: ignore[arg-type]
        location=location,
        retry_after=answer.retry_after,
        started_at=answer.started_at,
    )
    return Response(
        status_code=202,
        content_type=content_types.APPLICATION_JSON,
        body=accepted.model_dump(mode="json"),
        headers={"Location": location, "Retry-After": str(answer.retry_after)},
    )


def _ask(deps: Deps, request: Request, question: tuple[str, dict[str, Any]]) -> Response:
    engine = deps.analytics() if deps.analytics is not None else None
    assert engine is not None  # the routes ask only with an engine
    answer = analytics.ask(*question, engine, deps.insights(), timeutil.now())
    return _respond(answer, request)


def _ok(body: dict[str, Any]) -> Response:
    """A 200 with a view's JSON (a route that may also answer 202 returns a Response, not a model)."""
    return Response(status_code=200, content_type=content_types.APPLICATION_JSON, body=body)


def _has_engine(deps: Deps) -> bool:
    return deps.analytics is not None and deps.analytics() is not None


@router.endpoint(
    "GET",
    "/v1/insights/rfm",
    scope="read",
    errors=(404,),
    summary="RFM groups of the latest scoring run: counts, revenue, the grid and movement",
    description="Recency, frequency and monetary quintile scores of every customer with a purchase, recomputed "
    "by each scoring run; 404 until a run has computed them.",
    tags=["insights"],
)
def get_rfm(deps: Deps) -> RfmReport:
    report = analyses.rfm_report(deps.insights())
    if report is None:
        raise NotFoundError("no scoring run has computed RFM yet")
    return RfmReport.model_validate(report)


@router.endpoint(
    "GET",
    "/v1/insights/cohorts",
    scope="read",
    errors=(400, 502),
    success=_answers(CohortMatrix, "The cohort matrix"),
    summary="Cohorts by first purchase month or a profile attribute: retention or revenue by month",
    description="By first purchase month, every customer's purchases in the event archive, as a query on the "
    "analytics engine: 202 with a `Location` to poll, or 200 at once when answered over the same archive state "
    "today. By `attributes.<name>`, the customers' profiles: every customer of a store up to 10,000 customers, "
    "a sample spread over a larger one (`sampled`, `sample_size`).",
    tags=["insights"],
)
def get_cohorts(
    deps: Deps,
    request: Request,
    by: Annotated[
        str,
        Query(
            max_length=200,
            pattern=COHORT_BY_PATTERN,
            description="first_purchase_month, or attributes.<name> (e.g. the source)",
        ),
    ] = "first_purchase_month",
    metric: Annotated[Literal["retention", "revenue"], Query()] = "retention",
    max_periods: Annotated[int, Query(ge=1, le=60, description="months since the first purchase")] = 24,
) -> Response[CohortMatrix | QueryAccepted]:
    analyses.check_cohorts(by, metric)
    if by == insights.FIRST_PURCHASE_MONTH and _has_engine(deps):
        return _ask(deps, request, analytics.cohorts_question(metric, max_periods))
    matrix = analyses.cohorts(deps.customers(), by, metric, max_periods, timeutil.now())
    return _ok(CohortMatrix.model_validate(matrix).model_dump(mode="json"))


@router.endpoint(
    "GET",
    "/v1/insights/stages",
    scope="read",
    errors=(404, 502),
    success=_answers(StagesReport, "The stages report"),
    summary="Funnel stages: customers per stage, conversion from stage to stage and the days between",
    description="From the events that name a stage (`properties.stage`: inbound messages an intent with a stage "
    "tagged, or your own events), in the event archive, as a query on the analytics engine: 202 with a "
    "`Location` to poll, or 200 at once when answered over the same archive state today. 404 when the "
    "deployment has no analytics engine.",
    tags=["insights"],
)
def get_stages(deps: Deps, request: Request) -> Response[StagesReport | QueryAccepted]:
    if not _has_engine(deps):
        raise NotFoundError("the stages report runs on the analytics engine, which this deployment has not")
    return _ask(deps, request, analytics.stages_question())


@router.endpoint(
    "GET",
    "/v1/insights/global-control",
    scope="read",
    errors=(400, 404),
    summary="Incremental revenue of everything sent: everybody else against the global control group",
    description="The global control group is a stable share (GlobalControlShare) of all customers that no "
    "campaign or journey messages. 404 when the deployment has none.",
    tags=["insights"],
)
def get_global_control(deps: Deps, days: Annotated[int, Query(ge=1, le=365)] = 30) -> GlobalControlReport:
    share = deps.global_control_share
    if share <= 0:
        # Nothing the request could change: the report does not exist in this deployment (as RFM before a run).
        raise NotFoundError("this deployment has no global control group (set GlobalControlShare > 0)")
    report = analyses.global_control_report(deps.customers(), timeutil.now(), days, share)
    return GlobalControlReport.model_validate(report)


@router.endpoint(
    "POST",
    "/v1/insights/forecast",
    scope="read",
    errors=(400, 404, 502),
    success=_answers(ForecastView, "The forecast"),
    summary="Pessimistic, neutral and optimistic conversions and revenue of an audience over a period",
    description="From the minimum, mean and maximum of comparable past periods (the same dates in earlier "
    "years, the periods just before) and of finished campaigns to the same segment, scaled to the audience. "
    "Without a segment, filters or journey (every customer), from the event archive as a query on the "
    "analytics engine: 202 with a `Location` to poll, or 200 at once when answered over the same archive state "
    "today. An audience of a segment, filters or a journey reads the customers: every customer of a store up "
    "to 10,000 customers, a sample spread over a larger one (`sampled`, `sample_size`; the audience is then "
    "scaled to the store).",
    tags=["insights"],
)
def post_forecast(
    body: Annotated[ForecastIn, Body()], deps: Deps, request: Request
) -> Response[ForecastView | QueryAccepted]:
    everybody = not body.segment and not body.filters and body.journey_id is None
    if everybody and _has_engine(deps):
        question = analytics.forecast_question(body.start, body.end, body.years, body.previous_periods)
        return _ask(deps, request, question)
    out = analyses.forecast_audience(
        body, deps.customers(), deps.segments(), timeutil.now(), deps.journeys(), deps.messages()
    )
    return _ok(ForecastView.model_validate(out).model_dump(mode="json"))


@router.endpoint(
    "GET",
    "/v1/insights/rfm/thresholds",
    scope="read",
    errors=(502,),
    success=_answers(RfmThresholdsView, "The RFM quintile cut points"),
    summary="RFM quintile cut points over every customer with a purchase, as of now, from the event archive",
    description="Recency (days since the last purchase), frequency (purchase moments) and monetary (revenue) at "
    "20/40/60/80% over every customer with a purchase, as a query on the analytics engine: 202 with a "
    "`Location` to poll, or 200 at once when answered over the same archive state today. A deployment without "
    "an engine answers from the customers read (a sample of a store over 10,000 customers: `sampled`).",
    tags=["insights"],
)
def get_rfm_thresholds(deps: Deps, request: Request) -> Response[RfmThresholdsView | QueryAccepted]:
    if _has_engine(deps):
        return _ask(deps, request, analytics.rfm_thresholds_question())
    now = timeutil.now()
    read = CustomerSample(deps.customers())
    values = [v for r in read if (v := insights.rfm_values(r.aggregates, now)) is not None]
    view = {**insights.rfm_thresholds(values, now).to_dict(), "sampled": read.sampled}
    view["sample_size"] = read.read if read.sampled else None
    return _ok(RfmThresholdsView.model_validate(view).model_dump(mode="json"))


@router.endpoint(
    "GET",
    "/v1/insights/queries/<query_id>",
    scope="read",
    errors=(400, 404, 502),
    success={
        200: {
            "description": "The query is done: the answer of the question that started it, as that route answers "
            "200 (CohortMatrix, ForecastView, RfmThresholdsView or StagesReport)",
            "content": {
                content_types.APPLICATION_JSON: {
                    "model": CohortMatrix | ForecastView | RfmThresholdsView | StagesReport
                }
            },
        },
        202: _answers(QueryAccepted, "")[202],
    },
    summary="Poll a question the event archive answers: 202 while its query runs, then 200 with the answer",
    description="The `Location` of a 202 from GET /v1/insights/cohorts, POST /v1/insights/forecast, GET "
    "/v1/insights/rfm/thresholds or GET /v1/insights/stages. 202 (with `Retry-After`) while the query runs; 200 "
    "with the answer once it is "
    "done (the answer stays for 7 days); 502 with the engine's reason when the query failed or was cancelled "
    "(asking the question again starts a new one); 404 for an unknown or forgotten query.",
    tags=["insights"],
)
def get_query(
    query_id: QueryId, deps: Deps, request: Request
) -> Response[CohortMatrix | ForecastView | RfmThresholdsView | StagesReport | QueryAccepted]:
    engine = deps.analytics() if deps.analytics is not None else None
    if engine is None:
        raise NotFoundError(f"no analytics query {query_id}: this deployment has no analytics engine")
    return _respond(analytics.poll(query_id, engine, deps.insights()), request)
