"""Lambda TOKEN authorizer: `Authorization: Bearer <api key>` checked against hashed, revocable per-app keys.

API Gateway caches the policy per token (see AuthorizerResultTtlInSeconds in template.yaml), so a revoked key
stops working within that TTL. The policy allows every route of the API, because a cached policy is reused for
all routes called with the same token; the key's scopes travel in the context (``scopes``, space-separated, as
API Gateway passes only strings, numbers and booleans) and the API checks per route (``kairos.http.api``).
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from aws_lambda_powertools.utilities.data_classes import event_source
from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
    APIGatewayAuthorizerResponse,
    APIGatewayAuthorizerTokenEvent,
)

from kairos import wiring
from kairos.core.config import require, settings
from kairos.core.observability import logger

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from kairos.http.adapters.api_keys import DynamoApiKeyStore


# The settings this function needs: a deployment without one fails here, at cold start, naming it.
require(
    "api_keys_table",
)


@lru_cache(maxsize=1)
def key_store() -> DynamoApiKeyStore:
    return wiring.api_key_store(settings())


def bearer_token(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


@logger.inject_lambda_context(log_event=False)
@event_source(data_class=APIGatewayAuthorizerTokenEvent)
def lambda_handler(event: APIGatewayAuthorizerTokenEvent, context: LambdaContext) -> dict:
    token = bearer_token(event.authorization_token)
    app_key = key_store().lookup(token) if token else None
    if app_key is None:
        logger.info("request denied", extra={"reason": "missing or unknown key" if token is None else "bad key"})
        # This exact message makes API Gateway answer 401 instead of 403.
        raise Exception("Unauthorized")  # noqa: TRY002
    arn = event.parsed_arn
    policy = APIGatewayAuthorizerResponse(
        principal_id=app_key["app_id"],
        region=arn.region,
        aws_account_id=arn.aws_account_id,
        api_id=arn.api_id,
        stage=arn.stage,
        context={"app_id": app_key["app_id"], "key_id": app_key["key_id"], "scopes": " ".join(app_key["scopes"])},
    )
    policy.allow_all_routes()
    return policy.asdict()
