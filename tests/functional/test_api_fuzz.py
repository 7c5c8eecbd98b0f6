"""A contract fuzzer (schemathesis) against the local API, from the API's own OpenAPI document.

Every operation gets positive cases (valid by the document) and negative ones (invalid on purpose). Each answer
must not be a 5xx, must have a status the document lists for the operation, and a body of the documented schema.
The run is bounded (examples per operation, derandomized, no example database), so it is repeatable and short.
"""

from __future__ import annotations

import time

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.errors import FailureGroup
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from kairos_local.embedded import embedded_aws
from kairos_local.server import wsgi_app

CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]
EXAMPLES_PER_OPERATION = 15  # per generation mode; about 400 requests in all


@pytest.fixture(scope="module")
def api():
    with embedded_aws(api_key="fuzz-key") as rt:
        yield rt


def test_api_fuzz_finds_no_server_error_and_no_undocumented_answer(api):
    # GIVEN the OpenAPI document the local API serves, and a key with every scope
    schema = schemathesis.openapi.from_wsgi("/v1/openapi.json", wsgi_app(api))
    headers = {"Authorization": f"Bearer {api.api_key}"}
    calls = 0
    failures: list[str] = []
    started = time.monotonic()
    # WHEN schemathesis sends valid and invalid requests to every operation
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(
                max_examples=EXAMPLES_PER_OPERATION,
                deadline=None,
                derandomize=True,
                database=None,
                phases=[Phase.explicit, Phase.generate, Phase.shrink],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def call(case):
                nonlocal calls
                calls += 1
                # THEN no answer is a 5xx, undocumented, or off its documented schema
                case.call_and_validate(headers=headers, checks=CHECKS)

            # Every operation is fuzzed even when one fails, so a report lists them all.
            try:
                call()
            except (FailureGroup, Exception) as exc:  # FailureGroup is a BaseExceptionGroup
                failures.append(f"{operation.label} ({mode.value}): {exc}")
    print(f"schemathesis: {calls} cases in {time.monotonic() - started:.1f} s")
    assert calls > 0
    assert not failures, "\n\n".join(failures)
