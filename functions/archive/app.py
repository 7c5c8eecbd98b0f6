"""Archive function: the events table's DynamoDB stream -> S3 archive, erasures -> archive purge.

The work is :func:`kairos.customers.archive.archive_stream_records`; a batch that changed the archive gives it a
new data version (:func:`kairos.insights.analytics.note_archive_change`), so analytics answers cached over the
previous state are computed again.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from aws_lambda_powertools.utilities.data_classes import DynamoDBStreamEvent, event_source

from kairos import wiring
from kairos.core import timeutil
from kairos.core.config import require, settings
from kairos.core.observability import logger, metrics, tracer
from kairos.customers.archive import archive_stream_records
from kairos.insights.analytics import note_archive_change

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from kairos.customers.ports import CustomerStore, EventArchive, EventTypeCatalogue
    from kairos.insights.ports import InsightStore


# The settings this function needs: a deployment without one fails here, at cold start, naming it.
require(
    "archive_bucket",
    "events_table",
    "customers_table",
    "insights_table",
)


@lru_cache(maxsize=1)
def archive() -> EventArchive:
    return wiring.event_archive(settings())


@lru_cache(maxsize=1)
def customers() -> CustomerStore:
    return wiring.customer_store(settings())


@lru_cache(maxsize=1)
def event_types() -> EventTypeCatalogue:
    return wiring.event_type_catalogue(settings())


@lru_cache(maxsize=1)
def insights() -> InsightStore:
    return wiring.insight_store(settings())


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler
@event_source(data_class=DynamoDBStreamEvent)
def lambda_handler(event: DynamoDBStreamEvent, context: LambdaContext) -> dict:
    now = timeutil.now()
    counts = archive_stream_records(event.raw_event["Records"], archive(), customers(), event_types(), now)
    if counts["archived"] or counts["purged_lines"]:
        note_archive_change(insights(), now)
    logger.info("stream batch archived", extra=counts)
    return counts
