"""Signed unsubscribe and preference links: one per customer and topic, valid without an API key.

A token is ``<payload>.<signature>``: the payload is URL-safe base64 of ``[1, customer_id, topic]`` (JSON), the
signature the first 16 bytes of HMAC-SHA256 over the payload with the deployment's key (kept in SSM). Nobody
without the key can make a link for another customer or topic, and a link is good for as long as the key is:
an unsubscribe link must keep working months after the email (RFC 8058 asks for no expiry).

Every marketing email carries ``List-Unsubscribe: <https://…/v1/unsubscribe/<token>>`` (and ``<mailto:…>`` when
a mailbox is configured) with ``List-Unsubscribe-Post: List-Unsubscribe=One-Click``: a mailbox provider POSTs
``List-Unsubscribe=One-Click`` to the URL and the customer is unsubscribed from the topic at once. A GET of the
same URL (a person's click, or a link scanner) changes nothing: it shows the preference page.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from kairos.core.errors import InvalidInputError

VERSION = 1
SIGNATURE_BYTES = 16
ONE_CLICK = "List-Unsubscribe=One-Click"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(key: bytes, customer_id: str, topic: str) -> str:
    """The token of ``customer_id``'s link for ``topic``."""
    payload = _b64(json.dumps([VERSION, customer_id, topic], separators=(",", ":")).encode())
    mac = hmac.new(key, payload.encode(), hashlib.sha256).digest()[:SIGNATURE_BYTES]
    return f"{payload}.{_b64(mac)}"


def verify(key: bytes, token: str) -> tuple[str, str]:
    """``(customer_id, topic)`` of a token this deployment signed.

    Raises
    ------
    InvalidInputError
        On ``token`` when it is malformed or its signature is not ours.
    """
    try:
        payload, signature = token.split(".", 1)
        expected = hmac.new(key, payload.encode(), hashlib.sha256).digest()[:SIGNATURE_BYTES]
        if not hmac.compare_digest(expected, _unb64(signature)):
            raise ValueError("bad signature")
        version, customer_id, topic = json.loads(_unb64(payload))
    except (ValueError, TypeError, UnicodeDecodeError) as exc:
        raise InvalidInputError("token", "not a valid unsubscribe link (it may have been cut or altered)") from exc
    if version != VERSION or not isinstance(customer_id, str) or not isinstance(topic, str):
        raise InvalidInputError("token", "not a valid unsubscribe link")
    return customer_id, topic


def links(base_url: str, key: bytes, customer_id: str, topic: str, mailto: str | None = None) -> dict[str, str]:
    """The URLs a message offers (``unsubscribe_url``, ``preferences_url``) and the ``List-Unsubscribe`` value."""
    token = sign(key, customer_id, topic)
    base = base_url.rstrip("/")
    out: dict[str, Any] = {
        "unsubscribe_url": f"{base}/v1/unsubscribe/{token}",
        "preferences_url": f"{base}/v1/preferences/{token}",
    }
    header = f"<{out['unsubscribe_url']}>"
    if mailto:
        header += f", <mailto:{mailto}?subject=unsubscribe%20{token}>"
    out["list_unsubscribe"] = header
    return out
