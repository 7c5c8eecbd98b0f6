"""People's sign-in tokens: a Cognito ID or access token of the deployment's user pool, verified, becomes scopes.

The console signs people in against the stack's Cognito user pool and calls the API with the token Cognito gave
it, where apps send their API key. The authorizer tells the two apart by their shape (a JWT has three base64url
parts; a key has none) and, for a token, checks what AWS says a resource server must check: the RS256 signature
against the pool's published keys (JWKS), ``iss`` (this pool), ``exp``, ``token_use`` (``id`` or ``access``) and
the app client (``aud`` of an ID token, ``client_id`` of an access token) -- see "Verifying a JSON Web Token" in the
Amazon Cognito developer guide. The person's ``cognito:groups`` then give the scopes, by :data:`GROUP_SCOPES`.

The signature check is RSASSA-PKCS1-v1_5 verification as RFC 8017 section 8.2.2 specifies it: the signature is
raised to the public exponent and compared with the encoding of the expected SHA-256 digest, built here, byte for
byte (never parsed, so no padding-parsing flaw can accept a forgery). It needs ``pow`` and ``hashlib`` only, so the
authorizer ships no native cryptography wheel (see docs/deploy.md, "People in the console").
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kairos.core.constants import SCOPES

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

# A user pool group -> the API scopes its members have. The template creates these groups (kairos-admins first);
# docs/deploy.md says what each may do. A person in several groups has every scope of each.
GROUP_SCOPES: dict[str, tuple[str, ...]] = {
    "kairos-admins": SCOPES,
    "kairos-marketers": ("read", "manage"),
    "kairos-viewers": ("read",),
}
# Who the API says called, for a person (API keys name their app): erasures are logged with app_id and key_id.
CONSOLE_APP = "console"
MAX_TOKEN_LENGTH = 8192  # Cognito's tokens are 1-2 kB; anything far larger is refused before it is parsed
CLOCK_LEEWAY_SECONDS = 60  # an ``iat`` this far ahead of our clock is still accepted (clocks drift)
_POOL_ID = re.compile(r"^([a-z]{2}(?:-[a-z]+)+-\d+)_[0-9A-Za-z]+$")
_B64URL = re.compile(r"^[A-Za-z0-9_-]+$")
# DER prefix of a SHA-256 DigestInfo (RFC 8017 section 9.2, note 1).
_SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")


class InvalidUserTokenError(Exception):
    """A token that is not a valid sign-in of this pool's console client; the message says why (for the log)."""


@dataclass(frozen=True)
class UserPool:
    """The user pool whose tokens the API accepts, and the app client they must have been issued to.

    Example
    -------
    >>> UserPool("eu-west-1_AbC123", "client").issuer
    'https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123'
    """

    pool_id: str
    client_id: str

    @property
    def region(self) -> str:
        match = _POOL_ID.match(self.pool_id)
        if not match:
            raise ValueError(f"not a Cognito user pool id: {self.pool_id!r}")
        return match.group(1)

    @property
    def issuer(self) -> str:
        return f"https://cognito-idp.{self.region}.amazonaws.com/{self.pool_id}"

    @property
    def jwks_url(self) -> str:
        return f"{self.issuer}/.well-known/jwks.json"


@dataclass(frozen=True)
class SignedInUser:
    """A person whose token was verified: who (``sub``), their groups and the scopes those give."""

    subject: str
    groups: tuple[str, ...]
    scopes: tuple[str, ...]

    def context(self) -> dict[str, str]:
        """The authorizer context, shaped as an API key's (``app_id``, ``key_id``, ``scopes``), plus ``user``."""
        return {
            "app_id": CONSOLE_APP,
            "key_id": f"user:{self.subject}",
            "user": self.subject,
            "scopes": " ".join(self.scopes),
        }


def scopes_for(groups: Iterable[str]) -> tuple[str, ...]:
    """The scopes of a person in ``groups``, in :data:`SCOPES` order; groups not in :data:`GROUP_SCOPES` give none."""
    granted = {scope for group in groups for scope in GROUP_SCOPES.get(group, ())}
    return tuple(s for s in SCOPES if s in granted)


def looks_like_jwt(token: str) -> bool:
    """Whether a bearer token has a JWT's shape (``header.payload.signature``, base64url) rather than a key's."""
    parts = token.split(".")
    return len(parts) == 3 and all(_B64URL.match(p) for p in parts) and len(token) <= MAX_TOKEN_LENGTH


