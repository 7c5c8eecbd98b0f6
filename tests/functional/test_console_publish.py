"""The ConsolePublish custom resource on embedded AWS: the handler copies the console to the bucket the template
makes, writes config.json, empties it on Delete, and answers CloudFormation's response URL even when it fails."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest

from kairos.http.console_assets import CONSOLE_DIR, CONTENT_TYPES

FUNCTION = "ConsolePublishFunction"


class ResponseUrl:
    """A local stand-in for CloudFormation's pre-signed response URL: it keeps every document PUT to it."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.content_types: list[str | None] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length", 0))
                outer.bodies.append(json.loads(self.rfile.read(length)))
                outer.content_types.append(self.headers.get("Content-Type"))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/response?X-Amz-Signature=x"


@pytest.fixture
def response_url():
    target = ResponseUrl()
    thread = threading.Thread(target=target.server.serve_forever, daemon=True)
    thread.start()
    yield target
    target.server.shutdown()
    target.server.server_close()


def request(kind: str, url: str, bucket: str, **more: Any) -> dict[str, Any]:
    return {
        "RequestType": kind,
        "ResponseURL": url,
        "StackId": "arn:aws:cloudformation:eu-west-1:123456789012:stack/kairos/guid",
        "RequestId": f"req-{kind}",
        "ResourceType": "Custom::ConsolePublish",
        "LogicalResourceId": "ConsolePublish",
        "ResourceProperties": {"ServiceToken": "arn", "Bucket": bucket, "ApiBasePath": "/v1", **more},
        **({"PhysicalResourceId": f"console:{bucket}"} if kind != "Create" else {}),
    }


def objects(bucket: str) -> dict[str, dict[str, Any]]:
    s3 = boto3.client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    return {k: s3.get_object(Bucket=bucket, Key=k) for k in keys}


def test_console_publish_create_copies_every_file_with_its_type_and_writes_config(runtime, response_url):
    # GIVEN the console bucket of the deployed template
    bucket = runtime.dep.physical["ConsoleBucket"]
    shipped = {
        "console/" + p.relative_to(CONSOLE_DIR).as_posix(): p
        for p in CONSOLE_DIR.rglob("*")
        if p.is_file() and p.suffix in CONTENT_TYPES
    }
    # WHEN CloudFormation creates the resource, with sign-in settings
    auth = {"userPoolId": "eu-west-1_AbC123", "clientId": "client"}
    runtime.invoke(FUNCTION, request("Create", response_url.url, bucket, Auth=auth))
    # THEN every console file is there, byte for byte, with its Content-Type and no-cache, and config.json too
    stored = objects(bucket)
    assert set(stored) == set(shipped) | {"console/config.json"}
    for key, path in shipped.items():
        assert stored[key]["Body"].read() == path.read_bytes(), key
        assert stored[key]["ContentType"] == CONTENT_TYPES[path.suffix], key
        assert stored[key]["CacheControl"] == "no-cache", key
    assert stored["console/index.html"]["ContentType"] == "text/html; charset=utf-8"
    assert stored["console/js/app.js"]["ContentType"] == "text/javascript; charset=utf-8"
    config = stored["console/config.json"]
    assert config["ContentType"] == "application/json"
    assert json.loads(config["Body"].read()) == {"apiBasePath": "/v1", "auth": auth}
    # AND CloudFormation heard SUCCESS for this request, with the physical id and the files' count
    (answer,) = response_url.bodies
    assert answer["Status"] == "SUCCESS" and answer["RequestId"] == "req-Create"
    assert answer["PhysicalResourceId"] == f"console:{bucket}"
    assert answer["Data"] == {"Files": len(shipped) + 1}
    assert response_url.content_types == [""]  # the pre-signed URL is signed without a Content-Type


def test_console_publish_update_removes_files_a_release_no_longer_has(runtime, response_url):
    # GIVEN a published console and a file an earlier release left
    bucket = runtime.dep.physical["ConsoleBucket"]
    runtime.invoke(FUNCTION, request("Create", response_url.url, bucket))
    boto3.client("s3").put_object(Bucket=bucket, Key="console/js/old.js", Body=b"//")
    # WHEN the stack is updated
    runtime.invoke(FUNCTION, request("Update", response_url.url, bucket))
    # THEN the old file is gone, the current ones are there, and config.json has no sign-in settings
    stored = objects(bucket)
    assert "console/js/old.js" not in stored and "console/index.html" in stored
    assert json.loads(stored["console/config.json"]["Body"].read()) == {"apiBasePath": "/v1", "auth": {}}
    assert [b["Status"] for b in response_url.bodies] == ["SUCCESS", "SUCCESS"]


def test_console_publish_delete_empties_what_it_wrote(runtime, response_url):
    # GIVEN a published console
    bucket = runtime.dep.physical["ConsoleBucket"]
    runtime.invoke(FUNCTION, request("Create", response_url.url, bucket))
    assert objects(bucket)
    # WHEN the resource is deleted (before CloudFormation deletes the bucket)
    runtime.invoke(FUNCTION, request("Delete", response_url.url, bucket))
    # THEN the bucket is empty and CloudFormation heard SUCCESS
    assert objects(bucket) == {}
    assert response_url.bodies[-1]["Status"] == "SUCCESS"
    assert response_url.bodies[-1]["PhysicalResourceId"] == f"console:{bucket}"


def test_console_publish_delete_of_a_bucket_already_gone_succeeds(runtime, response_url):
    # GIVEN a rollback of a Create whose bucket never existed  WHEN the resource is deleted
    runtime.invoke(FUNCTION, request("Delete", response_url.url, "kairos-no-such-bucket"))
    # THEN there was nothing to empty, and the stack can go on deleting
    assert response_url.bodies[-1]["Status"] == "SUCCESS"


def test_console_publish_failure_still_answers_failed(runtime, response_url):
    # GIVEN a bucket that does not exist  WHEN CloudFormation creates the resource
    runtime.invoke(FUNCTION, request("Create", response_url.url, "kairos-no-such-bucket"))
    # THEN the handler did not raise, and CloudFormation heard FAILED with the reason (the stack does not hang)
    (answer,) = response_url.bodies
    assert answer["Status"] == "FAILED"
    assert "StoreError" in answer["Reason"] and "NoSuchBucket" in answer["Reason"]
    assert answer["RequestId"] == "req-Create" and answer["LogicalResourceId"] == "ConsolePublish"
    assert answer["PhysicalResourceId"]


def test_console_publish_without_a_bucket_answers_failed(runtime, response_url):
    # GIVEN a resource without its Bucket property  WHEN it is created  THEN FAILED names what is missing
    event = request("Create", response_url.url, "")
    runtime.invoke(FUNCTION, event)
    (answer,) = response_url.bodies
    assert answer["Status"] == "FAILED" and "Bucket" in answer["Reason"]
