"""People's sign-in tokens: Cognito ID and access tokens verified against a locally made RSA key and JWKS.

The tokens are signed with ``cryptography`` (an implementation independent of the verifier's), so a signature the
verifier accepts is one a real RS256 signer made.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import uuid
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from kairos.core.constants import SCOPES
from kairos.core.errors import ProviderUnavailable
from kairos.http.adapters.jwks import REFETCH_AFTER_SECONDS, HttpJwks
from kairos.http.user_tokens import (
    GROUP_SCOPES,
    InvalidUserTokenError,
    UserPool,
    looks_like_jwt,
    rs256_valid,
    verify_user_token,
)
from kairos_local.template import ROOT, load_template

POOL = UserPool("eu-west-1_AbC123", "console-client")
NOW = 1_780_000_000.0
KID = "key-1"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def uint(n: int) -> str:
    return b64url(n.to_bytes((n.bit_length() + 7) // 8, "big"))


@pytest.fixture(scope="module")
def private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def jwks(private_key) -> dict[str, Any]:
    numbers = private_key.public_key().public_numbers()
    return {
        "keys": [{"kty": "RSA", "alg": "RS256", "use": "sig", "kid": KID, "n": uint(numbers.n), "e": uint(numbers.e)}]
    }


@pytest.fixture
def keys(jwks):
    by_kid = {k["kid"]: k for k in jwks["keys"]}
    return by_kid.get


@pytest.fixture
def sign(private_key):
    def make(claims: dict[str, Any] | None = None, header: dict[str, Any] | None = None, **over: Any) -> str:
        body = {
            "sub": "7d2f-person",
            "iss": POOL.issuer,
            "aud": POOL.client_id,
            "token_use": "id",
            "iat": int(NOW) - 60,
            "exp": int(NOW) + 3600,
            "cognito:groups": ["kairos-marketers"],
            "email": "ana@shop.example",
        }
        body.update(claims or {})
        body.update(over)
        body = {k: v for k, v in body.items() if v is not None}
        head = {"alg": "RS256", "kid": KID, **(header or {})}
        signing_input = f"{b64url(json.dumps(head).encode())}.{b64url(json.dumps(body).encode())}"
        signature = private_key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{b64url(signature)}"

    return make


@pytest.mark.parametrize(
    ("groups", "scopes"),
    [
        (["kairos-admins"], SCOPES),
        (["kairos-marketers"], ("read", "manage")),
        (["kairos-viewers"], ("read",)),
        (["kairos-viewers", "kairos-marketers", "someone-elses-group"], ("read", "manage")),
    ],
)
def test_verify_user_token_id_token_gives_the_scopes_of_its_groups(sign, keys, groups, scopes):
    # GIVEN an ID token of the pool's console client for a person in these groups
    token = sign({"cognito:groups": groups})
    # WHEN it is verified
    user = verify_user_token(token, POOL, keys, NOW)
    # THEN the person has their groups' scopes, in the context shaped as an API key's
    assert user.scopes == scopes
    assert user.context() == {
        "app_id": "console",
        "key_id": "user:7d2f-person",
        "user": "7d2f-person",
        "scopes": " ".join(scopes),
    }


def test_verify_user_token_access_token_names_its_client_in_client_id(sign, keys):
    # GIVEN an access token (no aud; its client in client_id)
    token = sign(token_use="access", aud=None, client_id=POOL.client_id, **{"cognito:groups": ["kairos-viewers"]})
    # WHEN / THEN it is accepted
    assert verify_user_token(token, POOL, keys, NOW).scopes == ("read",)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"exp": int(NOW) - 1}, "expired"),
        ({"exp": None}, "expired"),
        ({"iss": "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Other9"}, "another user pool"),
        ({"aud": "another-client"}, "another app client"),
        ({"token_use": "access"}, "another app client"),  # an access token with aud but no client_id
        ({"token_use": "refresh"}, "neither an ID nor an access token"),
        ({"iat": int(NOW) + 3600}, "in the future"),
        ({"cognito:groups": ["admins"]}, "no group that has a scope"),
        ({"cognito:groups": None}, "no group that has a scope"),
        ({"cognito:groups": "kairos-admins"}, "not a list"),
    ],
)
def test_verify_user_token_refuses_a_token_whose_claims_do_not_hold(sign, keys, change, reason):
    # GIVEN a well-signed token with one claim wrong  WHEN verified  THEN refused, saying which
    with pytest.raises(InvalidUserTokenError, match=reason):
        verify_user_token(sign(change), POOL, keys, NOW)


def test_verify_user_token_refuses_a_bad_signature(sign, keys):
    # GIVEN a viewer's token whose payload is swapped for an admin's, keeping the viewer's signature
    viewer = sign({"cognito:groups": ["kairos-viewers"]})
    admin = sign({"cognito:groups": ["kairos-admins"]})
    forged = ".".join([*admin.split(".")[:2], viewer.split(".")[2]])
    # WHEN / THEN refused
    with pytest.raises(InvalidUserTokenError, match="bad signature"):
        verify_user_token(forged, POOL, keys, NOW)


def test_verify_user_token_refuses_a_token_signed_by_another_key(sign, jwks):
    # GIVEN a JWKS of another key under the same kid
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key().public_numbers()
    foreign = {KID: {**jwks["keys"][0], "n": uint(other.n), "e": uint(other.e)}}
    # WHEN / THEN the token is refused
    with pytest.raises(InvalidUserTokenError, match="bad signature"):
        verify_user_token(sign(), POOL, foreign.get, NOW)


@pytest.mark.parametrize(
    ("header", "reason"),
    [({"alg": "HS256"}, "RS256"), ({"alg": "none"}, "RS256"), ({"kid": "unknown"}, "no key of the user pool")],
)
def test_verify_user_token_refuses_other_algorithms_and_unknown_keys(sign, keys, header, reason):
    with pytest.raises(InvalidUserTokenError, match=reason):
        verify_user_token(sign(header=header), POOL, keys, NOW)


def test_verify_user_token_refuses_an_unsigned_token(sign, keys):
    unsigned = sign(header={"alg": "none"}).rsplit(".", 1)[0] + "."
    with pytest.raises(InvalidUserTokenError):
        verify_user_token(unsigned, POOL, keys, NOW)


def test_rs256_valid_refuses_keys_shorter_than_2048_bits(private_key):
    # GIVEN a 1024-bit key's valid signature
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    numbers = small.public_key().public_numbers()
    jwk = {"kty": "RSA", "n": uint(numbers.n), "e": uint(numbers.e)}
    signature = small.sign(b"message", padding.PKCS1v15(), hashes.SHA256())
    # THEN it is refused; and a 2048-bit key's valid signature is accepted
    assert not rs256_valid(jwk, b"message", signature)
    big = private_key.public_key().public_numbers()
    good = private_key.sign(b"message", padding.PKCS1v15(), hashes.SHA256())
    assert rs256_valid({"kty": "RSA", "n": uint(big.n), "e": uint(big.e)}, b"message", good)


def test_looks_like_jwt_tells_tokens_from_api_keys(sign):
    assert looks_like_jwt(sign())
    assert not looks_like_jwt("kairos_" + "A" * 43)
    assert not looks_like_jwt("kairos-local-dev-key")
    assert not looks_like_jwt("a.b")


def test_user_pool_issuer_and_jwks_url_are_the_pools():
    assert POOL.jwks_url == "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123/.well-known/jwks.json"
    with pytest.raises(ValueError, match="not a Cognito user pool id"):
        _ = UserPool("ConsoleUserPool", "c").issuer


# ------------------------------------------------------------------ the pool's keys (JWKS)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_http_jwks_fetches_once_and_again_only_for_an_unknown_key_after_a_while(jwks):
    # GIVEN the keys behind a URL, counted
    fetched: list[str] = []
    clock = Clock()

    def fetch(url: str) -> dict[str, Any]:
        fetched.append(url)
        return jwks

    keys = HttpJwks(POOL.jwks_url, fetch=fetch, clock=clock)
    # WHEN keys are asked for many times, an unknown one among them
    assert keys.key(KID)["kid"] == KID
    assert keys.key(KID)["kid"] == KID
    assert keys.key("rotated") is None
    # THEN one fetch, until the unknown key is asked for after REFETCH_AFTER_SECONDS
    assert fetched == [POOL.jwks_url]
    clock.t += REFETCH_AFTER_SECONDS
    assert keys.key("rotated") is None
    assert len(fetched) == 2


def test_http_jwks_unreachable_on_first_use_is_provider_unavailable():
    def fetch(url: str) -> dict[str, Any]:
        raise OSError("timed out")

    with pytest.raises(ProviderUnavailable, match="timed out"):
        HttpJwks(POOL.jwks_url, fetch=fetch).key(KID)


def test_http_jwks_is_https_only():
    with pytest.raises(ValueError, match="HTTPS"):
        HttpJwks("http://cognito-idp.example/jwks.json")


# ------------------------------------------------------------------ the authorizer


class FakeKeyStore:
    def __init__(self) -> None:
        self.looked_up: list[str] = []

    def lookup(self, api_key: str) -> dict[str, Any] | None:
        self.looked_up.append(api_key)
        if api_key == "kairos_good":
            return {"app_id": "shop", "key_id": "abc123", "scopes": ["ingest", "read"]}
        return None


@pytest.fixture
def authorizer(monkeypatch):
    monkeypatch.setenv("API_KEYS_TABLE_NAME", "test-keys")
    spec = importlib.util.spec_from_file_location(
        f"authorizer_{uuid.uuid4().hex}", ROOT / "functions/authorizer/app.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_authorizer_caller_person_token_gives_the_groups_scopes(authorizer, sign, keys):
    # GIVEN a deployment with a user pool and a marketer's token
    store = FakeKeyStore()

    def verify(token, now):
        return verify_user_token(token, POOL, keys, NOW)

    # WHEN the authorizer asks who calls
    principal, context = authorizer.caller(sign(), users=lambda: verify, keys=lambda: store)
    # THEN the person, with read and manage, and no key was looked up
    assert principal == "7d2f-person"
    assert context["scopes"] == "read manage" and context["app_id"] == "console"
    assert store.looked_up == []


def test_authorizer_caller_refuses_a_bad_person_token_with_401(authorizer, sign, keys):
    def verify(token, now):
        return verify_user_token(token, POOL, keys, NOW)

    with pytest.raises(Exception, match="^Unauthorized$"):
        authorizer.caller(sign(exp=int(NOW) - 1), users=lambda: verify, keys=FakeKeyStore)


@pytest.mark.parametrize("with_pool", [True, False])
def test_authorizer_caller_api_key_path_is_unchanged(authorizer, keys, with_pool):
    # GIVEN a deployment with or without a user pool
    store = FakeKeyStore()
    verifier = (lambda token, now: verify_user_token(token, POOL, keys, NOW)) if with_pool else None
    # WHEN an app calls with its key  THEN the key's app and scopes, as before
    principal, context = authorizer.caller("kairos_good", users=lambda: verifier, keys=lambda: store)
    assert principal == "shop"
    assert context == {"app_id": "shop", "key_id": "abc123", "scopes": "ingest read"}
    # AND an unknown key is a 401
    with pytest.raises(Exception, match="^Unauthorized$"):
        authorizer.caller("kairos_bad", users=lambda: verifier, keys=lambda: store)


def test_authorizer_without_a_pool_looks_a_jwt_up_as_a_key(authorizer, sign):
    # A deployment without a user pool takes keys only, whatever their shape.
    store = FakeKeyStore()
    with pytest.raises(Exception, match="^Unauthorized$"):
        authorizer.caller(sign(), users=lambda: None, keys=lambda: store)
    assert len(store.looked_up) == 1


# ------------------------------------------------------------------ the template


def test_template_user_pool_groups_are_the_ones_that_give_scopes():
    resources = load_template()["Resources"]
    groups = {r["Properties"]["GroupName"] for r in resources.values() if r["Type"] == "AWS::Cognito::UserPoolGroup"}
    assert groups == set(GROUP_SCOPES)
    env = resources["AuthorizerFunction"]["Properties"]["Environment"]["Variables"]
    assert env["KAIROS_USER_POOL_CLIENT_ID"] == {"Ref": "ConsoleUserPoolClient"}
    client = resources["ConsoleUserPoolClient"]["Properties"]
    assert client["GenerateSecret"] is False
    # AND the console's config.json names the same pool and client (ConsolePublish writes it)
    auth = resources["ConsolePublish"]["Properties"]["Auth"]
    assert auth["userPoolId"] == env["KAIROS_USER_POOL_ID"]
    assert auth["clientId"] == {"Ref": "ConsoleUserPoolClient"}
