"""The template language of messages: Liquid (python-liquid 2) with Kairos' filters, and MJML.

The environments live here, apart from the message models (``kairos.messaging.content``), so that what only reads
or writes messages' definitions does not load Liquid, Babel and MJML: they are loaded when a template is checked
(a journey or campaign saved) or rendered (a message sent or previewed).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import TYPE_CHECKING

import mjml
from babel import Locale, UnknownLocaleError, dates, numbers
from liquid import Environment
from liquid.exceptions import FilterArgumentError, LiquidError
from liquid.filter import with_context
from liquid.undefined import is_undefined

from kairos.core.constants import CURRENCY_PATTERN
from kairos.core.timeutil import zone

if TYPE_CHECKING:
    from liquid import BoundTemplate, RenderContext

_CURRENCY = re.compile(CURRENCY_PATTERN)


# --- The template language -------------------------------------------------------------------------------


def _babel_locale(tag: object) -> Locale:
    """The CLDR locale of a tag (``en-GB``, ``ru``); its language when the region is unknown; else English."""
    return _cldr_locale(tag.replace("_", "-")) if isinstance(tag, str) and tag else _cldr_locale("en")


@lru_cache(maxsize=256)
def _cldr_locale(tag: str) -> Locale:
    for candidate in (tag, tag.split("-")[0], "en"):
        try:
            return Locale.parse(candidate, sep="-")
        except (ValueError, UnknownLocaleError):
            continue
    raise AssertionError("babel has no English")  # pragma: no cover


def _decimal(value: object) -> Decimal | None:
    if isinstance(value, bool) or value is None or is_undefined(value):
        return None
    try:
        # str() first: Decimal(0.1) would carry the float's binary error into the price.
        amount = Decimal(str(value).strip()) if isinstance(value, int | float | str | Decimal) else None
    except InvalidOperation:
        return None
    return amount if amount is not None and amount.is_finite() else None


@with_context
def money(value: object, currency: object = None, *, context: RenderContext) -> str:
    """``{{ 1234.5 | money }}`` -> ``£1,234.50`` (en-GB, GBP) or ``1 234,50 ₽`` (ru-RU, RUB).

    The currency is the argument (``money: "EUR"``), else the ``currency`` variable (the event's, else the
    customer's, else USD); the locale is the ``locale`` variable. Not a number: renders empty.
    """
    amount = _decimal(value)
    if amount is None:
        return ""
    code = currency.upper() if isinstance(currency, str) else context.resolve("currency", default=None)
    if not isinstance(code, str) or not _CURRENCY.match(code):
        code = "USD"
    return numbers.format_currency(amount, code, locale=_babel_locale(context.resolve("locale", default=None)))


def _moment(value: object, context: RenderContext) -> datetime | date | None:
    """An ISO timestamp or date, a unix time, or ``now``/``today`` (the send time, not the wall clock)."""
    if isinstance(value, str) and value.strip().lower() in ("now", "today"):
        value = context.resolve("now", default=None)
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return datetime.fromtimestamp(value, UTC)
        text = value.strip() if isinstance(value, str) else ""
        if not text:
            return None
        parsed = datetime.fromisoformat(text)
    except (ValueError, OverflowError, OSError):
        return None
    if len(text) == 10:  # a date alone has no zone to convert from
        return parsed.date()
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _format_moment(value: object, style: object, context: RenderContext, with_time: bool) -> str:
    moment = _moment(value, context)
    if moment is None:
        return ""
    fmt = style if isinstance(style, str) and style else "medium"
    locale = _babel_locale(context.resolve("locale", default=None))
    tz_name = context.resolve("timezone", default=None)
    try:
        tz = zone(tz_name) if isinstance(tz_name, str) else UTC
    except (KeyError, ValueError):  # ZoneInfoNotFoundError is a KeyError
        tz = UTC
    try:
        if isinstance(moment, datetime):
            if with_time:
                return dates.format_datetime(moment, fmt, tzinfo=tz, locale=locale)
            moment = moment.astimezone(tz).date()
        if with_time:
            return dates.format_datetime(datetime.combine(moment, time(), tz), fmt, tzinfo=tz, locale=locale)
        return dates.format_date(moment, fmt, locale=locale)
    except (ValueError, KeyError, TypeError) as exc:
        raise FilterArgumentError(f"bad date format {fmt!r}: {exc}", token=None) from exc


@with_context
def local_date(value: object, style: object = None, *, context: RenderContext) -> str:
    """``{{ event.timestamp | local_date }}``: the date in the customer's zone and locale; ``style`` is
    ``short``, ``medium`` (default), ``long``, ``full`` or a CLDR pattern such as ``"d MMMM"``."""
    return _format_moment(value, style, context, with_time=False)


@with_context
def local_datetime(value: object, style: object = None, *, context: RenderContext) -> str:
    """``{{ "now" | local_datetime: "short" }}``: date and time in the customer's zone and locale."""
    return _format_moment(value, style, context, with_time=True)


class KairosLiquid(Environment):
    """Liquid for messages: standard tags and filters plus ``money``, ``local_date`` and ``local_datetime``.

    Sandboxed: the context holds JSON data only (``kairos.messaging.templates`` makes it), ``include`` and
    ``render`` are removed (there is no file to read), and every render is bounded, so a template cannot loop or
    grow without end. A missing variable renders empty; ``{{ x | default: "friend" }}`` fills it.
    """

    # Bounds per render (python-liquid's resource limits): nested loops multiply their lengths, output is
    # counted in UTF-8 bytes, the namespace in sys.getsizeof bytes of assigned and captured values.
    loop_iteration_limit = 10_000
    output_stream_limit = 1_000_000
    context_depth_limit = 30
    local_namespace_limit = 200_000

    def setup_tags_and_filters(self, *, extra: bool = False) -> None:
        super().setup_tags_and_filters(extra=extra)
        for tag in ("include", "render"):
            self.tags.pop(tag, None)
        self.filters.update(money=money, local_date=local_date, local_datetime=local_datetime)


# HTML and MJML parts escape every value they print (a first name of "<script>" arrives as text); subjects,
# plain-text parts, SMS, push and messenger texts are not HTML and print values as they are.
HTML_LIQUID = KairosLiquid(autoescape=True)
TEXT_LIQUID = KairosLiquid(autoescape=False)


def _at(source: str, index: int) -> str:
    """``line 3, column 12`` (1-based) of a character of the source."""
    before = source[:index]
    line = before.count("\n") + 1
    column = index - before.rfind("\n")  # rfind is -1 on the first line: columns count from 1
    return f"line {line}, column {column}"


def error_location(exc: LiquidError, source: str) -> str:
    """``line 3, column 12: expected '%}' ...``; the end of the template when Liquid gives no place, as for a
    block that is never closed."""
    token = exc.token
    index = token.start_index if token is not None and token.start_index >= 0 else len(source)
    return f"{_at(source, index)}: {exc.message}"


@lru_cache(maxsize=64)
def parse_template(source: str, html: bool) -> BoundTemplate:
    """The parsed template (cached: a journey's few templates are rendered for many customers).

    Raises
    ------
    liquid.exceptions.LiquidError
        The source is not a valid template.
    """
    return (HTML_LIQUID if html else TEXT_LIQUID).from_string(source)


@lru_cache(maxsize=128)
def _parse_error(source: str, html: bool) -> str | None:
    try:
        template = parse_template(source, html)
    except LiquidError as exc:
        return error_location(exc, source)
    # Liquid looks filters up when it renders: find unknown ones now, not for the first customer.
    env = HTML_LIQUID if html else TEXT_LIQUID
    for name, spans in template.analyze().filters.items():
        if name not in env.filters:
            return f"{_at(source, spans[0].index)}: unknown filter '{name}'"
    return None


def check_template(source: str, where: str, html: bool) -> None:
    """Refuse a template that does not parse with the environment that will render it.

    Parameters
    ----------
    source
        The template.
    where
        Where it is, for the message: ``email.html``, ``locales.ru.sms.text``.
    html
        ``True`` for HTML and MJML (escaped), ``False`` for text.

    Raises
    ------
    ValueError
        ``email.html: line 3, column 12: expected '%}', found 'eof'``.

    Example
    -------
    >>> check_template("Hi {{ first_name | default: 'there' }}", "sms.text", html=False)
    """
    error = _parse_error(source, html)
    if error is not None:
        raise ValueError(f"{where}: {error}")


def _no_includes(path: str) -> str:
    raise ValueError(f"mj-include is not supported ({path}): put the content in the template")


def compile_mjml(source: str) -> str:
    """Responsive HTML from rendered MJML (``mj-include`` refused: nothing is read from disk).

    Raises
    ------
    ValueError
        The MJML does not compile (the compiler's message, with its position).
    """
    return mjml.mjml2html(source, include_loader=_no_includes)


@lru_cache(maxsize=64)
def _mjml_error(source: str) -> str | None:
    try:
        sample = parse_template(source, True).render({})
    except LiquidError:
        # A render error with no data depends on the data (a division by an absent quantity): the send reports
        # it for the customer it happens to. Only what compiles without data is checked here.
        return None
    try:
        compile_mjml(sample)
    except ValueError as exc:
        return str(exc)
    return None


def check_mjml(source: str, where: str) -> None:
    """Refuse MJML that does not compile once rendered with no data (loops empty, variables blank).

    Raises
    ------
    ValueError
        ``email.mjml: does not compile as MJML: unexpected end of stream in root template``.
    """
    error = _mjml_error(source)
    if error is not None:
        raise ValueError(f"{where}: does not compile as MJML: {error}")
