"""The REST resolver of the Kairos API: request screening, API key scopes, and the one place where errors become HTTP.

Before a route runs, every request is screened in this order: the API key's scopes (403), the body's size (413),
its media type (415), then its JSON (400: NaN, Infinity, numbers no parser should meet, nesting deeper than
``MAX_BODY_DEPTH``). Pydantic then checks the fields (400 naming the field). Every error answer is an
:class:`~kairos.customers.schemas.ErrorBody`.
"""

from __future__ import annotations

import base64
import binascii
import decimal
import json
import math
import re
import sys
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import BaseRouter, Router
from aws_lambda_powertools.event_handler.exceptions import ServiceError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestUnsupportedContentType, RequestValidationError

from kairos.core.errors import InUseError, InvalidInputError, KairosError, NotFoundError, StoreError, ThrottledError
from kairos.core.observability import logger
from kairos.core.schema_rules import add_free_json_components, free_json_components
from kairos.customers.schemas import (
    MAX_BODY_BYTES,
    MAX_BODY_DEPTH,
    MAX_FREE_DEPTH,
    MAX_FREE_STRING_CHARS,
    MAX_NAME_CHARS,
    SCOPES,
    ErrorBody,
    error_field,
)
from kairos.insights.analytics import AnalyticsQueryFailedError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from re import Match

    from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse

API_KEY_SCHEME = "apiKey"
# Answered by API Gateway or by the screening below on every route with a key; the route adds its own.
COMMON_ERRORS = (401, 403, 429, 500, 503)
BODY_ERRORS = (400, 413, 415)
ERROR_DESCRIPTIONS = {
    400: "A field is invalid; `message` starts with its dotted path",
    401: "Missing or unknown API key (answered by API Gateway)",
    403: "The API key lacks the scope this operation needs; `message` names it",
    404: "No such resource",
    409: "The resource is in use (the message names who uses it)",
    413: f"The body is over {MAX_BODY_BYTES} bytes, or the batch over its event count",
    415: "The body is not `application/json` (UTF-8)",
    429: "Over the stage's throttling limits (answered by API Gateway); retry with backoff",
    500: "An internal error; retrying will not help",
    502: "The analytics engine failed or cancelled the query (`message` gives its reason, e.g. the workgroup's "
    "bytes-scanned limit); asking the question again starts a new query",
    503: "A transient store failure (throttling, a 5xx, repeated write conflicts); retrying the same request is "
    "safe (see `Retry-After`)",
}
_JSON_MEDIA_TYPE = "application/json"
_METHODS_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})


