"""moto's Step Functions interpreter running our ASL with in-process Lambdas and compressed time."""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta

import pytest

from kairos_local.embedded import embedded_aws
from kairos_local.stepfunctions import SimulatedClock, local_stepfunctions
from kairos_local.template import load_template


@pytest.fixture
def runtime():
    # The real template plus a test-only function and state machine.
    tpl = copy.deepcopy(load_template())
    tpl["Resources"]["FlakyFunction"] = {
        "Type": "AWS::Serverless::Function",
        "Properties": {"CodeUri": "tests/data/functions/", "Handler": "flaky.lambda_handler"},
    }
    tpl["Resources"]["FlowStateMachine"] = {
        "Type": "AWS::Serverless::StateMachine",
        "Properties": {
            "DefinitionUri": "tests/data/asl/flow.asl.json",
            "DefinitionSubstitutions": {"FlakyFunctionArn": {"Fn::GetAtt": ["FlakyFunction", "Arn"]}},
        },
    }
    with embedded_aws(api_key="k", template=tpl) as rt:
        yield rt


def test_local_stepfunctions_day_wait_retries_catch_map_in_seconds(runtime):
    # GIVEN a simulated clock and no real waiting
    clock = SimulatedClock()
    start = clock.now()
    with local_stepfunctions(runtime, clock, scale=0.0) as sfn:
        # WHEN a flow with a 24 h wait, a throttled task and a permanently failing one runs
        began = datetime.now()
        desc = sfn.run("FlowStateMachine", {"key": "k1", "items": [1, 2, 3]}, timeout_s=30)
        took = (datetime.now() - began).total_seconds()
    # THEN it succeeds in seconds, the throttled task was retried until it passed, the failure was caught
    assert desc["status"] == "SUCCEEDED", desc
    out = json.loads(desc["output"])
    assert out["throttled"]["calls"] == 3
    assert out["rejected"]["Error"] == "ProviderRejected"
    assert len(out["mapped"]) == 3
    assert took < 20
    # AND the simulated clock moved by the day and the retry intervals, and the handler saw it
    assert clock.now() - start >= timedelta(days=1)
    assert datetime.fromisoformat(out["throttled"]["now"]) >= start + timedelta(days=1)


def test_deployed_state_machines_have_substitutions_resolved(runtime):
    sfn = runtime.session.client("stepfunctions")
    definition = sfn.describe_state_machine(stateMachineArn=runtime.dep.physical["ScoreAllStateMachine"])["definition"]
    assert "${" not in definition
    assert runtime.dep.attributes[("ScoreFunction", "Arn")] in definition
