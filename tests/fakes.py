"""In-memory fakes of every port: they hold state, so tests assert on outcomes, not calls.

The cache port needs no fake: its production adapter already lives in memory.
"""

from __future__ import annotations

import base64
import errno
import io
import json
import os
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any, Protocol

from attrs import define, evolve, field
from dependency_injector import providers

from adapters.memory_cache import InMemoryPartitionCache
from application.chunk_objects import COUNTED_TOGETHER_MOST
from application.metrics import Metric
from application.operations import Redrive
from application.ports import (
    Body,
    ByteStream,
    PermanentUploadError,
    ShardLedgerMoved,
    TransientUploadError,
)
from application.process_batch import ProcessBatch
from application.records import StreamRecord
from application.shared_reads import ReadsAlone
from application.tombstones import Tombstone
from application.views import FileSummary
from domain import (
    DIGEST_PREFIX,
    AssembledFile,
    Chunk,
    ChunkRef,
    Claim,
    EndpointRefused,
    ExpiredFile,
    FileId,
    FileState,
    FileStatus,
    IncompleteFile,
    InvalidRecord,
    Limits,
    LogEntry,
    LoggedFile,
    PartitionArrival,
    PartitionSet,
    RejectionReason,
    ShardLedger,
)
from entrypoints.container import Container


class FakeLocalStore:
    """``files`` is every chunk held; ``in_memory`` those put and not yet persisted, which
    ``held`` returns as the real store does; the rest are "on disk" (a test may change
    ``files`` to corrupt a chunk read back from disk).

    Unlike the real store it never refuses a chunk over its ``budget``: it records
    ``peak_usage``, so tests see whether the use cases kept to the budget. ``write_error``
    (an errno) makes ``persist`` fail as a full or broken disk does; chunks in ``unreadable``
    fail to read back from disk.
    """

    def __init__(self, budget: int = 2**62) -> None:
        self.files: dict[tuple[FileId, int], bytes] = {}
        self.in_memory: set[tuple[FileId, int]] = set()
        self.budget = budget
        self.peak_usage = 0
        self.write_error: int | None = None
        self.unreadable: set[tuple[FileId, int]] = set()
        self.tidied = 0

    @property
    def usage(self) -> int:
        return sum(len(c) for key, c in self.files.items() if key not in self.in_memory)

    def put(self, file_id: FileId, partition: int, content: bytes) -> None:
        self.files[(file_id, partition)] = content
        self.in_memory.add((file_id, partition))

    def held(self, file_id: FileId, partition: int) -> bytes | None:
        key = (file_id, partition)
        return self.files[key] if key in self.in_memory else None

    def persist(self, file_id: FileId, partition: int) -> bool:
        key = (file_id, partition)
        if key not in self.in_memory:
            return key in self.files
        if self.write_error is not None:
            raise OSError(self.write_error, os.strerror(self.write_error))
        self.in_memory.discard(key)
        self.unreadable.discard(key)
        self.peak_usage = max(self.peak_usage, self.usage)
        return True

    def get(self, file_id: FileId, partition: int) -> bytes:
        key = (file_id, partition)
        if key in self.unreadable and key not in self.in_memory:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        try:
            return self.files[key]
        except KeyError:
            raise FileNotFoundError(f"{file_id}/{partition}") from None

    def open(self, file_id: FileId, partition: int) -> ByteStream:
        return io.BytesIO(self.get(file_id, partition))

    def delete(self, file_id: FileId, partition: int) -> None:
        self.files.pop((file_id, partition), None)
        self.in_memory.discard((file_id, partition))

    def tidy(self) -> None:
        self.tidied += 1

    def on_disk(self) -> set[tuple[FileId, int]]:
        return set(self.files) - self.in_memory


class StorageUnavailable(OSError):
    pass


class ReadTimedOut(Exception):
    """What a stream from S3 may raise mid-read (botocore's errors are not all OSErrors)."""


