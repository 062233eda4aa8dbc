"""The status site in an S3-compatible bucket (AWS S3, MinIO, R2...): each file with its type and cache policy.

boto3 is imported only when a channel writes to a bucket: every other command starts without it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from playbook import secrets

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

SCHEME = "s3://"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".json": "application/json; charset=utf-8",
    ".atom": "application/atom+xml; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
}
# Pages, JSON and feeds change with every update: caches and CDNs keep them a minute at most. The banner script
# changes only with crisis-playbook itself.
SHORT_CACHE = "public, max-age=60"
LONG_CACHE = "public, max-age=86400"
ASSETS = frozenset({"banner.js"})
# The bucket (or credentials) is wrong: another attempt would meet the same answer.
FINAL = frozenset({"AccessDenied", "NoSuchBucket", "InvalidAccessKeyId", "SignatureDoesNotMatch",
                   "InvalidBucketName", "AllAccessDisabled"})
# What boto3 reads from the environment and may echo in an error: masked like the settings' secrets.
CREDENTIAL_VARIABLES = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


class BucketError(Exception):
    """A bucket that cannot be written, said without credentials; `final` when retrying cannot help."""

    def __init__(self, message: str, *, final: bool) -> None:
        super().__init__(secrets.redact(message))
        self.final = final


@dataclass(frozen=True)
class Address:
    bucket: str
    prefix: str

    @classmethod
    def parse(cls, output_dir: str) -> Address | None:
        """s3://bucket/prefix as a bucket and a key prefix ("" or ending with "/"); None for a folder."""
        if not output_dir.startswith(SCHEME):
            return None
        parts = urlsplit(output_dir)
        prefix = parts.path.strip("/")
        return cls(parts.netloc, f"{prefix}/" if prefix else "")

    def __str__(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.prefix}"


def upload_order(names: list[str]) -> list[str]:
    """Every file before the pages and index.html last: a reader never gets a page whose files are missing."""
    return sorted(names, key=lambda n: (n == "index.html", n.startswith("index.") and n.endswith(".html"), n))


def headers_of(name: str) -> tuple[str, str]:
    """(Content-Type, Cache-Control) of a site file."""
    kind = CONTENT_TYPES.get(PurePosixPath(name).suffix, "application/octet-stream")
    return kind, LONG_CACHE if name in ASSETS else SHORT_CACHE


class Bucket:
    """One bucket and prefix, through one boto3 client made on first use."""

    def __init__(self, address: Address, *, endpoint_url: str | None, region: str | None,
                 access_key_id: str | None, secret_access_key: str | None, timeout: timedelta) -> None:
        self.address = address
        self._settings: dict[str, Any] = {
            "endpoint_url": endpoint_url, "region_name": region or os.environ.get("AWS_REGION") or "us-east-1",
            "aws_access_key_id": access_key_id, "aws_secret_access_key": secret_access_key,
        }
        self._timeout = timeout.total_seconds()
        self._client: S3Client | None = None
        # boto3 makes clients thread-safe, not their creation.
        self._lock = threading.Lock()

    def client(self) -> S3Client:
        with self._lock:
            if self._client is None:
                import boto3
                from botocore.config import Config

                for variable in CREDENTIAL_VARIABLES:
                    secrets.register(os.environ.get(variable))
                self._client = boto3.session.Session().client(
                    "s3", config=Config(connect_timeout=self._timeout, read_timeout=self._timeout,
                                        retries={"max_attempts": 2, "mode": "standard"}),
                    **self._settings)
            return self._client

    def upload(self, files: Mapping[str, bytes]) -> None:
        """Put every file, in upload_order; BucketError at the first that fails."""
        for name in upload_order(list(files)):
            content_type, cache = headers_of(name)
            self._call("put_object", Key=self.address.prefix + name, Body=files[name], ContentType=content_type,
                       CacheControl=cache)

    def probe(self) -> None:
        """Write, then delete, an object no page links to: the bucket takes writes, and nothing is published."""
        key = f"{self.address.prefix}.probe-{os.getpid()}-{os.urandom(4).hex()}"
        self._call("put_object", Key=key, Body=b"probe\n")
        self._call("delete_object", Key=key)

    def _call(self, operation: str, **parameters: Any) -> None:
        """One request on the bucket; BucketError, without credentials, when it fails."""
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        try:
            getattr(self.client(), operation)(Bucket=self.address.bucket, **parameters)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", "error"))
            raise BucketError(f"{self.address} refused the write ({code}: {error.get('Message', '')})",
                              final=code in FINAL) from None
        except BotoCoreError as exc:
            raise BucketError(f"cannot write to {self.address}: {exc}",
                              final=isinstance(exc, NoCredentialsError)) from None
