"""The web console's bucket on S3 (see :mod:`kairos.http.console_publish`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from kairos.core.aws import STORE_RETRIES, LazyClient, call, domain_error, error_code
from kairos.http.ports import ConsoleBucket

if TYPE_CHECKING:
    from collections.abc import Iterable

    from mypy_boto3_s3 import S3Client

# DeleteObjects takes at most 1000 keys a call.
DELETE_BATCH = 1000


class S3ConsoleBucket(ConsoleBucket):
    """A private S3 bucket that CloudFront reads the console from (origin access control)."""

    s3 = LazyClient("s3", STORE_RETRIES)

    def __init__(self, bucket: str, client: S3Client | None = None) -> None:
        self.bucket = bucket
        self.s3 = client

    def put(self, key: str, body: bytes, content_type: str, cache_control: str) -> None:
        call(
            self.s3,
            "put_object",
            "console bucket",
            Bucket=self.bucket,
            Key=key,
            Body=body,
            ContentType=content_type,
            CacheControl=cache_control,
        )

    def keys(self, prefix: str) -> list[str]:
        out: list[str] = []
        try:
            for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                out += [item["Key"] for item in page.get("Contents", [])]
        except ClientError as exc:
            # A bucket already deleted (by hand, or a rollback) holds nothing to empty.
            if error_code(exc) == "NoSuchBucket":
                return []
            raise domain_error(exc, "console bucket list_objects_v2") from exc
        return out

    def delete(self, keys: Iterable[str]) -> None:
        batch = list(keys)
        for start in range(0, len(batch), DELETE_BATCH):
            objects = [{"Key": k} for k in batch[start : start + DELETE_BATCH]]
            answer = call(
                self.s3,
                "delete_objects",
                "console bucket",
                Bucket=self.bucket,
                Delete={"Objects": objects, "Quiet": True},
            )
            if answer.get("Errors"):
                first = answer["Errors"][0]
                raise domain_error(
                    ClientError({"Error": {"Code": first.get("Code", "")}}, "DeleteObjects"),
                    f"console bucket delete_objects of {first.get('Key')}",
                )
