"""Large state values in an S3-compatible bucket, on SQLite and PostgreSQL.

The bucket is served on loopback by moto's S3 server, run as its own
process and spoken to over HTTP by boto3, as a deployment would talk to S3.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import stateshift as ss
from stateshift.state import S3BlobStore

pytest.importorskip("boto3", reason="the S3 blob store needs the s3 extra")

CREDENTIALS = {
    "aws_access_key_id": "testing",
    "aws_secret_access_key": "testing",
    "region_name": "us-east-1",
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the S3 server exited with {server.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the S3 server did not start within 30 s")


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    pytest.importorskip("moto", reason="the S3 server of the tests is moto's")
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_port(port, server)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture
def bucket(s3_endpoint: str) -> Iterator[tuple[Any, str]]:
    import boto3

    client = boto3.client("s3", endpoint_url=s3_endpoint, **CREDENTIALS)
    name = f"stateshift-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    yield client, name
    objects = client.list_objects_v2(Bucket=name).get("Contents", [])
    for entry in objects:
        client.delete_object(Bucket=name, Key=entry["Key"])
    client.delete_bucket(Bucket=name)


@pytest.fixture
def app(store_config: dict[str, Any], bucket: tuple[Any, str]) -> Iterator[ss.App]:
    client, name = bucket
    application = ss.App(**store_config, blob_threshold_bytes=1024)
    application.blob_store = S3BlobStore(name, client=client, prefix="blobs/")
    yield application
    application.close()


def _keys(bucket: tuple[Any, str]) -> list[str]:
    client, name = bucket
    listing = client.list_objects_v2(Bucket=name).get("Contents", [])
    return sorted(entry["Key"] for entry in listing)


def test_a_large_value_lives_in_the_bucket_and_reads_back(
    app: ss.App, bucket: tuple[Any, str]
) -> None:
    docs = app.state("docs")
    value = {"text": "z" * 5000, "n": 7}
    docs.put("d1", value)
    keys = _keys(bucket)
    assert len(keys) == 1 and keys[0].startswith("blobs/")
    item = docs.get("d1")
    assert item is not None and item.value == value


def test_replacing_and_deleting_remove_the_old_objects(
    app: ss.App, bucket: tuple[Any, str]
) -> None:
    docs = app.state("docs")
    docs.put("d1", "a" * 5000)
    first = _keys(bucket)
    docs.put("d1", "b" * 5000)
    second = _keys(bucket)
    assert len(second) == 1 and second != first
    assert docs.get("d1").value == "b" * 5000  # type: ignore[union-attr]
    docs.put("d1", "short")
    assert _keys(bucket) == []
    docs.put("d2", "c" * 5000)
    docs.delete("d2")
    assert _keys(bucket) == []


def test_a_refused_write_keeps_the_value_it_would_have_replaced(
    app: ss.App, bucket: tuple[Any, str]
) -> None:
    docs = app.state("docs")
    docs.put("d1", "a" * 5000)
    with pytest.raises(ss.ConflictError):
        docs.put("d1", "b" * 5000, expected_version=7)
    assert docs.get("d1").value == "a" * 5000  # type: ignore[union-attr]


def test_a_transaction_writes_large_values_of_several_keys(
    app: ss.App, bucket: tuple[Any, str]
) -> None:
    docs = app.state("docs")
    with pytest.raises(RuntimeError):
        with app.transaction():
            docs.put("d0", "w" * 3000)
            raise RuntimeError("the block fails: nothing is written")
    assert docs.get("d0") is None
    with app.transaction():
        docs.put("d1", "x" * 3000)
        docs.put("d2", "y" * 3000)
    assert len(_keys(bucket)) == 2
    assert docs.get("d2").value == "y" * 3000  # type: ignore[union-attr]


def test_a_missing_object_is_a_clear_error(
    app: ss.App, bucket: tuple[Any, str]
) -> None:
    client, name = bucket
    docs = app.state("docs")
    docs.put("d1", "a" * 5000)
    (key,) = _keys(bucket)
    client.delete_object(Bucket=name, Key=key)
    with pytest.raises(ss.DeserializationError, match="missing from s3://"):
        docs.get("d1")


def test_a_bucket_that_does_not_exist_changes_nothing(
    store_config: dict[str, Any], bucket: tuple[Any, str]
) -> None:
    client, _ = bucket
    with ss.App(**store_config, blob_threshold_bytes=1024) as application:
        application.blob_store = S3BlobStore("no-such-bucket-here", client=client)
        docs = application.state("docs")
        with pytest.raises(ss.ConfigError, match="does not exist"):
            docs.put("d1", "a" * 5000)
        assert docs.get("d1") is None
        docs.put("small", "fits inline")
        assert docs.get("small").value == "fits inline"  # type: ignore[union-attr]


def test_an_unreachable_endpoint_is_retryable_and_changes_nothing(
    store_config: dict[str, Any],
) -> None:
    from botocore.config import Config

    with ss.App(**store_config, blob_threshold_bytes=1024) as application:
        application.blob_store = S3BlobStore(
            "any",
            endpoint_url=f"http://127.0.0.1:{_free_port()}",
            config=Config(connect_timeout=1, retries={"max_attempts": 1}),
            **CREDENTIALS,
        )
        docs = application.state("docs")
        with pytest.raises(ss.StoreUnavailable) as caught:
            docs.put("d1", "a" * 5000)
        assert caught.value.retryable
        assert docs.get("d1") is None


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ss.ConfigError):
        S3BlobStore("")
    with pytest.raises(TypeError):
        S3BlobStore("b", client=object(), endpoint_url="http://x")
    store = S3BlobStore("b", client=object())
    with pytest.raises(ss.DeserializationError):
        store.read(None, "../etc/passwd")  # type: ignore[arg-type]


def test_forgetting_a_subject_makes_their_large_value_unreadable(
    app: ss.App, bucket: tuple[Any, str]
) -> None:
    docs = app.state("docs")
    with app.data_subject("customer-9"):
        docs.put("d1", {"address": "x" * 5000})
    client, name = bucket
    (key,) = _keys(bucket)
    stored = client.get_object(Bucket=name, Key=key)["Body"].read()
    assert b"x" * 100 not in stored  # sealed before it left the process
    assert docs.get("d1").value == {"address": "x" * 5000}  # type: ignore[union-attr]
    app.forget("customer-9")
    with pytest.raises(ss.DataErased):
        docs.get("d1")
