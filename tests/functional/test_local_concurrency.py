"""The local runtime runs functions at once, as Lambda does, each with its own environment."""

from __future__ import annotations

import copy
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from aws_lambda_powertools.event_handler.api_gateway import BaseRouter

from kairos_local import powertools_patches
from kairos_local.embedded import embedded_aws
from kairos_local.template import load_template
from tests.conftest import Client

HOLD_S = 0.5  # how long each test invocation runs: long enough for two to overlap if they may
REPEATS = 10  # reads per customer, from threads at once


def _with_test_functions() -> dict[str, Any]:
    """The template with two test-only functions on one handler, each with its own events table name."""
    tpl = copy.deepcopy(load_template())
    for name, table in (("LeftFunction", "left-events"), ("RightFunction", "right-events")):
        tpl["Resources"][name] = {
            "Type": "AWS::Serverless::Function",
            "Properties": {
                "CodeUri": "tests/data/functions/",
                "Handler": "overlap.lambda_handler",
                "Environment": {"Variables": {"EVENTS_TABLE_NAME": table}},
            },
        }
    return tpl


def _at_once(runtime: Any, calls: list[str]) -> list[dict[str, Any]]:
    """Invoke the functions named in ``calls`` from as many threads, released together."""
    go = threading.Barrier(len(calls))

    def run(logical_id: str) -> dict[str, Any]:
        go.wait(timeout=30)
        return runtime.invoke(logical_id, {"hold_s": HOLD_S})

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


def _overlap(a: dict[str, Any], b: dict[str, Any]) -> float:
    return min(a["ended"], b["ended"]) - max(a["started"], b["started"])


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return _with_test_functions()


def test_local_runtime_runs_two_functions_at_once_each_with_its_own_environment(template):
    with embedded_aws(api_key="test-key", template=template) as runtime:
        # GIVEN two functions whose environments name different events tables, both warm
        runtime.handler("LeftFunction"), runtime.handler("RightFunction")
        # WHEN both are invoked at once
        left, right = _at_once(runtime, ["LeftFunction", "RightFunction"])
    # THEN their invocations overlapped in time
    assert _overlap(left, right) > HOLD_S / 2, (left, right)
    # AND each saw its own function's settings, at its cold start, while running and in a thread of its own pool,
    # never in os.environ
    assert left["events_table"] == left["at_import"] == left["in_a_pool"] == "left-events"
    assert right["events_table"] == right["at_import"] == right["in_a_pool"] == "right-events"
    assert left["process_environment"] is None and right["process_environment"] is None


def test_local_runtime_serves_one_function_from_one_sandbox_at_a_time_by_default(template):
    with embedded_aws(api_key="test-key", template=template) as runtime:
        # WHEN one function is invoked twice at once, with one sandbox per function (the default)
        first, second = _at_once(runtime, ["LeftFunction", "LeftFunction"])
    # THEN the invocations took turns in the function's one module
    assert _overlap(first, second) <= 0, (first, second)
    assert first["module"] == second["module"] == "kairos_fn_LeftFunction_overlap"


def test_local_runtime_runs_one_function_in_two_sandboxes_at_once(template):
    with embedded_aws(api_key="test-key", template=template, sandboxes=2) as runtime:
        # WHEN one function with two sandboxes is invoked twice at once
        first, second = _at_once(runtime, ["LeftFunction", "LeftFunction"])
        # THEN both ran at once, each in its own sandbox (its own import of the handler's module)
        assert _overlap(first, second) > HOLD_S / 2, (first, second)
        assert {first["module"], second["module"]} == {
            "kairos_fn_LeftFunction_overlap",
            "kairos_fn_LeftFunction_overlap_1",
        }
        assert first["events_table"] == second["events_table"] == "left-events"


def test_local_runtime_caps_invocations_running_at_once(template):
    with embedded_aws(api_key="test-key", template=template, concurrency=1) as runtime:
        # WHEN two functions are invoked at once in a runtime that runs one invocation at a time
        left, right = _at_once(runtime, ["LeftFunction", "RightFunction"])
    # THEN the second waited for the first
    assert _overlap(left, right) <= 0, (left, right)


def test_local_api_answers_requests_at_once_each_with_its_own_request():
    with embedded_aws(api_key="test-key", sandboxes=2) as runtime:
        # GIVEN customers, and the API in two sandboxes
        client = Client(runtime)
        ids = [f"c{i}" for i in range(4)]
        for cid in ids:
            assert client.request("PUT", f"/v1/customers/{cid}", {"timezone": "UTC"}).status == 200

        # WHEN each customer is read many times, from threads at once
        def read(cid: str) -> list[str]:
            return [client.request("GET", f"/v1/customers/{cid}").json()["customer_id"] for _ in range(REPEATS)]

        with ThreadPoolExecutor(max_workers=len(ids)) as pool:
            answers = dict(zip(ids, pool.map(read, ids), strict=True))
        # THEN every answer is about the customer its request asked for (the resolver's event is per invocation)
        assert answers == {cid: [cid] * REPEATS for cid in ids}
        assert runtime.invocations["ApiFunction"] >= len(ids) * (REPEATS + 1)


def test_local_runtime_keeps_the_event_handlers_request_per_invocation():
    # GIVEN Powertools' event handler, which keeps the request being resolved on its BaseRouter class
    go = threading.Barrier(2)
    seen: dict[str, str] = {}

    def resolve(name: str) -> None:
        BaseRouter.current_event = name  # as ApiGatewayResolver.resolve sets it
        go.wait(timeout=30)
        seen[name] = BaseRouter.current_event

    # WHEN two invocations on two threads each set theirs, then read it after the other has set its own
    with powertools_patches.patched():
        threads = [threading.Thread(target=resolve, args=(name,)) for name in ("api", "preferences")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    # THEN each read its own
    assert seen == {"api": "api", "preferences": "preferences"}
    # AND outside the local runtime Powertools is as installed
    assert not powertools_patches.active()
