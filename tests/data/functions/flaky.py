"""Test-only Lambda handler for the local Step Functions tests: fails as a provider would, then succeeds."""

from __future__ import annotations

CALLS: dict[str, int] = {}


class ProviderThrottled(Exception):  # noqa: N818 - the name the state machine's Retry matches
    pass


class ProviderRejected(Exception):  # noqa: N818
    pass


def lambda_handler(event: dict, context: object) -> dict:
    key = event.get("key", "default")
    CALLS[key] = CALLS.get(key, 0) + 1
    if event.get("reject"):
        raise ProviderRejected("permanent failure")
    if CALLS[key] <= int(event.get("throttle_times", 0)):
        raise ProviderThrottled("slow down")
    from kairos.core.timeutil import now

    return {"calls": CALLS[key], "now": now().isoformat()}
