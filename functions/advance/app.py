"""Advance function: one step of a customer's path through a journey (the journey step state machine's task).

Events:

- ``{"customer_id", "key", "seq"}``: run the step (:func:`kairos.journeys.runner.advance`); transient provider
  and store errors are raised for the state machine to retry with backoff.
- ``{"action": "recover", "customer_id", "key", "error": {"Error", "Cause"}}``: the step failed every retry.
  What it may have sent is settled ``unconfirmed`` and the step runs again, so the path goes on
  (:func:`kairos.journeys.runner.recover`); when it fails again the path becomes ``failed`` and the state
  machine fails, for the alarm.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics import MetricUnit

from kairos import wiring
from kairos.core import timeutil
from kairos.core.config import require, settings
from kairos.core.observability import logger, metrics, tracer
from kairos.journeys.runner import StepDeps, advance, recover

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext


# The settings this function needs: a deployment without one fails here, at cold start, naming it.
require(*wiring.STEP_SETTINGS)


@lru_cache(maxsize=1)
def deps() -> StepDeps:
    return wiring.step_deps(settings())


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    now = timeutil.now()
    if event.get("action") in ("recover", "failed"):
        error = event.get("error") or {}
        reason = f"{error.get('Error', 'error')}: {str(error.get('Cause', ''))[:400]}"
        result = recover(event["customer_id"], event["key"], reason, deps(), now)
        if result.get("recovered"):
            logger.warning("journey step recovered", extra={"key": event["key"], "error": reason, **result})
            metrics.add_metric(name="JourneyStepsRecovered", unit=MetricUnit.Count, value=1)
        else:
            logger.error("journey step failed", extra={"key": event["key"], "error": reason, **result})
            metrics.add_metric(name="JourneyStepsFailed", unit=MetricUnit.Count, value=1)
        return result
    result = advance(event["customer_id"], event["key"], int(event["seq"]), deps(), now)
    logger.info("journey step", extra={"key": event["key"], **result})
    return result
