"""What a message says, per channel and per locale, the template language it is written in, and the limits a
journey or campaign sets on its own messages.

Templates are Liquid (python-liquid 2), the language marketers know from Shopify, Braze and Klaviyo. A template
is checked when the journey or campaign that holds it is saved: a template that does not parse (or MJML that does
not compile) is refused with where it is, the line and the column, instead of failing at send time for every
customer. The environments that check and render them are ``kairos.messaging.template_domain``, loaded then;
``kairos.messaging.templates`` builds the variables and renders with them.
"""

from __future__ import annotations

import re
from datetime import time
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, WithJsonSchema, model_validator

from kairos.core.constants import CHANNELS
from kairos.core.schema_rules import JSON_INTEGER, given, rules

if TYPE_CHECKING:
    from collections.abc import Iterator

Channel = Literal[CHANNELS]  # type: ignore[valid-type]

# A language with an optional region (ISO 639 + ISO 3166), the form the customer profile's ``locale`` takes.
LOCALE_PATTERN = r"^[a-z]{2,3}(-[A-Z]{2})?$"
MAX_LOCALES = 20
LocaleTag = Annotated[str, StringConstraints(pattern=LOCALE_PATTERN)]


# --- What a message says ---------------------------------------------------------------------------------


def _written(name: str) -> dict[str, object]:
    # A body part counts when it holds something: "" is no html.
    return {"required": [name], "properties": {name: {"type": "string", "minLength": 1}}}


class EmailMessage(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=rules(
            {"anyOf": [_written("html"), _written("mjml"), _written("text")]},
            {"not": {"allOf": [_written("html"), _written("mjml")]}},
        ),
    )
    subject: Annotated[str, Field(min_length=1, max_length=998)]
    html: Annotated[str | None, Field(max_length=200_000)] = None
    mjml: Annotated[
        str | None,
        Field(
            max_length=200_000,
            description="MJML (mjml.io) instead of html: compiled to responsive HTML after Liquid renders it",
        ),
    ] = None
    text: Annotated[
        str | None,
        Field(max_length=100_000, description="The plain-text part; derived from the HTML when absent"),
    ] = None

    @model_validator(mode="after")
    def _body(self) -> EmailMessage:
        if self.html and self.mjml:
            raise ValueError("an email takes html or mjml, not both")
        if not (self.html or self.mjml or self.text):
            raise ValueError("an email needs html, mjml or text")
        return self


class PushMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: Annotated[str, Field(min_length=1, max_length=200)]
    body: Annotated[str, Field(min_length=1, max_length=2000)]


class TextMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: Annotated[str, Field(min_length=1, max_length=1600)]


# Each template field, and whether it is HTML (escaped) or text; MJML is HTML and is compiled too.
_TEMPLATE_FIELDS: dict[str, tuple[tuple[str, str], ...]] = {
    "email": (("subject", "text"), ("html", "html"), ("mjml", "mjml"), ("text", "text")),
    "push": (("title", "text"), ("body", "text")),
    "sms": (("text", "text"),),
    "messenger": (("text", "text"),),
}


class LocaleMessages(BaseModel):
    """The content of one locale: any of the channels; a channel left out is taken from the default content.

    At least one channel: a locale without any is refused, and so is default content without the channels it
    is sent on.
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=rules({"anyOf": [given(channel) for channel in ("email", "push", "sms", "messenger")]}),
    )
    email: EmailMessage | None = None
    push: PushMessage | None = None
    sms: TextMessage | None = None
    messenger: TextMessage | None = None

    def templates(self, prefix: str = "") -> Iterator[tuple[str, str, str]]:
        """Every template it holds: (where, source, kind), kind being ``text``, ``html`` or ``mjml``."""
        for channel, fields in _TEMPLATE_FIELDS.items():
            content = getattr(self, channel)
            for name, kind in fields if content is not None else ():
                source = getattr(content, name)
                if source:
                    yield f"{prefix}{channel}.{name}", source, kind


class Messages(LocaleMessages):
    """What a journey step or a campaign sends: the default content, and variants by the customer's locale.

    A variant is chosen by the exact tag (``pt-BR``), then by the language (``ru-RU`` -> ``ru``), else the
    default content is sent. Every template is parsed when the model is validated.
    """

    locales: Annotated[
        dict[LocaleTag, LocaleMessages] | None,
        Field(
            max_length=MAX_LOCALES,
            description="Content by the customer's locale (`ru`, `en-GB`, `pt-BR`): exact tag first, then the "
            "language; a channel a locale leaves out falls back to the default content",
            json_schema_extra={"propertyNames": {"pattern": LOCALE_PATTERN}},
        ),
    ] = None

    @model_validator(mode="after")
    def _templates_parse(self) -> Messages:
        from kairos.messaging.template_domain import check_mjml, check_template

        for tag, variant in (self.locales or {}).items():
            if not any(getattr(variant, channel) is not None for channel in _TEMPLATE_FIELDS):
                raise ValueError(f"locales.{tag}: a locale needs at least one channel")
        for where, source, kind in self.all_templates():
            check_template(source, where, html=kind != "text")
            if kind == "mjml":
                check_mjml(source, where)
        return self

    def all_templates(self) -> Iterator[tuple[str, str, str]]:
        """The default content's templates, then every locale's (``locales.<tag>.<channel>.<field>``)."""
        yield from self.templates()
        for tag, variant in (self.locales or {}).items():
            yield from variant.templates(f"locales.{tag}.")


# A time of day in the customer's zone: no UTC offset (it would name another zone).
LOCAL_TIME_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?$"
_LOCAL_TIME = re.compile(LOCAL_TIME_PATTERN)


def _local_time(value: Any) -> Any:
    # Pydantic would also take seconds since midnight and a time with an offset. Times pass: Python callers.
    if isinstance(value, time) or (isinstance(value, str) and _LOCAL_TIME.match(value)):
        return value
    raise ValueError("a local time of day: HH:MM or HH:MM:SS, without a UTC offset")


LocalTimeOfDay = Annotated[
    time,
    BeforeValidator(_local_time),
    WithJsonSchema({"type": "string", "pattern": LOCAL_TIME_PATTERN, "description": "HH:MM[:SS], local time"}),
]


class QuietHoursIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: LocalTimeOfDay
    end: LocalTimeOfDay


class FrequencyCap(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_messages: Annotated[int, Field(ge=1, le=100), JSON_INTEGER]
    per_days: Annotated[int, Field(ge=1, le=90), JSON_INTEGER]
