"""The REST resolver of the Kairos API and the one place where domain errors become HTTP responses."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError

from kairos.errors import InvalidInputError, KairosError, NotFoundError, StoreError, ThrottledError
from kairos.observability import logger


def make_resolver() -> APIGatewayRestResolver:
    """A resolver with validation and Kairos' error mapping; each API handler module makes its own."""
    app = APIGatewayRestResolver(enable_validation=True)
    app.exception_handler(RequestValidationError)(handle_validation)
    app.exception_handler(InvalidInputError)(handle_invalid)
    app.exception_handler(NotFoundError)(handle_not_found)
    app.exception_handler(ThrottledError)(handle_throttled)
    app.exception_handler(KairosError)(handle_domain)

    @app.not_found
    def handle_route_not_found(_: Exception) -> Response:
        return _error(404, f"no route {app.current_event.http_method} {app.current_event.path}")

    return app


def _error(status: int, message: str, **extra: object) -> Response:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body={"message": message, **extra})


def _field_of(loc: tuple | list) -> str:
    # Powertools prefixes the location with where it came from ("body", "path", "query").
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "path", "query", "header"):
        parts = parts[1:]
    return ".".join(parts) or "(body)"


def handle_validation(exc: RequestValidationError) -> Response:
    errors = [
        {"field": _field_of(e.get("loc", ())), "reason": e.get("msg", "invalid"), "type": e.get("type")}
        for e in exc.errors()
    ]
    if any(e["type"] == "json_invalid" for e in errors):
        return _error(400, "body is not valid JSON", errors=[{"field": "(body)", "reason": "JSON decode error"}])
    first = errors[0]
    # A batch over the size limit is refused whole: 413 names the limit.
    if first["type"] == "too_long" and first["field"] == "events":
        return _error(413, f"events: {first['reason']}", errors=errors)
    return _error(400, f"{first['field']}: {first['reason']}", errors=errors)


def handle_invalid(exc: InvalidInputError) -> Response:
    return _error(400, str(exc), errors=[{"field": exc.field, "reason": exc.reason}])


def handle_not_found(exc: NotFoundError) -> Response:
    return _error(404, str(exc))


def handle_throttled(exc: ThrottledError) -> Response:
    logger.warning("store throttled", extra={"error": str(exc)})
    return Response(
        status_code=503,
        content_type=content_types.APPLICATION_JSON,
        body={"message": "temporarily throttled, retry the same request"},
        headers={"Retry-After": "1"},
    )


def handle_domain(exc: KairosError) -> Response:
    status = 503 if isinstance(exc, StoreError) else 500
    logger.exception("request failed", extra={"error_type": type(exc).__name__})
    return _error(status, "the request could not be completed; retrying the same request is safe")
