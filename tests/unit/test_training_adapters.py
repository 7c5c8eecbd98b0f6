"""Online Retail II adapter: mapping to the event schema and profiles."""

import gzip
from pathlib import Path

import pytest

from kairos.customers.schemas import Event
from training.adapters import find_online_retail_files, is_online_retail_csv, online_retail_records, record_to_event

HEADER = "Invoice,StockCode,Description,Quantity,InvoiceDate,Price,CustomerID,Country\n"
SAMPLE = Path(__file__).parents[1] / "data" / "online_retail_sample.csv.gz"


def _write(path: Path, rows: list[str]) -> Path:
    path.write_text(HEADER + "".join(r + "\n" for r in rows))
    return path


@pytest.fixture
def two_years(tmp_path):
    early = _write(
        tmp_path / "year1.csv",
        [
            "489434,85048,LIGHTS,12,2010-06-01 12:05:00,6.95,13085,United Kingdom",
            "489434,85048,LIGHTS,2,2010-06-01 12:05:00,6.95,13085,United Kingdom",
            "489434,POST,POSTAGE,1,2010-06-01 12:05:00,18.0,13085,United Kingdom",
            "C489435,85048,LIGHTS,-1,2010-06-02 10:00:00,6.95,13085,United Kingdom",
            "489436,22222,GUEST ITEM,1,2010-06-02 10:00:00,1.0,,United Kingdom",
            "536365,85123A,HEART,6,2010-12-01 08:26:00,2.55,17850,United Kingdom",
        ],
    )
    late = _write(
        tmp_path / "year2.csv",
        [
            "536365,85123A,HEART,6,2010-12-01 08:26:00,2.55,17850,United Kingdom",
            "536366,22633,HAND WARMER,6,2011-01-10 09:00:00,1.85,17850,France",
            "536367,22634,HAND WARMER,6,2011-01-11 09:00:00,1.85,17850,United Kingdom",
        ],
    )
    return early, late


def test_online_retail_records_map_lines_to_valid_purchase_events(two_years):
    # GIVEN two yearly files sharing 2010-12-01
    # WHEN adapting them (in any order)
    events, _ = online_retail_records(list(reversed(two_years)))
    # THEN every record is a valid Event in archive form
    for rec in events:
        assert Event.model_validate(rec).to_record()["event_id"] == rec["event_id"]
    ids = [(e["customer_id"], e["event_id"]) for e in events]
    assert len(ids) == len(set(ids))
    # and the overlap day appears once, cancellations and guests are gone
    assert sum(e["properties"]["invoice"] == "536365" for e in events) == 1
    assert not any(e["properties"]["invoice"].startswith("C") for e in events)
    assert {e["customer_id"] for e in events} == {"13085", "17850"}


def test_online_retail_records_localize_uk_time_and_compute_amount(two_years):
    # GIVEN / WHEN
    events, _ = online_retail_records(list(two_years))
    by_id = {e["event_id"]: e for e in events}
    # THEN summer time carries +01:00, winter +00:00; amount = quantity x price; lines numbered per invoice
    assert by_id["489434-1"]["timestamp"] == "2010-06-01T12:05:00+01:00"
    assert by_id["536366-1"]["timestamp"] == "2011-01-10T09:00:00+00:00"
    assert by_id["489434-1"]["amount"] == pytest.approx(83.4)
    assert by_id["489434-2"]["quantity"] == 2
    # service lines keep the purchase moment but name no product
    assert "product_id" not in by_id["489434-3"]
    assert by_id["489434-3"]["properties"]["service_code"] == "POST"


def test_online_retail_records_profiles_use_london_and_most_frequent_country(two_years):
    # GIVEN a customer with two UK lines and one French line
    # WHEN
    _, profiles = online_retail_records(list(two_years))
    # THEN
    by_id = {p["customer_id"]: p for p in profiles}
    assert by_id["17850"] == {
        "customer_id": "17850",
        "timezone": "Europe/London",
        "attributes": {"country": "United Kingdom"},
    }


def test_online_retail_event_ids_are_stable_across_runs(two_years):
    # GIVEN the same files read twice / WHEN / THEN identical records
    assert online_retail_records(list(two_years))[0] == online_retail_records(list(two_years))[0]


def test_record_to_event_matches_validation():
    # GIVEN the committed sample
    events, _ = online_retail_records([SAMPLE])
    # WHEN building trusted events and validating the same records
    # THEN both give the same Event
    for rec in events[:500]:
        assert record_to_event(rec) == Event.model_validate(rec)


def test_find_online_retail_files_detects_header(tmp_path, two_years):
    # GIVEN a directory with the two CSVs and an unrelated gzip CSV
    with gzip.open(tmp_path / "other.csv.gz", "wt") as fh:
        fh.write("a,b\n1,2\n")
    # WHEN searching the directory
    found = find_online_retail_files([tmp_path])
    # THEN only the dataset files are found
    assert sorted(p.name for p in found) == ["year1.csv", "year2.csv"]
    assert is_online_retail_csv(SAMPLE)
