"""The local backend's per-shard log in S3.

``shards/<shard>.json`` is the log's snapshot: every open file with where each of its chunks
is, the finished files, the live entries. ``pending/log/<shard>/<seq>`` is one entry: the
chunks' bytes back to back, then the index (orjson), then a 16-byte trailer (magic, version,
index length). The index goes last so that every chunk's offset is known before it is
written, and one suffix-ranged GET reads the index of any entry without its bytes.

Endpoints (secrets in their query strings) are kept in object bodies only, as the endpoint
notes of pending/ were: never in keys, metadata or logs.
"""

from __future__ import annotations

import io
import re
import struct
import threading
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import orjson
from botocore.exceptions import ClientError

from adapters.s3_storage import delete_keys
from application.ports import ByteStream, ShardLedgerMoved
from domain import (
    FileId,
    LiveEntry,
    LogEntry,
    LoggedChunk,
    LoggedFile,
    ShardLedger,
    StoredChunk,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import PutObjectOutputTypeDef

LOG = "pending/log/"
SHARDS = "shards/"
_TRAILER = struct.Struct(">4sIQ")
_MAGIC = b"SFBL"
_FORMAT = 1
_PROBE_BYTES = 64 * 1024
"""Read from an entry's end by its probe: the index of about 500 chunks, in one request."""
_CONDITION_FAILED = ("PreconditionFailed", "ConditionalRequestConflict")
"""412: the object is not the one the condition names; 409: a concurrent conditional write."""
_MISSING = ("NoSuchKey", "404", "NotFound")


def snapshot_key(shard: str) -> str:
    return f"{SHARDS}{_safe(shard)}.json"


def entry_key(shard: str, seq: int) -> str:
    return f"{LOG}{_safe(shard)}/{seq:012d}"


class S3ShardLog:
    """Reads of the snapshot are conditional on the ETag this container last saw
    (If-None-Match): while no other container wrote one, S3 answers 304 with no body. Its
    writes are conditional too (If-Match, or If-None-Match for the first), and an entry is
    created only where none is (If-None-Match: *), so two invocations that overlap on a
    shard cannot overwrite each other: the later one reads again and retries.
    """

    def __init__(self, client: S3Client, bucket: str) -> None:
        self._s3 = client
        self._bucket = bucket
        self._seen: dict[str, tuple[str, ShardLedger]] = {}
        """Per shard, the ETag and snapshot as this container last read or wrote them."""
        self._lock = threading.Lock()

    def read_snapshot(self, shard: str) -> ShardLedger | None:
        with self._lock:
            seen = self._seen.get(shard)
        key = snapshot_key(shard)
        try:
            if seen is None:
                response = self._s3.get_object(Bucket=self._bucket, Key=key)
            else:
                response = self._s3.get_object(Bucket=self._bucket, Key=key, IfNoneMatch=seen[0])
        except ClientError as error:
            if seen is not None and _code(error) in ("304", "NotModified"):
                return seen[1]
            if _code(error) in _MISSING:
                with self._lock:
                    self._seen.pop(shard, None)
                return None
            if _code(error) != "AccessDenied":
                raise
            # A role whose listing is narrowed to a prefix gets 403, not 404, for a missing
            # key: creating the snapshot only if it is absent tells a new shard from a refusal.
            self._create_empty(shard, error)
            return None
        ledger = _ledger_of(orjson.loads(response["Body"].read()))
        with self._lock:
            self._seen[shard] = (response["ETag"], ledger)
        return ledger

    def write_snapshot(self, shard: str, ledger: ShardLedger) -> None:
        with self._lock:
            seen = self._seen.get(shard)
        follows_seen = seen is not None and seen[1].version == ledger.version - 1
        if not follows_seen and not (seen is None and ledger.version == 1):
            raise ShardLedgerMoved(
                f"version {ledger.version - 1} of the snapshot was not read here"
            )
        try:
            response = self._put_snapshot(shard, ledger, if_match=seen[0] if seen else None)
        except ClientError as error:
            if _code(error) not in _CONDITION_FAILED:
                raise
            with self._lock:
                self._seen.pop(shard, None)
            raise ShardLedgerMoved(
                f"another writer stored the snapshot first ({_code(error)})"
            ) from error
        with self._lock:
            self._seen[shard] = (response["ETag"], ledger)

    def read_entry(self, shard: str, seq: int) -> LogEntry | None:
        key = entry_key(shard, seq)
        try:
            response = self._s3.get_object(
                Bucket=self._bucket, Key=key, Range=f"bytes=-{_PROBE_BYTES}"
            )
        except ClientError as error:
            if _code(error) in _MISSING:
                return None
            raise
        tail = response["Body"].read()
        if len(tail) < _TRAILER.size:
            raise ValueError(f"{key} is not a log entry")
        magic, version, index_size = _TRAILER.unpack(tail[-_TRAILER.size :])
        if magic != _MAGIC or version != _FORMAT:
            raise ValueError(f"{key} is not a log entry of format {_FORMAT}")
        if index_size + _TRAILER.size <= len(tail):
            index = tail[-_TRAILER.size - index_size : -_TRAILER.size]
        else:
            total = int(str(response.get("ContentRange", "")).rpartition("/")[2])
            start = total - _TRAILER.size - index_size
            index = self._s3.get_object(
                Bucket=self._bucket, Key=key, Range=f"bytes={start}-{start + index_size - 1}"
            )["Body"].read()
        return _entry_of(orjson.loads(index), seq)

    def write_entry(self, shard: str, entry: LogEntry, contents: Sequence[bytes]) -> None:
        index = orjson.dumps(_entry_document(entry))
        body = b"".join([*contents, index, _TRAILER.pack(_MAGIC, _FORMAT, len(index))])
        try:
            self._s3.put_object(
                Bucket=self._bucket,
                Key=entry_key(shard, entry.seq),
                Body=body,
                IfNoneMatch="*",
            )
        except ClientError as error:
            if _code(error) not in _CONDITION_FAILED:
                raise
            raise ShardLedgerMoved(f"entry {entry.seq} exists ({_code(error)})") from error

    def open_chunk(self, shard: str, seq: int, offset: int, size: int) -> ByteStream:
        if size == 0:
            return io.BytesIO(b"")
        return self._s3.get_object(
            Bucket=self._bucket,
            Key=entry_key(shard, seq),
            Range=f"bytes={offset}-{offset + size - 1}",
        )["Body"]

    def delete_entries(self, shard: str, seqs: Iterable[int]) -> None:
        keys = [entry_key(shard, seq) for seq in seqs]
        delete_keys(self._s3, self._bucket, keys, "log entries")

    def shards(self) -> list[str]:
        """Every shard with a snapshot or entries (two listings: for operators only)."""
        found: set[str] = set()
        paginator = self._s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self._bucket, Prefix=SHARDS):
            for item in page.get("Contents", []):
                name = item["Key"][len(SHARDS) :]
                if name.endswith(".json") and "/" not in name:
                    found.add(name[: -len(".json")])
        for page in paginator.paginate(Bucket=self._bucket, Prefix=LOG, Delimiter="/"):
            for prefix in page.get("CommonPrefixes", []):
                found.add(prefix["Prefix"][len(LOG) :].rstrip("/"))
        return sorted(found)

    def _create_empty(self, shard: str, denied: ClientError) -> None:
        empty = ShardLedger()
        try:
            response = self._put_snapshot(shard, empty, if_match=None)
        except ClientError as error:
            if _code(error) in _CONDITION_FAILED:
                raise denied from error  # it exists: the read itself is refused
            raise
        with self._lock:
            self._seen[shard] = (response["ETag"], empty)

    def _put_snapshot(
        self, shard: str, ledger: ShardLedger, if_match: str | None
    ) -> PutObjectOutputTypeDef:
        """Store only over the object ``if_match`` names, or only where none is."""
        body = orjson.dumps(_ledger_document(ledger))
        key = snapshot_key(shard)
        if if_match is None:
            return self._s3.put_object(
                Bucket=self._bucket,
                Key=key,
                Body=body,
                ContentType="application/json",
                IfNoneMatch="*",
            )
        return self._s3.put_object(
            Bucket=self._bucket,
            Key=key,
            Body=body,
            ContentType="application/json",
            IfMatch=if_match,
        )


