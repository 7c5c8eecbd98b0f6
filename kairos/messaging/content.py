"""What a message says, per channel and per locale, the template language it is written in, and the limits a
journey or campaign sets on its own messages.

Templates are Liquid (python-liquid 2), the language marketers know from Shopify, Braze and Klaviyo. A template
is checked when the journey or campaign that holds it is saved: a template that does not parse (or MJML that does
not compile) is refused with where it is, the line and the column, instead of failing at send time for every
customer. The environments that check and render them are ``kairos.messaging.template_domain``, loaded then;
``kairos.messaging.templates`` builds the variables and renders with them.
"""

from __future__ import annotations

from datetime import time
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from kairos.core.constants import CHANNELS

if TYPE_CHECKING:
    from collections.abc import Iterator

Channel = Literal[CHANNELS]  # type: ignore[valid-type]

# A language with an optional region (ISO 639 + ISO 3166), the form the customer profile's ``locale`` takes.
LOCALE_PATTERN = r"^[a-z]{2,3}(-[A-Z]{2})?$"
MAX_LOCALES = 20
LocaleTag = Annotated[str, StringConstraints(pattern=LOCALE_PATTERN)]


# --- What a message says ---------------------------------------------------------------------------------


class EmailMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
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
    """The content of one locale: any of the channels; a channel left out is taken from the default content."""

    model_config = ConfigDict(extra="forbid")
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


class QuietHoursIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: time
    end: time


class FrequencyCap(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_messages: Annotated[int, Field(ge=1, le=100)]
    per_days: Annotated[int, Field(ge=1, le=90)]
