"""The web console's files: what ``/console`` answers, and the filter fields it offers against the code's."""

from __future__ import annotations

import json
import re

import pytest

from kairos.audiences.domain import filter_fields
from kairos.http.console_assets import CONSOLE_DIR, console_asset


def test_console_asset_index_and_scripts_with_their_types():
    # WHEN the console's entry and a script are asked for
    index, script = console_asset("/console/"), console_asset("/console/js/app.js")
    # THEN they are served with their types, and a policy that allows the console's own files only
    assert index is not None and index.status == 200 and index.headers["Content-Type"].startswith("text/html")
    assert b'<script type="module" src="js/app.js">' in index.body
    assert script is not None and script.headers["Content-Type"].startswith("text/javascript")
    assert "script-src 'self'" in index.headers["Content-Security-Policy"]


def test_console_asset_redirects_the_bare_path_and_leaves_the_api_alone():
    assert console_asset("/console").status == 308
    assert console_asset("/console").headers["Location"] == "/console/"
    assert console_asset("/v1/journeys") is None
    assert console_asset("/consoles") is None


@pytest.mark.parametrize(
    "path",
    ["/console/../console_assets.py", "/console/js/../../console_assets.py", "/console/.hidden", "/console/nope.js"],
)
def test_console_asset_refuses_what_is_not_a_console_file(path):
    assert console_asset(path).status == 404


def test_console_files_load_nothing_from_elsewhere():
    # Offline and under the CSP: no URL of another origin, no inline script or style attribute in the page.
    for path in CONSOLE_DIR.rglob("*"):
        if path.is_file():
            text = path.read_text()
            assert not re.search(r"(src|href)=\"(https?:)?//", text), path
            assert "<script>" not in text, path


def test_console_filter_fields_are_the_codes():
    # GIVEN the fields the segment builder offers
    text = (CONSOLE_DIR / "js" / "fields.js").read_text()
    body = text[text.index("[") : text.rindex("]") + 1]
    offered = json.loads(re.sub(r",\s*]$", "]", body))
    # THEN they are the fields the API validates, with the same values and meanings
    assert offered == [
        {"field": f.field, "value": f.value, "meaning": f.meaning.replace("``", "`")} for f in filter_fields()
    ]
