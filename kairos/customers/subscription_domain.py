"""What an event says about a customer's subscriptions: the keys it withdraws or grants again.

Keys of ``CustomerAggregates.unsubscribed`` and ``subscribed`` (latest time, unix seconds):

- a channel (``email``, ``sms``, ``push``, ``messenger``) or ``all``: an ``unsubscribe`` event for that channel
  (or without one), the preference page's channel switch, an SMS reply of STOP;
- ``topic:<name>``: an ``unsubscribe`` event whose ``properties.topic`` names it (the one-click link of a
  marketing email, the preference page). A transactional message ignores it;
- ``suppressed:<channel>``: a permanent bounce or a complaint (``properties.reason``). Only the profile granting
  consent again lifts it; no ``subscribe`` event does, and no message, transactional or not, goes past it.

A ``subscribe`` event (the preference page, an SMS reply of START) grants a channel or topic again when it is
newer than the unsubscribe. Keys are kept per kind of change and compared by time, so the result does not
depend on the order events arrive in.
"""

from __future__ import annotations

import re
from typing import Any

UNSUBSCRIBE = "unsubscribe"
SUBSCRIBE = "subscribe"
SUPPRESSION_REASONS = frozenset({"permanent bounce", "complaint"})
TOPIC_KEY = "topic:"
SUPPRESSED_KEY = "suppressed:"

# The keywords carriers and AWS End User Messaging treat as an opt-out or opt-in (English and Russian).
STOP_WORDS = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "OPT-OUT", "REVOKE", "СТОП", "ОТПИСАТЬСЯ"}
)
START_WORDS = frozenset({"START", "UNSTOP", "YES", "SUBSCRIBE", "СТАРТ", "ПОДПИСАТЬСЯ"})
_EDGES = re.compile(r"^[\s\W_]+|[\s\W_]+$", re.UNICODE)


def sms_keyword(text: str | None) -> str | None:
    """``"stop"`` or ``"start"`` when an SMS reply is one of the carriers' keywords (alone, any case)."""
    if not text:
        return None
    word = _EDGES.sub("", text).upper()
    if word in STOP_WORDS or word.replace(" ", "") in STOP_WORDS:
        return "stop"
    if word in START_WORDS:
        return "start"
    return None


def changes(
    event_type: str, channel: str | None, text: str | None, properties: dict[str, Any] | None
) -> list[tuple[str, bool]]:
    """``(key, withdrawn)`` pairs the event makes: withdrawn ``True`` for an unsubscribe, ``False`` for a
    subscribe. Empty for an event that says nothing about subscriptions."""
    props = properties or {}
    if event_type == "message_inbound" and channel in ("sms", "messenger"):
        # A reply of STOP (or START) by SMS, or in a messenger chat (a bot's /stop arrives as STOP)
        word = sms_keyword(text)
        return [] if word is None else [(channel, word == "stop")]
    if event_type not in (UNSUBSCRIBE, SUBSCRIBE):
        return []
    withdrawn = event_type == UNSUBSCRIBE
    if withdrawn and props.get("reason") in SUPPRESSION_REASONS:
        return [(f"{SUPPRESSED_KEY}{channel or 'email'}", True)]
    topic = props.get("topic")
    if isinstance(topic, str) and topic:
        return [(f"{TOPIC_KEY}{topic}", withdrawn)]
    return [(channel or "all", withdrawn)]


def withdrawn(unsubscribed: dict[str, int], subscribed: dict[str, int], key: str, granted: float) -> int | None:
    """When ``key`` was withdrawn, if it still is: an unsubscribe newer than the consent (``granted``) and than
    any subscribe to it (a suppression only yields to consent)."""
    unsub = unsubscribed.get(key)
    if unsub is None:
        return None
    since = granted
    if not key.startswith(SUPPRESSED_KEY):
        since = max(since, subscribed.get(key, float("-inf")))
    return unsub if unsub >= since else None
