"""Run the template's functions in-process on embedded AWS, as API Gateway and Lambda would.

- ``invoke(logical_id, event)`` calls the function's handler, imported from its ``CodeUri``, with the function's
  environment and a context, as Lambda does (moto's own Lambda needs Docker, which we do not use). Functions run at
  once, as in Lambda: up to ``concurrency`` invocations, each on its caller's thread (a request's, a state machine
  execution's, the stream and schedule loop's), each in a sandbox of its function that serves one invocation at a
  time. Each sees its own function's environment (:func:`kairos.core.config.function_environment`); the process
  environment is never swapped.
- ``http(method, path, headers, body)`` turns an HTTP request into an API Gateway REST proxy event, runs the
  API's Lambda authorizer (with its result cache) and the route's function, and returns the response.
- ``pump_streams()`` reads the DynamoDB streams that feed functions and delivers the records, with the
  event source's filter, as the Lambda event source mapping does: each mapping in order, the mappings at once.
"""

from __future__ import annotations

import base64
import contextvars
import importlib.util
import json
import logging
import re
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from kairos.core.config import function_environment
from kairos_local.template import ROOT

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from kairos_local.template import Deployment

MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway REST payload limit
# What a function's environment says differently here than in AWS. moto's Athena takes queries but runs none: the
# same archive queries run on DuckDB over the embedded archive bucket.
# Locally there is no user pool (the Cognito resources are skipped): the authorizer takes API keys only.
LOCAL_ENVIRONMENT = {"KAIROS_ANALYTICS_ENGINE": "duckdb", "KAIROS_USER_POOL_ID": "", "KAIROS_USER_POOL_CLIENT_ID": ""}
# Invocations running at once, all functions together (Lambda's account concurrency, scaled to a laptop). Four lets
# what starts invocations each have one going: a request to the API, a journey step of a state machine, a stream
# batch and the timer, so the races between them happen here as they do in AWS. More would only add threads waiting
# for the GIL on a machine of two cores (the handlers are Python, and moto answers one request at a time).
DEFAULT_CONCURRENCY = 4
# Sandboxes per function: each loads the handler module on its own (a cold start) and serves one invocation at a
# time, as a Lambda execution environment does. One per function by default: invocations of one function take turns
# in its one module (tests reach into that module), different functions run at once. A second sandbox lets two
# requests to the API (an ingest and an erasure) overlap, at the cost of a second cold start.
DEFAULT_SANDBOXES = 1
log = logging.getLogger(__name__)


@dataclass
class LambdaContext:
    function_name: str
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = ""
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    timeout_s: int = 29
    started: float = field(default_factory=time.monotonic)
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = ""

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_s - (time.monotonic() - self.started)) * 1000))


@dataclass
class Route:
    method: str
    path: str
    function: str
    auth: bool
    pattern: re.Pattern[str]


@dataclass
class HttpResponse:
    status: int
    headers: dict[str, str]
    body: str

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


_SUBMIT = ThreadPoolExecutor.submit
_inheriting = 0
_inheriting_lock = threading.Lock()


