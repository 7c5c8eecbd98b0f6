"""The web console in a real browser (Chromium driven by Playwright) against ``make serve``'s local product.

Demo-like data goes in over the API first: customers with history, the abandoned-cart journey from
``examples/journeys`` activated and entered by a ``cart_abandon`` event, and a scoring run. Each page's
screenshot goes to ``out/console/``.
"""

from __future__ import annotations

import copy
import json
import shutil
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from kairos.customers.aggregates import CustomerAggregates
from kairos_local.server import LocalProduct
from kairos_local.template import ROOT
from tests.helpers import store_bulk_customers

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

pytestmark = pytest.mark.e2e

API_KEY = "console-test-key"
SHOTS = ROOT / "out" / "console"
BULK_CUSTOMERS = 10_000
CHROMIUM = next((p for p in (shutil.which("chromium"), shutil.which("chromium-browser")) if p), None)


def call(url: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {API_KEY}"}
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def eventually(check: Callable[[], Any], timeout_s: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (result := check()):
        assert time.monotonic() < deadline, f"not within {timeout_s} s"
        time.sleep(0.2)
    return result


def abandoned_cart() -> dict[str, Any]:
    return json.loads((ROOT / "examples" / "journeys" / "abandoned_cart.json").read_text())


@pytest.fixture(scope="module")
def shop() -> Iterator[dict[str, Any]]:
    # Noon UTC: outside the journey's quiet hours, so its email goes at once; a simulated minute per real second
    # keeps every path where it is while the pages are read.
    start = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    with LocalProduct(port=0, speed=60, api_key=API_KEY, start=start, score_at_start=False) as product:
        url = product.url
        now = product.clock.now()
        for cid, tier in (("ana", "gold"), ("ben", "silver"), ("cleo", "silver")):
            profile = {
                "timezone": "Europe/London",
                "contact": {"email": f"{cid}@example.com"},
                "consent": {"email": True},
                "attributes": {"first_name": cid.title(), "tier": tier},
            }
            assert call(url, "PUT", f"/v1/customers/{cid}", profile)[0] == 200
        history = [
            {
                "event_id": f"s{d}",
                "customer_id": "ana",
                "type": "session",
                "timestamp": (now - timedelta(days=d, hours=d % 5)).isoformat(),
            }
            for d in range(1, 15)
        ]
        history.append(
            {
                "event_id": "p1",
                "customer_id": "ana",
                "type": "purchase",
                "product_id": "SKU-7",
                "quantity": 1,
                "amount": 19.8,
                "currency": "EUR",
                "timestamp": (now - timedelta(days=3)).isoformat(),
            }
        )
        assert call(url, "POST", "/v1/events", {"events": history})[1]["accepted"] == len(history)
        status, scored = call(url, "POST", "/_local/score")
        assert status == 200, scored
        status, journey = call(url, "POST", "/v1/journeys", abandoned_cart())
        assert status == 201, journey
        jid = journey["journey_id"]
        assert call(url, "POST", f"/v1/journeys/{jid}/status", {"status": "active"})[0] == 200
        cart = {
            "event_id": "cart-1",
            "customer_id": "ana",
            "type": "cart_abandon",
            "amount": 42.0,
            "timestamp": product.clock.now().isoformat(),
        }
        assert call(url, "POST", "/v1/events", {"events": [cart]})[1]["accepted"] == 1

        def emailed() -> bool:
            return bool(call(url, "GET", "/v1/customers/ana/messages")[1]["messages"])

        eventually(emailed)
        yield {"url": url, "journey_id": jid, "product": product}


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.skip("no Chromium on this machine (apt-get install chromium): the console's browser tests need one")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the dev extras")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, shop):
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    # A 4xx the page asked for (an edit the API refuses) is logged by the browser too: only script errors count.
    page.on(
        "console",
        lambda msg: (
            problems.append(msg.text)
            if msg.type == "error" and not msg.text.startswith("Failed to load resource")
            else None
        ),
    )
    # Signed in as make serve's link does: the key in the fragment, kept in this tab.
    page.goto(f"{shop['url']}/console/#key={API_KEY}")
    page.wait_for_selector("h1#view-title")
    yield page
    context.close()
    assert not problems, problems


def test_console_serves_its_files_without_a_key_and_signs_in_with_a_form(browser, shop):
    # GIVEN a tab with no key
    context = browser.new_context()
    page = context.new_page()
    # WHEN the console opens
    page.goto(f"{shop['url']}/console")
    # THEN it asks for a key, and with the local one shows the journeys
    page.get_by_label("API key").fill(API_KEY)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_selector("h1#view-title:text('Journeys')")
    assert page.evaluate("location.pathname") == "/console/"
    context.close()


def test_console_journey_graph_shows_the_entry_on_its_first_node(page, shop):
    # GIVEN the journey list
    page.wait_for_selector(f"[data-figure='entries'][data-journey='{shop['journey_id']}']:not(:text('…'))")
    row = page.get_by_role("row", name="Abandoned cart")
    assert "active" in row.inner_text()
    page.screenshot(path=SHOTS / "journeys.png", full_page=True)
    # WHEN the journey opens
    page.get_by_role("link", name="Abandoned cart").click()
    page.wait_for_selector("svg.graph")
    # (a page that opens puts focus on its heading, where a screen reader starts reading)
    assert page.locator("h1#view-title:focus").text_content() == "Abandoned cart"
    # THEN its start node counts the customer who abandoned a cart, and the email node the message it sent
    first = page.locator("[data-node='by_amount']")
    assert first.locator(".count-passed").text_content() == "1 passed"
    assert "1 passed" in first.get_attribute("aria-label")
    assert "email 1 sent" in page.locator("[data-node='email'] .node-channels").text_content()
    assert page.locator("#journey-entries").text_content() == "1"
    # AND its results: the email's node and channel, and the day it entered
    results = page.locator("#results").inner_text()
    assert "By node and channel" in results and "By day" in results
    assert page.get_by_role("row", name="email email").count() == 1
    page.screenshot(path=SHOTS / "journey.png", full_page=True)


def test_console_invalid_journey_edit_shows_the_error_on_the_named_node(page, shop):
    # GIVEN the journey's editor
    page.goto(f"{shop['url']}/console/#/journeys/{shop['journey_id']}")
    page.wait_for_selector("#definition")
    definition = json.loads(page.locator("#definition").input_value())
    broken = copy.deepcopy(definition)
    broken["nodes"]["email"]["next"] = "nowhere"
    # WHEN a definition whose email node goes to an unknown node is saved
    page.locator("#definition").fill(json.dumps(broken, indent=2))
    page.get_by_role("button", name="Save new version").click()
    # THEN the API's error shows on that node in the graph, and in the list of errors
    error = page.locator("[data-node='email'] .node-error")
    error.wait_for()
    assert "next: unknown node 'nowhere'" in error.text_content()
    assert "has-error" in page.locator("[data-node='email']").get_attribute("class")
    assert "Node email" in page.locator("#journey-errors").inner_text()
    assert page.locator("#definition").get_attribute("aria-invalid") == "true"
    # AND from the keyboard, the error's link takes focus to the node it names
    page.locator("#journey-errors a[data-error-node='email']").focus()
    page.keyboard.press("Enter")
    assert page.locator("[data-node='email']:focus").count() == 1
    page.screenshot(path=SHOTS / "journey-error.png", full_page=True)
    # AND the definition as the console showed it saves as a new version
    page.locator("#definition").fill(json.dumps(definition, indent=2))
    page.get_by_role("button", name="Save new version").click()
    page.get_by_text("v2", exact=True).wait_for()
    assert not page.locator("[data-node='email'] .node-error").count()
    # AND the first version is there to look at and to bring back
    page.get_by_label("Show version").select_option("1")
    page.get_by_text("Version 1, saved").wait_for()
    assert page.locator("#version-view svg.graph [data-node='email']").count() == 1
    page.get_by_role("button", name="Put v1 in the editor").click()
    assert json.loads(page.locator("#definition").input_value())["nodes"]["email"]["next"] != "nowhere"


def test_console_segment_count_changes_when_a_filter_is_added(page, shop):
    # GIVEN the segment builder with no condition: everybody
    page.goto(f"{shop['url']}/console/#/segments")
    count = page.locator("#segment-count")
    page.locator("#segment-count[data-count='3']").wait_for()
    # WHEN a condition "purchase_count >= 1" is added
    page.get_by_role("button", name="Add condition").click()
    # THEN the count follows: only the customer who bought
    page.locator("#segment-count[data-count='1']").wait_for()
    assert count.text_content().startswith("1 customer")
    assert page.locator("#segment-sample").inner_text().strip() == "ana"
    # AND turned into "none of", everybody else
    page.get_by_label("Customers matching").select_option("none")
    page.locator("#segment-count[data-count='2']").wait_for()
    page.get_by_label("Customers matching").select_option("all")
    page.locator("#segment-count[data-count='1']").wait_for()
    # AND saved, the segment is listed, used by nothing yet
    page.get_by_label("Save as").fill("buyers")
    page.get_by_role("button", name="Save segment").click()
    row = page.get_by_role("row", name="buyers")
    row.wait_for()
    assert "nothing" in row.inner_text()
    # AND once a journey enters its customers, the list says which
    welcome = {**abandoned_cart(), "name": "Welcome buyers", "entry": {"segment": "buyers", "on": "enter"}}
    assert call(shop["url"], "POST", "/v1/journeys", welcome)[0] == 201
    page.reload()
    page.get_by_role("link", name="Welcome buyers").wait_for()
    assert "Welcome buyers (draft)" in page.get_by_role("row", name="buyers").inner_text()
    page.screenshot(path=SHOTS / "segments.png", full_page=True)


def test_console_customer_page_shows_messages_and_the_hour_heat_map(page, shop):
    # WHEN a customer is looked up by id
    page.goto(f"{shop['url']}/console/#/customers")
    page.get_by_label("Customer id").fill("ana")
    page.get_by_role("button", name="Find").click()
    page.wait_for_selector("#timeline")
    # THEN the journey's email and the cart she abandoned are on the timeline, and the 168 hour scores are drawn,
    # the best hour outlined
    timeline = page.locator("#timeline").inner_text()
    assert "email message sent" in timeline and "cart abandon" in timeline
    # AND the email as the provider got it (the local outbox): its subject, its text one click away
    assert "You left something in your cart" in timeline
    assert page.locator("#heatmap td.heat").count() == 168
    assert page.locator("#heatmap td.heat.best").count() == 1
    assert "email yes" in page.locator("main").inner_text()
    page.screenshot(path=SHOTS / "customer.png", full_page=True)


def test_console_insights_draw_the_rfm_grid_and_the_cohorts(page, shop):
    # GIVEN the insights page after a scoring run
    page.goto(f"{shop['url']}/console/#/insights")
    # WHEN RFM and cohorts are loaded (each a query on the archive, polled while it runs)
    page.get_by_role("button", name="Load rfm groups").click()
    page.get_by_role("button", name="Load cohorts").click()
    # THEN RFM is a 5 by 5 grid of groups, and the cohort of the one buyer is a row of the heat map
    page.locator("#rfm-grid td.cell").first.wait_for(timeout=60_000)
    assert page.locator("#rfm-grid td.cell").count() == 25
    page.locator("#cohort-heat tbody tr").first.wait_for(timeout=60_000)
    assert page.locator("#cohort-heat tbody tr").count() >= 1
    page.screenshot(path=SHOTS / "insights.png", full_page=True)


def test_console_models_page_shows_the_model_in_service_and_its_card(page, shop):
    # WHEN the models page opens
    page.get_by_role("link", name="Models").click()
    page.wait_for_selector("h1#view-title:text('Model in service')")
    # THEN it names the bundled model's version and training, and its card's tables
    card = json.loads((ROOT / "models" / "default" / "metadata.json").read_text())
    assert page.locator("#model-version").text_content() == card["model_version"]
    facts = page.locator("#model-facts").inner_text()
    assert "the bundled model" in facts and card["training_window"]["start"][:10] in facts
    main = page.locator("#send-time-main")
    assert main.get_by_role("row", name="Kairos").first.is_visible()
    assert main.get_by_role("row", name=card["metrics"]["main"]["strongest_time_baseline"]).count() == 1
    overall = card["metrics"]["main"]["kairos_hit_within_1h"]["overall"]
    assert f"{overall * 100:.1f}%" in main.get_by_role("row", name="Kairos").first.inner_text()
    assert page.locator("#calibration-fit tbody tr").count() == len(card["calibration_fit"])
    assert page.locator("#calibration-main tbody tr").count() == 4
    assert "BG/NBD + Gamma-Gamma" in page.locator("#lifecycle-main").inner_text()
    assert "RFM score" in page.locator("#lifecycle-holdout").inner_text()
    assert "No off-policy estimates" in page.locator("[data-evaluation='main']").inner_text()
    page.screenshot(path=SHOTS / "models.png", full_page=True)


def test_console_customer_list_pages_through_ten_thousand_customers(page, shop):
    # GIVEN 10,000 more customers in the local store (this test runs last: the others count the first three)
    store_bulk_customers(
        shop["product"].runtime, BULK_CUSTOMERS, CustomerAggregates(purchase_count=1, monetary_total=9.9)
    )
    # WHEN the customers page opens, and its first page is asked of the API as the console asks it
    started = time.perf_counter()
    status, first = call(shop["url"], "GET", "/v1/customers?limit=50")
    api_s = time.perf_counter() - started
    # (a page reads 50 items of the store: reserved ones, the scoring run's fallbacks, are read but not listed)
    assert status == 200 and 0 < len(first["customers"]) <= 50 and first["next_cursor"]
    started = time.perf_counter()
    with page.expect_response(lambda r: "/v1/customers?limit=50" in r.url) as answered:
        page.get_by_role("link", name="Customers").click()
    listing = page.locator("#customer-list")
    listing.wait_for()
    page_s = time.perf_counter() - started
    print(f"customers list over {BULK_CUSTOMERS + 3}: API {api_s:.3f} s, console page {page_s:.3f} s")
    # THEN the first page answers far within API Gateway's 29 s, and lists its customers to click into
    assert answered.value.status == 200
    # (about 0.8 s here: the local product's clock and timers share the interpreter; the API alone answers in
    # under 0.1 s, tests/functional/test_customer_list.py)
    assert api_s < 5.0 and page_s < 5.0
    assert listing.locator("tbody tr").count() == len(first["customers"])
    page.screenshot(path=SHOTS / "customers-list.png", full_page=True)
    # AND the next page holds others, and a customer opens from the list
    first_ids = set(listing.locator("tbody th a").all_text_contents())
    page.get_by_role("button", name="Next page").click()
    page.locator("#customer-list caption:text('Page 2')").wait_for()
    assert not first_ids & set(listing.locator("tbody th a").all_text_contents())
    page.get_by_role("button", name="Previous page").click()
    page.locator("#customer-list caption:text('Page 1')").wait_for()
    target = listing.locator("tbody th a").first
    cid = target.text_content()
    target.click()
    page.wait_for_selector(f"h1#view-title:text('Customer {cid}')")