class ScopedEndpoints(BaseRouter):
    """Registers operations that each need one API key scope; shared by the resolver and its routers.

    ``scopes`` maps ``(method, resource path)`` to the scope the screening asks of the caller's key; ``links``
    to the OpenAPI links of its success answer (see :meth:`endpoint`).
    """

    scopes: dict[tuple[str, str], str]
    links: dict[tuple[str, str], tuple[int, dict[str, dict[str, str]]]]

    def endpoint(
        self,
        method: str,
        rule: str,
        *,
        scope: str,
        errors: Iterable[int] = (),
        status_code: int = 200,
        success: dict[int, OpenAPIResponse] | None = None,
        links: dict[str, dict[str, str]] | None = None,
        **kwargs: Any,
    ) -> Callable[..., Any]:
        """Register an operation that needs ``scope``, documenting every status it answers.

        Parameters
        ----------
        method, rule
            As for ``APIGatewayRestResolver.route`` (``"GET"``, ``"/v1/customers/<customer_id>"``).
        scope
            The API key scope the operation needs (one of :data:`kairos.customers.schemas.SCOPES`).
        errors
            The error statuses this operation answers besides ``COMMON_ERRORS`` (and ``BODY_ERRORS`` for a method
            with a body).
        status_code
            The success status.
        success
            The success answers when there are several (``200`` with its model, ``202`` with its headers): each
            status with its description, ``content`` and ``headers``, replacing ``status_code``'s default entry.
        links
            What the success answer leads to: a resource path -> its path parameters as OpenAPI runtime
            expressions. The document links the answer to every other operation on that path and below it
            (``{"/v1/campaigns/{campaign_id}": {"campaign_id": "$response.body#/campaign_id"}}``).
        **kwargs
            Passed to ``route`` (``summary``, ``description``, ``tags``).

        Returns
        -------
        Callable
            The decorator that registers the route function.

        Raises
        ------
        ValueError
            ``scope`` is not one of the API key scopes.

        Example
        -------
        >>> @router.endpoint("GET", "/v1/segments", scope="read")
        ... def list_segments() -> SegmentList: ...
        """
        if scope not in SCOPES:
            raise ValueError(f"unknown scope {scope!r}")
        method = method.upper()
        self.scopes[(method, resource_path(rule))] = scope
        if links:
            self.links[(method, resource_path(rule))] = (status_code, links)
        statuses = set(errors) | set(COMMON_ERRORS) | (set(BODY_ERRORS) if method in _METHODS_WITH_BODY else set())
        responses: dict[int, OpenAPIResponse] = {status_code: {"description": HTTPStatus(status_code).phrase}}
        responses.update(success or {})
        for status in sorted(statuses):
            responses[status] = {
                "description": ERROR_DESCRIPTIONS[status],
                "content": {_JSON_MEDIA_TYPE: {"model": ErrorBody}},
            }
        # Only our 503 says when to retry; API Gateway's 429 carries no Retry-After.
        responses[503]["headers"] = {
            "Retry-After": {"description": "Seconds to wait before retrying", "schema": {"type": "integer"}}
        }
        return self.route(
            rule,
            method,
            security=[{API_KEY_SCHEME: [scope]}],
            responses=responses,
            status_code=status_code,
            **kwargs,
        )


def resource_path(rule: str) -> str:
    """The resource path API Gateway names a matched route by (``/v1/customers/{customer_id}``)."""
    return re.sub(r"<(\w+)>", r"{\1}", rule)


class KairosRouter(ScopedEndpoints, Router):
    """The operations of one part of the product, in their own module, included with ``app.include_router``.

    Example
    -------
    >>> router = KairosRouter()
    >>> @router.endpoint("GET", "/v1/segments", scope="read", tags=["campaigns"])
    ... def list_segments(deps: Deps) -> SegmentList: ...
    """

    def __init__(self) -> None:
        super().__init__()
        self.scopes = {}
        self.links = {}


