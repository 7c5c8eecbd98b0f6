"""Turn public datasets into Kairos events and profiles.

Only Online Retail II (UCI id 502; Chen, Sain & Guo 2012, CC BY 4.0) is adapted for now. Its
mapping to the event schema is described in ``shared/data/online_retail_ii/README.md``:

- ``customer_id`` = ``CustomerID``; lines without one (guests) are dropped.
- one ``purchase`` event per invoice line; ``event_id`` = ``<invoice>-<line number in invoice>``, unique per
  customer and stable across runs because it depends only on the file's row order.
- ``timestamp`` = ``InvoiceDate`` read as Europe/London wall-clock time and written with its offset.
- ``product_id`` = ``StockCode`` for products; service codes (postage, manual, fees...) keep the
  purchase moment but carry no product, so they never become recommendations.
- ``amount`` = ``Quantity * Price`` in GBP.
- cancellations (``C...`` invoices) and non-positive quantities are dropped: the schema has no return type.
- the two yearly files overlap on 2010-12-01..09; those days are taken from the later file only.

Profiles: timezone Europe/London for everyone (the data's clock is UK wall time) and the customer's
most frequent ``Country`` as the ``country`` attribute.
"""

from __future__ import annotations

import csv
import gzip
import re
from collections import Counter, defaultdict
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from kairos.core.timeutil import zone
from kairos.customers.schemas import Event

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence
    from pathlib import Path

    import pyarrow as pa

ONLINE_RETAIL_COLUMNS = (
    "Invoice",
    "StockCode",
    "Description",
    "Quantity",
    "InvoiceDate",
    "Price",
    "CustomerID",
    "Country",
)
ONLINE_RETAIL_TZ = "Europe/London"
# StockCodes that are products: 5 digits (+ letters), plus the gift vouchers and DCGS lines the shop sells.
# Everything else (POST, DOT, M, C2, D, S, BANK CHARGES, AMAZONFEE, CRUK, ADJUST, PADS, TEST...) is a service line.
_PRODUCT_CODE = re.compile(r"^(\d{5}[A-Za-z0-9]*|DCGS[A-Za-z0-9]+|gift_\d+_\d+|SP\d+)$")
_ID_SAFE = re.compile(r"[^A-Za-z0-9._:@+\-]")


def is_online_retail_csv(path: Path) -> bool:
    """True when ``path`` is a CSV (optionally gzipped) with the Online Retail II header."""
    name = path.name.lower()
    if not (name.endswith(".csv") or name.endswith(".csv.gz")):
        return False
    with _open_text(path) as fh:
        header = next(csv.reader([fh.readline().lstrip("\ufeff")]), [])
    return tuple(h.strip() for h in header) == ONLINE_RETAIL_COLUMNS


def _open_text(path: Path):
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return path.open("r", encoding="utf-8", newline="")


def _read_rows(path: Path) -> pa.Table:
    """The file's columns as strings (pyarrow's CSV reader: ~20x faster than ``csv``)."""
    import pyarrow.csv as pa_csv

    return pa_csv.read_csv(
        path,
        convert_options=pa_csv.ConvertOptions(
            column_types=dict.fromkeys(ONLINE_RETAIL_COLUMNS, "string"), strings_can_be_null=False
        ),
    ).select(list(ONLINE_RETAIL_COLUMNS))


