"""The ConsolePublish custom resource: the web console copied to its bucket on Create and Update, removed on Delete.

The console's files come with the kairos package (the KairosLayer); the stack passes the bucket, the API's path
and the sign-in settings as the resource's properties (template.yaml). Whatever happens, CloudFormation gets an
answer (``kairos.core.custom_resource.answer``), so a failed publish fails the deploy instead of hanging it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kairos import wiring
from kairos.core.custom_resource import answer
from kairos.core.observability import logger
from kairos.http.console_publish import handle_publish_request

if TYPE_CHECKING:
    from collections.abc import Mapping

    from aws_lambda_powertools.utilities.typing import LambdaContext


def publish(request_type: str, properties: Mapping[str, Any], old: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    physical_id, data = handle_publish_request(request_type, properties, wiring.console_bucket)
    logger.info("console request done", extra={"request_type": request_type, "physical_id": physical_id, **data})
    return physical_id, data


def log_failure(exc: BaseException) -> None:
    logger.exception("console request failed", extra={"error": type(exc).__name__})


@logger.inject_lambda_context(log_event=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return answer(event, publish, on_error=log_failure)
