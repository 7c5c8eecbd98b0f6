"""Render a message's Liquid templates for one customer: the variables they see, the locale variant, MJML.

The language, its filters and its limits are in ``kairos.messaging.content`` (templates are checked when they
are saved); docs/templates.md is the guide for the people who write them.

Variables (JSON data only: strings, numbers, booleans, lists, objects; nothing else is reachable)
-----------------------------------------------------------------------------------------------
Kept from the first template syntax, so existing templates render as before:

- ``first_name``: ``attributes.first_name``, else ``attributes.name``, else ``"there"``;
- ``customer_id``;
- ``next_product``, ``next_product_id``, ``next_product_url``, ``next_product_image``: the first recommended
  product (its catalogue name, else its id); ``next_products``: the first three names, comma-separated;
- ``attributes.<name>``: the profile's free attributes.

Structured:

- ``customer``: ``id``, ``first_name`` (nil when unknown, so ``default`` applies), ``attributes``, ``locale``,
  ``timezone``, ``currency``, ``stage`` (the funnel stage, nil when none);
- ``points``: the loyalty ledger at the send time: ``balance``, ``earned``, ``spent``, ``expired``,
  ``next_expiry_at`` (ISO 8601, nil when nothing expires; ``| local_date`` shows it) and ``next_expiry_points``;
- ``event`` (the event that let the customer into the journey) and ``latest_event`` (their latest event):
  ``type``, ``timestamp``, ``product_id``, ``quantity``, ``amount``, ``currency``, ``text``, ``properties``,
  ``lines`` and ``total``; nil when there is none.
  ``lines`` is ``properties.items`` or ``properties.lines`` (each ``{product_id, quantity, price}``), else one
  line made of the event's own ``product_id``/``quantity``/``amount``; every line gets ``name`` (the catalogue's,
  else the line's, else the id), ``url``, ``image`` and ``total`` (price x quantity). ``total`` is the event's
  ``amount``, else the sum of the lines;
- ``recommendation.next_products``: ``[{product_id, name, url, image}]``;
- ``promo``: ``{code, pool}`` of the path's promo code, empty when the step takes none;
- ``unsubscribe_url``, ``preferences_url``: the customer's signed links;
- ``now``: the send time (ISO 8601, UTC);
- ``locale``, ``timezone``, ``currency``: what ``money``, ``local_date`` and ``local_datetime`` use (the
  customer's locale and zone; the event's currency, else the customer's, else USD).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Any

from liquid.exceptions import LiquidError

from kairos.core.errors import KairosError
from kairos.customers.loyalty_domain import summary as points_summary
from kairos.messaging.template_domain import check_template, compile_mjml, error_location, parse_template

if TYPE_CHECKING:
    from collections.abc import Callable

    from kairos.customers.domain import CustomerRecord
    from kairos.messaging.content import Messages

__all__ = [
    "RenderedContent",
    "TemplateRenderError",
    "check_template",
    "html_to_text",
    "locale_of",
    "render_content",
    "template_context",
]

MAX_LINES = 100  # cart or order lines a template sees
MAX_RECOMMENDED = 10
_NESTING = 20  # deeper JSON than this is cut: nothing a message needs is that deep


class TemplateRenderError(KairosError):
    """A template failed for this customer (a resource limit, a filter given a bad argument, MJML that does not
    compile with their data): sending it again will not help."""


@dataclass(frozen=True)
class RenderedContent:
    """One channel's message for one customer: ``text`` is the SMS, messenger or push body, or the email's
    plain-text part; ``subject`` is the email's, ``title`` the push notification's."""

    subject: str | None
    title: str | None
    text: str
    html: str | None


def locale_of(record: CustomerRecord) -> str | None:
    """The customer's locale: the profile's ``locale``, else the ``locale`` attribute, else ``None``."""
    profile = record.profile or {}
    for value in (profile.get("locale"), record.attributes.get("locale")):
        if isinstance(value, str) and value.strip():
            return value.strip().replace("_", "-")
    return None


def _plain(value: Any, depth: int = 0) -> Any:
    """JSON data only: Decimal becomes int or float, datetimes ISO strings, any other object its string."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        if not value.is_finite():
            return None
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if depth >= _NESTING:
        return None
    if isinstance(value, Mapping):
        return {str(k): _plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v, depth + 1) for v in value]
    return str(value)


