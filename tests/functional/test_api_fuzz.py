"""A contract fuzzer (schemathesis) against the local API, from the API's own OpenAPI document.

Every check schemathesis has runs, with the exceptions of ``bench/contract.toml`` (one check on one operation
each, with its reason): the settings ``python bench/contract.py`` runs the whole check with against ``make
serve`` (docs/api.md). Here, in process and bounded (examples per operation, derandomized, no example database):

- every operation gets positive cases (valid by the document: they must be accepted) and negative ones
  (invalid on purpose: they must be refused); every answer must not be a 5xx, must have a status, content type,
  headers and body the document lists, and must be a 401 without the key;
- a stateful run follows the document's links (a saved segment is read, then deleted, then gone);
- every path answers a method it does not declare with a 405 whose ``Allow`` lists the ones it does.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Flaky, Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig
from schemathesis.errors import FailureGroup

from kairos_local.embedded import embedded_aws
from kairos_local.server import wsgi_app

CONFIG = Path(__file__).resolve().parents[2] / "bench" / "contract.toml"
EXAMPLES_PER_OPERATION = 12  # per generation mode; about 1,000 requests in all
STATEFUL_SCENARIOS = 25
METHODS = ("GET", "PUT", "POST", "DELETE", "PATCH", "OPTIONS", "TRACE")


@pytest.fixture(scope="module")
def api():
    with embedded_aws(api_key="fuzz-key") as rt:
        yield rt


@pytest.fixture(scope="module")
def schema(api):
    # The configuration of bench/contract.toml, with the key as `bench/contract.py` passes it: a header on every
    # request (schemathesis then checks that a request without it is a 401).
    key = f'headers = {{ Authorization = "Bearer {api.api_key}" }}\n'
    config = SchemathesisConfig.from_str(key + CONFIG.read_text(), base_dir=str(CONFIG.parent))
    return schemathesis.openapi.from_wsgi("/v1/openapi.json", wsgi_app(api), config=config)


def _settings(max_examples: int, **kwargs: object) -> settings:
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
        **kwargs,
    )


def test_api_fuzz_every_check_holds_on_valid_and_invalid_requests(api, schema):
    # GIVEN the OpenAPI document the local API serves, and a key with every scope
    calls = 0
    accepted: set[str] = set()
    failures: list[str] = []
    started = time.monotonic()
    # WHEN schemathesis sends valid and invalid requests to every operation
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @_settings(EXAMPLES_PER_OPERATION, phases=[Phase.explicit, Phase.generate, Phase.shrink])
            @given(case=operation.as_strategy(generation_mode=mode))
            def call(case):
                nonlocal calls
                calls += 1
                # THEN every check of the configuration holds for the operation (all but its exceptions)
                response = case.call_and_validate()
                if response.status_code < 300:
                    accepted.add(case.operation.label)

            # Every operation is fuzzed even when one fails, so a report lists them all.
            try:
                call()
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE, operation.label  # nothing to get wrong: no parameter, no body
            except (FailureGroup, Exception) as exc:  # FailureGroup is a BaseExceptionGroup
                failures.append(f"{operation.label} ({mode.value}): {exc}")
    print(f"schemathesis: {calls} cases in {time.monotonic() - started:.1f} s")
    assert not failures, "\n\n".join(failures)
    # AND the key reached the API: most operations accepted some request (a 401 would pass every check above)
    assert len(accepted) > len(list(schema.get_all_operations())) / 2, sorted(accepted)


def test_api_fuzz_stateful_runs_follow_the_links_and_every_check_holds(api, schema):
    # GIVEN the state machine of the document's links (a saved segment -> read it, delete it...)
    found: list[str] = []

    class Links(schema.as_state_machine()):
        def validate_response(self, response, case, additional_checks=None, **kwargs):
            try:
                super().validate_response(response, case, additional_checks, **kwargs)
            except FailureGroup as exc:
                found.append(f"{case.operation.label}: {exc}")
                raise

    # WHEN scenarios of a few steps run
    try:
        Links.run(settings=_settings(STATEFUL_SCENARIOS, stateful_step_count=6))
    except Flaky:
        # The API's state moved on between a scenario and its replay (what it saved stays saved): the run goes
        # on as schemathesis' own does, and any failure it met is in `found`.
        pass
    # THEN every check held at every step (a deleted resource stays gone)
    assert not found, "\n\n".join(found)


def test_api_fuzz_an_undeclared_method_is_405_listing_the_declared_ones(api):
    # GIVEN every path of the document and the methods it declares
    doc = api.http("GET", "/v1/openapi.json").json()
    headers = {"Authorization": f"Bearer {api.api_key}"}
    wrong = []
    for path, operations in doc["paths"].items():
        declared = sorted(method.upper() for method in operations)
        concrete = path.replace("{", "x").replace("}", "")
        for method in sorted(set(METHODS) - set(declared)):
            # WHEN a method it does not declare is sent (through the WSGI app: what `make serve` answers)
            status, allow = _wsgi_call(api, method, concrete, headers)
            # THEN the answer is 405 and Allow names exactly the declared methods
            if status != 405 or allow != ", ".join(declared):
                wrong.append(f"{method} {path}: {status}, Allow: {allow}")
    assert not wrong, wrong


def _wsgi_call(api, method: str, path: str, headers: dict[str, str]) -> tuple[int, str | None]:
    from werkzeug.test import Client

    resp = Client(wsgi_app(api)).open(path, method=method, headers=headers)
    return resp.status_code, resp.headers.get("Allow")
