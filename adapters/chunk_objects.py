"""The dynamodb backend's chunk bytes: one S3 object per batch, not one per chunk.

``pending/objects/<id>`` holds a batch's chunks back to back. Its item in the state table
(key ``o#<id>``) holds what the object is: ``index`` (each chunk's file id, partition,
offset, size and sha256, 60 bytes a chunk), ``files`` (the files that may still need it),
``created_at`` and ``expires_at`` (TTL). The item and the object are each created only
where none is (at once), so an id is never taken twice while either lives. The item
outlives its object until its TTL (the collecting TTL plus the pending/ rule's 8 days): a
delete would cost a write unit an object, and nothing reads it once its files are closed
(the expiry reads the index of open files, not the table).

A file's item names, with each admitted partition's digest, the id of the object holding its
bytes (adapters/dynamodb_state.py); assembly reads the objects' items (one BatchGetItem a
hundred objects, eventually consistent: an index never changes) and the chunks with ranged
GETs: an object keeps each file's chunks together, in partition order, so a file's chunks
that follow each other in it within the read-ahead window are one read.

An object is deleted when every file in its ``files`` is closed (uploaded, failed, expired),
each one's state read after the write that changed the object's fate: a file's close, or the
removal of files that admitted nothing from it (refused chunks, records left for
redelivery). Of several such writers, the last one's reads see every other's write, so an
object whose files are all closed is always deleted by someone, and never before: a file
that admitted a chunk from it stays in ``files`` until it is closed. A file in ``files``
whose item is missing holds nothing once the object's writer must have ended
(WRITER_SECONDS): its tombstone is gone with its TTL, or its chunk was never counted.

A closer that read the indexes knows the other files in each object (``files`` is among
them) and reads their items first: all closed, the object goes; an open one naming the
object beside a digest keeps it (that file's close decides); only what is left undecided
costs a read of the object's item.
"""

from __future__ import annotations

import contextlib
import io
import logging
import secrets
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from attrs import frozen
from botocore.exceptions import ClientError

from adapters.dynamodb_state import KEY_ATTRIBUTE, TTL_ATTRIBUTE, read_items
from adapters.s3_storage import PENDING, delete_keys
from application.in_context import submit
from application.ports import ByteStream
from application.shared_reads import NotAssembling, Place, SharedReads
from domain import DIGEST_PREFIX, Chunk, ChunkRef, FileId, FileStatus, PartitionSet

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client

log = logging.getLogger("sfb")

OBJECTS = f"{PENDING}objects/"
ITEM_PREFIX = "o#"
ID_BYTES = 6
"""An object id's bytes, kept beside each partition's digest: its item's conditional creation,
not its randomness, keeps it unique (a taken id is drawn again)."""
GRACE_SECONDS = 8 * 86_400.0
"""An object's item outlives the collecting TTL by the pending/ lifecycle rule's 8 days."""
WRITER_SECONDS = 960.0
"""An object's writer has ended this long after it created the object's item (Lambda's
900 s at most, and a margin for clocks)."""
_RECORD = struct.Struct(">16sIII32s")
"""An index record: file id, partition, offset, size, sha256."""
INDEX_RECORD_BYTES = _RECORD.size
_ID_ATTEMPTS = 4
_CONDITION_FAILED = ("PreconditionFailed", "ConditionalRequestConflict")
_CLOSED = frozenset(s.value for s in FileStatus if s.is_closed)
_REMEMBERED_INDEXES = 4_096
"""Objects whose index a container keeps (about 240 bytes each for four chunks)."""
_REMEMBERED_FILES = 256
"""Files whose chunks' places this container keeps between ``parts`` and ``release``."""


def object_key(object_id: str) -> str:
    return f"{OBJECTS}{object_id}"


def item_key(object_id: str) -> dict[str, Any]:
    return {KEY_ATTRIBUTE: {"S": f"{ITEM_PREFIX}{object_id}"}}


def _file_bytes(file_id: FileId) -> bytes:
    return bytes.fromhex(str(file_id))