def _number(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _raw_lines(event: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """An event's lines as sent: ``properties.items`` or ``properties.lines``, else the event's own product."""
    if not event:
        return []
    props = event.get("properties") or {}
    listed = props.get("items") or props.get("lines") if isinstance(props, Mapping) else None
    if isinstance(listed, list):
        return [dict(line) for line in listed[:MAX_LINES] if isinstance(line, Mapping)]
    if not event.get("product_id"):
        return []
    quantity = _number(event.get("quantity")) or Decimal(1)
    amount = _number(event.get("amount"))
    line: dict[str, Any] = {"product_id": event["product_id"], "quantity": quantity}
    if amount is not None:
        line["price"] = amount / quantity
    return [line]


def _line(raw: dict[str, Any], catalogue: dict[str, dict[str, Any]]) -> tuple[dict[str, Any], Decimal | None]:
    """A line for templates (named from the catalogue), and its total when its price is known."""
    product_id = str(raw.get("product_id") or raw.get("id") or "")
    product = catalogue.get(product_id) or {}
    quantity = _number(raw.get("quantity"))
    quantity = Decimal(1) if quantity is None else quantity
    price = _number(raw.get("price"))
    price = _number(product.get("price")) if price is None else price
    total = None if price is None else price * quantity
    line = {
        **_plain(raw),
        "product_id": product_id,
        "name": str(product.get("name") or raw.get("name") or product_id),
        "url": str(product.get("url") or raw.get("url") or ""),
        "image": str(product.get("image") or raw.get("image") or ""),
        "quantity": _plain(quantity),
        "price": _plain(price),
        "total": _plain(total),
    }
    return line, total


def _event(event: Mapping[str, Any] | None, catalogue: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    if not event:
        return None
    lines, totals = [], []
    for raw in _raw_lines(event):
        line, total = _line(raw, catalogue)
        lines.append(line)
        totals.append(total)
    amount = _number(event.get("amount"))
    known = [t for t in totals if t is not None]
    total = amount if amount is not None else (sum(known, Decimal(0)) if known else None)
    fields = ("type", "timestamp", "product_id", "quantity", "amount", "currency", "text")
    return {
        **{f: _plain(event.get(f)) for f in fields},
        "properties": _plain(event.get("properties") or {}),
        "lines": lines,
        "total": _plain(total),
    }


def template_context(
    record: CustomerRecord,
    *,
    trigger: dict[str, Any] | None,
    latest: dict[str, Any] | None,
    recommendation: dict[str, Any] | None,
    products: Callable[[list[str]], dict[str, dict[str, Any]]] | None,
    promo: dict[str, str] | None,
    links: dict[str, str],
    now: datetime,
) -> dict[str, Any]:
    """The variables a customer's message is rendered with (the module docstring lists them).

    Parameters
    ----------
    record
        The customer.
    trigger, latest
        The event that let the customer into the journey, and their latest event (``None``: nil).
    recommendation
        ``{"next_products": [{"product_id": ...}, ...]}``: the customer's, or the population's.
    products
        Catalogue lookup, called once with every product id the message may show (lines and recommendations).
    promo
        The path's promo code ``{"code", "pool"}``, or ``None``.
    links
        ``unsubscribe_url`` and ``preferences_url``.
    now
        The send time: ``now`` and ``"now" | local_date``.

    Returns
    -------
    dict
        JSON data only, so a template reaches nothing but these values.

    Example
    -------
    >>> ctx = template_context(record, trigger=event, latest=None, recommendation=None, products=None,
    ...                        promo=None, links={}, now=now)
    >>> render_content(messages, "email", ctx, locale_of(record)).subject
    """
    profile = record.profile or {}
    attributes = _plain(record.attributes)
    rec_ids = [
        str(p["product_id"])
        for p in (recommendation or {}).get("next_products") or []
        if isinstance(p, Mapping) and p.get("product_id")
    ][:MAX_RECOMMENDED]
    line_ids = [
        str(line.get("product_id") or line.get("id") or "") for e in (trigger, latest) for line in _raw_lines(e)
    ]
    wanted = list(dict.fromkeys(i for i in rec_ids + line_ids if i))
    catalogue = {str(k): _plain(v) or {} for k, v in products(wanted).items()} if products and wanted else {}
    recommended = [
        {
            "product_id": pid,
            "name": str((catalogue.get(pid) or {}).get("name") or pid),
            "url": str((catalogue.get(pid) or {}).get("url") or ""),
            "image": str((catalogue.get(pid) or {}).get("image") or ""),
        }
        for pid in rec_ids
    ]
    first = recommended[0] if recommended else {}
    name = attributes.get("first_name") or attributes.get("name")
    locale = locale_of(record)
    customer_currency = profile.get("currency") or attributes.get("currency")
    event, latest_event = _event(trigger, catalogue), _event(latest, catalogue)
    currency = next(
        (c for c in ((event or {}).get("currency"), (latest_event or {}).get("currency"), customer_currency) if c),
        "USD",
    )
    return {
        # The first syntax's names, unchanged.
        "first_name": str(name or "there"),
        "customer_id": record.customer_id,
        "next_product": first.get("name", ""),
        "next_product_id": first.get("product_id", ""),
        "next_product_url": first.get("url", ""),
        "next_product_image": first.get("image", ""),
        "next_products": ", ".join(p["name"] for p in recommended[:3]),
        "attributes": attributes,
        "customer": {
            "id": record.customer_id,
            "first_name": str(name) if name else None,
            "attributes": attributes,
            "locale": locale,
            "timezone": record.timezone,
            "currency": customer_currency,
            "stage": record.aggregates.stage,
        },
        "points": points_summary(record.aggregates, int(now.timestamp())),
        "event": event,
        "latest_event": latest_event,
        "recommendation": {"next_products": recommended},
        "promo": _plain(promo or {}),
        "unsubscribe_url": str(links.get("unsubscribe_url") or ""),
        "preferences_url": str(links.get("preferences_url") or ""),
        "now": now.isoformat(),
        "locale": locale,
        "timezone": record.timezone,
        "currency": str(currency),
    }


def _channel_content(messages: Messages, channel: str, locale: str | None) -> tuple[str, Any]:
    """The channel's content for a locale (exact tag, then its language, then the default content), with where it
    is for error messages (``locales.ru.``, or nothing for the default content)."""
    if locale and messages.locales:
        by_tag = {tag.lower(): (tag, content) for tag, content in messages.locales.items()}
        wanted = locale.replace("_", "-").lower()
        for candidate in (wanted, wanted.split("-")[0]):
            tag, variant = by_tag.get(candidate, ("", None))
            if variant is not None and getattr(variant, channel) is not None:
                return f"locales.{tag}.", getattr(variant, channel)
    return "", getattr(messages, channel, None)


def _render(source: str, where: str, context: dict[str, Any], html: bool) -> str:
    try:
        return parse_template(source, html).render(context)
    except LiquidError as exc:
        raise TemplateRenderError(f"{where}: {error_location(exc, source)}") from exc


_LINE_BREAKS = re.compile(r"[\r\n\u2028\u2029]+")
_SPACES = re.compile(r"\s+")


def render_content(messages: Messages, channel: str, context: dict[str, Any], locale: str | None) -> RenderedContent:
    """Render ``channel``'s content for the customer the context was made for.

    The locale variant is chosen by ``locale`` (exact tag, then its language); a channel the variant leaves out
    comes from the default content. HTML and MJML escape what they print; an MJML email is compiled to
    responsive HTML; an email without a text template gets a text part made from its HTML.

    Raises
    ------
    TemplateRenderError
        The channel has no content, or its template failed for this customer (limits, filter arguments, MJML).
    """
    prefix, source = _channel_content(messages, channel, locale)
    if source is None:
        raise TemplateRenderError(f"the message has no {channel} content")

    def render(field: str, html: bool) -> str:
        return _render(getattr(source, field), f"{prefix}{channel}.{field}", context, html)

    if channel == "email":
        # A subject is a header line: a value with CR/LF must not be able to add headers.
        subject = _LINE_BREAKS.sub(" ", render("subject", html=False)).strip()
        html = None
        if source.mjml:
            try:
                html = compile_mjml(render("mjml", html=True))
            except ValueError as exc:
                raise TemplateRenderError(f"{prefix}email.mjml: does not compile as MJML: {exc}") from exc
        elif source.html:
            html = render("html", html=True)
        text = render("text", html=False) if source.text else html_to_text(html or "")
        return RenderedContent(subject=subject, title=None, text=text, html=html)
    if channel == "push":
        return RenderedContent(subject=None, title=render("title", False), text=render("body", False), html=None)
    return RenderedContent(subject=None, title=None, text=render("text", False), html=None)


class _TextOf(HTMLParser):
    """The readable text of an HTML email: no head, styles or scripts; blocks on their own lines; links as
    ``text (url)``."""

    SKIP = frozenset({"head", "style", "script", "title", "noscript", "template"})
    BLOCK = frozenset(
        {"p", "div", "br", "tr", "td", "th", "li", "ul", "ol", "table", "section", "article", "header", "footer"}
        | {"h1", "h2", "h3", "h4", "h5", "h6", "hr", "blockquote", "pre", "center"}
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skip = 0
        self.links: list[tuple[str, int]] = []  # open <a>: href, where its text starts

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self.skip += 1
        elif not self.skip:
            if tag in self.BLOCK:
                self.out.append("\n")
            if tag == "a":
                self.links.append((dict(attrs).get("href") or "", len(self.out)))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in self.SKIP:
            self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP:
            self.skip = max(0, self.skip - 1)
        elif not self.skip:
            if tag == "a" and self.links:
                href, start = self.links.pop()
                label = " ".join("".join(self.out[start:]).split())
                if href.startswith(("http://", "https://", "mailto:", "tel:")) and href != label:
                    self.out.append(f" ({href})" if label else href)
            if tag in self.BLOCK:
                self.out.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skip:
            # A line break in HTML source is a space; lines come from the block elements.
            self.out.append(_SPACES.sub(" ", data))


def html_to_text(html: str) -> str:
    """The plain-text part of an HTML email: tags, styles and scripts gone, link targets kept as
    ``text (url)``, spaces collapsed, at most one blank line in a row.

    Example
    -------
    >>> html_to_text('<p>Your cart</p><p><a href="https://shop.example/cart">Open it</a></p>')
    'Your cart\\n\\nOpen it (https://shop.example/cart)'
    """
    parser = _TextOf()
    parser.feed(html)
    parser.close()
    lines = [" ".join(line.split()) for line in "".join(parser.out).split("\n")]
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()
