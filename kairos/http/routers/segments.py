"""Saved audience segments and audience previews."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Body, Path

from kairos.audiences import segments as audiences
from kairos.audiences.domain import SegmentBody, SegmentIn, SegmentList, SegmentView
from kairos.core import timeutil
from kairos.core.errors import InvalidInputError, NotFoundError
from kairos.customers.schemas import _ID_PATTERN
from kairos.http.api import KairosRouter
from kairos.http.deps import Deps  # noqa: TC001 - Powertools reads route annotations at run time
from kairos.insights.domain import SegmentPreview, SegmentPreviewIn

router = KairosRouter()

SegmentName = Annotated[str, Path(pattern=_ID_PATTERN, description="The segment's name")]


@router.endpoint(
    "PUT",
    "/v1/segments/<name>",
    scope="manage",
    summary="Save an audience segment (all filters must hold)",
    description="The path names the segment (the body holds its filters only). Filter fields: `purchase_count`, "
    "`attributes.<name>`, `events.<type>`... (an unknown field is a 400 listing them). A filter's `value` follows "
    "the limits of profile attributes.",
    links={"/v1/segments/{name}": {"name": "$request.path.name"}},
    tags=["campaigns"],
)
def put_segment(name: SegmentName, body: Annotated[SegmentBody, Body()], deps: Deps) -> SegmentView:
    segment = SegmentIn(name=name, filters=body.filters)
    return SegmentView.model_validate(audiences.save_segment(segment, deps.segments(), timeutil.now()))


@router.endpoint(
    "GET", "/v1/segments/<name>", scope="read", errors=(400, 404), summary="A saved segment", tags=["campaigns"]
)
def get_segment(name: SegmentName, deps: Deps) -> SegmentView:
    return SegmentView.model_validate(deps.segments().get_segment(name))


@router.endpoint(
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
def delete_segment(name: SegmentName, deps: Deps) -> None:
    audiences.delete_segment(name, deps.segments(), deps.journeys())


@router.endpoint(
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
def preview_segment(body: Annotated[SegmentPreviewIn, Body()], deps: Deps) -> SegmentPreview:
    filters = list(body.filters)
    if body.segment:
        try:
            doc = deps.segments().get_segment(body.segment)
        except NotFoundError as exc:
            raise InvalidInputError("segment", f"no segment '{body.segment}'") from exc
        filters = SegmentIn.model_validate({k: v for k, v in doc.items() if k != "updated_at"}).filters
    out = audiences.preview_segment(filters, deps.customers(), timeutil.now(), deps.messages(), body.sample)
    return SegmentPreview.model_validate(out)


@router.endpoint("GET", "/v1/segments", scope="read", summary="All saved segments", tags=["campaigns"])
def list_segments(deps: Deps) -> SegmentList:
    return SegmentList(segments=[SegmentView.model_validate(s) for s in deps.segments().list_segments()])
