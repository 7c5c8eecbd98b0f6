"""What the insights and results endpoints accept and answer."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from kairos.audiences.domain import Filter
from kairos.core.schema_rules import JSON_INTEGER, empty, left_out, no_two
from kairos.customers.schemas import _ID_PATTERN


class SegmentPreviewIn(BaseModel):
    """An audience to count: a saved segment's name, or filters (the body of ``PUT /v1/segments/{name}``)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=no_two(left_out("segment"), empty("filters")))

    segment: Annotated[str | None, Field(pattern=_ID_PATTERN, description="a saved segment's name")] = None
    filters: Annotated[list[Filter], Field(max_length=50)] = Field(default_factory=list)
    sample: Annotated[int, Field(ge=0, le=100, description="how many customer ids to return"), JSON_INTEGER] = 20

    @model_validator(mode="after")
    def _one(self) -> SegmentPreviewIn:
        if self.segment and self.filters:
            raise ValueError("give a segment or filters, not both")
        return self


class SegmentPreview(BaseModel):
    count: int = Field(description="customers in the audience among those read")
    scanned: int = Field(description="customers read")
    sample: list[str] = Field(description="ids of customers in the audience, the first in id order")
    as_of: str
    sampled: bool = Field(
        default=False,
        description="true when the store holds more customers than one request reads (10,000): `count` is then "
        "over a sample spread over the whole store and `estimate` scales it to the store",
    )
    sample_size: int = Field(default=0, description="customers read (equal to `scanned`)")
    sample_fraction: float = Field(default=1.0, description="the share of the store read (1.0: every customer)")
    estimate: int = Field(default=0, description="customers in the audience in the whole store (`count` unsampled)")


class QueryInfo(BaseModel):
    """How an answer from the event archive was computed."""

    query_id: str = Field(description="poll it at GET /v1/insights/queries/{query_id}")
    engine: str = Field(description="athena (AWS) or duckdb (local)")
    as_of: str = Field(description="the time the answer is as of: events before it count")
    data_version: str = Field(description="the archive's state the answer was computed over")
    bytes_scanned: int = Field(description="bytes the engine read")
    cost_usd: float = Field(description="what Athena bills for those bytes ($5 per TB, at least 10 MB); 0 locally")


class QueryAccepted(BaseModel):
    """A question the event archive answers: started, poll ``location`` until it answers 200."""

    query_id: str
    analysis: Literal["cohorts", "forecast", "rfm_thresholds", "stages"]
    status: Literal["running"] = "running"
    location: str = Field(description="the URL to poll (also the `Location` header)")
    retry_after: int = Field(description="seconds to wait before polling (also the `Retry-After` header)")
    started_at: str


class RfmThresholdsView(BaseModel):
    """RFM quintile cut points over every customer with a purchase, from the event archive."""

    recency_days: list[float] = Field(description="20/40/60/80% cut points of days since the last purchase")
    frequency: list[float] = Field(description="... of purchase moments (distinct clock hours with a purchase)")
    monetary: list[float] = Field(description="... of revenue")
    customers: int = Field(description="customers with a purchase")
    as_of: str
    sampled: bool = Field(default=False, description="without an engine, on a store over 10,000 customers")
    sample_size: int | None = Field(default=None, description="customers read, when sampled")
    query: QueryInfo | None = Field(default=None, description="the archive query")


class RfmReport(BaseModel):
    """The latest scoring run's RFM (see the README's RFM grid)."""

    as_of: str = Field(description="the scoring run's time")
    thresholds: dict[str, Any] = Field(
        description="quintile cut points (20/40/60/80%) of recency_days, frequency and monetary over purchasers"
    )
    parts: int = Field(description="summaries added up, one per invocation that scored part of a scan shard")
    customers: int = Field(description="customers with a purchase, scored")
    groups: list[dict[str, Any]] = Field(description="every named RFM group: customers, share, revenue")
    grid: list[dict[str, Any]] = Field(description="the R x F grid: customers per cell and the cell's group")
    movement: dict[str, dict[str, int]] = Field(
        description="group at the previous run ('none': not scored then) -> group now -> customers"
    )
    status: Literal["complete", "thresholds_only"] = Field(
        "complete",
        description="thresholds_only: the run set its cut points and has grouped nobody yet (the counts are empty)",
    )
    note: str | None = Field(None, description="what a thresholds_only report is waiting for")


class CohortMatrix(BaseModel):
    by: str
    metric: Literal["retention", "revenue"]
    periods: list[int] = Field(description="months since the cohort's first purchase month")
    cohorts: list[dict[str, Any]] = Field(
        description="per cohort: size, values (customers with a purchase, or revenue, per period), reachable "
        "(customers whose period has begun) and rates (retention: values / reachable; null before it begins), "
        "partial (per period: true while the period is not over as of the answer's time)"
    )
    customers: int = Field(description="customers read (from the archive: customers with a purchase)")
    sampled: bool = Field(
        default=False, description="by an attribute, on a store over 10,000 customers: the cohorts of a sample"
    )
    sample_size: int | None = Field(default=None, description="customers read, when sampled")
    query: QueryInfo | None = Field(default=None, description="by first purchase month: the archive query")


