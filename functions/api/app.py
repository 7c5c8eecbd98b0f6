"""The Kairos HTTP API handler: the resolver, the routers of every part of the product, the OpenAPI document."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from aws_lambda_powertools.event_handler import Response, content_types

from kairos import __version__, wiring
from kairos.core.config import require
from kairos.core.observability import logger, metrics, tracer
from kairos.customers.schemas import MAX_BODY_BYTES, SCOPES
from kairos.http.api import API_KEY_SCHEME, make_resolver
from kairos.http.deps import DEPS_KEY, ApiDeps, Lazy
from kairos.http.routers import (
    campaigns,
    customers,
    insights,
    journeys,
    messages,
    models,
    products,
    promotions,
    segments,
)

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

# The settings this function needs: a deployment without one fails here, at cold start, naming it.
SETTINGS = require(
    "events_table",
    "customers_table",
    "archive_bucket",
    "messages_table",
    "segments_table",
    "products_table",
    "journeys_table",
    "journey_paths_table",
    "insights_table",
    "promo_table",
)
# Which engine answers questions over the event archive (Athena; DuckDB in the local runtime).
ANALYTICS = wiring.analytics_settings()
# The bundled model's metadata ships with the function (see functions/api/Makefile); a checkout uses models/.
BUNDLED_MODEL = next(
    (
        p
        for p in (Path(__file__).parent / "model", Path(__file__).resolve().parents[2] / "models" / "default")
        if (p / "metadata.json").exists()
    ),
    Path(__file__).parent / "model",
)

# Once per cold start; each store is built on its first use, so a request pays only for the stores it touches.
DEPS = ApiDeps(
    customers=Lazy(lambda: wiring.customer_store(SETTINGS)),
    archive=Lazy(lambda: wiring.event_archive(SETTINGS)),
    messages=Lazy(lambda: wiring.message_log(SETTINGS)),
    decisions=Lazy(lambda: wiring.decision_log(SETTINGS)),
    segments=Lazy(lambda: wiring.segment_store(SETTINGS)),
    products=Lazy(lambda: wiring.product_catalogue(SETTINGS)),
    policy=Lazy(lambda: wiring.policy_store(SETTINGS)),
    insights=Lazy(lambda: wiring.insight_store(SETTINGS)),
    journeys=Lazy(lambda: wiring.journey_store(SETTINGS)),
    event_types=Lazy(lambda: wiring.event_type_catalogue(SETTINGS)),
    promo_pools=Lazy(lambda: wiring.promo_pools(SETTINGS)),
    retention=SETTINGS.retention,
    clock_skew=SETTINGS.clock_skew,
    global_control_share=SETTINGS.global_control_share,
    links=Lazy(lambda: wiring.unsubscribe_links(SETTINGS, base=request_base())),
    analytics=Lazy(lambda: wiring.analytics_engine(SETTINGS, ANALYTICS)),
    contact_links=Lazy(lambda: wiring.contact_links(SETTINGS)),
    link_key=Lazy(lambda: wiring.unsubscribe_key(SETTINGS)),
    model_cards=Lazy(lambda: wiring.model_cards(SETTINGS, BUNDLED_MODEL)),
)


def request_base() -> str:
    """The API's URL as this request reached it (``https://<domain>/<stage>``): where links point without a
    ``PublicUrl`` (the API's own functions cannot name the API in the template)."""
    ctx = app.current_event.request_context
    domain, stage = ctx.domain_name, ctx.stage
    return f"https://{domain}/{stage}" if domain else f"/{stage}"


app = make_resolver()
for part in (customers, segments, campaigns, journeys, insights, products, messages, promotions, models):
    app.include_router(part.router)


@app.get("/v1/openapi.json", summary="This document", tags=["meta"], include_in_schema=False)
def openapi_document():  # noqa: ANN201 - a raw document, not a model
    return Response(status_code=200, content_type=content_types.APPLICATION_JSON, body=openapi_json())


@lru_cache(maxsize=1)
def openapi_json() -> str:
    # Powertools' OpenAPI models are a tenth of the cold start, and only this route needs them.
    from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer

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
                "`manage`: segments, campaigns (create, cancel), journeys (create, version, status), the send "
                "policy and promo code pools; "
                "`erase`: DELETE /v1/customers/{id}. "
                "Keys made before scopes existed hold every scope."
            )
        },
    )


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    # Powertools clears the context after every request, so the routes' dependencies go back in each time.
    app.append_context(**{DEPS_KEY: DEPS})
    return app.resolve(event, context)
