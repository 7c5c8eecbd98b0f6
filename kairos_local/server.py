"""A local HTTP server for the Kairos API on embedded AWS (``make serve``), and the same API as a WSGI app.

The same handlers run behind both as in Lambda: each request becomes an API Gateway REST proxy event.
"""

from __future__ import annotations

import argparse
import os
import sys
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, urlsplit

from kairos_local.embedded import DEFAULT_LOCAL_API_KEY, embedded_aws

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from kairos_local.runtime import LocalRuntime


def make_server(runtime: LocalRuntime, host: str = "127.0.0.1", port: int = 8787) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "kairos-local"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            url = urlsplit(self.path)
            resp = runtime.http(
                self.command, url.path, dict(self.headers.items()), body, dict(parse_qsl(url.query)) or None
            )
            payload = resp.body.encode()
            self.send_response(resp.status)
            for k, v in resp.headers.items():
                if k.lower() not in ("content-length", "connection"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve  # noqa: N815

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            sys.stderr.write(f"{self.command} {self.path} -> {args[1] if len(args) > 1 else ''}\n")

    return ThreadingHTTPServer((host, port), Handler)


def wsgi_app(runtime: LocalRuntime) -> Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]:
    """The local API as a WSGI application, for in-process HTTP clients (test tools such as schemathesis).

    Parameters
    ----------
    runtime
        The embedded deployment whose API serves the requests (see ``kairos_local.embedded.embedded_aws``).

    Returns
    -------
    Callable
        A WSGI application: each request goes through ``runtime.http``, authorizer included.

    Example
    -------
    >>> from werkzeug.test import Client
    >>> Client(wsgi_app(runtime)).get("/v1/openapi.json").status_code
    200
    """

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        headers = {
            key[5:].replace("_", "-").title(): value for key, value in environ.items() if key.startswith("HTTP_")
        }
        for key, name in (("CONTENT_TYPE", "Content-Type"), ("CONTENT_LENGTH", "Content-Length")):
            if environ.get(key):
                headers[name] = environ[key]
        # API Gateway routes on the path as sent (a %2F stays inside its segment); WSGI has decoded PATH_INFO.
        raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
        if raw:
            path = urlsplit(raw).path
        else:
            path = quote(
                environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8", "replace"), safe="/@:+,;=!$&'()*~"
            )
        query = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True)) or None
        resp = runtime.http(environ["REQUEST_METHOD"], path, headers, body, query)
        payload = resp.body.encode()
        out = [(k, v) for k, v in resp.headers.items() if k.lower() not in ("content-length", "connection")]
        start_response(f"{resp.status} {_phrase(resp.status)}", [*out, ("Content-Length", str(len(payload)))])
        return [payload]

    return app


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve the Kairos API locally on embedded AWS (moto).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8787")))
    parser.add_argument("--retention-days", type=int, default=None, help="override EventRetentionDays")
    args = parser.parse_args(argv)
    params = {"EventRetentionDays": str(args.retention_days)} if args.retention_days else None
    with embedded_aws(parameters=params) as runtime:
        server = make_server(runtime, args.host, args.port)
        key = os.environ.get("KAIROS_API_KEY") or DEFAULT_LOCAL_API_KEY
        print(f"Kairos API on http://{args.host}:{args.port}  (API key: {key})", flush=True)
        print(f"  curl http://{args.host}:{args.port}/v1/openapi.json", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
