"""S3ChunkStore and S3RecordArchive against moto's S3."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import boto3
import moto.s3.models
import pytest

from adapters.endpoint_policy import HostPolicy
from adapters.s3_storage import PENDING, S3ChunkStore, S3RecordArchive, chunk_key
from application.records import StreamRecord
from application.views import FileSummary
from domain import (
    AssembledFile,
    EndpointRefused,
    ExpiredFile,
    FileId,
    PartitionSet,
    RejectionReason,
    redact,
)
from entrypoints.events import encode_payload, sequence_number
from tests.integration.builders import (
    BUCKET,
    SECRET,
    SIGNED_QUERY,
    body_of,
    chunk,
    read_all,
    ref_of,
    signed,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

ENDPOINT = signed("https://uploads.example.com/files/report.csv")
FILE_ID = FileId.for_endpoint(ENDPOINT)
OTHER_ENDPOINT = signed("https://uploads.example.com/files/other.csv")
OTHER_ID = FileId.for_endpoint(OTHER_ENDPOINT)


def keys_under(s3: S3Client, prefix: str) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


def put_at(
    s3: S3Client, monkeypatch: pytest.MonkeyPatch, when: datetime, key: str, content: bytes
) -> None:
    """Write an object as if at ``when``: S3 lists LastModified to the second only."""
    monkeypatch.setattr(moto.s3.models, "utcnow", lambda: when)
    s3.put_object(Bucket=BUCKET, Key=key, Body=content)


# S3ChunkStore


def test_listing_after_put_holds_each_partition_with_its_digest_and_size(
    s3_client: S3Client,
) -> None:
    store = S3ChunkStore(s3_client, BUCKET)
    contents = [b"first chunk", b"", b"third and last chunk"]

    store.put(chunk(ENDPOINT, p, 3, content) for p, content in enumerate(contents))

    listing = store.get(FILE_ID)
    assert listing == PartitionSet(3, {p: ref_of(c) for p, c in enumerate(contents)})
    assert listing.is_complete
    assert listing.size == sum(len(c) for c in contents)


def test_listing_of_an_unknown_file_is_none(s3_client: S3Client) -> None:
    store = S3ChunkStore(s3_client, BUCKET)
    store.put([chunk(OTHER_ENDPOINT, 0, 2, b"someone else's chunk")])

    assert store.get(FILE_ID) is None


def test_listing_holds_chunks_written_by_two_containers(aws: None) -> None:
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    container_a = S3ChunkStore(boto3.client("s3"), BUCKET)
    container_b = S3ChunkStore(boto3.client("s3"), BUCKET)

    container_a.put([chunk(ENDPOINT, 0, 2, b"from container A")])
    container_b.put([chunk(ENDPOINT, 1, 2, b"from container B")])

    expected = PartitionSet(2, {0: ref_of(b"from container A"), 1: ref_of(b"from container B")})
    assert container_a.get(FILE_ID) == expected
    assert container_b.get(FILE_ID) == expected


def test_rewriting_the_same_chunk_keeps_one_object(s3_client: S3Client) -> None:
    store = S3ChunkStore(s3_client, BUCKET)

    store.put([chunk(ENDPOINT, 0, 1, b"same bytes")])
    store.put([chunk(ENDPOINT, 0, 1, b"same bytes")])

    assert len(keys_under(s3_client, f"{PENDING}{FILE_ID}/")) == 1
    assert store.get(FILE_ID) == PartitionSet(1, {0: ref_of(b"same bytes")})


def test_open_streams_the_exact_bytes_of_a_chunk(s3_client: S3Client) -> None:
    store = S3ChunkStore(s3_client, BUCKET)
    content = bytes(range(256)) * 300 + b"\x00\r\n tail"
    store.put([chunk(ENDPOINT, 1, 2, content)])

    stream = store.open(FILE_ID, 1, 2, ref_of(content))

    assert read_all(stream) == content


def test_delete_removes_only_the_named_chunks(s3_client: S3Client) -> None:
    store = S3ChunkStore(s3_client, BUCKET)
    store.put(chunk(ENDPOINT, p, 3, f"part {p}".encode()) for p in range(3))
    store.put([chunk(OTHER_ENDPOINT, 0, 3, b"part 0")])
    listing = store.get(FILE_ID)
    assert listing is not None

    store.delete(FILE_ID, listing.only(frozenset({0, 1})))

    assert store.get(FILE_ID) == PartitionSet(3, {2: ref_of(b"part 2")})
    assert store.get(OTHER_ID) == PartitionSet(3, {0: ref_of(b"part 0")})


def test_delete_of_a_chunk_that_is_not_stored_is_not_an_error(s3_client: S3Client) -> None:
    store = S3ChunkStore(s3_client, BUCKET)
    store.put([chunk(ENDPOINT, 0, 2, b"stored")])
    named = PartitionSet(2, {0: ref_of(b"stored"), 1: ref_of(b"never stored")})

    store.delete(FILE_ID, named)
    store.delete(FILE_ID, named)

    assert store.get(FILE_ID) is None


@pytest.mark.parametrize("earliest_first_in_key_order", [True, False])
def test_listing_keeps_the_earliest_object_of_a_partition(
    s3_client: S3Client, monkeypatch: pytest.MonkeyPatch, earliest_first_in_key_order: bool
) -> None:
    one, two = b"bytes written by one container", b"bytes written by another"
    by_key = sorted([one, two], key=lambda content: ref_of(content).digest)
    earliest, latest = by_key if earliest_first_in_key_order else by_key[::-1]
    put_at(
        s3_client,
        monkeypatch,
        datetime(2024, 5, 1, 12, 0, 0),
        chunk_key(FILE_ID, 0, 1, ref_of(earliest).digest),
        earliest,
    )
    put_at(
        s3_client,
        monkeypatch,
        datetime(2024, 5, 1, 12, 0, 7),
        chunk_key(FILE_ID, 0, 1, ref_of(latest).digest),
        latest,
    )

    listing = S3ChunkStore(s3_client, BUCKET).get(FILE_ID)

    assert listing == PartitionSet(1, {0: ref_of(earliest)})


def test_listing_takes_the_partition_count_of_the_earliest_object(
    s3_client: S3Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    put_at(
        s3_client,
        monkeypatch,
        datetime(2024, 5, 1, 12, 0, 0),
        chunk_key(FILE_ID, 1, 3, ref_of(b"count three").digest),
        b"count three",
    )
    put_at(
        s3_client,
        monkeypatch,
        datetime(2024, 5, 1, 12, 0, 9),
        chunk_key(FILE_ID, 0, 2, ref_of(b"count two").digest),
        b"count two",
    )

    assert S3ChunkStore(s3_client, BUCKET).get(FILE_ID) == PartitionSet(
        3, {1: ref_of(b"count three")}
    )


def test_listing_ignores_objects_whose_names_it_cannot_parse(s3_client: S3Client) -> None:
    store = S3ChunkStore(s3_client, BUCKET)
    store.put([chunk(ENDPOINT, 0, 2, b"a real chunk")])
    digest = ref_of(b"x").digest
    prefix = f"{PENDING}{FILE_ID}/"
    for name in [
        "notes.txt",
        "00001.2",
        f"00001.2.{digest[:-1]}",
        f"00001.2.{digest.upper()}",
        f"00001.two.{digest}",
        f"-0001.2.{digest}",
        f"00001.2.{digest}.tmp",
        f"00005.2.{digest}",
    ]:
        s3_client.put_object(Bucket=BUCKET, Key=prefix + name, Body=b"x")

    assert store.get(FILE_ID) == PartitionSet(2, {0: ref_of(b"a real chunk")})


def test_listing_with_only_unparseable_objects_is_none(s3_client: S3Client) -> None:
    s3_client.put_object(Bucket=BUCKET, Key=f"{PENDING}{FILE_ID}/garbage", Body=b"x")

    assert S3ChunkStore(s3_client, BUCKET).get(FILE_ID) is None


def test_listing_and_delete_page_past_a_thousand_chunks(s3_client: S3Client) -> None:
    store = S3ChunkStore(s3_client, BUCKET)
    count = 1005
    store.put(chunk(ENDPOINT, p, count, b"%d" % p) for p in range(count))

    listing = store.get(FILE_ID)

    assert listing is not None
    assert listing.is_complete
    assert listing.parts[1004] == ref_of(b"1004")
    store.delete(FILE_ID, listing)
    assert keys_under(s3_client, PENDING) == []


# S3RecordArchive


def refused_record() -> tuple[StreamRecord, str]:
    """A record the policy refuses, with the detail the service would quarantine it with."""
    endpoint = signed("http://169.254.169.254/latest/meta-data")
    payload = {"putEndpoint": endpoint, "partition": 0, "partitionCount": 1, "content": "YQ=="}
    data = base64.b64encode(encode_payload(payload)).decode("ascii")
    seq = sequence_number(42)
    record = StreamRecord(seq, data, "pk", f"shardId-000000000000:{seq}")
    with pytest.raises(EndpointRefused) as refused:
        HostPolicy(None, resolver=lambda host: []).check(endpoint)
    return record, refused.value.detail


def test_quarantine_keeps_the_raw_record_data_with_its_reason(s3_client: S3Client) -> None:
    record, detail = refused_record()
    file_id = FileId.for_endpoint(signed("http://169.254.169.254/latest/meta-data"))

    key = S3RecordArchive(s3_client, BUCKET).quarantine(
        record, RejectionReason.ENDPOINT_REFUSED, detail, file_id
    )

    assert key.startswith("quarantine/")
    assert key.endswith(record.sequence_number)
    stored = s3_client.get_object(Bucket=BUCKET, Key=key)
    assert stored["Body"].read() == record.data.encode("ascii")
    assert stored["Metadata"]["reason"] == "endpoint-refused"
    assert stored["Metadata"]["sequence-number"] == record.sequence_number
    assert stored["Metadata"]["file-id"] == str(file_id)


def test_quarantine_keeps_no_query_string_in_key_or_metadata(s3_client: S3Client) -> None:
    record, detail = refused_record()

    key = S3RecordArchive(s3_client, BUCKET).quarantine(
        record, RejectionReason.ENDPOINT_REFUSED, detail, None
    )

    metadata = s3_client.head_object(Bucket=BUCKET, Key=key)["Metadata"]
    for text in [key, *metadata.keys(), *metadata.values()]:
        assert SECRET not in text
        assert "X-Amz" not in text
    assert "file-id" not in metadata


def test_quarantine_of_a_hostile_sequence_number_stays_under_quarantine(
    s3_client: S3Client,
) -> None:
    record = StreamRecord("../../pending/x?sig=1", "not base64!", "pk", "é-source")

    key = S3RecordArchive(s3_client, BUCKET).quarantine(
        record, RejectionReason.NOT_BASE64, "record data is not base64", None
    )

    assert key.startswith("quarantine/")
    assert ".." not in key.split("/")
    assert "?" not in key
    assert s3_client.get_object(Bucket=BUCKET, Key=key)["Body"].read() == b"not base64!"


def test_keep_failed_stores_a_one_part_file_under_failed_with_exact_bytes(
    s3_client: S3Client,
) -> None:
    content = bytes(range(256)) * 64
    assembled = AssembledFile(FILE_ID, ENDPOINT, (ref_of(content),))

    key = S3RecordArchive(s3_client, BUCKET).keep_failed(assembled, body_of([content]))

    assert key == f"failed/{FILE_ID}"
    stored = s3_client.get_object(Bucket=BUCKET, Key=key)
    assert stored["Body"].read() == content
    assert stored["Metadata"]["endpoint"] == redact(ENDPOINT)
    assert stored["Metadata"]["size"] == str(len(content))
    assert all(SECRET not in value for value in stored["Metadata"].values())


def test_keep_failed_stores_every_part_of_a_file_with_exact_bytes(s3_client: S3Client) -> None:
    pieces = [b"alpha-" * 100, b"beta-" * 100, b"gamma-" * 100, b"delta"]
    assembled = AssembledFile(FILE_ID, ENDPOINT, tuple(ref_of(p) for p in pieces))

    key = S3RecordArchive(s3_client, BUCKET).keep_failed(assembled, body_of(pieces))

    assert s3_client.get_object(Bucket=BUCKET, Key=key)["Body"].read() == b"".join(pieces)


def test_keep_failed_metadata_names_the_endpoint_without_its_query(s3_client: S3Client) -> None:
    assembled = AssembledFile(FILE_ID, ENDPOINT, (ref_of(b"x"),))

    key = S3RecordArchive(s3_client, BUCKET).keep_failed(assembled, body_of([b"x"]))

    assert SIGNED_QUERY not in key
    metadata = s3_client.head_object(Bucket=BUCKET, Key=key)["Metadata"]
    assert metadata["endpoint"] == "https://uploads.example.com/files/report.csv"


# Expiry of incomplete files (the local backend's IncompleteFiles and PendingChunks; records)

MAY_FIRST = datetime(2024, 5, 1, 12, 0, 0)
MAY_FIRST_EPOCH = MAY_FIRST.replace(tzinfo=UTC).timestamp()


def put_chunk_at(
    s3: S3Client, monkeypatch: pytest.MonkeyPatch, seconds: int, endpoint: str, p: int, count: int
) -> None:
    content = f"{endpoint} part {p}".encode()
    key = chunk_key(FileId.for_endpoint(endpoint), p, count, ref_of(content).digest)
    put_at(s3, monkeypatch, MAY_FIRST + timedelta(seconds=seconds), key, content)


def test_drop_file_deletes_every_object_of_the_file_and_nothing_else(
    s3_client: S3Client,
) -> None:
    store = S3ChunkStore(s3_client, BUCKET)
    store.put(chunk(ENDPOINT, p, 1005, b"%d" % p) for p in range(1002))
    store.put([chunk(ENDPOINT, 0, 7, b"a conflicting count")])
    s3_client.put_object(Bucket=BUCKET, Key=f"{PENDING}{FILE_ID}/endpoint.json", Body=b"{}")
    store.put([chunk(OTHER_ENDPOINT, 0, 2, b"other")])
    s3_client.put_object(Bucket=BUCKET, Key=f"{PENDING}{OTHER_ID}/endpoint.json", Body=b"{}")

    store.drop_file(FILE_ID)
    store.drop_file(FILE_ID)

    assert keys_under(s3_client, f"{PENDING}{FILE_ID}/") == []
    assert len(keys_under(s3_client, f"{PENDING}{OTHER_ID}/")) == 2


def test_an_expiry_record_is_kept_as_json_without_the_endpoint_and_listed_as_expired(
    s3_client: S3Client,
) -> None:
    archive = S3RecordArchive(s3_client, BUCKET)
    record = ExpiredFile(FILE_ID, 4, 3, 3_000, MAY_FIRST_EPOCH, MAY_FIRST_EPOCH + 86_400.5, "local")

    key = archive.keep_expired(record)

    assert key == f"expired/{FILE_ID}.json"
    stored = s3_client.get_object(Bucket=BUCKET, Key=key)
    document = json.loads(stored["Body"].read())
    assert document == {
        "fileId": str(FILE_ID),
        "partitionCount": 4,
        "partitionsReceived": 3,
        "bytes": 3_000,
        "firstSeen": "2024-05-01T12:00:00.000+00:00",
        "expiredAt": "2024-05-02T12:00:00.500+00:00",
        "backend": "local",
    }
    assert stored["ContentType"] == "application/json"
    assert stored["Metadata"] == {}
    assert archive.expired_files() == [
        FileSummary(FILE_ID, "expired", 3, 4, 3_000, MAY_FIRST_EPOCH)
    ]


def test_expired_files_skips_objects_it_did_not_write(s3_client: S3Client) -> None:
    s3_client.put_object(Bucket=BUCKET, Key="expired/notes.txt", Body=b"hello")
    s3_client.put_object(Bucket=BUCKET, Key="expired/broken.json", Body=b"{not json")

    assert S3RecordArchive(s3_client, BUCKET).expired_files() == []
