"""Which engine answers questions over the event archive, and where it finds the archive: parsed once from the
environment of the functions that query it (the API; the template sets Athena, the local runtime DuckDB), which
``kairos.wiring.analytics_settings`` hands over.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:
    from collections.abc import Mapping

ENV_ANALYTICS_ENGINE = "KAIROS_ANALYTICS_ENGINE"
ENV_ANALYTICS_WORKGROUP = "KAIROS_ANALYTICS_WORKGROUP"
ENV_ANALYTICS_DATABASE = "KAIROS_ANALYTICS_DATABASE"
ENV_ANALYTICS_TABLE = "KAIROS_ANALYTICS_TABLE"
ENVIRONMENT = {
    "engine": ENV_ANALYTICS_ENGINE,
    "workgroup": ENV_ANALYTICS_WORKGROUP,
    "database": ENV_ANALYTICS_DATABASE,
    "table": ENV_ANALYTICS_TABLE,
}


class AnalyticsSettings(BaseModel):
    """The analytics engine's settings.

    ``engine`` empty: no engine; the API answers from a bounded read of the customers instead.

    Raises
    ------
    ValueError
        Athena without its workgroup or database (naming the variable), at the handler's cold start.
    """

    model_config = ConfigDict(frozen=True)

    engine: Literal["", "athena", "duckdb"] = Field(default="", description="athena in AWS, duckdb locally")
    workgroup: str = Field(default="", description="the Athena workgroup (results location, bytes cutoff)")
    database: str = Field(default="", description="the Glue database of the events table")
    table: str = Field(default="events", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="the events table")

    @model_validator(mode="after")
    def _athena_needs_its_names(self) -> AnalyticsSettings:
        if self.engine == "athena":
            for field in ("workgroup", "database"):
                if not getattr(self, field):
                    raise ValueError(f"{ENVIRONMENT[field]} is not set (the Athena {field})")
        return self

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> AnalyticsSettings:
        """Read the settings from an environment; unset or empty keeps the default."""
        return cls(**{field: environ[var] for field, var in ENVIRONMENT.items() if environ.get(var)})
