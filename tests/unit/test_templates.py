"""Message templates: Liquid variables, filters, escaping, limits, locale variants, MJML and save-time checks."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from kairos.customers.domain import CustomerRecord
from kairos.messaging.content import Messages
from kairos.messaging.templates import (
    TemplateRenderError,
    check_template,
    html_to_text,
    locale_of,
    render_content,
    template_context,
)
from tests.fakes import InMemoryProductCatalogue

NOW = datetime(2024, 5, 2, 9, 0, tzinfo=UTC)


def catalogue() -> InMemoryProductCatalogue:
    products = InMemoryProductCatalogue()
    products.put_product(
        {"product_id": "SKU-1", "name": "Espresso beans 1 kg", "url": "https://shop.example/p/1", "price": 1500}
    )
    products.put_product({"product_id": "SKU-2", "name": "Paper filters", "url": "https://shop.example/p/2"})
    return products


def customer(**profile: Any) -> CustomerRecord:
    return CustomerRecord(
        "c1",
        profile={"attributes": {"first_name": "Ana"}, **profile},
        recommendation={"next_products": [{"product_id": "SKU-2"}, {"product_id": "SKU-404"}]},
    )


def context_for(record: CustomerRecord, trigger: dict[str, Any] | None = None, **more: Any) -> dict[str, Any]:
    return template_context(
        record,
        trigger=trigger,
        latest=more.get("latest"),
        recommendation=record.recommendation,
        products=catalogue().get_products,
        promo=more.get("promo"),
        links=more.get("links", {}),
        now=NOW,
    )


CART = {
    "type": "cart_abandoned",
    "timestamp": "2024-05-01T21:30:00Z",
    "properties": {
        "items": [
            {"product_id": "SKU-1", "quantity": 2},
            {"product_id": "SKU-2", "quantity": 1, "price": 250.5},
            {"product_id": "SKU-9", "quantity": 3, "price": "10"},
        ]
    },
}
CART_TEXT = "{% for line in event.lines %}{{ line.name }} x{{ line.quantity }} {{ line.total | money }}\n{% endfor %}"


@pytest.mark.parametrize(
    ("profile", "expected"),
    [
        (
            {"locale": "ru-RU", "currency": "RUB"},
            ["Espresso beans 1 kg x2 3\xa0000,00\xa0₽", "Paper filters x1 250,50\xa0₽", "SKU-9 x3 30,00\xa0₽"],
        ),
        (
            {"locale": "en-GB", "currency": "GBP"},
            ["Espresso beans 1 kg x2 £3,000.00", "Paper filters x1 £250.50", "SKU-9 x3 £30.00"],
        ),
    ],
)
def test_render_content_lists_cart_lines_with_catalogue_names_and_total_in_the_customers_currency(profile, expected):
    # GIVEN a cart of three lines (one priced by the catalogue, one unknown to it) and a customer's locale/currency
    record = customer(**profile)
    messages = Messages.model_validate({"sms": {"text": CART_TEXT + "Total {{ event.total | money }}"}})
    # WHEN the SMS is rendered
    out = render_content(messages, "sms", context_for(record, CART), locale_of(record))
    # THEN each line carries its catalogue name (else its id) and its total, and the cart total is the sum
    lines = out.text.split("\n")
    assert lines[:3] == expected
    total = {"RUB": "3\xa0280,50\xa0₽", "GBP": "£3,280.50"}[profile["currency"]]
    assert lines[3] == f"Total {total}"


def test_template_context_takes_an_order_line_and_total_from_the_events_own_product():
    # GIVEN an order event with one product and an amount in euros, for a customer who pays in pounds
    record = customer(locale="en-GB", currency="GBP")
    order = {"type": "purchase", "product_id": "SKU-1", "quantity": 2, "amount": Decimal("59.90"), "currency": "EUR"}
    # WHEN the context is made
    ctx = context_for(record, order)
    # THEN the single line is the product, the total is the event's amount, and money speaks the event's currency
    assert ctx["event"]["lines"] == [
        {
            "product_id": "SKU-1",
            "name": "Espresso beans 1 kg",
            "url": "https://shop.example/p/1",
            "image": "",
            "quantity": 2,
            "price": 29.95,
            "total": 59.9,
        }
    ]
    assert ctx["event"]["total"] == 59.9 and ctx["currency"] == "EUR"
    messages = Messages.model_validate({"sms": {"text": "{{ event.total | money }}"}})
    assert render_content(messages, "sms", ctx, "en-GB").text == "€59.90"


def test_render_content_escapes_a_script_in_html_but_not_in_sms_text():
    # GIVEN a customer whose first name is a script
    record = CustomerRecord("c1", profile={"attributes": {"first_name": "<script>alert(1)</script>"}})
    messages = Messages.model_validate(
        {
            "email": {"subject": "Hi {{ first_name }}", "html": "<p>Hi {{ first_name }}</p>"},
            "sms": {"text": "Hi {{ first_name }}"},
        }
    )
    ctx = context_for(record)
    # WHEN the email and the SMS are rendered
    email = render_content(messages, "email", ctx, None)
    sms = render_content(messages, "sms", ctx, None)
    # THEN the HTML shows it as text, while the SMS, the subject and the text part keep it as written
    assert email.html == "<p>Hi &lt;script&gt;alert(1)&lt;/script&gt;</p>"
    assert sms.text == "Hi <script>alert(1)</script>"
    assert email.subject == "Hi <script>alert(1)</script>"
    assert email.text == "Hi <script>alert(1)</script>"


def test_render_content_strips_line_breaks_from_the_subject():
    # GIVEN a first name that tries to add a header
    record = CustomerRecord("c1", profile={"attributes": {"first_name": "Ana\r\nBcc: all@example.com"}})
    messages = Messages.model_validate({"email": {"subject": "Hi {{ first_name }}", "text": "x"}})
    # WHEN the email is rendered  THEN the subject stays one line
    assert render_content(messages, "email", context_for(record), None).subject == "Hi Ana Bcc: all@example.com"


@pytest.mark.parametrize(
    ("messages", "error"),
    [
        (
            {"email": {"subject": "Hi", "html": "<p>Hello</p>\n<p>\n  {% for line in event.lines }{{ line.name }}"}},
            "email.html: line 3, column 3: missing tag name or closing delimiter",
        ),
        ({"sms": {"text": "Hi {{ first_name "}}, "sms.text: line 1, column 4: expected '}}'"),
        (
            {"push": {"title": "Hi", "body": "ok\n{{ x | shout }}"}},
            "push.body: line 2, column 8: unknown filter 'shout'",
        ),
        ({"sms": {"text": "{% include 'secrets' %}"}}, "sms.text: line 1, column 4: unexpected tag 'include'"),
        (
            {"sms": {"text": "ok"}, "locales": {"ru": {"email": {"subject": "{% if x %}Привет", "text": "x"}}}},
            "locales.ru.email.subject: line 1, column 17: expected tag endif",
        ),
        (
            {"email": {"subject": "Hi", "mjml": "<mjml><mj-body><mj-section></mj-body></mjml>"}},
            "email.mjml: does not compile as MJML",
        ),
        (
            {"email": {"subject": "Hi", "mjml": '<mjml><mj-body><mj-include path="/etc/passwd" /></mj-body></mjml>'}},
            "email.mjml: does not compile as MJML: unable to load included template",
        ),
    ],
)
def test_messages_refuse_a_template_that_does_not_parse_naming_where_line_and_column(messages, error):
    # GIVEN content with a broken template  WHEN it is validated as a journey or campaign would at save time
    with pytest.raises(ValidationError) as info:
        Messages.model_validate(messages)
    # THEN the error names the field, the line and the column
    assert error in str(info.value)


def test_check_template_accepts_a_valid_template_and_refuses_a_broken_one():
    # GIVEN a template that parses and one with a block never closed  WHEN they are checked
    # THEN only the broken one is refused, at the end of the template where the closing tag was expected
    check_template("{% if customer.first_name %}Hi {{ customer.first_name }}{% endif %}", "sms.text", html=False)
    with pytest.raises(ValueError, match=r"^email.html: line 1, column 11: expected tag endif"):
        check_template("{% if x %}", "email.html", html=True)


def test_email_message_takes_html_or_mjml_not_both():
    # GIVEN an email with both an HTML and an MJML body  WHEN it is validated  THEN it is refused
    with pytest.raises(ValidationError, match="html or mjml, not both"):
        Messages.model_validate({"email": {"subject": "Hi", "html": "<p>x</p>", "mjml": "<mjml></mjml>"}})


def test_render_content_renders_a_missing_variable_empty_or_as_its_default():
    # GIVEN a customer with no name and no event
    record = CustomerRecord("c1", profile={})
    text = "Hi {{ customer.first_name | default: 'friend' }}{{ nothing.at.all }}, {{ event.total | money }}."
    messages = Messages.model_validate({"sms": {"text": text}})
    # WHEN the SMS is rendered  THEN the default fills the name and unknown values render empty
    assert render_content(messages, "sms", context_for(record), None).text == "Hi friend, ."


def test_render_content_stops_a_huge_loop_instead_of_hanging():
    # GIVEN a Russian variant that would loop a hundred million times
    text = "Привет\n{% for i in (1..10000) %}{% for j in (1..10000) %}{{ i }}{% endfor %}{% endfor %}"
    messages = Messages.model_validate({"sms": {"text": "Hi"}, "locales": {"ru": {"sms": {"text": text}}}})
    # WHEN it is rendered for a Russian customer
    started = time.monotonic()
    with pytest.raises(TemplateRenderError) as info:
        render_content(messages, "sms", context_for(customer()), "ru-RU")
    # THEN it fails at once, naming the variant, the line and the column
    assert time.monotonic() - started < 1
    assert str(info.value).startswith("locales.ru.sms.text: line 2, column ")
    assert "loop iteration limit reached" in str(info.value)


def test_render_content_bounds_what_a_template_writes():
    # GIVEN a template whose loops stay under the limit but whose output would be 9 MB
    messages = Messages.model_validate(
        {"sms": {"text": "{% for i in (1..9000) %}{{ '" + "x" * 1000 + "' }}{% endfor %}"}}
    )
    # WHEN it is rendered  THEN the output limit stops it
    with pytest.raises(TemplateRenderError, match="output stream limit"):
        render_content(messages, "sms", context_for(customer()), None)


LOCALISED = {
    "email": {"subject": "Your cart", "text": "Hello"},
    "sms": {"text": "Your cart is waiting"},
    "locales": {
        "ru": {"email": {"subject": "Ваша корзина", "text": "Здравствуйте"}},
        "pt-BR": {"sms": {"text": "Seu carrinho (BR)"}},
        "pt": {"sms": {"text": "O seu carrinho"}},
    },
}


@pytest.mark.parametrize(
    ("locale", "subject", "sms"),
    [
        ("ru", "Ваша корзина", "Your cart is waiting"),  # exact; a channel the variant lacks is the default's
        ("ru-RU", "Ваша корзина", "Your cart is waiting"),  # the language when the region has no variant
        ("pt-BR", "Your cart", "Seu carrinho (BR)"),  # the exact tag before the language
        ("pt-PT", "Your cart", "O seu carrinho"),
        ("de-DE", "Your cart", "Your cart is waiting"),  # no variant: the default content
        (None, "Your cart", "Your cart is waiting"),
    ],
)
def test_render_content_chooses_the_locale_variant_with_fallback(locale, subject, sms):
    # GIVEN content in English with Russian and Portuguese variants
    messages = Messages.model_validate(LOCALISED)
    ctx = context_for(customer())
    # WHEN rendered for a customer's locale  THEN the closest variant speaks, channel by channel
    assert render_content(messages, "email", ctx, locale).subject == subject
    assert render_content(messages, "sms", ctx, locale).text == sms


def test_messages_refuse_a_locale_that_is_not_a_language_tag():
    # GIVEN a variant keyed by a language name  WHEN validated  THEN the key is refused
    with pytest.raises(ValidationError, match="pattern"):
        Messages.model_validate({"sms": {"text": "x"}, "locales": {"english": {"sms": {"text": "y"}}}})


def test_render_content_compiles_mjml_to_html_with_a_plain_text_part():
    # GIVEN an MJML abandoned-cart email listing the lines, with a button to the cart
    mjml = """<mjml><mj-body><mj-section><mj-column>
      <mj-text>Hi {{ first_name }}, you left these behind:</mj-text>
      {% for line in event.lines %}<mj-text>{{ line.name }} &times; {{ line.quantity }}</mj-text>{% endfor %}
      <mj-button href="https://shop.example/cart">Back to your cart</mj-button>
    </mj-column></mj-section></mj-body></mjml>"""
    messages = Messages.model_validate({"email": {"subject": "Your cart", "mjml": mjml}})
    record = customer(locale="en-GB", currency="GBP")
    # WHEN it is rendered
    out = render_content(messages, "email", context_for(record, CART), locale_of(record))
    # THEN the HTML is a full responsive document and the text part reads as the email does, links kept
    assert out.html.startswith("<!doctype html>") and "Espresso beans 1 kg" in out.html
    assert "<mj-" not in out.html
    assert out.text.split("\n\n") == [
        "Hi Ana, you left these behind:",
        "Espresso beans 1 kg × 2",
        "Paper filters × 1",
        "SKU-9 × 3",
        "Back to your cart (https://shop.example/cart)",
    ]


def test_html_to_text_drops_styles_and_scripts_and_keeps_link_targets():
    # GIVEN HTML with a head, a style, a script and links
    html = (
        "<html><head><title>T</title><style>p{color:red}</style></head><body><script>x()</script>"
        '<p>Your   order\n shipped.</p><p><a href="https://shop.example/o/1">Track it</a> or '
        '<a href="https://shop.example/help">https://shop.example/help</a></p></body></html>'
    )
    # WHEN it becomes text  THEN only what a reader sees is left, with the link targets
    assert html_to_text(html) == (
        "Your order shipped.\n\nTrack it (https://shop.example/o/1) or https://shop.example/help"
    )


def test_render_content_keeps_the_first_template_syntax_working():
    # GIVEN a template written for the regex substitution that came before Liquid
    record = customer()
    record.profile["attributes"]["city"] = "Lisbon"
    text = "Hi {{first_name}}: {{next_product}} ({{next_product_url}}) in {{attributes.city}}; {{next_products}}{{x}}"
    messages = Messages.model_validate({"sms": {"text": text}})
    # WHEN it is rendered  THEN every field renders as before, names from the catalogue, unknown ones empty
    out = render_content(messages, "sms", context_for(record), None)
    assert out.text == "Hi Ana: Paper filters (https://shop.example/p/2) in Lisbon; Paper filters, SKU-404"
    nameless = CustomerRecord("c2", profile={})
    assert render_content(messages, "sms", context_for(nameless), None).text.startswith("Hi there: ")


def test_local_date_formats_in_the_customers_zone_and_locale():
    # GIVEN an event at 21:30 UTC and a customer in Tokyo (already the next day there)
    record = customer(locale="en-GB", timezone="Asia/Tokyo")
    text = (
        "{{ event.timestamp | local_date }}|{{ event.timestamp | local_datetime: 'short' }}|"
        "{{ event.timestamp | local_date: 'EEEE d MMMM' }}|{{ 'now' | local_date: 'long' }}|"
        "{{ event.timestamp | date: '%Y-%m-%d' }}"
    )
    messages = Messages.model_validate({"sms": {"text": text}})
    # WHEN the dates are rendered
    out = render_content(messages, "sms", context_for(record, CART), locale_of(record)).text
    # THEN they are local, in British English; "now" is the send time; Liquid's own date filter still works
    assert out == "2 May 2024|02/05/2024, 06:30|Thursday 2 May|2 May 2024|2024-05-01"


def test_template_context_holds_only_json_data():
    # GIVEN a customer and events carrying Decimals and datetimes, a promo code and links
    record = CustomerRecord(
        "c1", profile={"attributes": {"spent": Decimal("12.50"), "joined": datetime(2020, 1, 1, tzinfo=UTC)}}
    )
    order = {"type": "purchase", "amount": Decimal("10"), "timestamp": NOW, "properties": {"n": Decimal("1.5")}}
    # WHEN the context is made
    ctx = context_for(record, order, promo={"code": "SAVE10", "pool": "spring"}, links={"unsubscribe_url": "u"})
    # THEN it is plain JSON: no Python object is reachable from a template
    assert json.loads(json.dumps(ctx)) == ctx
    assert ctx["attributes"] == {"spent": 12.5, "joined": "2020-01-01T00:00:00+00:00"}
    assert (ctx["promo"]["code"], ctx["unsubscribe_url"], ctx["preferences_url"]) == ("SAVE10", "u", "")


def test_locale_of_reads_the_profile_then_the_attributes():
    # GIVEN customers with a profile locale, an attribute locale, or none  THEN each gets its own
    assert locale_of(CustomerRecord("a", profile={"locale": "ru-RU", "attributes": {"locale": "en"}})) == "ru-RU"
    assert locale_of(CustomerRecord("b", profile={"attributes": {"locale": "pt_BR"}})) == "pt-BR"
    assert locale_of(CustomerRecord("c", profile=None)) is None