def _ledger_document(ledger: ShardLedger) -> dict[str, Any]:
    """Unsorted: a snapshot of thousands of finished files is written often, read rarely.
    What the shard inherits from its parents is theirs: only the lineage is stored here."""
    return {
        **({} if ledger.lineage is None else {"lineage": list(ledger.lineage)}),
        "version": ledger.version,
        "seq": ledger.seq,
        "covered": ledger.covered,
        "files": {
            file_id.value: {
                "count": file.partition_count,
                "endpoint": file.put_endpoint,
                "since": file.first_seen,
                "parts": [
                    [p, c.digest, c.size, c.seq, c.offset, *([c.shard] if c.shard else [])]
                    for p, c in sorted(file.parts.items())
                ],
            }
            for file_id, file in ledger.files.items()
        },
        "finished": {f.value: at for f, at in ledger.finished.items()},
        "entries": {
            str(seq): [live.writer, [f.value for f in live.files]]
            for seq, live in ledger.entries.items()
        },
    }


def _ledger_of(document: dict[str, Any]) -> ShardLedger:
    if "seq" not in document:
        # The shard ledger of the layout before the log (``{"version", "open",
        # "finished"}``): its finished files stand; its open files' chunks are objects the
        # log never reads (the README's upgrade note: drain the stream first).
        return ShardLedger(
            int(document["version"]),
            finished={FileId(f): float(at) for f, at in document["finished"].items()},
        )
    return ShardLedger(
        int(document["version"]),
        int(document["seq"]),
        int(document["covered"]),
        {
            FileId(file_id): LoggedFile(
                int(file["count"]),
                str(file["endpoint"]),
                float(file["since"]),
                {
                    int(part[0]): StoredChunk(
                        str(part[1]),
                        int(part[2]),
                        int(part[3]),
                        int(part[4]),
                        str(part[5]) if len(part) > 5 else "",
                    )
                    for part in file["parts"]
                },
            )
            for file_id, file in document["files"].items()
        },
        {FileId(f): float(at) for f, at in document["finished"].items()},
        {
            int(seq): LiveEntry(str(live[0]), frozenset(FileId(f) for f in live[1]))
            for seq, live in document["entries"].items()
        },
        None if "lineage" not in document else tuple(str(s) for s in document["lineage"]),
    )


