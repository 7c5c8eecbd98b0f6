"""Insights: RFM groups, cohorts, the global control group and audience forecasts."""

from __future__ import annotations

from typing import Annotated, Literal

from aws_lambda_powertools.event_handler.openapi.params import Body, Query

from kairos.core import timeutil
from kairos.core.errors import InvalidInputError, NotFoundError
from kairos.http.api import KairosRouter, check_filter_values
from kairos.http.deps import Deps  # noqa: TC001 - Powertools reads route annotations at run time
from kairos.insights import analyses
from kairos.insights.domain import CohortMatrix, ForecastIn, ForecastView, GlobalControlReport, RfmReport

router = KairosRouter()


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
    errors=(400,),
    summary="Cohorts by first purchase month or a profile attribute: retention or revenue by month",
    tags=["insights"],
)
def get_cohorts(
    deps: Deps,
    by: Annotated[
        str, Query(max_length=200, description="first_purchase_month, or attributes.<name> (e.g. the source)")
    ] = "first_purchase_month",
    metric: Annotated[Literal["retention", "revenue"], Query()] = "retention",
    max_periods: Annotated[int, Query(ge=1, le=60, description="months since the first purchase")] = 24,
) -> CohortMatrix:
    return CohortMatrix.model_validate(analyses.cohorts(deps.customers(), by, metric, max_periods, timeutil.now()))


@router.endpoint(
    "GET",
    "/v1/insights/global-control",
    scope="read",
    errors=(400,),
    summary="Incremental revenue of everything sent: everybody else against the global control group",
    description="The global control group is a stable share (GlobalControlShare) of all customers that no "
    "campaign or journey messages. 400 when the deployment has none.",
    tags=["insights"],
)
def get_global_control(deps: Deps, days: Annotated[int, Query(ge=1, le=365)] = 30) -> GlobalControlReport:
    share = deps.global_control_share
    if share <= 0:
        raise InvalidInputError("GlobalControlShare", "this deployment has no global control group (set it > 0)")
    report = analyses.global_control_report(deps.customers(), timeutil.now(), days, share)
    return GlobalControlReport.model_validate(report)


@router.endpoint(
    "POST",
    "/v1/insights/forecast",
    scope="read",
    errors=(400, 404),
    summary="Pessimistic, neutral and optimistic conversions and revenue of an audience over a period",
    description="From the minimum, mean and maximum of comparable past periods (the same dates in earlier "
    "years, the periods just before) and of finished campaigns to the same segment, scaled to the audience.",
    tags=["insights"],
)
def post_forecast(body: Annotated[ForecastIn, Body()], deps: Deps) -> ForecastView:
    check_filter_values(body.filters, "filters")
    out = analyses.forecast_audience(
        body, deps.customers(), deps.segments(), timeutil.now(), deps.journeys(), deps.messages()
    )
    return ForecastView.model_validate(out)
