"""A user pool's public signing keys (its JWKS), fetched over HTTPS once per sandbox and kept.

Cognito publishes a pool's keys at ``https://cognito-idp.<region>.amazonaws.com/<pool id>/.well-known/jwks.json``
and rotates them rarely. The keys are fetched on the first token and kept for the sandbox's life; a token signed
by a key id not among them fetches the set again, at most once per :data:`REFETCH_AFTER_SECONDS`, so a rotation is
picked up without letting a stream of made-up key ids turn every request into a fetch.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from typing import TYPE_CHECKING, Any

from kairos.core.errors import ProviderUnavailable

if TYPE_CHECKING:
    from collections.abc import Callable

REFETCH_AFTER_SECONDS = 300
FETCH_TIMEOUT_SECONDS = 3  # the authorizer has 5 s in all (template.yaml)


def _fetch_json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_SECONDS) as resp:  # noqa: S310 - an https URL we build
        return json.loads(resp.read())


class HttpJwks:
    """The keys of one JWKS URL, by key id.

    Parameters
    ----------
    url
        The JWKS document's URL (:attr:`kairos.http.user_tokens.UserPool.jwks_url`).
    fetch
        Reads a URL as JSON (default: an HTTPS GET); tests pass a function that answers a local JWKS.
    clock
        Monotonic seconds (default :func:`time.monotonic`).
    """

    def __init__(
        self,
        url: str,
        fetch: Callable[[str], dict[str, Any]] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not url.startswith("https://"):
            raise ValueError(f"a JWKS is fetched over HTTPS only, not {url!r}")
        self.url = url
        self._fetch = fetch or _fetch_json
        self._clock = clock
        self._keys: dict[str, dict[str, Any]] | None = None
        self._fetched_at = 0.0
        self._lock = threading.Lock()

    def key(self, kid: str) -> dict[str, Any] | None:
        """The JWK with id ``kid``, or ``None`` when the pool publishes none by that id.

        Raises
        ------
        ProviderUnavailable
            The keys could not be fetched (and none were fetched before).
        """
        with self._lock:
            stale = self._keys is not None and kid not in self._keys
            if self._keys is None or (stale and self._clock() - self._fetched_at >= REFETCH_AFTER_SECONDS):
                self._refresh()
            return (self._keys or {}).get(kid)

    def _refresh(self) -> None:
        try:
            doc = self._fetch(self.url)
        except (OSError, ValueError) as err:
            if self._keys is None:
                raise ProviderUnavailable(f"could not fetch the user pool's keys: {err}") from err
            return  # keep the keys we have; a refetch is tried again after REFETCH_AFTER_SECONDS
        finally:
            self._fetched_at = self._clock()
        self._keys = {k["kid"]: k for k in doc.get("keys", []) if isinstance(k, dict) and "kid" in k}