def verify_user_token(
    token: str, pool: UserPool, signing_key: Callable[[str], dict[str, Any] | None], now: float
) -> SignedInUser:
    """Verify a Cognito ID or access token of ``pool``'s console client and say who it signs in, with what scopes.

    Parameters
    ----------
    token
        The bearer token, as the console sent it.
    pool
        The user pool and app client the token must come from.
    signing_key
        The pool's public key (a JWK) with a given ``kid``, or ``None`` when the pool publishes none by that id.
    now
        The current time, seconds since the epoch.

    Returns
    -------
    SignedInUser
        Its ``sub``, its groups and the scopes they give (at least one).

    Raises
    ------
    InvalidUserTokenError
        Malformed, not RS256, signed by no key of the pool, from another pool or client, expired, neither an ID nor
        an access token, or of a person in no group that has a scope.

    Example
    -------
    >>> verify_user_token(id_token, UserPool("eu-west-1_AbC123", "client"), jwks.key, time.time()).scopes
    ('read', 'manage')
    """
    if not looks_like_jwt(token):
        raise InvalidUserTokenError("not a JWT")
    header_b64, payload_b64, signature_b64 = token.split(".")
    header, claims = _json_part(header_b64), _json_part(payload_b64)
    if header.get("alg") != "RS256" or not isinstance(header.get("kid"), str):
        raise InvalidUserTokenError("not an RS256 token with a key id")
    key = signing_key(header["kid"])
    if key is None:
        raise InvalidUserTokenError("signed by no key of the user pool")
    if not rs256_valid(key, f"{header_b64}.{payload_b64}".encode(), _b64url(signature_b64)):
        raise InvalidUserTokenError("bad signature")
    _check_claims(claims, pool, now)
    groups = claims.get("cognito:groups") or []
    if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        raise InvalidUserTokenError("cognito:groups is not a list of names")
    scopes = scopes_for(groups)
    if not scopes:
        raise InvalidUserTokenError("in no group that has a scope")
    return SignedInUser(subject=str(claims["sub"]), groups=tuple(groups), scopes=scopes)


def _check_claims(claims: dict[str, Any], pool: UserPool, now: float) -> None:
    if claims.get("iss") != pool.issuer:
        raise InvalidUserTokenError("issued by another user pool")
    exp, iat = claims.get("exp"), claims.get("iat", 0)
    if not isinstance(exp, int | float) or isinstance(exp, bool) or exp <= now:
        raise InvalidUserTokenError("expired")
    if not isinstance(iat, int | float) or iat > now + CLOCK_LEEWAY_SECONDS:
        raise InvalidUserTokenError("issued in the future")
    use = claims.get("token_use")
    # An ID token names its client in aud; an access token in client_id (it has no aud).
    client = claims.get("aud") if use == "id" else claims.get("client_id") if use == "access" else None
    if use not in ("id", "access"):
        raise InvalidUserTokenError("neither an ID nor an access token")
    if client != pool.client_id:
        raise InvalidUserTokenError("issued to another app client")
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise InvalidUserTokenError("no subject")


def rs256_valid(jwk: dict[str, Any], message: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is an RS256 (RSASSA-PKCS1-v1_5 with SHA-256) signature of ``message`` by ``jwk``.

    Parameters
    ----------
    jwk
        An RSA public key as a JWK (``kty`` ``RSA``, ``n``, ``e``; ``alg``/``use``, when given, ``RS256``/``sig``).
    message
        The signed bytes (a JWT's ``header.payload``).
    signature
        The signature's bytes.

    Returns
    -------
    bool
        ``True`` only for a valid signature by a key of at least 2048 bits.
    """
    if jwk.get("kty") != "RSA" or jwk.get("alg", "RS256") != "RS256" or jwk.get("use", "sig") != "sig":
        return False
    try:
        n = int.from_bytes(_b64url(str(jwk["n"])), "big")
        e = int.from_bytes(_b64url(str(jwk["e"])), "big")
    except (KeyError, InvalidUserTokenError):
        return False
    size = (n.bit_length() + 7) // 8
    if n.bit_length() < 2048 or e < 3 or len(signature) != size:
        return False
    s = int.from_bytes(signature, "big")
    if s >= n:
        return False
    encoded = pow(s, e, n).to_bytes(size, "big")
    digest_info = _SHA256_DIGEST_INFO + hashlib.sha256(message).digest()
    expected = b"\x00\x01" + b"\xff" * (size - len(digest_info) - 3) + b"\x00" + digest_info
    return hmac.compare_digest(encoded, expected)


def _b64url(part: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (binascii.Error, ValueError) as err:
        raise InvalidUserTokenError("not base64url") from err


def _json_part(part: str) -> dict[str, Any]:
    try:
        doc = json.loads(_b64url(part))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InvalidUserTokenError("a part is not JSON") from err
    if not isinstance(doc, dict):
        raise InvalidUserTokenError("a part is not a JSON object")
    return doc
