"""S3 as remote storage: one object per pending chunk, quarantined records, failed files,
records of files given up incomplete.

A chunk's key carries its partition count and sha256 (``pending/<file-id>/<partition>.<count>.
<sha256>``), so one LIST tells which partitions are durable and whether a newcomer conflicts,
without reading any bytes, and two writers of the same chunk write the same key.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from boto3.s3.transfer import TransferConfig

from application.ports import Body, ByteStream
from application.records import StreamRecord
from application.views import FileSummary
from domain import (
    AssembledFile,
    Chunk,
    ChunkRef,
    ExpiredFile,
    FileId,
    PartitionSet,
    RejectionReason,
    redact,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

PENDING = "pending/"
QUARANTINE = "quarantine/"
FAILED = "failed/"
EXPIRED = "expired/"
_CHUNK_KEY = re.compile(r"^(\d+)\.(\d+)\.([0-9a-f]{64})$")
_DELETE_BATCH = 1000


def chunk_key(file_id: FileId, partition: int, partition_count: int, digest: str) -> str:
    return f"{PENDING}{file_id}/{partition:05d}.{partition_count}.{digest}"


def expired_key(file_id: FileId) -> str:
    return f"{EXPIRED}{file_id}.json"


class S3ChunkStore:
    def __init__(self, client: S3Client, bucket: str) -> None:
        self._s3 = client
        self._bucket = bucket

    def put(self, chunks: Iterable[Chunk]) -> None:
        for chunk in chunks:
            self._s3.put_object(
                Bucket=self._bucket,
                Key=chunk_key(
                    chunk.file_id, chunk.partition, chunk.partition_count, chunk.ref.digest
                ),
                Body=chunk.content,
            )

    def get(self, file_id: FileId) -> PartitionSet | None:
        """The earliest object of a partition stands, as the first bytes do."""
        found: list[tuple[datetime, int, int, ChunkRef]] = []
        paginator = self._s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self._bucket, Prefix=f"{PENDING}{file_id}/"):
            for item in page.get("Contents", []):
                name = item["Key"][len(PENDING) + len(str(file_id)) + 1 :]
                match = _CHUNK_KEY.match(name)
                if match is None:
                    continue
                partition, count, digest = match.groups()
                found.append(
                    (
                        item["LastModified"],
                        int(partition),
                        int(count),
                        ChunkRef(digest, item["Size"]),
                    )
                )
        if not found:
            return None
        found.sort(key=lambda entry: entry[0])
        count = found[0][2]
        parts: dict[int, ChunkRef] = {}
        for _, partition, partition_count, ref in found:
            if partition_count == count and partition < count:
                parts.setdefault(partition, ref)
        return PartitionSet(count, parts)

    def open(
        self, file_id: FileId, partition: int, partition_count: int, ref: ChunkRef
    ) -> ByteStream:
        response = self._s3.get_object(
            Bucket=self._bucket, Key=chunk_key(file_id, partition, partition_count, ref.digest)
        )
        return response["Body"]

    def delete(self, file_id: FileId, partitions: PartitionSet) -> None:
        keys = [
            chunk_key(file_id, partition, partitions.partition_count, ref.digest)
            for partition, ref in sorted(partitions.parts.items())
        ]
        delete_keys(self._s3, self._bucket, keys, "chunk objects")

    def discard(self, chunk: Chunk) -> None:
        self._s3.delete_object(
            Bucket=self._bucket,
            Key=chunk_key(chunk.file_id, chunk.partition, chunk.partition_count, chunk.ref.digest),
        )

    def drop_file(self, file_id: FileId) -> None:
        keys: list[str] = []
        paginator = self._s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self._bucket, Prefix=f"{PENDING}{file_id}/"):
            keys.extend(item["Key"] for item in page.get("Contents", []))
        delete_keys(self._s3, self._bucket, keys, "chunk objects")


def delete_keys(s3: S3Client, bucket: str, keys: list[str], what: str) -> None:
    """Delete ``keys``, 1,000 a request; a key already gone is no error, a refused one is."""
    for start in range(0, len(keys), _DELETE_BATCH):
        response = s3.delete_objects(
            Bucket=bucket,
            Delete={
                "Objects": [{"Key": key} for key in keys[start : start + _DELETE_BATCH]],
                "Quiet": True,
            },
        )
        errors = response.get("Errors", [])
        if errors:
            first = errors[0]
            raise OSError(
                f"S3 refused to delete {len(errors)} {what}: "
                f"{first.get('Code')} {first.get('Message')}"
            )


class S3RecordArchive:
    """quarantine/ keeps a rejected record's data as received; failed/ keeps whole files;
    expired/ keeps what is known of files given up incomplete (never their endpoint)."""

    def __init__(
        self, client: S3Client, bucket: str, transfer: TransferConfig | None = None
    ) -> None:
        self._s3 = client
        self._bucket = bucket
        self._transfer = transfer or TransferConfig(max_concurrency=2)

    def quarantine(
        self, record: StreamRecord, reason: RejectionReason, detail: str, file_id: FileId | None
    ) -> str:
        day = datetime.now(UTC).strftime("%Y/%m/%d")
        key = f"{QUARANTINE}{day}/{_safe(record.record_id)}"
        metadata = {
            "reason": reason.value,
            "detail": _ascii(detail),
            "sequence-number": _ascii(record.sequence_number),
            "event-id": _ascii(record.source),
        }
        if file_id is not None:
            metadata["file-id"] = str(file_id)
        self._s3.put_object(
            Bucket=self._bucket, Key=key, Body=record.data.encode("utf-8"), Metadata=metadata
        )
        return key

    def keep_failed(self, assembled: AssembledFile, body: Body) -> str:
        key = f"{FAILED}{assembled.file_id}"
        # The note first: a copy without its endpoint could never be redriven.
        self._s3.put_object(
            Bucket=self._bucket,
            Key=f"{key}.json",
            Body=json.dumps({"putEndpoint": assembled.put_endpoint, "size": assembled.size}).encode(
                "utf-8"
            ),
        )
        reader = body.open()
        try:
            self._s3.upload_fileobj(
                _FullReads(reader),  # type: ignore[arg-type]  # boto3 duck-types a file
                self._bucket,
                key,
                ExtraArgs={
                    "Metadata": {
                        "file-id": str(assembled.file_id),
                        "endpoint": _ascii(redact(assembled.put_endpoint)),
                        "size": str(assembled.size),
                    }
                },
                Config=self._transfer,
            )
        finally:
            reader.close()
        return key

    def failed_files(self) -> list[FileSummary]:
        summaries = []
        paginator = self._s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self._bucket, Prefix=FAILED):
            for item in page.get("Contents", []):
                name = item["Key"][len(FAILED) :]
                if "/" in name or name.endswith(".json"):
                    continue
                summaries.append(
                    FileSummary(
                        FileId(name),
                        "failed",
                        0,
                        None,
                        item["Size"],
                        item["LastModified"].timestamp(),
                    )
                )
        return summaries

    def failed_copy(self, file_id: FileId) -> tuple[str, Body] | None:
        key = f"{FAILED}{file_id}"
        try:
            note = json.loads(
                self._s3.get_object(Bucket=self._bucket, Key=f"{key}.json")["Body"].read()
            )
            size = self._s3.head_object(Bucket=self._bucket, Key=key)["ContentLength"]
        except (self._s3.exceptions.NoSuchKey, self._s3.exceptions.ClientError) as error:
            if _is_missing(error):
                return None
            raise
        return str(note["putEndpoint"]), _StoredBody(self._s3, self._bucket, key, size)

    def drop_failed(self, file_id: FileId) -> None:
        key = f"{FAILED}{file_id}"
        self._s3.delete_objects(
            Bucket=self._bucket,
            Delete={"Objects": [{"Key": key}, {"Key": f"{key}.json"}], "Quiet": True},
        )

    def keep_expired(self, record: ExpiredFile) -> str:
        key = expired_key(record.file_id)
        document = {
            "fileId": str(record.file_id),
            "partitionCount": record.partition_count,
            "partitionsReceived": record.received,
            "bytes": record.size,
            "firstSeen": _iso(record.first_seen),
            "expiredAt": _iso(record.expired_at),
            "backend": record.backend,
        }
        self._s3.put_object(
            Bucket=self._bucket,
            Key=key,
            Body=json.dumps(document).encode("utf-8"),
            ContentType="application/json",
        )
        return key

    def expired_files(self) -> list[FileSummary]:
        """One GET a record: for operators, never on the hot path."""
        summaries = []
        paginator = self._s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self._bucket, Prefix=EXPIRED):
            for item in page.get("Contents", []):
                if not item["Key"].endswith(".json"):
                    continue
                body = self._s3.get_object(Bucket=self._bucket, Key=item["Key"])["Body"].read()
                try:
                    document = json.loads(body)
                    summaries.append(
                        FileSummary(
                            FileId(document["fileId"]),
                            "expired",
                            int(document["partitionsReceived"]),
                            int(document["partitionCount"]),
                            int(document["bytes"]),
                            datetime.fromisoformat(document["firstSeen"]).timestamp(),
                        )
                    )
                except (ValueError, KeyError, TypeError):
                    continue  # not a record this service wrote
        return summaries


class _FullReads:
    """boto3 reads a non-seekable body as a file: read(n) is short only at the end."""

    def __init__(self, stream: ByteStream) -> None:
        self._stream = stream

    def read(self, size: int = -1, /) -> bytes:
        pieces: list[bytes] = []
        remaining = size
        while size < 0 or remaining > 0:
            data = self._stream.read(remaining if size >= 0 else 1 << 20)
            if not data:
                break
            pieces.append(data)
            remaining -= len(data)
        return b"".join(pieces)


class _StoredBody:
    """A kept file in S3 as the Body port: each open is a fresh GET."""

    def __init__(self, client: S3Client, bucket: str, key: str, size: int) -> None:
        self._s3 = client
        self._bucket = bucket
        self._key = key
        self._size = size

    @property
    def size(self) -> int:
        return self._size

    def open(self) -> ByteStream:
        return self._s3.get_object(Bucket=self._bucket, Key=self._key)["Body"]


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", text)[:200] or "unknown"


def _is_missing(error: Exception) -> bool:
    code = getattr(error, "response", {}).get("Error", {}).get("Code", "")
    return code in ("NoSuchKey", "404", "NotFound")


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")


def _ascii(text: str) -> str:
    return text.encode("ascii", "replace").decode("ascii")[:512]
