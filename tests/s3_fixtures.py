"""A real S3-compatible server on 127.0.0.1 (moto's server mode) for the tests.

Import the fixtures into a test module (``from tests.s3_fixtures import s3_server, s3_bucket``)
or with ``pytest_plugins``. The server speaks the S3 REST API over HTTP; s3fs, boto3 and the
code under test talk to it exactly as to AWS, with fake credentials from the environment and
the region from ``AWS_DEFAULT_REGION``.
"""

from __future__ import annotations

import io
import json
import os
import uuid
from dataclasses import dataclass

import pytest
from PIL import Image

FAKE_ENV = {"AWS_ACCESS_KEY_ID": "mm-test-key-id", "AWS_SECRET_ACCESS_KEY": "mm-test-secret",
            "AWS_DEFAULT_REGION": "us-east-1"}


@dataclass(frozen=True)
class S3Server:
    endpoint: str

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint)

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        """Every object key under ``prefix`` (paginated)."""
        pages = self.client().get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=prefix)
        return sorted(o["Key"] for p in pages for o in p.get("Contents", []))


@pytest.fixture(scope="session")
def s3_server():
    """moto in server mode on 127.0.0.1, a free port; fake credentials in the environment."""
    from moto.server import ThreadedMotoServer

    old = {k: os.environ.get(k) for k in FAKE_ENV}
    os.environ.update(FAKE_ENV)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield S3Server(f"http://{host}:{port}")
    finally:
        import fsspec

        server.stop()
        fsspec.config.conf.pop("s3", None)  # defaults registered by StorageResource.store()
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture
def s3_bucket(s3_server) -> str:
    """A fresh, empty bucket for one test."""
    name = f"mm-{uuid.uuid4().hex[:12]}"
    s3_server.client().create_bucket(Bucket=name)
    return name


def jsonl_drop(tag: str, n: int, image: str | None = None) -> bytes:
    """A JSONL drop of ``n`` LLaVA records (the first one with ``image``, when given)."""
    rows = []
    for i in range(n):
        row = {"id": f"{tag}{i}", "conversations": [
            {"from": "human", "value": f"Question {i} about {tag}?"},
            {"from": "gpt", "value": f"Answer {i}: {tag} has {i + 2} parts."}]}
        if image and i == 0:
            row["image"] = image
            row["conversations"][0]["value"] = "<image>\n" + row["conversations"][0]["value"]
        rows.append(json.dumps(row))
    return ("\n".join(rows) + "\n").encode()


def png_bytes() -> bytes:
    """A 40×30 red PNG."""
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 60, 20)).save(buf, format="PNG")
    return buf.getvalue()