class KairosResolver(ScopedEndpoints, APIGatewayRestResolver):
    """A validating REST resolver whose operations each need one API key scope.

    Register operations with :meth:`endpoint`, here or on a :class:`KairosRouter` included with
    :meth:`include_router`; :meth:`resolve` screens each request before Powertools routes it.
    """

    def __init__(self) -> None:
        super().__init__(enable_validation=True, json_body_deserializer=strict_json)
        self.scopes = {}
        self.links = {}

    def include_router(self, router: Router, prefix: str | None = None) -> None:
        """Add a router's operations, the scopes they need and their links (Powertools copies routes only)."""
        for (method, resource), scope in (router.scopes if isinstance(router, KairosRouter) else {}).items():
            self.scopes[(method, _prefixed(resource, prefix))] = scope
        for (method, resource), link in (router.links if isinstance(router, KairosRouter) else {}).items():
            self.links[(method, _prefixed(resource, prefix))] = link
        super().include_router(router, prefix)

    def _convert_matches_into_route_keys(self, match: Match) -> dict[str, str]:
        # Powertools reads the route's arguments from the path, which API Gateway (REST) passes as the client
        # sent it: percent-decoded here, as API Gateway decodes `pathParameters`, so `/v1/customers/a%2Bb` is
        # customer `a+b` (and a `%2F` stays inside its segment, to fail the argument's pattern).
        return {name: unquote(value) for name, value in match.groupdict().items()}

    def resolve(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        refusal = screen_request(event, self.scopes)
        if refusal is not None:
            return refusal
        response = super().resolve(_lowercase_media_type(event), context)
        if response.get("statusCode") == HTTPStatus.NO_CONTENT:
            # A 204 has no body (RFC 9110): not even the `null` of a handler returning None, which a client
            # on a keep-alive connection would read as the start of the next answer.
            response["body"] = ""
            response["isBase64Encoded"] = False
            for headers in (response.get("headers") or {}, response.get("multiValueHeaders") or {}):
                for name in [k for k in headers if k.lower() in ("content-type", "content-length")]:
                    del headers[name]
        return response

    def openapi_document(self, **kwargs: Any) -> str:
        """The OpenAPI document of the registered operations (``kwargs`` as for ``get_openapi_json_schema``).

        Powertools documents a 422 on every operation; this API answers 400 for invalid input instead, so the
        422 and the schemas only it used are left out. Free JSON values point at the components of their level
        (:mod:`kairos.core.schema_rules`).
        """
        doc = json.loads(self.get_openapi_json_schema(**kwargs))
        _add_links(doc, self.links)
        for operations in doc.get("paths", {}).values():
            for operation in operations.values():
                operation.get("responses", {}).pop("422", None)
                # a 204 has no body: Powertools documents the handler's None as JSON
                operation.get("responses", {}).get("204", {}).pop("content", None)
        schemas = doc.get("components", {}).get("schemas", {})
        for name in ("HTTPValidationError", "ValidationError", "ResponseValidationError"):
            schemas.pop(name, None)
        add_free_json_components(doc, free_json_components(MAX_FREE_DEPTH, MAX_NAME_CHARS, MAX_FREE_STRING_CHARS))
        return json.dumps(doc, separators=(",", ":"))


def _prefixed(resource: str, prefix: str | None) -> str:
    if not prefix:
        return resource
    return prefix if resource == "/" else f"{prefix}{resource}"


def _add_links(doc: dict[str, Any], links: dict[tuple[str, str], tuple[int, dict[str, dict[str, str]]]]) -> None:
    """OpenAPI links from each answer with ``links`` to the operations on the paths it names (by operationId)."""
    paths = doc.get("paths", {})
    for (method, resource), (status, targets) in sorted(links.items()):
        answer = paths[resource][method.lower()]["responses"][str(status)]
        for prefix, parameters in targets.items():
            for path, operations in paths.items():
                if path != prefix and not path.startswith(f"{prefix}/"):
                    continue
                for target_method, operation in operations.items():
                    if (target_method.upper(), path) != (method, resource):
                        target = operation["operationId"]
                        answer.setdefault("links", {})[target] = {"operationId": target, "parameters": parameters}


def make_resolver() -> KairosResolver:
    """A resolver with validation, screening and Kairos' error mapping; each API handler module makes its own."""
    app = KairosResolver()
    app.exception_handler(RequestValidationError)(handle_validation)
    app.exception_handler(RequestUnsupportedContentType)(handle_unsupported)
    app.exception_handler(InvalidInputError)(handle_invalid)
    app.exception_handler(NotFoundError)(handle_not_found)
    app.exception_handler(InUseError)(handle_in_use)
    app.exception_handler(ThrottledError)(handle_throttled)
    app.exception_handler(AnalyticsQueryFailedError)(handle_query_failed)
    app.exception_handler(KairosError)(handle_domain)
    app.exception_handler(decimal.DecimalException)(handle_unstorable_number)
    app.exception_handler(Exception)(handle_unexpected)

    @app.not_found
    def handle_route_not_found(_: Exception) -> Response:
        return _error(404, f"no route {app.current_event.http_method} {app.current_event.path}")

    return app


# ---------------------------------------------------------------------- the caller


def authorizer_context(event: dict[str, Any]) -> dict[str, Any]:
    """What the Lambda authorizer said about the caller (``app_id``, ``key_id``, ``scopes``); empty without one."""
    return ((event.get("requestContext") or {}).get("authorizer")) or {}


def granted_scopes(event: dict[str, Any]) -> frozenset[str]:
    """The scopes of the API key that made the request.

    An authorizer result without ``scopes`` comes from an authorizer older than scopes, cached by API Gateway
    for up to ``AuthorizerCacheSeconds`` after an upgrade: it keeps every scope, as the keys it vouched for did.
    """
    ctx = authorizer_context(event)
    if "scopes" not in ctx:
        return frozenset(SCOPES)
    return frozenset(str(ctx["scopes"]).split())


def caller(event: dict[str, Any]) -> dict[str, str]:
    """``app_id`` and ``key_id`` of the API key that made the request, for audit logs."""
    ctx = authorizer_context(event)
    return {"app_id": str(ctx.get("app_id", "")), "key_id": str(ctx.get("key_id", ""))}


# ---------------------------------------------------------------------- screening


def screen_request(event: dict[str, Any], scopes: dict[tuple[str, str], str]) -> dict[str, Any] | None:
    """The answer to a request refused before routing (scope, size, media type), or ``None`` to route it."""
    method = str(event.get("httpMethod") or "").upper()
    needed = scopes.get((method, str(event.get("resource") or "")))
    if needed is not None and needed not in granted_scopes(event):
        logger.info("request refused", extra={"reason": "missing scope", "scope": needed, **caller(event)})
        return _proxy(
            403,
            f"missing scope '{needed}': this API key may not {method} {event.get('resource')}",
            [{"field": "Authorization", "reason": f"the API key lacks the '{needed}' scope", "type": "missing_scope"}],
        )
    if method not in _METHODS_WITH_BODY:
        return None  # API Gateway passes bodies of GET and DELETE; no route reads them
    body = event.get("body") or ""
    size = _body_size(body, bool(event.get("isBase64Encoded")))
    if size > MAX_BODY_BYTES:
        return _proxy(
            413,
            f"(body): {size} bytes, at most {MAX_BODY_BYTES}",
            [{"field": "(body)", "reason": f"at most {MAX_BODY_BYTES} bytes", "type": "too_large"}],
        )
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    media_type = headers.get("content-type")
    if body and media_type is not None and not _is_json_utf8(media_type):
        return _proxy(
            415,
            f"Content-Type: the body must be {_JSON_MEDIA_TYPE} (UTF-8), got '{media_type[:100]}'",
            [{"field": "Content-Type", "reason": f"send {_JSON_MEDIA_TYPE}", "type": "unsupported_media_type"}],
        )
    return None


def _lowercase_media_type(event: dict[str, Any]) -> dict[str, Any]:
    # Media types are case-insensitive (RFC 9110); Powertools compares "application/json" as written.
    def lower(value: str) -> str:
        media_type, sep, params = value.partition(";")
        return media_type.strip().lower() + sep + params

    event = dict(event)
    for field in ("headers", "multiValueHeaders"):
        headers = event.get(field)
        if headers:
            event[field] = {
                k: (([lower(x) for x in v] if isinstance(v, list) else lower(v)) if k.lower() == "content-type" else v)
                for k, v in headers.items()
            }
    return event


def _body_size(body: str, is_base64: bool) -> int:
    if not is_base64:
        return len(body.encode("utf-8", errors="surrogatepass"))
    try:
        return len(base64.b64decode(body))
    except (binascii.Error, ValueError):
        return len(body)


def _is_json_utf8(header: str) -> bool:
    media_type, *params = (part.strip() for part in header.split(";"))
    if media_type.lower() != _JSON_MEDIA_TYPE:
        return False
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            return False
    return True


def _proxy(status: int, message: str, errors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """An API Gateway proxy answer, for refusals made before Powertools builds one."""
    body = ErrorBody.model_validate({"message": message, "errors": errors}).model_dump(exclude_none=True)
    return {
        "statusCode": status,
        "headers": {"Content-Type": _JSON_MEDIA_TYPE},
        "body": json.dumps(body, separators=(",", ":")),
        "isBase64Encoded": False,
    }


# ---------------------------------------------------------------------- strict JSON


class _NotJson:
    """Stands in, while parsing, for a value JSON does not have; reported with its path once parsing is done."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _parse_constant(name: str) -> _NotJson:
    return _NotJson(f"{name} is not a JSON number")


def _parse_float(text: str) -> float | _NotJson:
    value = float(text)
    return value if math.isfinite(value) else _NotJson(f"{text[:40]} overflows a 64-bit float")


def _parse_int(text: str) -> int | _NotJson:
    # Python refuses to convert longer integers (a ValueError the JSON parser would not turn into a decode error).
    limit = sys.get_int_max_str_digits() or 4300
    return int(text) if len(text) <= limit else _NotJson(f"an integer of {len(text)} digits")


_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{},]')


def _deep_path(text: str) -> tuple[Any, ...]:
    """Where ``text`` first nests deeper than ``MAX_BODY_DEPTH``, read from its tokens without recursion."""
    members: list[Any] = []  # per open container: the current key (object) or index (array)
    in_array: list[bool] = []
    expect_key = False
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token in "{[":
            if len(members) >= MAX_BODY_DEPTH:
                return tuple(members)
            members.append(0 if token == "[" else None)
            in_array.append(token == "[")
            expect_key = token == "{"
        elif token in "}]":
            if members:
                members.pop()
                in_array.pop()
            expect_key = False
        elif token == ",":
            if in_array and in_array[-1]:
                members[-1] += 1
            else:
                expect_key = True
        elif expect_key and members:
            members[-1] = json.loads(token)
            expect_key = False
    return ()


def _loc(path: Iterable[Any]) -> tuple[Any, ...]:
    parts = tuple(path)
    # A path 30 levels down says no more than its first few steps.
    return ("body", *parts[:6], "...") if len(parts) > 6 else ("body", *parts)


def strict_json(text: str) -> Any:
    """Parse a request body as strict JSON.

    Raises
    ------
    json.JSONDecodeError
        Not JSON at all (Powertools answers it as invalid JSON).
    RequestValidationError
        ``NaN``, ``Infinity``, a number that overflows a float, an integer Python will not convert, or nesting
        deeper than ``MAX_BODY_DEPTH``; each error's location is the offending value's path. Or a body that is
        not an object: every body of this API is one, and Powertools would read an array as its first item.
    """
    try:
        value = json.loads(text, parse_constant=_parse_constant, parse_float=_parse_float, parse_int=_parse_int)
    except RecursionError:
        errors = [{"type": "json_depth", "loc": _loc(_deep_path(text)), "msg": _too_deep(), "input": None}]
        raise RequestValidationError(errors) from None
    errors = []
    stack: list[tuple[Any, tuple[Any, ...], int]] = [(value, (), 1)]
    while stack and len(errors) < 10:
        node, path, depth = stack.pop()
        if isinstance(node, _NotJson):
            errors.append({"type": "json_number", "loc": _loc(path), "msg": node.reason, "input": None})
        elif isinstance(node, dict | list):
            if depth > MAX_BODY_DEPTH:
                errors.append({"type": "json_depth", "loc": _loc(path), "msg": _too_deep(), "input": None})
                continue
            items = node.items() if isinstance(node, dict) else enumerate(node)
            stack.extend((child, (*path, key), depth + 1) for key, child in reversed(list(items)))
    if not errors and not isinstance(value, dict):
        errors.append({"type": "json_object", "loc": ("body",), "msg": "must be a JSON object", "input": None})
    if errors:
        raise RequestValidationError(errors)
    return value


def _too_deep() -> str:
    return f"JSON nested deeper than {MAX_BODY_DEPTH} levels"


# ---------------------------------------------------------------------- errors


def _error(status: int, message: str, **extra: object) -> Response:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body={"message": message, **extra})


def _field_and_reason(err: dict[str, Any]) -> tuple[str, str]:
    # Powertools prefixes the location with where it came from ("body", "path", "query").
    loc = list(err.get("loc", ()))
    if loc and loc[0] in ("body", "path", "query", "header"):
        loc = loc[1:]
    field, reason = error_field({**err, "loc": loc})
    return field or "(body)", reason


def handle_validation(exc: RequestValidationError) -> Response:
    errors = []
    for e in exc.errors():
        field, reason = _field_and_reason(e)
        errors.append({"field": field, "reason": reason, "type": e.get("type")})
    if any(e["type"] == "json_invalid" for e in errors):
        return _error(400, "body is not valid JSON", errors=[{"field": "(body)", "reason": "JSON decode error"}])
    first = errors[0]
    # A batch over the size limit is refused whole: 413 names the limit.
    if first["type"] == "too_long" and first["field"] == "events":
        return _error(413, f"events: {first['reason']}", errors=errors)
    return _error(400, f"{first['field']}: {first['reason']}", errors=errors)


def handle_unsupported(exc: RequestUnsupportedContentType) -> Response:
    # Screening refuses other media types first; this answers the same should Powertools meet one.
    return _error(415, f"Content-Type: the body must be {_JSON_MEDIA_TYPE}")


def handle_invalid(exc: InvalidInputError) -> Response:
    return _error(400, str(exc), errors=[{"field": exc.field, "reason": exc.reason}])


def handle_not_found(exc: NotFoundError) -> Response:
    return _error(404, str(exc))


def handle_in_use(exc: InUseError) -> Response:
    return _error(409, str(exc))


def handle_query_failed(exc: AnalyticsQueryFailedError) -> Response:
    logger.warning("analytics query failed", extra={"query_id": exc.query_id, "reason": exc.reason})
    return _error(
        502,
        f"{exc}; ask the question again to start a new query",
        errors=[{"field": "query_id", "reason": exc.reason, "type": "query_failed"}],
    )


def handle_throttled(exc: ThrottledError) -> Response:
    logger.warning("store throttled", extra={"error": str(exc)})
    return Response(
        status_code=503,
        content_type=content_types.APPLICATION_JSON,
        body={"message": "temporarily throttled, retry the same request"},
        headers={"Retry-After": "1"},
    )


def is_transient(exc: StoreError) -> bool:
    """Whether retrying may succeed: throttling, repeated conflicts, or the store's own 5xx (not a 4xx it refused)."""
    if isinstance(exc, ThrottledError):
        return True
    # Adapters chain the AWS error they translated (``raise StoreError(...) from ClientError``).
    meta = getattr(exc.__cause__, "response", None) or {}
    status = (meta.get("ResponseMetadata") or {}).get("HTTPStatusCode") if isinstance(meta, dict) else None
    return not isinstance(status, int) or status >= 500


def handle_domain(exc: KairosError) -> Response:
    logger.exception("request failed", extra={"error_type": type(exc).__name__})
    if isinstance(exc, StoreError) and is_transient(exc):
        return Response(
            status_code=503,
            content_type=content_types.APPLICATION_JSON,
            body={"message": "the request could not be completed; retrying the same request is safe"},
            headers={"Retry-After": "1"},
        )
    return _error(500, "internal error; retrying will not help")


def handle_unstorable_number(exc: decimal.DecimalException) -> Response:
    # Only client numbers reach the DynamoDB serializer's Decimal context (38 digits, 1E-130 to 9.99E+125): a
    # field without its own number rule (a segment filter's value) lands here.
    logger.info("number out of the store's range", extra={"error_type": type(exc).__name__})
    return _error(
        400,
        "(body): a number has more than 38 significant digits or a magnitude DynamoDB cannot hold",
        errors=[{"field": "(body)", "reason": "number out of range", "type": "number_range"}],
    )


def handle_unexpected(exc: Exception) -> Response:
    if isinstance(exc, ServiceError):  # Powertools' own HTTP errors carry their status
        return _error(exc.status_code, exc.msg)
    logger.exception("unexpected error", extra={"error_type": type(exc).__name__})
    return _error(500, "internal error; retrying will not help")
