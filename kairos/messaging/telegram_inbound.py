"""Telegram bot updates -> ``message_inbound`` events, tagged with intents like any inbound message.

Telegram posts each update to the webhook with the secret token the webhook was set with
(``X-Telegram-Bot-Api-Secret-Token``); Kairos derives that token from the deployment's link key
(:func:`webhook_secret`), so there is nothing more to store, and answers 401 to a request without it.

- ``/start <token>`` (the customer opened their start link, ``https://t.me/<bot>?start=<token>``): the chat is
  linked to the customer the token names; their profile gets the chat id and consent for messenger.
- Any other text from a linked chat: a ``message_inbound`` event on ``messenger`` with the text, its id made from
  the update's, so an update Telegram delivers again is a duplicate. ``/stop`` (or a stop word) unsubscribes the
  customer from messenger, as STOP does by SMS.
- Updates from chats nobody linked, and updates without text, are acknowledged and dropped.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from kairos.messaging.ports import ContactLinks

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
LINK_DAYS = 30  # how long a start link works


def webhook_secret(key: bytes) -> str:
    """The webhook's secret token (Telegram allows 1-256 of ``A-Z a-z 0-9 _ -``), derived from the link key."""
    return hmac.new(key, b"telegram-webhook", hashlib.sha256).hexdigest()


def authentic(headers: dict[str, str], key: bytes) -> bool:
    """Whether the request carries the webhook's secret token (header names in any case)."""
    given = next((v for k, v in headers.items() if k.lower() == SECRET_HEADER.lower()), "")
    return hmac.compare_digest(given.encode(), webhook_secret(key).encode())


def start_link(customer_id: str, links: ContactLinks, now: datetime, bot_username: str | None) -> dict[str, Any]:
    """A start link for the customer: the token, when it stops working, and the ``t.me`` URL when the bot is known."""
    expires = now + timedelta(days=LINK_DAYS)
    token = links.create_token(customer_id, int(expires.timestamp()))
    url = f"https://t.me/{bot_username}?start={token}" if bot_username else None
    return {"token": token, "expires_at": expires, "url": url}


def handle_update(
    update: dict[str, Any],
    links: ContactLinks,
    link_profile: Callable[[str, str], bool],
    ingest: Callable[[dict[str, Any]], Any],
    now: datetime,
) -> str:
    """Take one update; say what became of it (``linked``, ``event``, ``unknown_link``, ``unlinked_chat``,
    ``ignored``).

    ``link_profile(customer_id, chat_id)`` puts the chat id and messenger consent on the profile (``False``: the
    customer is gone); ``ingest(event)`` ingests one raw event (intents are tagged there).
    """
    message = update.get("message")
    if not isinstance(message, dict) or not isinstance(message.get("text"), str):
        return "ignored"  # edits, joins, stickers, callback queries: nothing to take
    chat = message.get("chat") or {}
    if "id" not in chat or "update_id" not in update:
        return "ignored"
    chat_id, text = str(chat["id"]), message["text"].strip()
    if text.startswith("/start"):
        token = text.removeprefix("/start").strip()
        customer_id = links.customer_of_token(token, int(now.timestamp())) if token else None
        if customer_id is None:
            return "unknown_link"
        if not link_profile(customer_id, chat_id):
            return "unknown_link"
        links.link_chat(chat_id, customer_id)
        return "linked"
    customer_id = links.customer_of_chat(chat_id)
    if customer_id is None:
        return "unlinked_chat"
    sent = message.get("date")
    at = datetime.fromtimestamp(int(sent), UTC) if isinstance(sent, int) else now
    ingest(
        {
            "event_id": f"tg-{update['update_id']}",
            "customer_id": customer_id,
            "type": "message_inbound",
            "channel": "messenger",
            "timestamp": min(at, now).isoformat(),
            "text": "STOP" if text.lower() == "/stop" else text[:4096],
        }
    )
    return "event"
