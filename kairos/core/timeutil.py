"""Time helpers: UTC epoch hours and local hour of week, daylight-saving safe."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone, tzinfo
from functools import lru_cache
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from collections.abc import Callable

HOUR = 3600


@lru_cache(maxsize=1024)
def zone(name: str) -> tzinfo:
    """The IANA zone ``name`` (cached: zone lookups read the tz database), or a fixed offset ``UTC+03:00``
    (a zone inferred from the offsets a customer's events carry)."""
    if name.startswith(("UTC+", "UTC-")) and len(name) == 9:
        sign = 1 if name[3] == "+" else -1
        return timezone(sign * timedelta(hours=int(name[4:6]), minutes=int(name[7:9])))
    return ZoneInfo(name)


def offset_zone(minutes: int) -> str:
    """The fixed-offset zone name of a UTC offset in minutes (``180`` -> ``UTC+03:00``)."""
    sign = "+" if minutes >= 0 else "-"
    return f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def epoch_hour(ts: datetime) -> int:
    """Whole hours since 1970-01-01T00:00Z: the key of an engagement moment."""
    return int(ts.timestamp()) // HOUR


def hour_of_week(ts: datetime, tz: str) -> int:
    """Local hour of week in ``tz``: 0 is Monday 00:00-00:59 local, 167 is Sunday 23:00."""
    local = ts.astimezone(zone(tz))
    return local.weekday() * 24 + local.hour


def epoch_hour_of_week(epoch_h: int, tz: str) -> int:
    """The local hour of week (0 = Monday 00:00) in ``tz`` of a UTC epoch hour."""
    return hour_of_week(datetime.fromtimestamp(epoch_h * HOUR, UTC), tz)


def utc_iso(ts: datetime) -> str:
    """``ts`` in UTC as ISO 8601 with a ``Z`` suffix, the form every stored and exchanged time takes."""
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_ts(value: str | datetime | None) -> datetime | None:
    """An ISO 8601 time (``Z`` or an offset) as an aware datetime; datetimes and ``None`` pass through."""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


_clock: Callable[[], datetime] | None = None


def now() -> datetime:
    """The current time (UTC). Lambda uses the system clock; the local runtime may simulate it."""
    return _clock() if _clock is not None else datetime.now(UTC)


def set_clock(clock: Callable[[], datetime] | None) -> None:
    """Point :func:`now` at a simulated clock (local runs only); ``None`` restores the system clock."""
    global _clock  # noqa: PLW0603 - one process-wide clock, as the system clock is
    _clock = clock
