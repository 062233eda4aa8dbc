"""A local S3 server (moto's server mode) on 127.0.0.1 with a free port: what a bucket on AWS or MinIO does.

The real boto3 client talks to it over HTTP; a browser reads the objects back from it as from a bucket's website.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import boto3

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# moto accepts any credentials; these are the ones the tests set, so they can check none is ever shown.
KEY_ID = "AKIATESTSTATUSPAGE01"
SECRET = "s3cr3t-status-page-key-0123456789"


@dataclass(frozen=True)
class S3Server:
    endpoint: str

    def client(self) -> S3Client:
        return boto3.session.Session().client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                                              aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET)

    def bucket(self, name: str) -> str:
        """Create the bucket `name`, readable by anyone as a static site's bucket is; its name back."""
        client = self.client()
        client.create_bucket(Bucket=name)
        client.put_bucket_policy(Bucket=name, Policy=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                           "Resource": f"arn:aws:s3:::{name}/*"}],
        }))
        return name


@contextmanager
def s3_server() -> Iterator[S3Server]:
    """A fresh S3 server while the block runs (moto keeps its buckets per process: it is reset on both ends)."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    reset = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")
    urllib.request.urlopen(reset, timeout=10).close()
    try:
        yield S3Server(endpoint)
    finally:
        urllib.request.urlopen(reset, timeout=10).close()
        server.stop()