class ForecastIn(BaseModel):
    """The audience (a saved segment, filters, or a journey's entry segment) and the period to forecast.

    ``end`` is after ``start``, at most 366 days after it (a rule JSON Schema cannot state).
    """

    model_config = ConfigDict(
        extra="forbid", json_schema_extra=no_two(left_out("segment"), empty("filters"), left_out("journey_id"))
    )

    segment: Annotated[str | None, Field(pattern=_ID_PATTERN)] = None
    filters: Annotated[list[Filter], Field(max_length=50)] = Field(default_factory=list)
    journey_id: Annotated[str | None, Field(pattern=r"^[0-9a-f]{32}$")] = None
    start: date
    end: date = Field(description="the first day after the period: after start, at most 366 days after it")
    years: Annotated[int, Field(ge=0, le=10, description="the same dates in this many earlier years"), JSON_INTEGER] = 3
    previous_periods: Annotated[
        int, Field(ge=0, le=12, description="periods of the same length just before"), JSON_INTEGER
    ] = 3

    @model_validator(mode="after")
    def _check(self) -> ForecastIn:
        given = sum(x is not None and x != [] for x in (self.segment, self.filters or None, self.journey_id))
        if given > 1:
            raise ValueError("give one of segment, filters or journey_id")
        if self.end <= self.start:
            raise ValueError("end must be after start")
        if (self.end - self.start).days > 366:
            raise ValueError("a forecast period is at most 366 days")
        return self


class ForecastView(BaseModel):
    audience: int = Field(description="customers in the audience now")
    start: str
    end: str
    pessimistic: dict[str, Any] = Field(description="the minimum over comparable periods")
    neutral: dict[str, Any] = Field(description="the mean")
    optimistic: dict[str, Any] = Field(description="the maximum")
    periods: list[dict[str, Any]] = Field(description="every comparable period and past campaign used")
    left_out: list[dict[str, Any]] = Field(
        default_factory=list,
        description="comparable periods the data does not stand behind (kind, start, end, reason): one ending "
        "before the first purchase, or one the data begins less than a period before, whose customers were all new",
    )
    sampled: bool = Field(
        default=False,
        description="an audience of filters on a store over 10,000 customers: the rates of a sample, the audience "
        "scaled to the store",
    )
    sample_size: int | None = Field(default=None, description="customers read, when sampled")
    query: QueryInfo | None = Field(default=None, description="the whole customer base: the archive query")


class CampaignResults(BaseModel):
    """What a campaign brought, against its control group."""

    campaign_id: str
    status: str
    launched_at: str
    attribution_days: int
    attribution_ends_at: str
    audience: dict[str, int]
    steps: list[dict[str, Any]] = Field(
        description="per step and channel: messages by status (sent, unconfirmed, failed, skipped...), opened, "
        "clicked, converted (last message before the first order) and revenue"
    )
    by_day: list[dict[str, Any]]
    treatment: dict[str, Any]
    control: dict[str, Any]
    uplift: dict[str, Any] = Field(
        description="conversion rate and revenue per customer, treatment minus control, with 95% intervals"
    )
    paths: dict[str, Any] | None = Field(
        default=None,
        description="where the audience's customers are: active, completed, exits by reason, waiting at each node",
    )
    variants_by_node: dict[str, Any] = Field(
        default_factory=dict,
        description="with content variants, under the node 'offer': {variants: {name: {weight, sends, opens, "
        "clicks, conversions, revenue, open_rate, click_rate, conversion_rate ({value, low, high}, 95% Wilson)}}, "
        "promoted, winner, test ({metric, confidence, min_sends})}",
    )


class GlobalControlReport(BaseModel):
    """Customers Kairos may message against the global control group, over the last ``days`` days."""

    share: float = Field(description="the deployment's GlobalControlShare")
    days: int
    start: str
    end: str
    treatment: dict[str, Any] = Field(description="customers outside the global control group")
    control: dict[str, Any] = Field(description="the global control group")
    uplift: dict[str, Any] = Field(description="conversion rate and revenue per customer, with 95% intervals")
    incremental_revenue: dict[str, Any] | None = Field(
        description="uplift in revenue per customer times the customers outside the group, with its interval"
    )
    sampled: bool = Field(
        default=False,
        description="on a store over 10,000 customers: the groups of a sample, the customers reached scaled to the "
        "store",
    )
    sample_size: int | None = Field(default=None, description="customers read, when sampled")
