"""A pool's alerts as CloudWatch metrics, written in the embedded metric format (EMF) to the function's log."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider

from kairos.core.observability import metrics

if TYPE_CHECKING:
    from kairos.promotions.domain import PoolAlert


def emf_alert(alert: PoolAlert) -> None:
    """Publish ``PromoPoolLow`` or ``PromoPoolEmpty`` (count 1) in the functions' namespace, at once.

    One metric per name, without a pool dimension (a dimension per pool would make a metric, and an alarm, per
    pool); the pool, the codes left and the low-water mark ride along as properties of the log record, where
    CloudWatch Logs Insights finds them. A record of its own, not the handler's shared metric set: that set holds
    one value per property, and a step may alert for two pools.

    Example
    -------
    >>> emf_alert(PoolAlert(PROMO_POOL_LOW, "summer", available=12, low_water=100))
    """
    emf = AmazonCloudWatchEMFProvider(namespace=metrics.namespace, service=metrics.service)
    emf.add_metric(name=alert.metric, unit=MetricUnit.Count, value=1)
    emf.add_metadata(key="pool", value=alert.pool)
    emf.add_metadata(key="available", value=alert.available)
    emf.add_metadata(key="low_water", value=alert.low_water)
    emf.flush_metrics()
