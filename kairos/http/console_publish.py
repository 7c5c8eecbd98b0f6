"""Publish the web console to the bucket a deployment serves it from, and take it away again.

The stack's ``ConsolePublish`` custom resource runs this on every Create and Update (``functions/console_publish``):
it copies the console shipped in the package (``kairos/http/console/``, in the KairosLayer) under ``console/``,
each file with its ``Content-Type``, writes ``console/config.json`` for the page, and removes files an earlier
version published that this one no longer has. On Delete it empties ``console/``, so CloudFormation can delete
the bucket.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kairos.http.console_assets import CONSOLE_DIR, CONTENT_TYPES

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping
    from pathlib import Path

    from kairos.http.ports import ConsoleBucket

PREFIX = "console/"
# The files keep their names from one version to the next (no content hash in them): the browser and CloudFront
# revalidate on every load (a 304 when nothing changed), so a new version shows at once.
CACHE_CONTROL = "no-cache"


@dataclass(frozen=True)
class ConsoleFile:
    """A console file as published: its key, bytes and ``Content-Type``."""

    key: str
    body: bytes
    content_type: str


def console_files(root: Path = CONSOLE_DIR, prefix: str = PREFIX) -> Iterator[ConsoleFile]:
    """The console's files under ``root`` that the console serves (known suffixes, no hidden files), sorted.

    Parameters
    ----------
    root
        The console folder (default: the one shipped in the package).
    prefix
        The key prefix they are published under.
    """
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if not path.is_file() or path.suffix not in CONTENT_TYPES or any(p.startswith(".") for p in rel.parts):
            continue
        yield ConsoleFile(prefix + rel.as_posix(), path.read_bytes(), CONTENT_TYPES[path.suffix])


def console_config(api_base_path: str = "/v1", auth: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What ``config.json`` tells the page: where the API is and how users sign in.

    Parameters
    ----------
    api_base_path
        The API's path on the console's origin (CloudFront sends ``/v1/*`` to the API stage).
    auth
        Sign-in settings (a Cognito user pool and client, when the stack has them); empty: API keys.
    """
    return {"apiBasePath": api_base_path, "auth": dict(auth or {})}


def publish_console(
    bucket: ConsoleBucket, config: Mapping[str, Any], root: Path = CONSOLE_DIR, prefix: str = PREFIX
) -> list[str]:
    """Copy every console file and ``config.json`` to the bucket, and delete what an earlier version left.

    Parameters
    ----------
    bucket
        Where the console is served from.
    config
        The content of ``config.json`` (:func:`console_config`).
    root, prefix
        The console folder and the key prefix.

    Returns
    -------
    list[str]
        The keys written, ``config.json`` last.

    Example
    -------
    >>> publish_console(bucket, console_config())  # doctest: +SKIP
    ['console/console.css', ..., 'console/config.json']
    """
    written = []
    for item in console_files(root, prefix):
        bucket.put(item.key, item.body, item.content_type, CACHE_CONTROL)
        written.append(item.key)
    config_key = f"{prefix}config.json"
    body = json.dumps(dict(config), indent=2, sort_keys=True).encode()
    bucket.put(config_key, body, CONTENT_TYPES[".json"], CACHE_CONTROL)
    written.append(config_key)
    stale = sorted(set(bucket.keys(prefix)) - set(written))
    if stale:
        bucket.delete(stale)
    return written


def unpublish_console(bucket: ConsoleBucket, prefix: str = PREFIX) -> list[str]:
    """Delete every key under ``prefix`` (the console and its ``config.json``); returns the keys deleted."""
    keys = bucket.keys(prefix)
    if keys:
        bucket.delete(keys)
    return keys


def handle_publish_request(
    request_type: str,
    properties: Mapping[str, Any],
    bucket_for: Callable[[str], ConsoleBucket],
    root: Path = CONSOLE_DIR,
) -> tuple[str, dict[str, Any]]:
    """The ``ConsolePublish`` custom resource: publish on Create and Update, empty on Delete.

    Parameters
    ----------
    request_type
        ``Create``, ``Update`` or ``Delete``.
    properties
        The resource's properties: ``Bucket`` (required), ``ApiBasePath`` (default ``/v1``), ``Auth`` (an object
        copied into ``config.json``; empty: the console signs in with API keys).
    bucket_for
        Makes the :class:`~kairos.http.ports.ConsoleBucket` of a bucket name.
    root
        The console folder.

    Returns
    -------
    tuple[str, dict]
        The physical id (``console:<bucket>``: a new bucket is a new resource, and CloudFormation empties the
        old one with a Delete) and the attributes (``Files``: how many keys were written).

    Raises
    ------
    ValueError
        When ``Bucket`` is missing or the request type is unknown.
    """
    name = str(properties.get("Bucket") or "")
    if not name:
        raise ValueError("the ConsolePublish resource needs a Bucket property")
    physical_id = f"console:{name}"
    if request_type == "Delete":
        return physical_id, {"Files": len(unpublish_console(bucket_for(name)))}
    if request_type not in ("Create", "Update"):
        raise ValueError(f"unknown request type {request_type!r}")
    config = console_config(str(properties.get("ApiBasePath") or "/v1"), properties.get("Auth") or {})
    return physical_id, {"Files": len(publish_console(bucket_for(name), config, root))}
