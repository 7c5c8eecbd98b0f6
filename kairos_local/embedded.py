"""Embedded AWS: moto in-process, the template deployed into it, the functions ready to run."""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import boto3
from moto import mock_aws

from kairos.http.adapters.api_keys import DynamoApiKeyStore
from kairos_local import moto_patches, powertools_patches
from kairos_local.runtime import DEFAULT_CONCURRENCY, DEFAULT_SANDBOXES, LocalRuntime, pools_inherit_context
from kairos_local.stepfunctions import deploy_state_machines, stop_running_executions
from kairos_local.template import deploy

if TYPE_CHECKING:
    from collections.abc import Iterator

DEFAULT_LOCAL_API_KEY = "kairos-local-dev-key"
# The process environment of every function: what boto3 and Powertools read, the same for all (each function's own
# variables are its invocations' alone: kairos_local.runtime.LocalRuntime.environment).
FAKE_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "eu-west-1",
    "AWS_REGION": "eu-west-1",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_DISABLED": "true",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
}


@contextmanager
def embedded_aws(
    api_key: str | None = None,
    parameters: dict[str, str] | None = None,
    log_level: str | None = None,
    template: dict[str, Any] | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    sandboxes: int = DEFAULT_SANDBOXES,
) -> Iterator[LocalRuntime]:
    """Start moto, deploy ``template.yaml`` into it and yield the runtime that runs its functions.

    Parameters
    ----------
    api_key
        A key to register for the local app (default ``$KAIROS_API_KEY`` or ``kairos-local-dev-key``).
    parameters
        Template parameter overrides (e.g. ``{"EventRetentionDays": "5000"}``).
    template
        A template to deploy instead of ``template.yaml`` (tests add test-only resources to the real one).
    concurrency, sandboxes
        Invocations at once, and sandboxes per function (:class:`~kairos_local.runtime.LocalRuntime`).
    """
    # moto logs every failed state of its interpreter at WARNING/ERROR with the whole parse tree; failures
    # reach us through DescribeExecution and the execution history instead.
    logging.getLogger("moto.stepfunctions").setLevel(logging.CRITICAL)
    # Powertools warns on every invocation without custom metrics; locally metrics are off anyway.
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    saved = dict(os.environ)
    # Embedded AWS must never reach a real account: fake credentials, whatever the shell had.
    os.environ.update(FAKE_ENV)
    if log_level:
        os.environ["POWERTOOLS_LOG_LEVEL"] = log_level
    for var in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
        os.environ.pop(var, None)
    # Downloaded model versions are cached per embedded deployment, as each Lambda sandbox has its own /tmp.
    cache = tempfile.TemporaryDirectory(prefix="kairos-models-")
    os.environ["KAIROS_MODEL_CACHE_DIR"] = cache.name
    try:
        # moto runs state machines itself; kairos_local.stepfunctions makes their Lambdas run in-process.
        with (
            moto_patches.patched(),
            powertools_patches.patched(),
            pools_inherit_context(),
            mock_aws(config={"stepfunctions": {"execute_state_machine": True}}),
        ):
            session = boto3.Session(region_name=FAKE_ENV["AWS_DEFAULT_REGION"])
            dep = deploy(session, template=template, overrides=parameters)
            deploy_state_machines(dep, session)
            # The handlers' clients come from boto3's default session (mock_aws made a new one): made here, on one
            # thread, with its credentials read, before functions running at once make their first clients.
            boto3.client("sts")
            runtime = LocalRuntime(dep, session, concurrency=concurrency, sandboxes=sandboxes)
            key = api_key or os.environ.get("KAIROS_API_KEY") or DEFAULT_LOCAL_API_KEY
            DynamoApiKeyStore(dep.physical["ApiKeysTable"], session.client("dynamodb")).create("local", key)
            runtime.api_key = key  # type: ignore[attr-defined]
            try:
                yield runtime
            finally:
                # A launch waiting for its start (moto's own Wait) must not wake up in the next deployment.
                stop_running_executions(dep.region)
    finally:
        cache.cleanup()
        os.environ.clear()
        os.environ.update(saved)


def auth_header(runtime: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {runtime.api_key}", "Content-Type": "application/json"}
