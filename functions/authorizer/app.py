"""Lambda TOKEN authorizer: `Authorization: Bearer <api key>` checked against hashed, revocable per-app keys, or
`Authorization: Bearer <Cognito token>` of a person signed in to the console (``kairos.http.user_tokens``).

API Gateway caches the policy per token (see AuthorizerResultTtlInSeconds in template.yaml), so a revoked key
stops working within that TTL. The policy allows every route of the API, because a cached policy is reused for
all routes called with the same token; the key's scopes travel in the context (``scopes``, space-separated, as
API Gateway passes only strings, numbers and booleans) and the API checks per route (``kairos.http.api``).
A person's token gives the scopes of their user pool groups, in the same context (``app_id`` ``console``,
``key_id`` ``user:<sub>``). A deployment without a user pool (``KAIROS_USER_POOL_ID`` empty) takes keys only.
"""

from __future__ import annotations

import time
from functools import lru_cache
from typing import TYPE_CHECKING

from aws_lambda_powertools.utilities.data_classes import event_source
from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
    APIGatewayAuthorizerResponse,
    APIGatewayAuthorizerTokenEvent,
)

from kairos import wiring
from kairos.core.config import require, settings
from kairos.core.errors import ProviderUnavailable
from kairos.core.observability import logger
from kairos.http.user_tokens import InvalidUserTokenError, looks_like_jwt

if TYPE_CHECKING:
    from collections.abc import Callable

    from aws_lambda_powertools.utilities.typing import LambdaContext

    from kairos.http.adapters.api_keys import DynamoApiKeyStore
    from kairos.http.user_tokens import SignedInUser


# The settings this function needs: a deployment without one fails here, at cold start, naming it.
require(
    "api_keys_table",
)


@lru_cache(maxsize=1)
def key_store() -> DynamoApiKeyStore:
    return wiring.api_key_store(settings())


@lru_cache(maxsize=1)
def user_tokens() -> Callable[[str, float], SignedInUser] | None:
    return wiring.user_token_verifier(settings())


def bearer_token(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def deny(reason: str) -> Exception:
    logger.info("request denied", extra={"reason": reason})
    # This exact message makes API Gateway answer 401 instead of 403.
    return Exception("Unauthorized")  # noqa: TRY002


def caller(
    token: str | None,
    users: Callable[[], Callable[[str, float], SignedInUser] | None] = user_tokens,
    keys: Callable[[], DynamoApiKeyStore] = key_store,
) -> tuple[str, dict[str, str]]:
    """Who the token signs in (the policy's principal) and the context the API reads, or the 401 to raise.

    A token shaped as a JWT, in a deployment with a user pool, is a person's sign-in; anything else is an API key.
    ``users`` and ``keys`` give the verifier and the key store (tests pass their own).
    """
    verify = users() if token and looks_like_jwt(token) else None
    if token and verify is not None:
        try:
            user = verify(token, time.time())
        except InvalidUserTokenError as err:
            raise deny(f"user token: {err}") from None
        except ProviderUnavailable as err:
            logger.error("user pool keys unavailable", extra={"error": str(err)})
            raise deny("user pool keys unavailable") from None
        return user.subject, user.context()
    app_key = keys().lookup(token) if token else None
    if app_key is None:
        raise deny("missing or unknown key" if token is None else "bad key")
    context = {"app_id": app_key["app_id"], "key_id": app_key["key_id"], "scopes": " ".join(app_key["scopes"])}
    return app_key["app_id"], context


@logger.inject_lambda_context(log_event=False)
@event_source(data_class=APIGatewayAuthorizerTokenEvent)
def lambda_handler(event: APIGatewayAuthorizerTokenEvent, context: LambdaContext) -> dict:
    principal, caller_context = caller(bearer_token(event.authorization_token))
    arn = event.parsed_arn
    policy = APIGatewayAuthorizerResponse(
        principal_id=principal,
        region=arn.region,
        aws_account_id=arn.aws_account_id,
        api_id=arn.api_id,
        stage=arn.stage,
        context=caller_context,
    )
    policy.allow_all_routes()
    return policy.asdict()