class S3ChunkObjects:
    """The ChunkObjects port on S3 and the state table."""

    def __init__(
        self,
        s3: S3Client,
        bucket: str,
        db: DynamoDBClient,
        table: str,
        ttl_seconds: float,
        clock: Callable[[], float] = time.time,
        read_ahead: int = 1,
    ) -> None:
        """``ttl_seconds``: a collecting file's TTL; an object's item lives GRACE_SECONDS more.
        ``read_ahead``: chunks an assembly reads ahead (ASSEMBLY_READ_AHEAD), the most
        partitions of a file one read spans, and one more than the chunks read along for
        other files held at once (application/shared_reads.py)."""
        self._reads = SharedReads(self._range, read_ahead)
        self._s3 = s3
        self._bucket = bucket
        self._db = db
        self._table = table
        self._ttl = ttl_seconds + GRACE_SECONDS
        self._clock = clock
        self._places: OrderedDict[FileId, _Found] = OrderedDict()
        self._known: OrderedDict[str, bytes] = OrderedDict()
        """Objects' indexes this container stored or read: an index never changes."""
        self._deleted: OrderedDict[str, None] = OrderedDict()
        """Objects this container deleted lately: two lanes closing at once delete once."""
        self._lock = threading.Lock()

    def store(self, chunks: Sequence[Chunk]) -> str:
        """The item and the object at once, each created only where none is: an id is ours
        when both were. No file names the object before this returns, so one that is not
        ours is only left behind (the pending/ lifecycle rule's), never read."""
        index, body = _layout(chunks)
        files = sorted({str(chunk.file_id) for chunk in chunks})
        for _ in range(_ID_ATTEMPTS):
            object_id = secrets.token_hex(ID_BYTES)
            with ThreadPoolExecutor(1, thread_name_prefix="sfb-object-item") as pool:
                reserved = submit(pool, self._reserve, object_id, index, files)
                created = self._create(object_id, body)
                ours = reserved.result()
            if ours and created:
                self._remember_indexes({object_id: index})
                return object_id
            if created:  # a stale item holds the id: this object would never be deleted
                self._s3.delete_object(Bucket=self._bucket, Key=object_key(object_id))
        raise RuntimeError("no free chunk object id after repeated draws")

    def _create(self, object_id: str, body: bytes) -> bool:
        try:
            self._s3.put_object(
                Bucket=self._bucket, Key=object_key(object_id), Body=body, IfNoneMatch="*"
            )
        except ClientError as error:
            if _code(error) in _CONDITION_FAILED:
                return False  # an object of that id is left from before
            raise
        return True

    def _reserve(self, object_id: str, index: bytes, files: list[str]) -> bool:
        now = self._clock()
        try:
            self._db.update_item(
                TableName=self._table,
                Key=item_key(object_id),
                UpdateExpression=(
                    "SET #index = :index, created_at = :now, #ttl = :expires ADD #files :files"
                ),
                ConditionExpression=f"attribute_not_exists({KEY_ATTRIBUTE})",
                ExpressionAttributeNames={
                    "#index": "index",
                    "#files": "files",
                    "#ttl": TTL_ATTRIBUTE,
                },
                ExpressionAttributeValues={
                    ":index": {"B": index},
                    ":now": {"N": f"{now:.3f}"},
                    ":expires": {"N": str(int(now + self._ttl))},
                    ":files": {"SS": files},
                },
            )
        except self._db.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def unneeded(self, object_id: str, files: Collection[FileId]) -> None:
        if not files:
            return
        try:
            response = self._db.update_item(
                TableName=self._table,
                Key=item_key(object_id),
                UpdateExpression="DELETE #files :files",
                ConditionExpression=f"attribute_exists({KEY_ATTRIBUTE})",
                ExpressionAttributeNames={"#files": "files"},
                ExpressionAttributeValues={":files": {"SS": sorted(str(f) for f in files)}},
                ReturnValues="ALL_NEW",
            )
        except self._db.exceptions.ConditionalCheckFailedException:
            return  # no item: nothing is known of the object, which the lifecycle rule takes
        self._sweep({object_id: dict(response.get("Attributes", {}))}, closed=())

    def parts(
        self,
        file_id: FileId,
        partition_count: int,
        stored: Mapping[int, tuple[str, str]],
        held: Collection[int] = (),
    ) -> PartitionSet | None:
        if len(stored) != partition_count or any(not where for _, where in stored.values()):
            return None
        indexes = {
            object_id: _records(index)
            for object_id, index in self._indexes({where for _, where in stored.values()}).items()
        }
        mine = _file_bytes(file_id)
        refs: dict[int, ChunkRef] = {}
        places: dict[int, Place] = {}
        neighbours = {
            object_id: frozenset(f.hex() for f, *_ in records if f != mine)
            for object_id, records in indexes.items()
        }
        for partition, (prefix, object_id) in stored.items():
            found = next(
                (
                    (offset, size, digest)
                    for f, p, offset, size, digest in indexes.get(object_id, ())
                    if f == mine and p == partition and digest.startswith(prefix)
                ),
                None,
            )
            if found is None:
                return None
            offset, size, digest = found
            refs[partition] = ChunkRef(digest, size)
            places[partition] = Place(object_id, offset, size)
        remote = {p: w for p, w in places.items() if p not in held}
        with self._lock:
            self._places[file_id] = _Found(places, neighbours)
            self._places.move_to_end(file_id)
            while len(self._places) > _REMEMBERED_FILES:
                self._reads.forget(self._places.popitem(last=False)[0])
        self._reads.assembling(file_id, remote)
        return PartitionSet(partition_count, refs)

    def open(
        self, file_id: FileId, partition: int, partition_count: int, ref: ChunkRef
    ) -> ByteStream:
        """One ranged GET, shared with the chunks beside it that are read soon
        (application/shared_reads.py); a chunk ``parts`` was told is held elsewhere (read
        here only when that copy fails), or read once its upload ended, is read alone."""
        with self._lock:
            found = self._places.get(file_id)
            place = found.places.get(partition) if found is not None else None
            if found is None or place is None:
                raise LookupError(f"partition {partition} was not found in a chunk object here")
        with contextlib.suppress(NotAssembling):
            return self._reads.open(file_id, partition)
        if ref.size == 0:
            return io.BytesIO(b"")
        return self._range(place.key, place.offset, place.end)

    def _range(self, object_id: str, start: int, end: int) -> ByteStream:
        """Bytes ``start`` to ``end`` (exclusive) of the object: one ranged GET."""
        response = self._s3.get_object(
            Bucket=self._bucket, Key=object_key(object_id), Range=f"bytes={start}-{end - 1}"
        )
        return response["Body"]

    def assembled(self, file_id: FileId) -> None:
        self._reads.forget(file_id)

    def release(self, file_id: FileId, object_ids: Collection[str]) -> None:
        """Known from the indexes its assembly read, the other files in each object decide
        most objects from their own items alone: an object whose files are all closed goes,
        one that an open file names in its item stays (that file's close decides it). Only
        the others' items are read (``_sweep``)."""
        with self._lock:
            found = self._places.pop(file_id, None)
        self._reads.forget(file_id)
        if not object_ids:
            return
        undecided = set(object_ids)
        if found is not None and undecided <= found.neighbours.keys():
            undecided = self._decide(found.neighbours, undecided)
        if undecided:
            items = self._items(undecided, "#files, created_at", {"#files": "files"})
            self._sweep(items, closed=(str(file_id),))

    def _decide(self, neighbours: Mapping[str, frozenset[str]], objects: set[str]) -> set[str]:
        """Delete the objects whose other files are all closed; keep those an open file
        names (inline, beside a partition's digest); return the rest, undecided.

        Each file's item is read after this file's close: of two closers, the later one
        sees the other closed. A file's objects ``files`` names are among its index's, so
        every file there closed leaves no one to need it; a file whose item is missing, or
        keeps its digests in segments, is left to ``_sweep``'s rules."""
        others = set().union(*(neighbours[object_id] for object_id in objects))
        items = self._file_items(others)
        gone, undecided = [], set()
        for object_id in sorted(objects):
            files = [items.get(f) for f in neighbours[object_id]]
            if all(item is not None and _closed(item) for item in files):
                gone.append(object_id)
            elif not any(
                item is not None and not _closed(item) and _names(item, object_id) for item in files
            ):
                undecided.add(object_id)
        self._delete(gone)
        return undecided

    def _file_items(self, files: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The files' items that exist, read consistently (a read unit costs the same
        whatever the projection)."""
        keys = [{KEY_ATTRIBUTE: {"S": f}} for f in sorted(files)]
        found = read_items(self._db, self._table, keys)
        return {str(item[KEY_ATTRIBUTE]["S"]): item for item in found}

    def _sweep(self, items: Mapping[str, dict[str, Any]], closed: Collection[str]) -> None:
        """Delete each object whose files are all closed; ``closed``: known closed already."""
        needed = {f for item in items.values() for f in item.get("files", {}).get("SS", [])}
        states = self._statuses(needed - set(closed))
        now = self._clock()
        gone = []
        for object_id, item in items.items():
            if not item:
                continue  # no item: nothing is known of the object, which stays
            ended = float(item.get("created_at", {}).get("N", "0")) < now - WRITER_SECONDS
            files = set(item.get("files", {}).get("SS", [])) - set(closed)
            if all(states[f] in _CLOSED if f in states else ended for f in files):
                gone.append(object_id)
        self._delete(gone)

    def _delete(self, object_ids: Sequence[str]) -> None:
        """Delete the objects (their items go with their TTL)."""
        with self._lock:  # two files' lanes closing at once: each object deleted once
            mine = [o for o in object_ids if o not in self._deleted]
            for object_id in mine:
                self._deleted[object_id] = None
                self._known.pop(object_id, None)
            while len(self._deleted) > _REMEMBERED_INDEXES:
                self._deleted.popitem(last=False)
        if not mine:
            return
        try:
            delete_keys(self._s3, self._bucket, [object_key(o) for o in mine], "chunk objects")
        except BaseException:
            with self._lock:  # not deleted: the next closer or sweep tries again
                for object_id in mine:
                    self._deleted.pop(object_id, None)
            raise

    def _statuses(self, files: Iterable[str]) -> dict[str, str]:
        """Each file's status; a file with no item is left out."""
        keys = [{KEY_ATTRIBUTE: {"S": f}} for f in sorted(files)]
        found = read_items(
            self._db,
            self._table,
            keys,
            ProjectionExpression="#key, #status",
            ExpressionAttributeNames={"#key": KEY_ATTRIBUTE, "#status": "status"},
        )
        return {
            str(item[KEY_ATTRIBUTE]["S"]): str(item.get("status", {}).get("S", ""))
            for item in found
        }

    def _indexes(self, object_ids: Collection[str]) -> dict[str, bytes]:
        """The objects' indexes: those this container stored or read before, then the
        others, read eventually consistently (half the read units). An index never changes
        once its item is created, so a read can only miss it, not find it stale; the few it
        misses are read again consistently."""
        with self._lock:
            known = {o: self._known[o] for o in object_ids if o in self._known}
        wanted = set(object_ids) - known.keys()
        if wanted:
            names = {"#index": "index"}
            items = self._items(wanted, "#index", names, consistent=False)
            missed = {object_id for object_id, item in items.items() if "index" not in item}
            if missed:
                items.update(self._items(missed, "#index", names))
            read = {o: bytes(item["index"]["B"]) for o, item in items.items() if "index" in item}
            self._remember_indexes(read)
            known.update(read)
        return known

    def _remember_indexes(self, indexes: Mapping[str, bytes]) -> None:
        with self._lock:
            for object_id, index in indexes.items():
                self._known[object_id] = index
                self._known.move_to_end(object_id)
            while len(self._known) > _REMEMBERED_INDEXES:
                self._known.popitem(last=False)

    def _items(
        self,
        object_ids: Iterable[str],
        projection: str,
        names: dict[str, str],
        consistent: bool = True,
    ) -> dict[str, dict[str, Any]]:
        """The objects' items by id; an object without one maps to {}."""
        ids = sorted(object_ids)
        found = read_items(
            self._db,
            self._table,
            [item_key(object_id) for object_id in ids],
            consistent,
            ProjectionExpression=f"#key, {projection}",
            ExpressionAttributeNames={"#key": KEY_ATTRIBUTE, **names},
        )
        by_key = {str(item[KEY_ATTRIBUTE]["S"]): item for item in found}
        return {object_id: by_key.get(f"{ITEM_PREFIX}{object_id}", {}) for object_id in ids}