def _submit_in_context(self: ThreadPoolExecutor, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    return _SUBMIT(self, contextvars.copy_context().run, fn, *args, **kwargs)


@contextmanager
def pools_inherit_context() -> Iterator[None]:
    """Run every task submitted to a ``ThreadPoolExecutor`` in a copy of the submitter's context, while the block runs.

    In Lambda every thread of a sandbox sees the function's environment; here an invocation's environment lives in
    its context (:func:`kairos.core.config.function_environment`), which a new thread does not inherit. A handler
    that reads its settings in a pool's thread (the timer starts due steps and scans entries in pools) sees them so.
    Nested blocks share the patch; the outermost undoes it.
    """
    global _inheriting  # noqa: PLW0603 - one process-wide patch state, as the class is process-wide
    with _inheriting_lock:
        if _inheriting == 0:
            ThreadPoolExecutor.submit = _submit_in_context  # type: ignore[method-assign]
        _inheriting += 1
    try:
        yield
    finally:
        with _inheriting_lock:
            _inheriting -= 1
            if _inheriting == 0:
                ThreadPoolExecutor.submit = _SUBMIT  # type: ignore[method-assign]


def _match(pattern: Any, value: Any) -> bool:
    """The subset of Lambda event filter syntax our template uses: nested keys, exact values, prefix."""
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(k in value and _match(p, value[k]) for k, p in pattern.items())
    if isinstance(pattern, list):
        for rule in pattern:
            if isinstance(rule, dict) and "prefix" in rule:
                if isinstance(value, str) and value.startswith(rule["prefix"]):
                    return True
            elif rule == value:
                return True
        return False
    return pattern == value


class _Function:
    """One function's sandboxes: each a handler loaded from its own import of the code, serving one invocation at
    a time.

    All are loaded (cold-started) together, on the first call, before any serves: loading one registers on objects
    the modules share (the API's routers point at the last resolver that included them, which copies their
    context), and must not happen while another sandbox of the function is serving a request.
    """

    def __init__(self, load: Callable[[int], Callable[..., Any]], size: int) -> None:
        self.load, self.size = load, size
        self.handlers: list[Callable[..., Any]] = []  # by sandbox number
        self.idle: list[Callable[..., Any]] = []
        self.changed = threading.Condition()
        self.loading = threading.Lock()  # the function's code is imported once per sandbox, by one thread

    def load_sandboxes(self) -> list[Callable[..., Any]]:
        """Every sandbox's handler, loading them all the first time."""
        with self.loading:
            if not self.handlers:
                handlers = [self.load(number) for number in range(self.size)]
                with self.changed:
                    self.handlers, self.idle = handlers, handlers[::-1]  # sandbox 0 serves first
                    self.changed.notify_all()
        return self.handlers

    def acquire(self) -> Callable[..., Any]:
        """An idle sandbox's handler, waiting for one to be released if all are busy."""
        self.load_sandboxes()
        with self.changed:
            while not self.idle:
                self.changed.wait()
            return self.idle.pop()

    def release(self, handler: Callable[..., Any]) -> None:
        with self.changed:
            self.idle.append(handler)
            self.changed.notify()


class LocalRuntime:
    """Functions, API and stream triggers of a deployed template, executed in this process.

    Parameters
    ----------
    deployment
        The deployed template.
    session
        The boto3 session inside embedded AWS.
    concurrency
        Invocations running at once, all functions together (see :data:`DEFAULT_CONCURRENCY`).
    sandboxes
        Sandboxes per function, each serving one invocation at a time (see :data:`DEFAULT_SANDBOXES`).
    """

    def __init__(
        self,
        deployment: Deployment,
        session: Any,
        concurrency: int = DEFAULT_CONCURRENCY,
        sandboxes: int = DEFAULT_SANDBOXES,
    ) -> None:
        if concurrency < 1 or sandboxes < 1:
            raise ValueError(f"concurrency and sandboxes must be at least 1, not {concurrency} and {sandboxes}")
        self.dep = deployment
        self.session = session
        self.concurrency, self.sandboxes = concurrency, sandboxes
        self._functions: dict[str, _Function] = {}
        # Cold starts one at a time, process-wide: two imports of modules that import each other on two threads
        # could each meet the other's module half made (each function also loads its sandboxes once: _Function).
        self._cold_start = threading.Lock()
        self._slots = threading.BoundedSemaphore(concurrency)
        self._auth_cache: dict[str, tuple[float, dict[str, Any] | None]] = {}
        self._stream_iters: dict[str, dict[str, str]] = {}
        # A server pumps from a background loop and after every request: one pump at a time, or two would
        # read the same shard iterator and deliver the same records twice.
        self._pump_lock = threading.Lock()
        self._streams: Any = None
        self.routes = self._routes()
        self.invocations: dict[str, int] = {}
        # The most invocations that ran at once, of each function and ("*") of all: what overlapped.
        self.peaks: dict[str, int] = {}
        self._running: dict[str, int] = {"*": 0}
        self._state = threading.Condition()  # guards invocations, peaks, _running and _functions
        self.last_error: BaseException | None = None  # what the last 502 hid, for tests and debugging

    # ------------------------------------------------------------ functions

    def environment_of(self, logical_id: str) -> dict[str, str]:
        """The function's environment variables: the template's, with what differs locally
        (:data:`LOCAL_ENVIRONMENT`, for the variables the function has) and the name Lambda gives it."""
        env = self.dep.function_environment(logical_id)
        env.update({k: v for k, v in LOCAL_ENVIRONMENT.items() if k in env})
        env["AWS_LAMBDA_FUNCTION_NAME"] = self.dep.physical[logical_id]
        return env

    @contextmanager
    def environment(self, logical_id: str) -> Iterator[None]:
        """Run the block with the function's environment over the process's, in this context only (its thread)."""
        with function_environment(self.environment_of(logical_id)):
            yield

    def _function(self, logical_id: str) -> _Function:
        with self._state:
            if logical_id not in self._functions:
                self._functions[logical_id] = _Function(lambda i: self._load(logical_id, i), self.sandboxes)
            return self._functions[logical_id]

    def _load(self, logical_id: str, index: int) -> Callable[..., Any]:
        """A cold start: the handler module imported anew (its own globals) under the function's environment."""
        props = self.dep.resources[logical_id]["Properties"]
        code_dir = ROOT / props["CodeUri"]
        module_name, func_name = props["Handler"].rsplit(".", 1)
        unique = f"kairos_fn_{logical_id}_{module_name}" + (f"_{index}" if index else "")
        spec = importlib.util.spec_from_file_location(unique, code_dir / f"{module_name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        with self._cold_start, self.environment(logical_id):
            sys.modules[unique] = module
            try:
                spec.loader.exec_module(module)
            except BaseException:
                del sys.modules[unique]
                raise
        return getattr(module, func_name)

    def handler(self, logical_id: str) -> Callable[..., Any]:
        """The handler of the function's first sandbox (module ``kairos_fn_<logical id>_<module>``), loading the
        function's sandboxes (their cold starts) if they are not yet."""
        return self._function(logical_id).load_sandboxes()[0]

    def invoke(self, logical_id: str, event: dict[str, Any]) -> Any:
        """Call a function's handler as Lambda would: in a free sandbox of the function, with its environment
        and a context, once fewer than ``concurrency`` invocations are running."""
        props = self.dep.resources[logical_id]["Properties"]
        glob = self.dep.template.get("Globals", {}).get("Function", {})
        fn = self._function(logical_id)
        # The sandbox first, then a slot: an invocation waiting for its function's sandbox holds no slot.
        handler = fn.acquire()
        try:
            with self._slots, self.environment(logical_id):
                with self._state:
                    self.invocations[logical_id] = self.invocations.get(logical_id, 0) + 1
                    for key in ("*", logical_id):
                        self._running[key] = self._running.get(key, 0) + 1
                        self.peaks[key] = max(self.peaks.get(key, 0), self._running[key])
                ctx = LambdaContext(
                    function_name=self.dep.physical[logical_id],
                    memory_limit_in_mb=int(props.get("MemorySize", glob.get("MemorySize", 128))),
                    invoked_function_arn=self.dep.attributes[(logical_id, "Arn")],
                    timeout_s=int(props.get("Timeout", glob.get("Timeout", 3))),
                )
                try:
                    return handler(event, ctx)
                finally:
                    # With metrics disabled Powertools never flushes, and prints them anyway once 100 pile up
                    # across invocations; Lambda would have flushed after each one, so drop them here.
                    from kairos.core.observability import metrics

                    metrics.clear_metrics()
                    with self._state:
                        self._running["*"] -= 1
                        self._running[logical_id] -= 1
                        self._state.notify_all()
        finally:
            fn.release(handler)

    def drain(self, timeout_s: float) -> bool:
        """Wait until no invocation is running (``False``: some still were after ``timeout_s`` real seconds)."""
        with self._state:
            return self._state.wait_for(lambda: self._running["*"] == 0, timeout=timeout_s)

    # ------------------------------------------------------------ API Gateway

    def _api(self) -> tuple[str, dict[str, Any]]:
        apis = self.dep.of_type("AWS::Serverless::Api")
        ((api_id, api),) = apis.items()
        return api_id, api["Properties"]

    def _routes(self) -> list[Route]:
        api_id, api = self._api()
        routes = []
        for lid, res in self.dep.of_type("AWS::Serverless::Function").items():
            for ev in res["Properties"].get("Events", {}).values():
                if ev["Type"] != "Api":
                    continue
                p = ev["Properties"]
                regex = "^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(p["Path"])) + "$"
                auth = p.get("Auth", {}).get("Authorizer") != "NONE"
                routes.append(Route(p["Method"].upper(), p["Path"], lid, auth, re.compile(regex)))
        del api_id
        return routes

    def _authorize(self, token: str | None, method: str, path: str) -> dict[str, Any] | None:
        _, api = self._api()
        auth = api["Auth"]
        conf = auth["Authorizers"][auth["DefaultAuthorizer"]]
        fn_arn = conf["FunctionArn"]["Fn::GetAtt"][0]
        ttl = int(self.dep.resolve(conf["Identity"].get("ReauthorizeEvery", 300)))
        if not token:
            return None
        cached = self._auth_cache.get(token)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        stage = self.dep.resolve(api["StageName"])
        arn = f"arn:aws:execute-api:{self.dep.region}:{self.dep.account}:{self.dep.physical[self._api()[0]]}"
        event = {"type": "TOKEN", "authorizationToken": token, "methodArn": f"{arn}/{stage}/{method}{path}"}
        try:
            policy = self.invoke(fn_arn, event)
        except Exception as exc:  # noqa: BLE001 - API Gateway maps any authorizer failure to a deny
            if str(exc) != "Unauthorized":
                raise
            policy = None
        if policy is not None:
            allowed = any(s["Effect"] == "Allow" for s in policy["policyDocument"]["Statement"])
            policy = policy if allowed else None
        self._auth_cache[token] = (time.monotonic() + ttl, policy)
        return policy

    def http(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        body: bytes | str | None = None,
        query: dict[str, str] | None = None,
    ) -> HttpResponse:
        """Serve one HTTP request the way API Gateway (REST, Lambda proxy) would."""
        headers = dict(headers or {})
        raw = body.encode() if isinstance(body, str) else (body or b"")
        if len(raw) > MAX_BODY_BYTES:
            return _gateway(413, "request body too large")
        route, params = None, {}
        path_only = path.split("?", 1)[0]
        for r in self.routes:
            m = r.pattern.match(path_only)
            if m and r.method == method.upper():
                route, params = r, m.groupdict()
                break
        if route is None:
            known = any(r.pattern.match(path_only) for r in self.routes)
            return _gateway(
                403 if not known else 405, "Missing Authentication Token" if not known else "method not allowed"
            )
        authorizer_ctx: dict[str, Any] = {}
        if route.auth:
            token = next((v for k, v in headers.items() if k.lower() == "authorization"), None)
            policy = self._authorize(token, method.upper(), path_only)
            if policy is None:
                return _gateway(401, "missing or invalid API key: send Authorization: Bearer <api key>")
            authorizer_ctx = {"principalId": policy["principalId"], **policy.get("context", {})}
        _, api = self._api()
        stage = self.dep.resolve(api["StageName"])
        text = raw.decode("utf-8", errors="replace") if raw else None
        event = {
            "resource": route.path,
            "path": path_only,
            "httpMethod": method.upper(),
            "headers": headers,
            "multiValueHeaders": {k: [v] for k, v in headers.items()},
            "queryStringParameters": query or None,
            "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} if query else None,
            # API Gateway passes the path as sent but decodes the path parameters.
            "pathParameters": {k: unquote(v) for k, v in params.items()} or None,
            "stageVariables": None,
            "requestContext": {
                "resourcePath": route.path,
                "httpMethod": method.upper(),
                "path": f"/{stage}{path_only}",
                "stage": stage,
                "requestId": str(uuid.uuid4()),
                "identity": {"sourceIp": "127.0.0.1"},
                "authorizer": authorizer_ctx or None,
            },
            "body": text,
            "isBase64Encoded": False,
        }
        try:
            result = self.invoke(route.function, event)
        except Exception as exc:  # noqa: BLE001 - API Gateway answers a failed Lambda invocation with 502
            log.exception("%s %s: the function failed", method.upper(), path_only)
            self.last_error = exc
            return _gateway(502, "Internal server error")
        self.pump_streams()
        out_body = result.get("body") or ""
        if result.get("isBase64Encoded"):
            out_body = base64.b64decode(out_body).decode()
        out_headers = dict(result.get("headers") or {})
        for k, v in (result.get("multiValueHeaders") or {}).items():
            out_headers[k] = ", ".join(v)
        return HttpResponse(int(result["statusCode"]), out_headers, out_body)

    # ------------------------------------------------------------ streams

    def pump_streams(self) -> int:
        """Deliver new DynamoDB stream records to their functions; return how many were delivered."""
        with self._pump_lock:
            if self._streams is None:
                # botocore >= 1.44 sends stream calls to account endpoints (<account>.streams-ddb...) that moto
                # does not route yet; the classic endpoint reaches the same backend.
                self._streams = self.session.client(
                    "dynamodbstreams", endpoint_url=f"https://streams.dynamodb.{self.dep.region}.amazonaws.com"
                )
            return self._pump(self._streams)

    def _pump(self, streams: Any) -> int:
        # Each event source mapping reads its stream in order; the mappings poll apart in Lambda, so here they
        # deliver at once (the archive and trigger functions both read the events table's stream).
        mappings = [
            (lid, name, ev["Properties"])
            for lid, res in self.dep.of_type("AWS::Serverless::Function").items()
            for name, ev in res["Properties"].get("Events", {}).items()
            if ev["Type"] == "DynamoDB"
        ]
        if len(mappings) <= 1:
            return sum(self._pump_mapping(streams, *m) for m in mappings)
        with ThreadPoolExecutor(max_workers=len(mappings), thread_name_prefix="kairos-stream") as pool:
            return sum(pool.map(lambda m: self._pump_mapping(streams, *m), mappings))

    def _pump_mapping(self, streams: Any, lid: str, name: str, props: dict[str, Any]) -> int:
        delivered = 0
        stream_arn = self.dep.resolve(props["Stream"])
        filters = [json.loads(f["Pattern"]) for f in props.get("FilterCriteria", {}).get("Filters", [])]
        batch_size = int(props.get("BatchSize", 100))
        iters = self._stream_iters.setdefault(f"{lid}/{name}", {})
        shards = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]
        for shard in shards:
            sid = shard["ShardId"]
            if sid not in iters:
                iters[sid] = streams.get_shard_iterator(
                    StreamArn=stream_arn, ShardId=sid, ShardIteratorType="TRIM_HORIZON"
                )["ShardIterator"]
            while True:
                resp = streams.get_records(ShardIterator=iters[sid], Limit=1000)
                iters[sid] = resp.get("NextShardIterator") or iters[sid]
                records = [_jsonable(r) for r in resp.get("Records", [])]
                if not records:
                    break
                for r in records:
                    r["eventSourceARN"] = stream_arn
                records = [r for r in records if not filters or any(_match(f, r) for f in filters)]
                for start in range(0, len(records), batch_size):
                    self._deliver_batch(lid, props, records[start : start + batch_size])
                    delivered += len(records[start : start + batch_size])
        return delivered

    def _deliver_batch(self, lid: str, props: dict[str, Any], batch: list[dict[str, Any]]) -> None:
        """One stream batch, as Lambda's event source mapping delivers it.

        A function error retries the batch; with ``ReportBatchItemFailures`` a returned ``batchItemFailures``
        retries from the first failed record. After ``MaximumRetryAttempts`` (at most 3 here) the rest of the
        batch goes to the ``OnFailure`` destination, if there is one, and the stream moves on.
        """
        partial = "ReportBatchItemFailures" in (props.get("FunctionResponseTypes") or [])
        attempts = 1 + min(int(self.dep.resolve(props.get("MaximumRetryAttempts", 3))), 3)
        pending = batch
        for _ in range(attempts):
            try:
                result = self.invoke(lid, {"Records": pending})
            except Exception:  # noqa: BLE001 - a function error: Lambda retries the batch
                logging.getLogger("kairos_local").exception("%s failed on a stream batch; retrying it", lid)
                continue
            failures = result.get("batchItemFailures") if partial and isinstance(result, dict) else None
            if not failures:
                return
            failed = {f.get("itemIdentifier") for f in failures}
            first = next((i for i, r in enumerate(pending) if r["dynamodb"].get("SequenceNumber") in failed), 0)
            pending = pending[first:]
        self._on_failure(lid, props, pending)

    def _on_failure(self, lid: str, props: dict[str, Any], records: list[dict[str, Any]]) -> None:
        target = ((props.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
        logging.getLogger("kairos_local").error("%s gave up on %d stream records", lid, len(records))
        if not target:
            return
        arn = str(self.dep.resolve(target))
        sqs = self.session.client("sqs")
        url = sqs.get_queue_url(QueueName=arn.rsplit(":", 1)[-1])["QueueUrl"]
        info = {
            "requestContext": {"functionArn": self.dep.attributes[(lid, "Arn")], "condition": "RetryAttemptsExhausted"},
            "DDBStreamBatchInfo": {
                "shardId": records[0].get("eventID", ""),
                "startSequenceNumber": records[0]["dynamodb"].get("SequenceNumber"),
                "endSequenceNumber": records[-1]["dynamodb"].get("SequenceNumber"),
                "batchSize": len(records),
                "streamArn": records[0].get("eventSourceARN"),
            },
        }
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps(info))


def _jsonable(value: Any) -> Any:
    """Stream records as Lambda receives them (JSON): datetimes become epoch seconds."""
    from datetime import datetime

    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return value


def _gateway(status: int, message: str) -> HttpResponse:
    return HttpResponse(status, {"Content-Type": "application/json"}, json.dumps({"message": message}))
