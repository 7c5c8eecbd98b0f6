"""The segment filter field reference in docs/insights.md is the code's list of fields; the validation reads every
field of the list, the aliases as their field, and names the fields when it refuses one."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from kairos.audiences import reference
from kairos.audiences.domain import FIELD_ALIASES, Filter, filter_fields
from kairos_local.template import ROOT

PAGE = ROOT / "docs" / "insights.md"


def test_segment_fields_doc_table_is_the_codes_field_list():
    # GIVEN the page as it is
    text = PAGE.read_text(encoding="utf-8")
    # WHEN the table is written anew from the code
    # THEN nothing changes (else: python -m kairos.audiences.reference docs/insights.md)
    assert reference.with_table(text) == text
    for row in filter_fields():
        assert f"| `{row.field}` |" in text


def test_segment_fields_every_listed_field_is_accepted():
    # GIVEN a member of every row of the reference, with a value of its kind
    values = {"number": 1, "text": "loyal", "product id": "SKU-7", "any JSON value": "gold", "true or false": True}
    for row in filter_fields():
        field = row.field.replace("<name>", "tier").replace("<type>", "purchase").replace("<status>", "sent")
        window = {"within_days": 30} if field.startswith(("events.", "messages.")) else {}
        value = 1 if "count" in row.value else values[row.value]
        # WHEN it is validated THEN it is accepted as written
        assert Filter.model_validate({"field": field, "value": value, **window}).field == field


def test_segment_fields_aliases_read_as_their_field():
    for alias, field in FIELD_ALIASES.items():
        flt = Filter.model_validate({"field": alias, "op": "gte", "value": 1})
        assert flt.field == field
        assert flt.model_dump()["field"] == field


def test_segment_fields_unknown_field_is_refused_naming_the_fields():
    with pytest.raises(ValidationError) as err:
        Filter.model_validate({"field": "aggregates.shoe_size", "value": 1})
    message = str(err.value)
    assert "unknown filter field 'aggregates.shoe_size'" in message
    assert "purchase_count" in message and "events.<type>" in message


def test_segment_fields_reference_rejects_a_page_without_markers():
    with pytest.raises(ValueError, match="block"):
        reference.with_table("# no table here\n")