@frozen
class _Found:
    """Where a file's chunks are, and the other files in each of its objects."""

    places: dict[int, Place]
    neighbours: dict[str, frozenset[str]]


def _closed(item: Mapping[str, Any]) -> bool:
    return item.get("status", {}).get("S") in _CLOSED


def _names(item: Mapping[str, Any], object_id: str) -> bool:
    """Whether a file's own item names the object beside one of its partitions' digests."""
    where = bytes.fromhex(object_id)
    return any(
        name[:1] == "p"
        and name[1:].isdigit()
        and bytes(value.get("B", b""))[DIGEST_PREFIX // 2 :] == where
        for name, value in item.items()
    )


def _layout(chunks: Sequence[Chunk]) -> tuple[bytes, bytes]:
    """The index and the body of an object holding ``chunks``, each distinct chunk once."""
    index: list[bytes] = []
    body: list[bytes] = []
    seen: set[tuple[FileId, int, str]] = set()
    offset = 0
    for chunk in sorted(chunks, key=lambda c: (str(c.file_id), c.partition)):
        key = (chunk.file_id, chunk.partition, chunk.ref.digest)
        if key in seen:
            continue
        seen.add(key)
        index.append(
            _RECORD.pack(
                _file_bytes(chunk.file_id),
                chunk.partition,
                offset,
                chunk.ref.size,
                bytes.fromhex(chunk.ref.digest),
            )
        )
        body.append(chunk.content)
        offset += chunk.ref.size
    return b"".join(index), b"".join(body)


def _records(index: bytes) -> list[tuple[bytes, int, int, int, str]]:
    return [
        (file_id, partition, offset, size, digest.hex())
        for file_id, partition, offset, size, digest in _RECORD.iter_unpack(index)
    ]


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))
