"""A custom resource always answers CloudFormation: SUCCESS with the action's id and data, FAILED when it raises."""

from __future__ import annotations

import pytest

from kairos.core.custom_resource import answer, send_response

EVENT = {
    "RequestType": "Create",
    "ResponseURL": "https://cloudformation-custom-resource-response.example/presigned",
    "StackId": "stack",
    "RequestId": "req-1",
    "LogicalResourceId": "Thing",
    "ResourceProperties": {"Name": "a"},
}


def test_answer_sends_success_with_the_actions_physical_id_and_data():
    sent = []
    body = answer(EVENT, lambda kind, props, old: (f"{kind}:{props['Name']}", {"N": 1}), send=lambda *a: sent.append(a))
    assert sent == [(EVENT["ResponseURL"], body)]
    assert body["Status"] == "SUCCESS" and body["PhysicalResourceId"] == "Create:a" and body["Data"] == {"N": 1}


def test_answer_sends_failed_with_the_reason_when_the_action_raises():
    sent, seen = [], []

    def boom(kind, props, old):
        raise RuntimeError("x" * 5000)

    body = answer({**EVENT, "PhysicalResourceId": "old-id"}, boom, send=lambda *a: sent.append(a), on_error=seen.append)
    assert len(sent) == 1 and body["Status"] == "FAILED"
    assert body["PhysicalResourceId"] == "old-id" and body["Reason"].startswith("RuntimeError: x")
    assert len(body["Reason"]) <= 1000  # CloudFormation refuses a response over 4 KB
    assert isinstance(seen[0], RuntimeError)


def test_send_response_refuses_a_url_that_is_not_http():
    with pytest.raises(ValueError, match="not a response URL"):
        send_response("file:///etc/passwd", {})