def online_retail_records(paths: Sequence[Path]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Adapt Online Retail II CSV files to event records and profile records.

    Parameters
    ----------
    paths
        One or both yearly files, in any order.

    Returns
    -------
    tuple
        ``(events, profiles)``: event dicts in ``Event.to_record()`` form, and profile dicts
        ``{"customer_id", "timezone", "attributes": {"country"}}``.
    """
    countries: dict[str, Counter[str]] = defaultdict(Counter)
    events = list(iter_online_retail(paths, countries))
    return events, online_retail_profiles(countries)


def iter_online_retail(paths: Sequence[Path], countries: dict[str, Counter[str]]) -> Iterator[dict[str, Any]]:
    """The event records of the files one at a time (a batch of rows in memory, not the files'), counting each
    customer's countries into ``countries`` for :func:`online_retail_profiles`."""
    import pyarrow.compute as pc

    files = [(p, _read_rows(p)) for p in paths]
    files = [(p, t) for p, t in files if t.num_rows]
    firsts = [pc.min(t.column("InvoiceDate")).as_py() for _, t in files]
    order = sorted(range(len(files)), key=firsts.__getitem__)
    ts_cache: dict[str, str] = {}
    for k, i in enumerate(order):
        # The yearly files share their boundary days: keep those days from the later file only.
        until = firsts[order[k + 1]][:10] if k + 1 < len(order) else None
        yield from _adapt_rows(files[i][1], until, countries, ts_cache)


def online_retail_profiles(countries: dict[str, Counter[str]]) -> list[dict[str, Any]]:
    """One profile per customer: the shop's zone and the customer's most frequent country."""
    return [
        {"customer_id": cid, "timezone": ONLINE_RETAIL_TZ, "attributes": {"country": _mode(cnt)}}
        for cid, cnt in sorted(countries.items())
    ]


def _mode(counter: Counter[str]) -> str:
    # Most frequent country; ties by name, so the profile does not depend on row order.
    return min(counter.items(), key=lambda kv: (-kv[1], kv[0]))[0]


def _batches(table: pa.Table, size: int = 65_536) -> Iterator[tuple[str, ...]]:
    """The table's rows as tuples of strings, one batch of Python strings at a time."""
    names = ("Invoice", "StockCode", "Quantity", "InvoiceDate", "Price", "CustomerID", "Country")
    for batch in table.select(list(names)).to_batches(max_chunksize=size):
        yield from zip(*(batch.column(n).to_pylist() for n in names), strict=True)


def _adapt_rows(
    table: pa.Table, until_day: str | None, countries: dict[str, Counter[str]], ts_cache: dict[str, str]
) -> Iterator[dict[str, Any]]:
    line_no: Counter[str] = Counter()
    for invoice, code, quantity, when, price, customer, country in _batches(table):
        invoice = invoice.strip()
        line_no[invoice] += 1
        customer = customer.strip()
        if customer.endswith(".0"):
            customer = customer[:-2]
        when = when.strip()
        if not customer or invoice.startswith(("C", "A")) or (until_day is not None and when[:10] >= until_day):
            continue
        qty = int(float(quantity))
        if qty <= 0:
            continue
        code = code.strip()
        ts = ts_cache.get(when)
        if ts is None:
            local = datetime.strptime(when[:16], "%Y-%m-%d %H:%M").replace(tzinfo=zone(ONLINE_RETAIL_TZ))
            ts = ts_cache[when] = local.isoformat()
        record: dict[str, Any] = {
            "event_id": f"{invoice}-{line_no[invoice]}",
            "customer_id": customer,
            "type": "purchase",
            "timestamp": ts,
            "quantity": qty,
            "amount": float(round(Decimal(quantity.strip()) * Decimal(price.strip()), 4)),
            "currency": "GBP",
            "properties": {"invoice": invoice},
        }
        if _PRODUCT_CODE.match(code):
            record["product_id"] = code
        else:
            record["properties"]["service_code"] = _ID_SAFE.sub("_", code)
        countries[customer][country.strip() or "Unspecified"] += 1
        yield record


@lru_cache(maxsize=65536)
def parse_timestamp(value: str) -> datetime:
    """A timestamp string this module wrote (cached: a shop has far fewer distinct times than lines)."""
    return datetime.fromisoformat(value)


def record_to_event(record: dict[str, Any]) -> Event:
    """Build an ``Event`` from a record this module made, skipping validation (the adapter is trusted).

    ``tests/unit/test_training_adapters.py`` validates a sample of the same records with the full model.
    """
    fields = dict(record)
    fields["timestamp"] = parse_timestamp(fields["timestamp"])
    if "amount" in fields:
        fields["amount"] = Decimal(str(fields["amount"]))
    return Event.model_construct(**fields)


def find_online_retail_files(paths: Iterable[Path]) -> list[Path]:
    """The Online Retail II CSVs among ``paths`` (files or directories, searched recursively)."""
    found = []
    for p in paths:
        candidates = sorted(p.rglob("*")) if p.is_dir() else [p]
        found.extend(c for c in candidates if c.is_file() and is_online_retail_csv(c))
    return found