def _entry_document(entry: LogEntry) -> dict[str, Any]:
    return {
        "seq": entry.seq,
        "at": entry.at,
        "writer": entry.writer,
        "chunks": [
            [str(c.file_id), c.partition, c.partition_count, c.digest, c.offset, c.size]
            for c in entry.chunks
        ],
        "endpoints": {str(f): url for f, url in entry.endpoints.items()},
        "finished": {str(f): at for f, at in entry.finished.items()},
        "givenUp": sorted(str(f) for f in entry.given_up),
    }


def _entry_of(document: dict[str, Any], seq: int) -> LogEntry:
    if int(document["seq"]) != seq:
        raise ValueError(f"entry {seq} says it is entry {document['seq']}")
    ids: dict[str, FileId] = {}

    def file_id(text: str) -> FileId:
        found = ids.get(text)
        if found is None:
            found = ids[text] = FileId(text)
        return found

    return LogEntry(
        seq,
        float(document["at"]),
        str(document["writer"]),
        tuple(
            LoggedChunk(file_id(c[0]), int(c[1]), int(c[2]), str(c[3]), int(c[4]), int(c[5]))
            for c in document["chunks"]
        ),
        {file_id(f): str(url) for f, url in document["endpoints"].items()},
        {file_id(f): float(at) for f, at in document["finished"].items()},
        frozenset(file_id(f) for f in document["givenUp"]),
    )


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", text)[:200] if text else "_"
