"""The whole product locally (``make serve``): the API over HTTP, and everything AWS would run behind it.

:class:`LocalProduct` deploys ``template.yaml`` into embedded AWS (moto) and runs, in this process, what the
stack runs in AWS: the API (each request becomes an API Gateway REST proxy event for the same handlers as in
Lambda), every state machine execution (Lambda tasks in-process, waits on a clock that follows real time at
``KAIROS_CLOCK_SPEED`` and stands still while the work due at a time is handled), the DynamoDB stream triggers
and the template's schedules (:class:`kairos_local.scheduler.LocalTriggers`). ``GET /_local/clock`` tells the
simulated now. :func:`wsgi_app` serves the same API to in-process clients.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import signal
import sys
import threading
from contextlib import ExitStack
from datetime import datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, urlsplit

from kairos.http.console_assets import console_asset
from kairos_local import moto_patches
from kairos_local.embedded import embedded_aws
from kairos_local.outbox import outbox
from kairos_local.runtime import DEFAULT_CONCURRENCY, HttpResponse
from kairos_local.scheduler import LocalTriggers
from kairos_local.stepfunctions import WallClock, local_stepfunctions

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from types import TracebackType

    from kairos_local.runtime import LocalRuntime
    from kairos_local.stepfunctions import StepFunctionsRunner

    # Local control endpoints: the request body in, an HTTP status and a JSON document out.
    Control = dict[str, Callable[[bytes], tuple[int, Any]]]

CLOCK_SPEED_ENV = "KAIROS_CLOCK_SPEED"
SCORE_STATE_MACHINE = "ScoreAllStateMachine"
# Sandboxes per function under make serve: two requests to the API (an ingest and an erasure of the same customer)
# or two journey steps run at once, as two Lambda execution environments would serve them.
SERVE_SANDBOXES = 2
log = logging.getLogger(__name__)


def make_server(
    runtime: LocalRuntime, host: str = "127.0.0.1", port: int = 8787, control: Control | None = None
) -> ThreadingHTTPServer:
    """An HTTP server for the local API.

    Parameters
    ----------
    runtime
        The embedded deployment whose API serves the requests.
    host, port
        Where to listen (port 0: any free port, see ``server.server_address``).
    control
        Local-only endpoints, keyed ``"<METHOD> <path>"`` (``"POST /_local/score"``); paths under ``/_local/``
        are answered by them, never by the API, and are not part of the OpenAPI document.

    Returns
    -------
    ThreadingHTTPServer
        Not yet serving: call ``serve_forever``.
    """

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "kairos-local"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            url = urlsplit(self.path)
            # The web console's static files (kairos/http/console/): served without a key; the page signs in.
            asset = console_asset(url.path) if self.command in ("GET", "HEAD") else None
            if asset is not None:
                self._reply(asset.status, asset.headers, asset.body)
                return
            if control is not None and url.path.startswith("/_local/"):
                fn = control.get(f"{self.command} {url.path}")
                status, doc = fn(body) if fn else (404, {"message": f"no local endpoint {self.command} {url.path}"})
                self._reply(status, {"Content-Type": "application/json"}, json.dumps(doc, default=str))
                return
            # `?by=` is a parameter with an empty value, as API Gateway passes it (and the WSGI app below).
            query = dict(parse_qsl(url.query, keep_blank_values=True)) or None
            resp = api_http(runtime, self.command, url.path, dict(self.headers.items()), body, query)
            self._reply(resp.status, resp.headers, resp.body)

        def _reply(self, status: int, headers: dict[str, str], body: str | bytes) -> None:
            payload = body if isinstance(body, bytes) else body.encode()
            self.send_response(status)
            for k, v in headers.items():
                if k.lower() not in ("content-length", "connection"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        # Every method goes to the API as API Gateway takes it (QUERY and any other token included): one the route
        # does not declare is a 405, an unknown path a 403. The standard library answers a method it has no
        # do_<METHOD> for with an HTML 501.
        def __getattr__(self, name: str) -> Any:
            if name.startswith("do_"):
                return self._serve
            raise AttributeError(name)

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
        resp = api_http(runtime, environ["REQUEST_METHOD"], path, headers, body, query)
        payload = resp.body.encode()
        out = [(k, v) for k, v in resp.headers.items() if k.lower() not in ("content-length", "connection")]
        start_response(f"{resp.status} {_phrase(resp.status)}", [*out, ("Content-Length", str(len(payload)))])
        return [payload]

    return app


def api_http(
    runtime: LocalRuntime,
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes,
    query: dict[str, str] | None,
) -> HttpResponse:
    """``runtime.http`` behind API Gateway's choice of resource: a 405 with ``Allow`` for a method it lacks.

    API Gateway matches a path to one resource, a literal segment before a parameter (``/v1/segments/preview``
    is not segment ``preview``), and a method that resource does not declare goes no further (a 403 there; a
    405 here, with the ``Allow`` header RFC 9110 15.5.6 asks for).
    """
    matching = [r for r in runtime.routes if r.pattern.match(path)]
    if matching:
        resource = min({r.path for r in matching}, key=lambda p: [part.startswith("{") for part in p.split("/")])
        allowed = sorted({r.method for r in matching if r.path == resource})
        if method.upper() not in allowed:
            headers = {"Content-Type": "application/json", "Allow": ", ".join(allowed)}
            return HttpResponse(HTTPStatus.METHOD_NOT_ALLOWED, headers, json.dumps({"message": "method not allowed"}))
    return runtime.http(method, path, headers, body, query)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


class LocalProduct:
    """The whole product on embedded AWS, in this process: what ``make serve`` runs.

    Entering it deploys ``template.yaml`` into moto, runs every state machine execution on the local
    interpreter with a :class:`~kairos_local.stepfunctions.WallClock` at ``speed``, starts the background loop
    of stream triggers and schedules (:class:`~kairos_local.scheduler.LocalTriggers`), scores everybody once
    (so recommendations answer from the first request: customers not scored yet get the fallbacks) and serves
    HTTP on a thread. Leaving it stops all of that, in the reverse order.

    Parameters
    ----------
    host, port
        Where the HTTP server listens (port 0: any free port; see :attr:`url`).
    speed
        Simulated seconds per real second for waits, schedules and what handlers read as now, while nothing is
        due (the clock stands while due work is handled: :class:`~kairos_local.stepfunctions.WallClock`).
    api_key
        The local app's API key (default ``$KAIROS_API_KEY`` or ``kairos-local-dev-key``).
    parameters
        Template parameter overrides (e.g. ``{"ScoreSchedule": "rate(1 hour)"}``).
    template
        A template to deploy instead of ``template.yaml`` (tests add test-only resources to the real one).
    score_at_start
        Run one ScoreAll execution before serving.
    tick_s
        Real seconds between two rounds of stream pumping and schedule checks.
    start
        The clock's time at start (default: now).
    concurrency, sandboxes
        Function invocations running at once, and sandboxes per function
        (:class:`~kairos_local.runtime.LocalRuntime`).

    Example
    -------
    >>> with LocalProduct(port=0, speed=3600) as product:
    ...     urllib.request.urlopen(f"{product.url}/v1/openapi.json").status
    200
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8787,
        speed: float = 1.0,
        api_key: str | None = None,
        parameters: dict[str, str] | None = None,
        template: dict[str, Any] | None = None,
        score_at_start: bool = True,
        tick_s: float = 0.5,
        start: datetime | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
        sandboxes: int = SERVE_SANDBOXES,
    ) -> None:
        self.host, self.port = host, port
        self.concurrency, self.sandboxes = concurrency, sandboxes
        if not (math.isfinite(speed) and speed > 0):
            raise ValueError(f"clock speed must be a positive number, not {speed!r}")
        self.speed, self.start = speed, start
        self.api_key = api_key
        self.parameters = parameters
        self.template = template
        self.score_at_start = score_at_start
        self.tick_s = tick_s
        self._stack = ExitStack()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> LocalProduct:
        try:
            self._start()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stack.close()

    def _start(self) -> None:
        stack = self._stack
        self.runtime: LocalRuntime = stack.enter_context(
            embedded_aws(
                self.api_key,
                self.parameters,
                template=self.template,
                concurrency=self.concurrency,
                sandboxes=self.sandboxes,
            )
        )
        # Runs once the executions are stopped, before moto goes: a Lambda still running must end inside moto,
        # never reach out to AWS.
        stack.callback(self.runtime.drain, 30)
        # Bound first, so a port in use fails at once; requests wait in the backlog until it serves.
        self.server = make_server(
            self.runtime,
            self.host,
            self.port,
            {
                "POST /_local/score": self._score_endpoint,
                "GET /_local/clock": self._clock_endpoint,
                "GET /_local/outbox": self._outbox_endpoint,
            },
        )
        stack.callback(self.server.server_close)
        # Unsubscribe and preference links in messages point at this server.
        self.runtime.dep.parameters["PublicUrl"] = self.url
        # Every function's sandboxes are loaded now (their cold starts, with the settings above), before anything
        # runs in the background: the first requests and the first timer find their functions warm.
        for logical_id in self.runtime.dep.of_type("AWS::Serverless::Function"):
            self.runtime.handler(logical_id)
        # The clock starts once the deployment is there: at an hour per second, deploying would cost hours.
        self.clock = WallClock(self.speed, self.start)
        self.sfn: StepFunctionsRunner = stack.enter_context(local_stepfunctions(self.runtime, self.clock))
        self.triggers = LocalTriggers(self.runtime, self.clock, self.tick_s)
        self.triggers.start()
        stack.callback(self.triggers.stop)
        if self.score_at_start:
            result = self.score()
            if result["status"] != "SUCCEEDED":
                log.warning("scoring at start ended %s: %s", result["status"], result.get("cause"))
        thread = threading.Thread(target=self.server.serve_forever, name="kairos-http", daemon=True)
        thread.start()
        stack.callback(self._stop_http, thread)

    def _stop_http(self, thread: threading.Thread) -> None:
        self.server.shutdown()
        thread.join(timeout=10)

    def score(self, timeout_s: float = 600.0) -> dict[str, Any]:
        """Score every customer now (one ScoreAll execution, as the nightly schedule starts) and wait.

        Returns
        -------
        dict
            ``execution_arn``, ``status`` (``SUCCEEDED``, ``FAILED``... or ``TIMED_OUT`` when it did not end
            within ``timeout_s`` real seconds) and ``output`` (the execution's, parsed) or ``error``/``cause``.
        """
        shards = int(self.runtime.dep.parameters.get("ScoreShards") or 1)
        arn = self.sfn.start(SCORE_STATE_MACHINE, {"total_shards": shards})
        try:
            desc = self.sfn.wait(arn, timeout_s)
        except TimeoutError as exc:
            return {"execution_arn": arn, "status": "TIMED_OUT", "cause": str(exc)}
        out: dict[str, Any] = {"execution_arn": arn, "status": desc["status"]}
        if desc["status"] == "SUCCEEDED":
            out["output"] = json.loads(desc.get("output") or "null")
        else:
            out |= {"error": desc.get("error"), "cause": desc.get("cause")}
        return out

    def _score_endpoint(self, body: bytes) -> tuple[int, Any]:
        # POST /_local/score: no body; 200 with the execution's output once it succeeded.
        result = self.score()
        status = {"SUCCEEDED": 200, "TIMED_OUT": 504}.get(result["status"], 500)
        return status, result

    def _clock_endpoint(self, body: bytes) -> tuple[int, Any]:
        # GET /_local/clock: the product's "now" (simulated when the clock runs faster than real time), so a
        # script stamps its events with the time the product lives in; and whether it stands for due work.
        state = self.clock.state()
        return 200, {k: v.isoformat() if isinstance(v, datetime) else v for k, v in state.items()}

    def _outbox_endpoint(self, body: bytes) -> tuple[int, Any]:
        # GET /_local/outbox: every email (raw MIME), SMS and push the embedded providers received, oldest first.
        with moto_patches.atomic():
            messages = outbox(self.runtime.dep.account, self.runtime.dep.region)
            sent = self._kairos_ids()
        # Each with the message log's id of the send it delivered, when the log has it (the console's timeline).
        return 200, {"messages": [{**m, "kairos_message_id": sent.get(m["message_id"])} for m in messages]}

    def _kairos_ids(self) -> dict[str, str]:
        """Provider message id -> the message log's id: a scan of the local messages table (a development tool
        over a handful of messages, never a request path of the product)."""
        ddb = self.runtime.session.client("dynamodb")
        out: dict[str, str] = {}
        for page in ddb.get_paginator("scan").paginate(TableName=self.runtime.dep.physical["MessagesTable"]):
            for item in page.get("Items", []):
                if "provider_message_id" in item:
                    out[item["provider_message_id"]["S"]] = item["message_id"]["S"]
        return out

    def wait(self) -> None:
        """Serve until interrupted (Ctrl-C)."""
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


