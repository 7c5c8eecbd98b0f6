"""Messages as customers get them: the preview."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Body

from kairos.core import timeutil
from kairos.http.api import KairosRouter
from kairos.http.deps import Deps  # noqa: TC001 - Powertools reads route annotations at run time
from kairos.journeys.preview_domain import PreviewIn, PreviewOut
from kairos.models.recommendations import POPULATION_KEY

router = KairosRouter()


@router.endpoint(
    "POST",
    "/v1/messages/preview",
    scope="read",
    errors=(404,),
    summary="Render a message for a customer and an event exactly as the send would, without sending it",
    tags=["journeys"],
)
def preview_message(body: Annotated[PreviewIn, Body()], deps: Deps) -> PreviewOut:
    from kairos.journeys.preview import node_content, preview  # loads the template language: only when asked

    topic, transactional, pool, content = body.topic, body.transactional, None, body.content
    if body.journey_id is not None:
        content, definition, pool = node_content(deps.journeys(), body.journey_id, str(body.node), body.variant)
        topic, transactional = definition.topic, definition.transactional
    customers = deps.customers()
    out = preview(
        body.customer_id,
        body.channel,
        content,
        customers,
        timeutil.now(),
        topic=topic,
        transactional=transactional,
        event=body.event.as_event() if body.event else None,
        promo_pool=pool,
        links=deps.links() if deps.links is not None else None,
        population=customers.get_recommendation(POPULATION_KEY),
        products=deps.products().get_products,
    )
    return PreviewOut.model_validate(out)
