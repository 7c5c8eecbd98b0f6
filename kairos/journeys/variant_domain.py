"""Content variants of a message or cycle node, as the API accepts them, and the promotion of one of them.

A node with ``variants`` sends each path one of them (by weight, fixed per path); the message log names it, the
results compare them, and a promoted variant takes all the node's traffic (:mod:`kairos.journeys.variants`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from kairos.core.schema_rules import JSON_INTEGER, JSON_NUMBER, exactly_one, given, when
from kairos.customers.schemas import _ID_PATTERN
from kairos.messaging.content import Messages


class ContentVariant(BaseModel):
    """One version of a node's content: a path gets it with a probability proportional to ``weight``."""

    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, Field(pattern=_ID_PATTERN)]
    weight: Annotated[
        float, Field(gt=0, le=1000, description="relative: weights 1 and 3 send 25% and 75%"), JSON_NUMBER
    ] = 1.0
    content: Messages


class AutoPromote(BaseModel):
    """Promote the winning variant by itself: once every variant has ``min_sends`` delivered messages and one
    beats each other on ``metric`` with ``confidence`` (checked hourly, see :mod:`kairos.journeys.variants`)."""

    model_config = ConfigDict(extra="forbid")
    metric: Literal["open", "click", "conversion"] = "click"
    confidence: Annotated[float, Field(ge=0.8, le=0.999), JSON_NUMBER] = 0.95
    min_sends: Annotated[int, Field(ge=20, le=10_000_000), JSON_INTEGER] = 200


ContentVariants = Annotated[list[ContentVariant], Field(min_length=2, max_length=10)]
VARIANTS_HELP = "content variants (instead of content): each path gets one, by weight; the message log names it"


def check_content(
    content: Messages | None,
    variants: list[ContentVariant] | None,
    auto: AutoPromote | None,
    channels: list[str],
    what: str = "content",
) -> None:
    """Every channel the node sends on has content: from ``content`` (a campaign's ``messages``: ``what``), or
    from every variant; one of the two, never both (which would be sent is then nobody's guess)."""
    if (content is None) == (variants is None):
        raise ValueError(f"give {what} or variants, one of them")
    if auto is not None and variants is None:
        raise ValueError("auto_promote applies to variants")
    if content is not None:
        missing = [c for c in channels if getattr(content, c) is None]
        if missing:
            raise ValueError(f"{what} has nothing for channel(s) {', '.join(missing)}")
    for v in variants or []:
        missing = [c for c in channels if getattr(v.content, c) is None]
        if missing:
            raise ValueError(f"variant '{v.name}' has no content for channel(s) {', '.join(missing)}")
    if variants is not None and len({v.name for v in variants}) != len(variants):
        raise ValueError("variant names must differ")


# What check_content also asks and the OpenAPI document says in words: JSON Schema could spell it (an if/then per
# channel), but the combinations are past what schema-driven test generators resolve.
CONTENT_RULE_HELP = (
    "The content (or every variant's) has something for each channel it is sent on, and variant names differ."
)


def content_rules(what: str = "content") -> list[dict[str, Any]]:
    """:func:`check_content` as JSON Schema, for a model whose content is ``what`` or ``variants``.

    Returns
    -------
    list of dict
        The rules (for :func:`kairos.core.schema_rules.rules`): one of the two, and ``auto_promote`` with
        variants only. The rest is :data:`CONTENT_RULE_HELP`.
    """
    return [exactly_one(what, "variants"), when(given("auto_promote"), given("variants"))]


class PromoteIn(BaseModel):
    """``POST /v1/journeys/{id}/nodes/{node}/promote`` and ``POST /v1/campaigns/{id}/promote``."""

    model_config = ConfigDict(extra="forbid")
    variant: Annotated[
        str | None,
        Field(pattern=_ID_PATTERN, description="the variant that takes all the node's traffic; null ends that"),
    ]


class PromotionView(BaseModel):
    journey_id: str = Field(description="the journey (a campaign's id is its journey's)")
    node: str
    variant: str | None = Field(description="the promoted variant, or null: traffic split by weight")
    promoted: dict[str, str] = Field(description="every promoted node of the journey -> its variant")


VARIANT_RESULTS_HELP = (
    "per node with content variants: {variants: {name: {weight, sends (delivered messages), opens, clicks, "
    "conversions (last touch), revenue, open_rate, click_rate, conversion_rate ({value, low, high}: 95% Wilson "
    "intervals)}}, promoted, winner (the variant that beats each other on the test's metric, or null), test "
    "({metric, confidence, min_sends}: the node's auto_promote or the defaults)}"
)
