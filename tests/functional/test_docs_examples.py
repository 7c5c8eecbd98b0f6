"""Every HTTP example in docs/ runs against the real API (the local runtime on embedded AWS) and is answered as the
page says; every route of the API has at least one example.

An example is a fenced ```http block: the request line (``POST /v1/segments/preview``), optional headers, a blank
line and the body (JSON unless a ``Content-Type`` header says otherwise). The ```http block after it that starts
with ``HTTP/1.1 <status>`` is its answer: the status must be the one answered, and the answer's JSON must hold
what the page shows (the keys it shows, recursively; the values too, except floats and strings with ``...``).
``{campaign_id}``, ``{journey_id}``, ``{query_id}``, ``{token}``, ``{start_parameter}`` and ``{secret_token}`` stand
for what an earlier answer gave (in the target, the headers or the body).
"""

from __future__ import annotations

import json
import re
import urllib.parse
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest

from kairos.core import timeutil
from kairos_local.embedded import embedded_aws
from kairos_local.template import ROOT, load_template
from tests.conftest import Client

if TYPE_CHECKING:
    from pathlib import Path

DOCS = ROOT / "docs"
_FENCE = re.compile(r"^```http[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)
_REQUEST = re.compile(r"^(GET|POST|PUT|PATCH|DELETE) (/\S*)$")
_RESPONSE = re.compile(r"^HTTP/1\.1 (\d{3})\b")
_PLACEHOLDER = re.compile(r"\{(campaign_id|journey_id|query_id|token|start_parameter|secret_token)\}")
_BOUND_FROM_ANSWERS = ("campaign_id", "journey_id", "query_id", "start_parameter", "secret_token")
_UNSUBSCRIBE_TOKEN = re.compile(r"/v1/unsubscribe/([^>/?\s]+)")


@dataclass
class Example:
    page: str
    line: int
    method: str
    target: str
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    status: int | None = None
    answer: Any = None

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line} {self.method} {self.target}"


def _head_and_body(text: str) -> tuple[list[str], str | None]:
    head, sep, body = text.partition("\n\n")
    return head.strip("\n").splitlines(), (body.strip() or None) if sep else None


def parse_examples(page: Path) -> list[Example]:
    """The examples of one page, in the page's order, each with the answer shown after it (if any)."""
    text = page.read_text(encoding="utf-8")
    found: list[Example] = []
    for match in _FENCE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        lines, body = _head_and_body(match.group(1))
        if not lines:
            continue
        if (answered := _RESPONSE.match(lines[0])) is not None:
            assert found and found[-1].status is None, f"{page.name}:{line}: an answer without its request"
            found[-1].status = int(answered.group(1))
            found[-1].answer = json.loads(body) if body else None
            continue
        request = _REQUEST.match(lines[0])
        assert request is not None, f"{page.name}:{line}: an http block starts with 'METHOD /path' or 'HTTP/1.1'"
        headers = dict(h.split(": ", 1) for h in lines[1:])
        ex = Example(page.name, line, request.group(1), request.group(2), headers, body)
        if body and "json" in headers.get("Content-Type", "application/json"):
            json.loads(body)  # a page must not show JSON that does not parse
        found.append(ex)
    return found


def all_examples() -> list[Example]:
    return [ex for page in sorted(DOCS.glob("*.md")) for ex in parse_examples(page)]


def _resource(target: str) -> str:
    return urllib.parse.urlsplit(target).path


def _route_of(method: str, path: str, routes: set[tuple[str, str]]) -> tuple[str, str] | None:
    for m, resource in routes:
        pattern = "^" + re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(resource)) + "$"
        if m == method and re.match(pattern, path):
            return m, resource
    return None


def api_routes() -> set[tuple[str, str]]:
    """Every route API Gateway serves, from the template's Api events (the OpenAPI paths and the link routes)."""
    routes = set()
    for res in load_template()["Resources"].values():
        for event in (res.get("Properties") or {}).get("Events", {}).values():
            if event["Type"] == "Api":
                routes.add((event["Properties"]["Method"].upper(), event["Properties"]["Path"]))
    return routes


# The order examples run in, whatever page shows them: what others need first, deletions last. Within a phase,
# pages in name order, each in its own order.
_PHASES = (
    (("PUT", "/v1/customers/{customer_id}"), ("POST", "/v1/events"), ("PUT", "/v1/products/{product_id}")),
    (("PUT", "/v1/segments/{name}"), ("PUT", "/v1/intents/{name}"), ("PUT", "/v1/promo-pools/{name}/codes")),
    (("POST", "/v1/journeys"), ("POST", "/v1/campaigns")),
    (),  # everything else
    (("POST", "/v1/campaigns/{campaign_id}/cancel"), ("PUT", "/v1/policy")),
    # the links of a message (a preview shows one) change the customer's subscriptions
    (
        ("POST", "/v1/unsubscribe/{token}"),
        ("GET", "/v1/unsubscribe/{token}"),
        ("GET", "/v1/preferences/{token}"),
        ("POST", "/v1/preferences/{token}"),
    ),
    (("DELETE", "/v1/segments/{name}"),),
    (("DELETE", "/v1/customers/{customer_id}"),),
)