class _BreaksMidway:
    """A stored chunk's stream that gives its first half, then fails."""

    def __init__(self, content: bytes) -> None:
        self._stream = io.BytesIO(content[: len(content) // 2])

    def read(self, size: int = -1, /) -> bytes:
        data = self._stream.read(size)
        if not data:
            raise ReadTimedOut("read timeout on the chunk's stream")
        return data

    def close(self) -> None:
        self._stream.close()


@define
class _Stored:
    order: int
    partition_count: int
    ref: ChunkRef
    content: bytes


def _offsets(contents: Sequence[bytes]) -> list[tuple[int, int]]:
    offsets, at = [], 0
    for content in contents:
        offsets.append((at, len(content)))
        at += len(content)
    return offsets


_NO_FILE = LoggedFile(1, "", 0.0)


class Crashed(BaseException):
    """The container died between two requests (a timeout, the runtime killed): nothing
    after it runs, not even an except clause of the use cases."""


class FakeLineage:
    """ShardLineage: each shard's parents (none unless a test reshards), and the lookups."""

    def __init__(self) -> None:
        self.parents_of: dict[str, tuple[str, ...]] = {}
        self.lookups: Counter[str] = Counter()
        self.failing = False

    def parents(self, stream: str, shard: str) -> tuple[str, ...]:
        self.lookups[shard] += 1
        if self.failing:
            raise StorageUnavailable("ListShards refused")
        return self.parents_of.get(shard, ())

    def split(self, parent: str, *children: str) -> None:
        for child in children:
            self.parents_of[child] = (parent,)

    def merge(self, parents: tuple[str, str], child: str) -> None:
        self.parents_of[child] = parents


class FakeRemoteStore(ReadsAlone):
    """One store shared by every fake container, like S3; counts requests as S3 would bill.

    ``clock`` is the time the fake containers of a run read (FakeContainer's clock).
    """

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        self.clock = clock or (lambda: 0.0)
        self.objects: dict[tuple[FileId, int, str], _Stored] = {}
        self.requests = 0
        self._counting = threading.Lock()
        self.failing = False
        self.failing_operations: set[str] = set()
        self.broken_reads = 0
        """The next streams opened that fail midway (after a successful open)."""
        self._order = 0
        self.operations: Counter[str] = Counter()
        """Requests by operation, as ``requests`` counts them all."""
        self.snapshots: dict[str, ShardLedger] = {}
        """The local backend's shard snapshots (``shards/<shard>.json``), beside the chunks."""
        self.log: dict[tuple[str, int], tuple[LogEntry, bytes]] = {}
        """The local backend's log entries (``pending/log/<shard>/<seq>``): index and bytes."""
        self.before_log_write: list[Callable[[], object]] = []
        """Run one at each entry or snapshot write, before its condition is checked: another
        writer overlapping on the shard."""
        self.crash_after: str | None = None
        """A log operation ("write_entry", "write_snapshot", "delete") after which the
        container dies (once): what it stored stays stored."""
        self.lineage = FakeLineage()
        """The stream's shard lineage, as Kinesis' ListShards tells it."""
        self.batch_objects: dict[str, bytes] = {}
        """The dynamodb backend's chunk objects (``pending/objects/<id>``): a batch's bytes."""
        self.batch_index: dict[str, list[_Placed]] = {}
        """What each chunk object holds (a copy of its item's index, for the tests' eyes)."""

    def _request(self, operation: str) -> None:
        with self._counting:  # files' lanes ask at once
            self.requests += 1
            self.operations[operation] += 1
        if self.failing or operation in self.failing_operations:
            raise StorageUnavailable(f"remote storage refuses {operation}")

    def put(self, chunks: Iterable[Chunk]) -> None:
        for chunk in chunks:
            self._request("put")
            self._order += 1
            key = (chunk.file_id, chunk.partition, chunk.ref.digest)
            self.objects.setdefault(
                key,
                _Stored(self._order, chunk.partition_count, chunk.ref, chunk.content),
            )

    def get(self, file_id: FileId) -> PartitionSet | None:
        self._request("get")
        return self._listing(file_id)

    def _listing(self, file_id: FileId) -> PartitionSet | None:
        found = sorted(
            (
                (stored, partition)
                for (f, partition, _), stored in self.objects.items()
                if f == file_id
            ),
            key=lambda item: item[0].order,
        )
        if not found:
            return None
        count = found[0][0].partition_count
        parts: dict[int, ChunkRef] = {}
        for stored, partition in found:
            if stored.partition_count == count:
                parts.setdefault(partition, stored.ref)
        return PartitionSet(count, parts)

    def open(
        self, file_id: FileId, partition: int, partition_count: int, ref: ChunkRef
    ) -> ByteStream:
        self._request("open")
        content = self.objects[(file_id, partition, ref.digest)].content
        if self.broken_reads:
            self.broken_reads -= 1
            return _BreaksMidway(content)
        return io.BytesIO(content)

    def delete(self, file_id: FileId, partitions: PartitionSet) -> None:
        self._request("delete")
        for partition, ref in partitions.parts.items():
            self.objects.pop((file_id, partition, ref.digest), None)

    def discard(self, chunk: Chunk) -> None:
        self._request("delete")
        self.objects.pop((chunk.file_id, chunk.partition, chunk.ref.digest), None)

    def read_snapshot(self, shard: str) -> ShardLedger | None:
        """ShardLog: the conditional GET of a shard's snapshot (operation "read_snapshot")."""
        self._request("read_snapshot")
        return self.snapshots.get(shard)

    def write_snapshot(self, shard: str, ledger: ShardLedger) -> None:
        """ShardLog: the conditional PUT of a snapshot (operation "write_snapshot")."""
        self._request("write_snapshot")
        if self.before_log_write:
            self.before_log_write.pop(0)()
        stored = self.snapshots.get(shard)
        if (stored.version if stored else 0) != ledger.version - 1:
            raise ShardLedgerMoved(f"stored version is not {ledger.version - 1}")
        # As S3 stores it: what the shard inherits from its parents stays theirs.
        self.snapshots[shard] = evolve(ledger, inherited={}, inherited_finished=frozenset())
        self._crash_point("write_snapshot")

    def read_entry(self, shard: str, seq: int) -> LogEntry | None:
        """ShardLog: the ranged GET of an entry's index (operation "read_entry")."""
        self._request("read_entry")
        found = self.log.get((shard, seq))
        return found[0] if found is not None else None

    def write_entry(self, shard: str, entry: LogEntry, contents: Sequence[bytes]) -> None:
        """ShardLog: the create-only PUT of an entry (operation "write_entry")."""
        self._request("write_entry")
        if self.before_log_write:
            self.before_log_write.pop(0)()
        if (shard, entry.seq) in self.log:
            raise ShardLedgerMoved(f"entry {entry.seq} exists")
        data = b"".join(contents)
        if [(c.offset, c.size) for c in entry.chunks] != _offsets(contents):
            raise AssertionError("the index does not say where the entry's chunks are")
        self.log[(shard, entry.seq)] = (entry, data)
        self._crash_point("write_entry")

    def open_chunk(self, shard: str, seq: int, offset: int, size: int) -> ByteStream:
        """ShardLog: the ranged GET of one chunk (operation "open")."""
        self._request("open")
        content = self.log[(shard, seq)][1][offset : offset + size]
        if self.broken_reads:
            self.broken_reads -= 1
            return _BreaksMidway(content)
        return io.BytesIO(content)

    def delete_entries(self, shard: str, seqs: Iterable[int]) -> None:
        """ShardLog: DeleteObjects of entries (operation "delete")."""
        self._request("delete")
        for seq in seqs:
            self.log.pop((shard, seq), None)
        self._crash_point("delete")

    def _crash_point(self, operation: str) -> None:
        if self.crash_after == operation:
            self.crash_after = None
            raise Crashed(f"the container died after {operation}")

    def shards(self) -> list[str]:
        return sorted(set(self.snapshots) | {shard for shard, _ in self.log})

    def log_state(self, shard: str = "") -> ShardLedger:
        """The shard's state as a new container would fold it (no request counted)."""
        state = self.snapshots.get(shard) or ShardLedger()
        while (found := self.log.get((shard, state.seq + 1))) is not None:
            state = state.folded(found[0], shard)
        return state

    def pending(self) -> list[str]:
        """Every object under pending/: chunk objects, log entries, batches' chunk objects."""
        return sorted(
            [f"pending/{f}/{p}" for f, p, _ in self.objects]
            + [f"pending/log/{shard}/{seq}" for shard, seq in self.log]
            + [f"pending/objects/{object_id}" for object_id in self.batch_objects]
        )

    def partitions_of(self, file_id: FileId) -> set[int]:
        """Durable partitions: chunk objects (dynamodb backend) and the logs' open files."""
        logged = {
            p
            for shard in self.shards()
            for p in (self.log_state(shard).files.get(file_id) or _NO_FILE).parts
        }
        in_objects = {
            placed.partition
            for object_id in self.batch_objects
            for placed in self.batch_index[object_id]
            if placed.file_id == file_id
        }
        return {p for (f, p, _) in self.objects if f == file_id} | logged | in_objects

    def corrupt_batch_objects(self) -> None:
        """Flip the first byte of every chunk in every chunk object."""
        for object_id, data in self.batch_objects.items():
            changed = bytearray(data)
            for placed in self.batch_index[object_id]:
                if placed.size:
                    changed[placed.offset] ^= 0xFF
            self.batch_objects[object_id] = bytes(changed)

    def drop_file(self, file_id: FileId) -> None:
        self._request("delete")
        for key in [k for k in self.objects if k[0] == file_id]:
            del self.objects[key]


@define(frozen=True)
class _Placed:
    """A chunk in a chunk object, as its index says."""

    file_id: FileId
    partition: int
    offset: int
    size: int
    digest: str


@define
class _ObjectItem:
    """A chunk object's item in the state table."""

    index: list[_Placed]
    files: set[FileId]
    created_at: float


OBJECT_WRITER_SECONDS = 960.0


class FakeChunkObjects(ReadsAlone):
    """The ChunkObjects port: bytes in the shared FakeRemoteStore (its faults and counts:
    "put", "open", "delete"), each object's item in the shared FakeStateStore (its
    ``failing``), with the real adapter's rule: an object goes once every file in its item
    is closed, read after the write that changed its fate."""

    def __init__(self, remote: FakeRemoteStore, state: FakeStateStore, clock: FakeClock) -> None:
        self.remote = remote
        self.state = state
        self.clock = clock
        self._places: dict[FileId, dict[int, tuple[str, int]]] = {}
        self._lock = threading.Lock()

    def store(self, chunks: Sequence[Chunk]) -> str:
        with self.state._lock:
            self.state._request()
            self.state.objects_made += 1
            object_id = f"{self.state.objects_made:012x}"
            index, body, offset = [], [], 0
            for chunk in chunks:
                index.append(
                    _Placed(
                        chunk.file_id, chunk.partition, offset, chunk.ref.size, chunk.ref.digest
                    )
                )
                body.append(chunk.content)
                offset += chunk.ref.size
            self.state.object_items[object_id] = _ObjectItem(
                index, {chunk.file_id for chunk in chunks}, self.clock()
            )
        self.remote._request("put")
        self.remote.batch_objects[object_id] = b"".join(body)
        self.remote.batch_index[object_id] = index
        return object_id

    def unneeded(self, object_id: str, files: Collection[FileId]) -> None:
        with self.state._lock:
            self.state._request()
            item = self.state.object_items.get(object_id)
            if item is None:
                return
            item.files -= set(files)
        self._sweep([object_id], closed=frozenset())

    def parts(
        self,
        file_id: FileId,
        partition_count: int,
        stored: Mapping[int, tuple[str, str]],
        held: Collection[int] = (),
    ) -> PartitionSet | None:
        if "object items" in self.state.failing_operations:
            raise StorageUnavailable("state store refuses to read chunk objects' items")
        with self.state._lock:
            self.state._request()
            items = {o: self.state.object_items.get(o) for _, o in stored.values()}
        if len(stored) != partition_count:
            return None
        refs: dict[int, ChunkRef] = {}
        places: dict[int, tuple[str, int]] = {}
        for partition, (prefix, object_id) in stored.items():
            item = items.get(object_id)
            found = next(
                (
                    placed
                    for placed in (item.index if item else [])
                    if (placed.file_id, placed.partition) == (file_id, partition)
                    and placed.digest.startswith(prefix)
                ),
                None,
            )
            if found is None:
                return None
            refs[partition] = ChunkRef(found.digest, found.size)
            places[partition] = (object_id, found.offset)
        with self._lock:
            self._places[file_id] = places
        return PartitionSet(partition_count, refs)

    def open(
        self, file_id: FileId, partition: int, partition_count: int, ref: ChunkRef
    ) -> ByteStream:
        with self._lock:
            object_id, offset = self._places[file_id][partition]
        self.remote._request("open")
        content = self.remote.batch_objects[object_id][offset : offset + ref.size]
        if self.remote.broken_reads:
            self.remote.broken_reads -= 1
            return _BreaksMidway(content)
        return io.BytesIO(content)

    def release(self, file_id: FileId, object_ids: Collection[str]) -> None:
        with self._lock:
            self._places.pop(file_id, None)
        self._sweep(object_ids, closed=frozenset({file_id}))

    def _sweep(self, object_ids: Collection[str], closed: frozenset[FileId]) -> None:
        with self.state._lock:
            self.state._request()
            now = self.clock()
            gone = []
            for object_id in object_ids:
                item = self.state.object_items.get(object_id)
                if item is None:
                    continue
                ended = item.created_at < now - OBJECT_WRITER_SECONDS
                if all(self._closed(f, ended) for f in item.files - closed):
                    gone.append(object_id)
        if gone:
            self.remote._request("delete")
            for object_id in gone:
                self.remote.batch_objects.pop(object_id, None)

    def _closed(self, file_id: FileId, ended: bool) -> bool:
        item = self.state.items.get(file_id)
        return ended if item is None else item.status.is_closed


@define
class Quarantined:
    record: StreamRecord
    reason: RejectionReason
    detail: str


class FakeArchive:
    def __init__(self) -> None:
        self.quarantined: list[Quarantined] = []
        self.failed: dict[FileId, bytes] = {}
        self.failed_endpoints: dict[FileId, str] = {}
        self.expired: dict[FileId, ExpiredFile] = {}
        self.quarantine_refused = False
        """S3 refuses quarantine/ writes: a rejected record is reported instead."""

    def quarantine(
        self, record: StreamRecord, reason: RejectionReason, detail: str, file_id: FileId | None
    ) -> str:
        if self.quarantine_refused:
            raise StorageUnavailable("remote storage refuses the quarantine")
        self.quarantined.append(Quarantined(record, reason, detail))
        return f"quarantine/{record.record_id}"

    def keep_failed(self, assembled: AssembledFile, body: Body) -> str:
        self.failed[assembled.file_id] = read_all(body)
        self.failed_endpoints[assembled.file_id] = assembled.put_endpoint
        return f"failed/{assembled.file_id}"

    def failed_files(self) -> list[FileSummary]:
        return [
            FileSummary(file_id, "failed", 0, None, len(data), 0.0)
            for file_id, data in self.failed.items()
        ]

    def failed_copy(self, file_id: FileId) -> tuple[str, Body] | None:
        if file_id not in self.failed:
            return None
        return self.failed_endpoints[file_id], BytesBody(self.failed[file_id])

    def drop_failed(self, file_id: FileId) -> None:
        self.failed.pop(file_id, None)
        self.failed_endpoints.pop(file_id, None)

    def keep_expired(self, record: ExpiredFile) -> str:
        self.expired[record.file_id] = record
        return f"expired/{record.file_id}.json"

    def expired_files(self) -> list[FileSummary]:
        return [
            FileSummary(r.file_id, "expired", r.received, r.partition_count, r.size, r.first_seen)
            for r in self.expired.values()
        ]

    def reasons(self) -> list[RejectionReason]:
        return [q.reason for q in self.quarantined]


@define
class BytesBody:
    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)

    def open(self) -> ByteStream:
        return io.BytesIO(self.data)


def read_all(body: Body) -> bytes:
    reader = body.open()
    out = bytearray()
    while block := reader.read(7919):  # an odd block size crosses part boundaries
        out.extend(block)
    reader.close()
    return bytes(out)


class FakeUploader:
    """Answers from a script: each entry is an exception to raise for one attempt."""

    def __init__(self) -> None:
        self.uploads: list[tuple[str, bytes]] = []
        self.script: list[BaseException] = []
        self.attempts = 0
        self._lock = threading.Lock()

    def upload(self, put_endpoint: str, body: Body) -> None:
        data = read_all(body)
        if len(data) != body.size:
            raise AssertionError("body length differs from its declared size")
        with self._lock:  # files' lanes upload at once
            self.attempts += 1
            if self.script:
                raise self.script.pop(0)
            self.uploads.append((put_endpoint, data))

    def fail_transiently(self, times: int) -> None:
        self.script.extend(TransientUploadError("HTTP 503") for _ in range(times))

    def fail_permanently(self) -> None:
        self.script.append(PermanentUploadError("HTTP 403"))

    def bodies_for(self, put_endpoint: str) -> list[bytes]:
        return [data for endpoint, data in self.uploads if endpoint == put_endpoint]


class FakeValidator:
    """The validator's contract without jsonschema: base64 JSON with the four fields."""

    def validate(self, data: str) -> Chunk:
        try:
            document: Any = json.loads(base64.b64decode(data, validate=True))
        except ValueError as error:
            raise InvalidRecord(RejectionReason.NOT_JSON, "not base64 JSON") from error
        try:
            return Chunk(
                document["putEndpoint"],
                int(document["partition"]),
                int(document["partitionCount"]),
                base64.b64decode(document["content"], validate=True),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise InvalidRecord(RejectionReason.SCHEMA, "missing or malformed field") from error


class FakePolicy:
    def __init__(self, refused_hosts: Iterable[str] = ()) -> None:
        self.refused_hosts = set(refused_hosts)

    def check(self, put_endpoint: str) -> None:
        if any(f"//{host}" in put_endpoint for host in self.refused_hosts):
            raise EndpointRefused("host refused")


def fake_container(environ: dict[str, str], **fakes: object) -> Container:
    """The real container on a settings dict, each named provider overridden by its fake."""
    container = Container(environ={"S3_BUCKET": "fake-bucket", **environ})
    for name, fake in fakes.items():
        getattr(container, name).override(providers.Object(fake))
    return container


class _RealContainer:
    """What the fake containers of both backends share: the adapters every backend uses
    replaced by fakes, and the operator's commands run through the same container."""

    container: Container

    def _build(self, environ: dict[str, str], shared: _SharedFakes, **more: object) -> None:
        self.container = fake_container(
            environ,
            validator=FakeValidator(),
            remote_store=shared.remote,
            archive=shared.archive,
            uploader=shared.uploader,
            metrics=shared.metrics,
            limits=shared.limits,
            **more,
        )

    def report(self) -> list[FileSummary]:
        """What ``sfb status`` lists."""
        return self.container.file_report()()

    def redrive(self) -> Redrive:
        return self.container.redrive()


class _SharedFakes(Protocol):
    remote: FakeRemoteStore
    archive: FakeArchive
    uploader: FakeUploader
    metrics: FakeMetrics
    limits: Limits


@define
class FakeContainer(_RealContainer):
    """One warm Lambda container of the local backend: the real container with fakes for
    its adapters; its own cache and disk, the remote store shared."""

    remote: FakeRemoteStore
    uploader: FakeUploader
    archive: FakeArchive
    limits: Limits = field(factory=Limits)
    policy: FakePolicy = field(factory=FakePolicy)
    cache: InMemoryPartitionCache = field(factory=InMemoryPartitionCache)
    local: FakeLocalStore = field(factory=FakeLocalStore)
    metrics: FakeMetrics = field(factory=lambda: FakeMetrics())
    settings: dict[str, str] = field(factory=dict)
    """More settings, by their environment names."""
    container: Container = field(init=False)
    process: ProcessBatch = field(init=False)

    def __attrs_post_init__(self) -> None:
        self._build(
            {"STATE_BACKEND": "local", **self.settings},
            self,
            policy=self.policy,
            cache=self.cache,
            local_store=self.local,
            shard_log=self.remote,
            lineage=self.remote.lineage,
            clock=self.remote.clock,
        )
        self.process = self.container.process_batch()

    def recycled(self) -> FakeContainer:
        """A new container on the same shard: nothing local survives."""
        return FakeContainer(
            self.remote,
            self.uploader,
            self.archive,
            self.limits,
            self.policy,
            metrics=self.metrics,
            settings=self.settings,
        )


@define
class _FileItem:
    partition_count: int
    digests: dict[int, str] = field(factory=dict)
    size: int = 0
    status: FileStatus = FileStatus.COLLECTING
    claim_owner: str | None = None
    claim_until: float = 0.0
    expires_at: float = 0.0
    put_endpoint: str = ""
    created_at: float = 0.0
    finished_by: str | None = None
    where: dict[int, str] = field(factory=dict)
    """The chunk object holding each partition (the dynamodb backend's add_stored)."""


class FakeStateStore:
    """The shared state port in memory, each method atomic under one lock, as DynamoDB's
    conditional updates are: a faithful model for racing threads."""

    def __init__(self, ttl_seconds: float = 86_400.0) -> None:
        self.items: dict[FileId, _FileItem] = {}
        self.requests = 0
        self.failing = False
        self.lost_finish_answers = 0
        """The next finishes whose answer is lost: botocore sends the request again and the
        caller gets the second answer."""
        self._ttl = ttl_seconds
        self._lock = threading.Lock()
        self.object_items: dict[str, _ObjectItem] = {}
        """The dynamodb backend's chunk objects' items (FakeChunkObjects)."""
        self.objects_made = 0
        self.failing_operations: set[str] = set()
        """Requests that fail while the rest work: "object items" (reading chunk objects'
        items, as assembly does)."""

    def _request(self) -> None:
        self.requests += 1
        if self.failing:
            raise StorageUnavailable("state store is down")

    def add_stored(self, arrival: PartitionArrival, object_id: str) -> int | FileState:
        return self.add_chunk(arrival, object_id)

    def add_stored_together(
        self, arrivals: Sequence[PartitionArrival], object_id: str
    ) -> int | None:
        """All or none, in one request, as DynamoDB's single conditional update."""
        with self._lock:
            self._request()
            first = arrivals[0]
            item = self.items.get(first.file_id) or _FileItem(first.partition_count)
            partitions = {arrival.partition for arrival in arrivals}
            size = sum(arrival.ref.size for arrival in arrivals)
            if (
                len(partitions) != len(arrivals)
                or len(arrivals) > COUNTED_TOGETHER_MOST
                or any(a.partition_count != first.partition_count for a in arrivals)
                or any(a.file_id != first.file_id for a in arrivals)
                or partitions & item.digests.keys()
                or item.partition_count != first.partition_count
                or item.status is not FileStatus.COLLECTING
                or item.size > first.max_file_bytes - size
            ):
                return None
            for arrival in arrivals:
                item.digests[arrival.partition] = arrival.ref.digest[:DIGEST_PREFIX]
                item.where[arrival.partition] = object_id
            item.put_endpoint = item.put_endpoint or first.put_endpoint
            item.created_at = item.created_at or first.now
            item.size += size
            item.expires_at = first.now + self._ttl
            self.items[first.file_id] = item
            return len(item.digests)

    def stored(self, file_id: FileId) -> dict[int, tuple[str, str]]:
        with self._lock:
            self._request()
            item = self.items.get(file_id)
            if item is None:
                return {}
            return {p: (d, item.where.get(p, "")) for p, d in item.digests.items()}

    def add_chunk(self, arrival: PartitionArrival, object_id: str = "") -> int | FileState:
        with self._lock:
            self._request()
            item = self.items.get(arrival.file_id)
            if item is None:
                item = _FileItem(arrival.partition_count)
            if (
                arrival.partition in item.digests
                or item.partition_count != arrival.partition_count
                or item.status is not FileStatus.COLLECTING
                or item.size > arrival.room
            ):
                return self._state(item, arrival.partition)
            item.digests[arrival.partition] = arrival.ref.digest[:DIGEST_PREFIX]
            if object_id:
                item.where[arrival.partition] = object_id
            item.put_endpoint = item.put_endpoint or arrival.put_endpoint
            item.created_at = item.created_at or arrival.now
            item.size += arrival.ref.size
            item.expires_at = arrival.now + self._ttl
            self.items[arrival.file_id] = item
            return len(item.digests)

    def read(self, file_id: FileId, partition: int) -> FileState | None:
        with self._lock:
            self._request()
            item = self.items.get(file_id)
            return None if item is None else self._state(item, partition)

    @staticmethod
    def _state(item: _FileItem, partition: int) -> FileState:
        return FileState(
            item.partition_count,
            len(item.digests),
            item.size,
            item.status,
            item.digests.get(partition),
        )

    def digests(self, file_id: FileId) -> dict[int, str]:
        with self._lock:
            self._request()
            item = self.items.get(file_id)
            return dict(item.digests) if item else {}

    def claim(self, file_id: FileId, owner: str, now: float, until: float) -> Claim:
        with self._lock:
            self._request()
            item = self.items.get(file_id)
            if item is None:
                return Claim(won=False)
            free = item.status is FileStatus.COLLECTING or (
                item.status is FileStatus.ASSEMBLING and item.claim_until < now
            )
            if len(item.digests) != item.partition_count or not free:
                return Claim(won=False, refused_by=self._state(item, 0))
            item.status, item.claim_owner, item.claim_until = FileStatus.ASSEMBLING, owner, until
            item.expires_at = now + self._ttl
            return Claim(won=True)

    def finish(self, file_id: FileId, owner: str, status: FileStatus, now: float) -> bool:
        with self._lock:
            self._request()
            closed = self._finish(file_id, owner, status, now)
            if closed and self.lost_finish_answers:
                self.lost_finish_answers -= 1
                self._request()
                return self._finish(file_id, owner, status, now)
            return closed

    def _finish(self, file_id: FileId, owner: str, status: FileStatus, now: float) -> bool:
        item = self.items.get(file_id)
        if item is None:
            return False
        mine = item.claim_owner == owner or (item.finished_by == owner and item.status is status)
        if not mine:
            return False
        item.status, item.claim_owner, item.expires_at = status, None, now + self._ttl
        item.finished_by = owner
        return True

    def release(self, file_id: FileId, owner: str, now: float) -> None:
        with self._lock:
            self._request()
            item = self.items.get(file_id)
            if item is not None and item.claim_owner == owner:
                item.status, item.claim_owner = FileStatus.COLLECTING, None
                item.expires_at = now + self._ttl

    def endpoint(self, file_id: FileId) -> str | None:
        with self._lock:
            item = self.items.get(file_id)
            return item.put_endpoint if item else None

    def unfinished(self) -> list[FileSummary]:
        with self._lock:
            return [
                FileSummary(
                    file_id,
                    item.status.value,
                    len(item.digests),
                    item.partition_count,
                    item.size,
                    item.created_at,
                    item.put_endpoint,
                )
                for file_id, item in self.items.items()
                if not item.status.is_closed
            ]

    def mark_redriven(self, file_id: FileId, now: float) -> None:
        with self._lock:
            item = self.items.get(file_id)
            if item is not None and item.status is FileStatus.FAILED:
                item.status = FileStatus.UPLOADED

    def incomplete(self) -> list[IncompleteFile]:
        with self._lock:
            self._request()
            return [
                IncompleteFile(
                    file_id,
                    item.partition_count,
                    len(item.digests),
                    item.size,
                    item.created_at,
                    item.put_endpoint,
                )
                for file_id, item in self.items.items()
                if item.status is FileStatus.COLLECTING and len(item.digests) < item.partition_count
            ]

    def give_up(self, file: IncompleteFile, cutoff: float, now: float) -> bool:
        """Atomic, as the conditional UpdateItem is."""
        with self._lock:
            self._request()
            item = self.items.get(file.file_id)
            if (
                item is None
                or item.status is not FileStatus.COLLECTING
                or len(item.digests) >= item.partition_count
                or not item.created_at < cutoff
            ):
                return False
            item.status, item.claim_owner, item.expires_at = (
                FileStatus.EXPIRED,
                None,
                now + self._ttl,
            )
            return True


class FakeStateBatches:
    """The shared state's batch requests (BatchGetItem, BatchWriteItem) on a FakeStateStore's
    items: each tombstone replaces its item whole, as a PutRequest does, with no condition.

    Counts its requests apart (``requests``, ``operations``). ``failing`` names operations
    that raise (every one does while the state store is ``failing``). ``unanswered`` and
    ``unwritten`` leave that many of the next keys or tombstones unprocessed, as the adapter
    returns them once DynamoDB's UnprocessedKeys or UnprocessedItems outlast its retries.
    ``closed`` holds every tombstone written.
    """

    def __init__(
        self,
        state: FakeStateStore,
        ttl_seconds: float = 86_400.0,
        redis_chunks: FakeRedisChunks | None = None,
    ) -> None:
        self.state = state
        self.redis_chunks = redis_chunks
        """On redis, the same server: a tombstone drops the file's chunks held there."""
        self.requests = 0
        self.operations: Counter[str] = Counter()
        self.failing: set[str] = set()
        """Operations that raise: "unknown" (the lookup), "close" (the tombstones)."""
        self.unanswered = 0
        self.unwritten = 0
        self.closed: list[Tombstone] = []
        self._ttl = ttl_seconds
        self._lock = threading.Lock()

    def _request(self, operation: str) -> None:
        with self._lock:
            self.requests += 1
            self.operations[operation] += 1
        if operation in self.failing or self.state.failing:  # the same DynamoDB
            raise StorageUnavailable(f"state store refuses {operation}")

    def unknown(self, file_ids: Collection[FileId]) -> frozenset[FileId]:
        self._request("unknown")
        with self._lock:
            wanted = sorted(set(file_ids), key=str)
            left_out, self.unanswered = (
                wanted[: self.unanswered],
                max(0, self.unanswered - len(wanted)),
            )
            answered = wanted[len(left_out) :]
        return frozenset(f for f in answered if f not in self.state.items)

    def close(self, tombstones: Sequence[Tombstone]) -> list[FileId]:
        self._request("close")
        with self._lock:
            left_out = [t.file_id for t in tombstones[: self.unwritten]]
            self.unwritten = max(0, self.unwritten - len(tombstones))
            for tombstone in tombstones[len(left_out) :]:
                self.closed.append(tombstone)
                self.state.items[tombstone.file_id] = _FileItem(
                    tombstone.partition_count,
                    size=tombstone.size,
                    status=tombstone.status,
                    expires_at=tombstone.finished_at + self._ttl,
                    created_at=tombstone.finished_at,
                    finished_by=tombstone.owner,
                )
        if self.redis_chunks is not None:
            for tombstone in tombstones[len(left_out) :]:
                self.redis_chunks.drop_held(tombstone.file_id)
        return left_out


class FakeClock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeRedisChunks(ReadsAlone):
    """The redis backend's chunk bytes with the server's semantics: held up to ``budget``
    bytes, the rest spilled to the shared remote store (S3); a listing names only the chunks
    the state admitted (the real store reads both in one script). Redis being down is the
    state store's ``failing``: one server holds both."""

    def __init__(self, state: FakeStateStore, spill: FakeRemoteStore, budget: int) -> None:
        self.state = state
        self.spill = spill
        self.budget = budget
        self.held: dict[tuple[FileId, int, str], tuple[int, bytes]] = {}
        self.spilled: dict[tuple[FileId, int, str], tuple[int, ChunkRef]] = {}
        self.undeleted: set[FileId] = set()
        """Finished files whose spilled chunks S3 refused to delete: a file whose chunks
        are in Redis completes while S3 is down, and its spilled duplicates are left to the
        pending/ lifecycle rule, as the dynamodb backend leaves a refused deletion."""
        self._lock = threading.Lock()

    def _server(self) -> None:
        if self.state.failing:
            raise StorageUnavailable("redis is down")

    def put(self, chunks: Iterable[Chunk]) -> None:
        for chunk in chunks:
            self._server()
            key = (chunk.file_id, chunk.partition, chunk.ref.digest)
            with self._lock:
                used = sum(len(content) for _, content in self.held.values())
                fits = key in self.held or used + chunk.ref.size <= self.budget
                if fits:
                    self.held[key] = (chunk.partition_count, chunk.content)
            if not fits:
                self.spill.put([chunk])
                with self._lock:
                    self.spilled[key] = (chunk.partition_count, chunk.ref)

    def get(self, file_id: FileId) -> PartitionSet | None:
        self._server()
        admitted = self.state.digests(file_id)
        with self._lock:
            stored = [
                (partition, count, ChunkRef(digest, len(content)))
                for (f, partition, digest), (count, content) in self.held.items()
                if f == file_id
            ] + [
                (partition, count, ref)
                for (f, partition, _), (count, ref) in self.spilled.items()
                if f == file_id
            ]
        parts = {
            partition: ref
            for partition, _, ref in stored
            if admitted.get(partition) == ref.digest_prefix
        }
        counts = {count for partition, count, _ in stored if partition in parts}
        return PartitionSet(min(counts), parts) if parts else None

    def open(
        self, file_id: FileId, partition: int, partition_count: int, ref: ChunkRef
    ) -> ByteStream:
        self._server()
        with self._lock:
            held = self.held.get((file_id, partition, ref.digest))
        if held is not None:
            return io.BytesIO(held[1])
        return self.spill.open(file_id, partition, partition_count, ref)

    def delete(self, file_id: FileId, partitions: PartitionSet) -> None:
        self._server()
        spilled = self._forget(file_id)
        if spilled:
            count = max(c for c, _ in spilled.values())
            try:
                self.spill.delete(
                    file_id, PartitionSet(count, {p: r for p, (_, r) in spilled.items()})
                )
            except StorageUnavailable:
                self.undeleted.add(file_id)
                raise

    def discard(self, chunk: Chunk) -> None:
        self._server()
        key = (chunk.file_id, chunk.partition, chunk.ref.digest)
        with self._lock:
            self.held.pop(key, None)
            was_spilled = self.spilled.pop(key, None) is not None
        if was_spilled:
            self.spill.discard(chunk)

    def drop_file(self, file_id: FileId) -> None:
        self._server()
        self._forget(file_id)
        self.spill.drop_file(file_id)

    def drop_held(self, file_id: FileId) -> None:
        """The file's chunks in Redis go; those spilled to S3 are forgotten (left to S3's
        lifecycle rule), as the tombstones' pipeline deletes the file's chunk keys."""
        self._forget(file_id)

    def _forget(self, file_id: FileId) -> dict[int, tuple[int, ChunkRef]]:
        with self._lock:
            for key in [k for k in self.held if k[0] == file_id]:
                del self.held[key]
            spilled = {k[1]: v for k, v in self.spilled.items() if k[0] == file_id}
            for key in [k for k in self.spilled if k[0] == file_id]:
                del self.spilled[key]
        return spilled


@define
class SharedFakeContainer(_RealContainer):
    """A container of a shared backend (dynamodb, or redis with ``redis_budget``): the real
    container with fakes for its adapters; nothing of its own but an owner id and, on
    dynamodb, the disk copies of the chunks it stored."""

    remote: FakeRemoteStore
    state: FakeStateStore
    uploader: FakeUploader
    archive: FakeArchive
    clock: FakeClock = field(factory=FakeClock)
    lease_seconds: float = 960.0
    limits: Limits = field(factory=Limits)
    owner: str = field(factory=lambda: uuid.uuid4().hex)
    metrics: FakeMetrics = field(factory=lambda: FakeMetrics())
    settings: dict[str, str] = field(factory=dict)
    """More settings, by their environment names."""
    redis_chunks: FakeRedisChunks | None = None
    """Set: the redis backend, its state ``state`` and its chunks these (shared by every
    container of the run, as one server is)."""
    container: Container = field(init=False)
    process: ProcessBatch = field(init=False)
    batches: FakeStateBatches = field(init=False)
    """The batch requests on ``state``: whole files' lookups and tombstones."""
    chunk_objects: FakeChunkObjects | None = field(init=False, default=None)
    """The dynamodb backend's chunk objects (None on redis)."""
    copies: FakeLocalStore = field(factory=FakeLocalStore)
    """The dynamodb backend's disk copies of the chunks this container stored."""

    def __attrs_post_init__(self) -> None:
        settings = {"CLAIM_LEASE_SECONDS": str(self.lease_seconds)}
        self.batches = FakeStateBatches(self.state, redis_chunks=self.redis_chunks)
        backend: dict[str, object]
        if self.redis_chunks is None:
            settings |= {"STATE_BACKEND": "dynamodb", "STATE_TABLE": "fake-table"}
            self.chunk_objects = FakeChunkObjects(self.remote, self.state, self.clock)
            backend = {
                "state_store": self.state,
                "state_batches": self.batches,
                "chunk_objects": self.chunk_objects,
                "copies_store": self.copies,
            }
        else:
            settings |= {"STATE_BACKEND": "redis", "REDIS_URL": "redis://fake-redis:6379"}
            backend = {
                "redis_state": self.state,
                "redis_batches": self.batches,
                "redis_chunks": self.redis_chunks,
            }
        self._build(
            {**settings, **self.settings},
            self,
            policy=FakePolicy(),
            local_store=FakeLocalStore(),
            clock=self.clock,
            owner_id=self.owner,
            **backend,
        )
        self.process = self.container.process_batch()


class FakeMetrics:
    """Sums what is added; ``published`` holds one dict per publish."""

    def __init__(self) -> None:
        self.current: dict[tuple[Metric, str | None], float] = {}
        self.published: list[dict[tuple[Metric, str | None], float]] = []
        self._lock = threading.Lock()

    def add(self, metric: Metric, value: float = 1.0, reason: str | None = None) -> None:
        with self._lock:
            self.current[(metric, reason)] = self.current.get((metric, reason), 0.0) + value

    def publish(self) -> None:
        self.published.append(self.current)
        self.current = {}
