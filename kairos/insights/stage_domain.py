"""The funnel stages report as the API shows it (``GET /v1/insights/stages``; see ``kairos.insights.stage_report``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from kairos.insights.domain import QueryInfo


class StageCount(BaseModel):
    stage: str
    now: int = Field(ge=0, description="customers whose latest stage it is")
    reached: int = Field(ge=0, description="customers who ever reached it")


class MoveDays(BaseModel):
    """Days a move took: the mean and quartiles (approximate on Athena)."""

    mean: float | None
    p25: float | None
    p50: float | None
    p75: float | None
    p90: float | None


class StageMove(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_stage: str = Field(alias="from")
    to: str
    customers: int = Field(ge=0, description="customers who moved from the one stage straight to the other")
    conversion: float | None = Field(description="that as a share of the customers who reached the first stage")
    days: MoveDays


class StagesReport(BaseModel):
    """Customers per stage, conversion from stage to stage and the time between, over the event archive."""

    customers: int = Field(ge=0, description="customers with a stage")
    stages: list[StageCount]
    moves: list[StageMove]
    query: QueryInfo | None = Field(default=None, description="the archive query")
