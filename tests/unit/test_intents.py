"""Intents tag inbound messages in any word form, in English and Russian."""

from __future__ import annotations

import pytest

from kairos.journeys.intents import enrich, tag

INTENTS = [
    {"name": "price_question", "keywords": ["цена", "сколько", "price", "cost"], "phrases": ["how much"]},
    {"name": "ready_to_pay", "keywords": ["оплатить"], "phrases": ["ready to pay", "счёт на оплату"], "stage": "pay"},
    {"name": "delivery", "keywords": ["доставка", "delivery", "shipping"]},
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Какая цена?", ["price_question"]),
        ("А цены какие у вас?", ["price_question"]),
        ("Сколько стоит доставка?", ["delivery", "price_question"]),
        ("Хочу оплатить заказ", ["ready_to_pay"]),
        ("оплатил вчера, где заказ", ["ready_to_pay"]),
        ("Пришлите счет на оплату", ["ready_to_pay"]),
        ("How much is shipping?", ["delivery", "price_question"]),
        ("It costs too much", ["price_question"]),
        ("I'm ready to pay now", ["ready_to_pay"]),
        ("Thanks, all good", []),
        ("", []),
    ],
)
def test_tag_matches_word_forms_and_phrases(text, expected):
    assert tag(text, INTENTS)[0] == expected


def test_a_phrase_needs_its_words_in_order():
    assert tag("pay, I am not ready", INTENTS)[0] == []


def test_enrich_adds_intents_and_stage_to_inbound_messages_only():
    out = enrich({"type": "message_inbound", "text": "хочу оплатить", "properties": {"k": 1}}, INTENTS)
    assert out["properties"] == {"k": 1, "intents": ["ready_to_pay"], "stage": "pay"}
    session = {"type": "session", "text": "хочу оплатить"}
    assert enrich(session, INTENTS) is session