def _phase(route: tuple[str, str]) -> int:
    return next((i for i, routes in enumerate(_PHASES) if route in routes), _PHASES.index(()))


def _shape_holds(shown: Any, got: Any, where: str = "") -> list[str]:
    """Where the answer differs from what the page shows (keys it lacks, values that differ)."""
    if isinstance(shown, dict):
        if not isinstance(got, dict):
            return [f"{where or '(answer)'}: an object on the page, {type(got).__name__} answered"]
        wrong = []
        for key, value in shown.items():
            if key not in got:
                wrong.append(f"{where}{key}: shown, not answered")
            else:
                wrong += _shape_holds(value, got[key], f"{where}{key}.")
        return wrong
    if isinstance(shown, list):
        if not isinstance(got, list):
            return [f"{where}: a list on the page, {type(got).__name__} answered"]
        return [
            f"{where}{i}: no answered item is like it"
            for i, item in enumerate(shown)
            if not any(not _shape_holds(item, candidate, where) for candidate in got)
        ]
    if isinstance(shown, float) or (isinstance(shown, str) and "..." in shown):
        return []
    return [] if shown == got else [f"{where.rstrip('.')}: {shown!r} on the page, {got!r} answered"]


# The pages' examples carry fixed dates: the API answers them as of a fixed day a little after those dates.
PAGES_NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)


@pytest.fixture(scope="module")
def client():
    # A global control group for its example.
    parameters = {"GlobalControlShare": "0.1"}
    timeutil.set_clock(lambda: PAGES_NOW)
    try:
        with embedded_aws(api_key="docs-key", parameters=parameters) as rt:
            yield Client(rt)
    finally:
        timeutil.set_clock(None)


def test_docs_examples_parse_and_name_routes_the_api_serves():
    # GIVEN every example of every page
    examples = all_examples()
    routes = api_routes()
    # THEN each names a route API Gateway serves
    assert examples
    unknown = [ex.where for ex in examples if _route_of(ex.method, _resource(ex.target), routes) is None]
    assert unknown == []


def test_docs_examples_cover_every_route_of_the_api(client):
    # GIVEN the routes of the OpenAPI document the API serves, and those of the unsubscribe links (not in it:
    # they need no key and answer HTML)
    doc = client.request("GET", "/v1/openapi.json").json()
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    routes = api_routes()
    assert documented <= routes
    # WHEN the examples are matched with them
    shown = {_route_of(ex.method, _resource(ex.target), routes) for ex in all_examples()}
    # THEN every route has one (the document itself included)
    assert routes - shown == set()


def test_docs_examples_are_answered_as_the_pages_say(client):
    # GIVEN every example, in the order of what needs what
    routes = api_routes()
    examples = sorted(all_examples(), key=lambda ex: _phase(_route_of(ex.method, _resource(ex.target), routes)))
    bound: dict[str, str] = {}
    for ex in examples:
        # WHEN it is sent as shown (an id an earlier answer gave in place of its placeholder)
        def fill(text: str) -> str:
            return _PLACEHOLDER.sub(lambda m: bound[m.group(1)], text)  # noqa: B023 - used at once

        given = ex.target + (ex.body or "") + "".join(ex.headers.values())
        assert set(_PLACEHOLDER.findall(given)) <= set(bound), f"{ex.where}: nothing gave it"
        split = urllib.parse.urlsplit(fill(ex.target))
        query = dict(urllib.parse.parse_qsl(split.query)) or None
        headers = {**client.headers, **{k: fill(v) for k, v in ex.headers.items()}}
        body = fill(ex.body) if ex.body else None
        resp = client.runtime.http(ex.method, split.path, headers, body, query=query)
        # a client waits for a question the archive answers (the local engine is done at the first poll)
        if resp.status == 202 and ex.status == 200 and "Location" in resp.headers:
            resp = client.runtime.http("GET", resp.headers["Location"], client.headers)
        # THEN it is answered with the status the page shows (any 2xx when it shows none)
        if ex.status is None:
            assert 200 <= resp.status < 300, f"{ex.where}: {resp.status} {resp.body}"
        else:
            assert resp.status == ex.status, f"{ex.where}: {resp.status} {resp.body}"
        answer = resp.json() if resp.headers.get("Content-Type", "").startswith("application/json") else None
        # AND the answer holds what the page shows
        if ex.answer is not None:
            assert _shape_holds(ex.answer, answer) == [], f"{ex.where}: {resp.body}"
        if isinstance(answer, dict):
            bound |= {k: answer[k] for k in _BOUND_FROM_ANSWERS if isinstance(answer.get(k), str)}
            if (link := _UNSUBSCRIBE_TOKEN.search(json.dumps(answer.get("headers", "")))) is not None:
                bound["token"] = link.group(1)