def clock_speed(value: str | None) -> float:
    """``KAIROS_CLOCK_SPEED`` (or ``--speed``) as a number: 1 by default, positive and finite."""
    try:
        speed = float(value) if value else 1.0
    except ValueError:
        speed = math.nan
    if not (math.isfinite(speed) and speed > 0):
        raise ValueError(f"{CLOCK_SPEED_ENV} must be a positive number, not {value!r}")
    return speed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Run Kairos locally on embedded AWS (moto): the API, state machines, stream triggers, schedules."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8787")))
    parser.add_argument("--retention-days", type=int, default=None, help="override EventRetentionDays")
    parser.add_argument(
        "--speed",
        default=os.environ.get(CLOCK_SPEED_ENV),
        help=f"simulated seconds per real second (default ${CLOCK_SPEED_ENV} or 1; 3600: an hour per second)",
    )
    args = parser.parse_args(argv)
    try:
        speed = clock_speed(args.speed)
    except ValueError as exc:
        parser.error(str(exc))
    params = {"EventRetentionDays": str(args.retention_days)} if args.retention_days else None
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    logging.getLogger("kairos_local").addHandler(handler)
    logging.getLogger("kairos_local").setLevel(logging.INFO)
    # A terminated server (kill, a process manager) stops as cleanly as one interrupted with Ctrl-C.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    print(f"Deploying template.yaml into embedded AWS (clock speed {speed:g})...", flush=True)
    try:
        with LocalProduct(args.host, args.port, speed=speed, parameters=params) as product:
            key = product.runtime.api_key  # type: ignore[attr-defined]
            print(f"Kairos on {product.url}  (API key: {key})", flush=True)
            # The key rides in the fragment, which the browser never sends: the console keeps it for this tab.
            print(f"  {product.url}/console/#key={key}   # the web console, signed in", flush=True)
            print(f"  curl {product.url}/v1/openapi.json", flush=True)
            print(f"  curl -X POST {product.url}/_local/score   # score everybody now", flush=True)
            print(f"  curl {product.url}/_local/clock          # the product's now (simulated)", flush=True)
            print(
                f"  curl {product.url}/_local/outbox         # every message sent, as the provider got it", flush=True
            )
            product.wait()
            print("Stopping...", flush=True)
    except KeyboardInterrupt:  # Ctrl-C while deploying: everything started so far has been stopped
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
