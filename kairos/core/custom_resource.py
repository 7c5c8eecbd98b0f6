"""CloudFormation custom resources: run the resource's action and always answer CloudFormation's response URL.

CloudFormation waits for a custom resource's answer (a ``PUT`` of a JSON document to the pre-signed S3 URL of the
request) for up to an hour, and a stack whose resource never answers hangs in ``CREATE_IN_PROGRESS`` (or, worse,
in ``DELETE_IN_PROGRESS``). :func:`answer` therefore sends ``SUCCESS`` or ``FAILED`` whatever the action does. The
document and the ``PUT`` follow AWS's ``cfn-response`` module (``PUT`` with an empty ``Content-Type``, as the
pre-signed URL was signed without one), with the standard library only.
"""

from __future__ import annotations

import json
import urllib.request
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

Status = Literal["SUCCESS", "FAILED"]
# A response document over 4096 bytes is refused by CloudFormation: the reason is cut well below that.
MAX_REASON = 1000


def response_body(
    event: Mapping[str, Any],
    status: Status,
    physical_id: str,
    data: Mapping[str, Any] | None = None,
    reason: str = "",
) -> dict[str, Any]:
    """The document CloudFormation expects at the response URL.

    Parameters
    ----------
    event
        The custom resource request (``StackId``, ``RequestId``, ``LogicalResourceId``, ``ResponseURL``).
    status
        ``SUCCESS`` or ``FAILED``.
    physical_id
        The resource's physical id; a different id on Update makes CloudFormation delete the old one.
    data
        Attributes for ``Fn::GetAtt``.
    reason
        Shown in the stack's events (required with ``FAILED``).

    Returns
    -------
    dict
        The response document.
    """
    return {
        "Status": status,
        "Reason": reason[:MAX_REASON] or status,
        "PhysicalResourceId": physical_id,
        "StackId": event["StackId"],
        "RequestId": event["RequestId"],
        "LogicalResourceId": event["LogicalResourceId"],
        "NoEcho": False,
        "Data": dict(data or {}),
    }


def send_response(url: str, body: Mapping[str, Any], timeout_s: float = 10.0) -> int:
    """``PUT`` the response document to CloudFormation's pre-signed URL; returns the HTTP status.

    Raises
    ------
    ValueError
        When the URL is not ``http(s)``.
    urllib.error.URLError
        When the URL cannot be reached.
    """
    if not url.startswith(("https://", "http://")):
        raise ValueError(f"not a response URL: {url[:40]!r}")
    payload = json.dumps(body).encode()
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked above
        url, data=payload, method="PUT", headers={"Content-Type": "", "Content-Length": str(len(payload))}
    )
    with urllib.request.urlopen(request, timeout=timeout_s) as resp:  # noqa: S310
        return int(resp.status)


def answer(
    event: Mapping[str, Any],
    action: Callable[[str, Mapping[str, Any], Mapping[str, Any]], tuple[str, Mapping[str, Any]]],
    send: Callable[[str, Mapping[str, Any]], Any] = send_response,
    on_error: Callable[[BaseException], None] | None = None,
) -> dict[str, Any]:
    """Run a custom resource's action for a request and send its answer, ``FAILED`` when the action raised.

    Parameters
    ----------
    event
        The request: ``RequestType`` (``Create``, ``Update``, ``Delete``), ``ResourceProperties``,
        ``OldResourceProperties`` (Update), ``PhysicalResourceId`` (Update, Delete), ``ResponseURL``.
    action
        ``action(request_type, properties, old_properties)`` returning the physical id and the attributes.
    send
        Sends the document to the response URL (tests pass a recorder).
    on_error
        Told of the action's error before ``FAILED`` is sent (the handler logs it).

    Returns
    -------
    dict
        The document sent.

    Example
    -------
    >>> answer(event, lambda kind, props, old: ("my-id", {}))  # doctest: +SKIP
    """
    # A failed Create still names a resource: CloudFormation then sends Delete for it while rolling back.
    physical_id = str(event.get("PhysicalResourceId") or f"{event.get('LogicalResourceId', 'resource')}-failed")
    try:
        props = event.get("ResourceProperties") or {}
        old = event.get("OldResourceProperties") or {}
        physical_id, data = action(str(event["RequestType"]), props, old)
        body = response_body(event, "SUCCESS", physical_id, data)
    except Exception as exc:  # noqa: BLE001 - every failure must reach CloudFormation, or the stack hangs
        if on_error is not None:
            on_error(exc)
        body = response_body(event, "FAILED", physical_id, reason=f"{type(exc).__name__}: {exc}")
    send(str(event["ResponseURL"]), body)
    return body
