"""Time zones as the API takes them: canonical IANA names the tz database knows (``Europe/London``)."""

from __future__ import annotations

from functools import cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones


def validate_timezone(value: str) -> str:
    """Check an IANA zone name (``Europe/London``); raise ``ValueError`` naming the problem."""
    if value in _LEGACY_ZONES:
        raise ValueError(f"'{value}' is not a canonical IANA zone name")
    if value not in _KNOWN_ZONES:
        # "posixrules", "right/UTC" or "posix/Europe/Paris" load from the system's files but are not zone names
        raise ValueError(f"'{value}' is not an IANA time zone name")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"'{value}' is not an IANA time zone name") from exc
    return value


# The tz database's names (the tzdata package's list where the system has none). Names like "EST5EDT" load but
# carry no place; keep to the place names.
_KNOWN_ZONES = frozenset(available_timezones())
_LEGACY_ZONES = frozenset(z for z in _KNOWN_ZONES if "/" not in z and z not in ("UTC",))
# Every name validate_timezone accepts has this shape (the tz database decides: see accepted_zones).
IANA_ZONE_PATTERN = r"^(UTC|[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+){1,3})$"


@cache
def accepted_zones() -> list[str]:
    """Every zone name :func:`validate_timezone` accepts, sorted: the enum the OpenAPI document lists."""
    out = []
    for zone in sorted(_KNOWN_ZONES - _LEGACY_ZONES):
        try:
            out.append(validate_timezone(zone))
        except ValueError:
            continue
    return out


def zone_enum(schema: dict[str, Any]) -> None:
    """The JSON Schema of an optional zone field: one of :func:`accepted_zones`, or null."""
    # Built when the document is, not at import: loading every zone costs a cold start nothing it needs.
    schema["anyOf"] = [{"type": "string", "enum": accepted_zones()}, {"type": "null"}]
