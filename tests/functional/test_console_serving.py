"""``make serve``'s HTTP server answers ``/console`` with the console's files, without a key or an AWS call."""

from __future__ import annotations

import http.client
import threading

import pytest

from kairos_local.server import make_server


@pytest.fixture
def server():
    # The console's paths never reach the API: a server without a deployment behind it serves them.
    srv = make_server(runtime=None, port=0)  # type: ignore[arg-type]
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv.server_address[:2]
    srv.shutdown()
    srv.server_close()


def fetch(address, method: str, path: str) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection(*address, timeout=10)
    conn.request(method, path)
    resp = conn.getresponse()
    resp.read()
    return resp


def test_serve_console_page_scripts_and_redirect(server):
    # WHEN the console is opened by its bare path, then its page and a script
    bare = fetch(server, "GET", "/console")
    page = fetch(server, "GET", "/console/")
    script = fetch(server, "GET", "/console/js/graph.js")
    head = fetch(server, "HEAD", "/console/console.css")
    # THEN the bare path redirects, the files come with their types, and a missing one is a 404
    assert bare.status == 308 and bare.getheader("Location") == "/console/"
    assert page.status == 200 and page.getheader("Content-Type") == "text/html; charset=utf-8"
    assert "script-src 'self'" in page.getheader("Content-Security-Policy")
    assert script.status == 200 and script.getheader("Content-Type").startswith("text/javascript")
    assert head.status == 200 and int(head.getheader("Content-Length")) > 0
    assert fetch(server, "GET", "/console/missing.js").status == 404
