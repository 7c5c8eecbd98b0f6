"""Where the score function gets its model: the newest version published to S3, else the bundled default.

Published layout: ``s3://<bucket>/models/<version>/<files of a model directory>``, ``metadata.json`` last,
so a version is complete once its ``metadata.json`` exists. Versions sort by name; ``training publish``
names them ``<UTC timestamp>-<model name>`` so that the newest sorts last.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import ClientError

from kairos.core.aws import STORE_RETRIES, LazyClient, domain_error
from kairos.models.ports import ModelCards

if TYPE_CHECKING:
    from collections.abc import Callable

    from mypy_boto3_s3 import S3Client

MODELS_PREFIX = "models/"
MARKER = "metadata.json"


def publish_model(directory: str | Path, bucket: str, version: str, client: S3Client | None = None) -> str:
    """Upload a model directory as ``models/<version>/``; the metadata goes last and marks it complete."""
    s3 = client or boto3.client("s3")
    d = Path(directory)
    files = sorted(p for p in d.iterdir() if p.is_file())
    files.sort(key=lambda p: p.name == MARKER)
    for p in files:
        s3.upload_file(str(p), bucket, f"{MODELS_PREFIX}{version}/{p.name}")
    return f"s3://{bucket}/{MODELS_PREFIX}{version}/"


def newest_version(client: S3Client, bucket: str) -> str | None:
    """The newest complete version published to ``bucket`` (the greatest name with a ``metadata.json``)."""
    versions = []
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=MODELS_PREFIX):
            for obj in page.get("Contents", []):
                rest = obj["Key"][len(MODELS_PREFIX) :]
                version, _, name = rest.partition("/")
                if name == MARKER:
                    versions.append(version)
    except ClientError as exc:
        raise domain_error(exc, "models bucket list_objects_v2") from exc
    return max(versions) if versions else None


class ModelSource:
    """Loads and caches the current model across invocations.

    Parameters
    ----------
    loader
        Turns a local model directory into a model (``KairosModel.load``).
    bundled
        The model directory shipped with the function, used when S3 has no published version.
    bucket
        The models bucket, or ``None`` to use only the bundled model.
    check_seconds
        How often to look for a newer published version (listing S3 costs a request).
    cache_dir
        Where downloaded versions go (Lambda's writable ``/tmp``).
    """

    client = LazyClient("s3", STORE_RETRIES)

    def __init__(
        self,
        loader: Callable[[Path], Any],
        bundled: Path,
        bucket: str | None = None,
        client: S3Client | None = None,
        check_seconds: float = 300.0,
        cache_dir: Path = Path("/tmp/kairos-models"),  # noqa: S108 - Lambda's only writable place
    ) -> None:
        self.loader = loader
        self.bundled = bundled
        self.bucket = bucket
        self.client = client
        self.check_seconds = check_seconds
        self.cache_dir = cache_dir
        self._model: Any = None
        self._version: str | None = None
        self._checked_at = float("-inf")

    @property
    def version(self) -> str | None:
        """``bundled`` or the S3 version of the model in use."""
        return self._version

    def newest_published(self) -> str | None:
        return newest_version(self.client, self.bucket) if self.bucket else None

    def _download(self, version: str) -> Path:
        target = self.cache_dir / version
        if (target / MARKER).exists():
            return target
        target.mkdir(parents=True, exist_ok=True)
        prefix = f"{MODELS_PREFIX}{version}/"
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                name = obj["Key"][len(prefix) :]
                if name and "/" not in name and name != MARKER:
                    self.client.download_file(self.bucket, obj["Key"], str(target / name))
        self.client.download_file(self.bucket, prefix + MARKER, str(target / MARKER))
        return target

    def current(self) -> Any:
        """The model to score with: loaded once, replaced when a newer version is published."""
        now = time.monotonic()
        if self._model is not None and now - self._checked_at < self.check_seconds:
            return self._model
        self._checked_at = now
        newest = self.newest_published()
        if newest is not None and newest != self._version:
            self._model = self.loader(self._download(newest))
            self._version = newest
        elif self._model is None:
            self._model = self.loader(self.bundled)
            self._version = "bundled"
        return self._model


class PublishedModelCards(ModelCards):
    """The metadata of the model the score function serves: the newest published version's, else the bundled one's.

    Reads only ``metadata.json`` (never the boosters), and looks for a newer version at most every
    ``check_seconds``, as :class:`ModelSource` does.

    Parameters
    ----------
    bundled
        The bundled model directory (its ``metadata.json``; absent: no bundled model).
    bucket
        The models bucket, or ``None`` when only the bundled model is served.
    check_seconds
        How often to look for a newer published version.
    """

    client = LazyClient("s3", STORE_RETRIES)

    def __init__(
        self, bundled: Path, bucket: str | None = None, client: S3Client | None = None, check_seconds: float = 300.0
    ) -> None:
        self.bundled = bundled
        self.bucket = bucket
        self.client = client
        self.check_seconds = check_seconds
        self._card: tuple[str, dict[str, Any]] | None = None
        self._checked_at = float("-inf")

    def current(self) -> tuple[str, dict[str, Any]] | None:
        now = time.monotonic()
        if self._card is not None and now - self._checked_at < self.check_seconds:
            return self._card
        newest = newest_version(self.client, self.bucket) if self.bucket else None
        if newest is None:
            path = self.bundled / MARKER
            self._card = ("bundled", json.loads(path.read_text())) if path.exists() else None
        elif self._card is None or self._card[0] != newest:
            try:
                body = self.client.get_object(Bucket=self.bucket, Key=f"{MODELS_PREFIX}{newest}/{MARKER}")["Body"]
            except ClientError as exc:
                raise domain_error(exc, "models bucket get_object") from exc
            self._card = (newest, json.loads(body.read()))
        self._checked_at = now
        return self._card
