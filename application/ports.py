"""The ports of the hot path: what a record needs from the outside world on its way from
the stream to the PUT, as structural types. What operators need (``sfb status``, ``sfb
redrive``, the expiry) is in application/views.py.

Adapters satisfy these by shape (no inheritance); mypy --strict checks the fit.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Protocol

from application.metrics import Metric
from application.pending import PendingFile
from application.records import StreamRecord
from application.tombstones import Tombstone
from domain import (
    AssembledFile,
    Chunk,
    ChunkRef,
    Claim,
    FileId,
    FileState,
    FileStatus,
    LogEntry,
    PartitionArrival,
    PartitionSet,
    RejectionReason,
    ShardLedger,
)


class ByteStream(Protocol):
    """A reader of bytes, read until it returns b"" (a file, an S3 body, a BytesIO)."""

    def read(self, size: int = -1, /) -> bytes: ...

    def close(self) -> None: ...


class PartitionCache(Protocol):
    """In-container memory of files being collected (the seed's Cache component)."""

    def push(self, pending: PendingFile) -> None:
        """Store or replace the entry for ``pending.file_id``."""

    def get(self, file_id: FileId) -> PendingFile | None:
        """Return the entry, or None when this container knows nothing of the file."""

    def delete(self, file_id: FileId) -> bool:
        """Forget the file; return whether there was an entry."""

    def all_keys(self) -> list[FileId]:
        """Every file id with an entry, in insertion order."""

    def open_keys(self) -> list[FileId]:
        """The file ids whose entry is still collecting (not a tombstone), in insertion order:
        what a batch's end looks at, however many tombstones are kept."""


class LocalChunkStore(Protocol):
    """Chunk bytes kept by this container between invocations (the seed's /tmp): in memory
    for the batch at hand (a batch is at most Lambda's 6 MB payload, so files finishing inside
    it never touch the disk), then on disk within a budget of bytes."""

    def put(self, file_id: FileId, partition: int, content: bytes) -> None:
        """Hold a chunk in memory; only ``persist`` touches the disk."""

    def get(self, file_id: FileId, partition: int) -> bytes:
        """Return the chunk's bytes.

        Raises
        ------
        FileNotFoundError
            When the chunk is not stored here.
        """

    def open(self, file_id: FileId, partition: int) -> ByteStream:
        """Open the chunk for streaming reads."""

    def held(self, file_id: FileId, partition: int) -> bytes | None:
        """The chunk's bytes while they are still in memory since ``put`` (hashed on arrival,
        so they need no second hash); None once they would be read back from disk."""

    def delete(self, file_id: FileId, partition: int) -> None:
        """Remove the chunk from memory and disk; a missing chunk is not an error, nor is a
        disk that refuses (the chunk is no longer counted either way)."""

    def persist(self, file_id: FileId, partition: int) -> bool:
        """Move a held chunk to disk, atomically (a reader never sees a partial file).

        Returns False, the chunk still in memory, when it does not fit the budget: the store
        never has more than ``budget`` bytes on disk.

        Raises
        ------
        OSError
            When the disk refuses the write (no space, an I/O error, no permission); the chunk
            stays in memory and nothing partial is left on disk.
        """

    @property
    def usage(self) -> int:
        """Bytes of chunks on disk, counted as they are written and deleted: no walk."""

    @property
    def budget(self) -> int:
        """The most bytes of chunks the store keeps on disk (LOCAL_DISK_BUDGET_BYTES)."""

    def tidy(self) -> None:
        """Go on deleting what an earlier container left on this disk, for a bounded time;
        called at every batch's end. Never raises."""


class RemoteChunkStore(Protocol):
    """Durable chunk storage shared by every container (the dynamodb backend's, in S3; the
    local backend keeps its chunks in its shards' logs: ShardLog).

    Each chunk is its own object, so two writers never overwrite each other's chunks.
    """

    def put(self, chunks: Iterable[Chunk]) -> None:
        """Make each chunk durable; idempotent for the same bytes."""

    def get(self, file_id: FileId) -> PartitionSet | None:
        """List the chunks held for a file (digests and sizes, no bytes), or None."""

    def open(
        self, file_id: FileId, partition: int, partition_count: int, ref: ChunkRef
    ) -> ByteStream:
        """Open one stored chunk for streaming reads."""

    def delete(self, file_id: FileId, partitions: PartitionSet) -> None:
        """Remove a finished file's listed chunks and its endpoint note; missing is no error."""

    def discard(self, chunk: Chunk) -> None:
        """Remove one chunk's object, written for a chunk that was then rejected."""


class ShardLineage(Protocol):
    """Where a shard came from: the local backend follows a file sent across a reshard."""

    def parents(self, stream: str, shard: str) -> tuple[str, ...]:
        """The shard's parent shards (one after a split, two after a merge, none for an
        original shard or one the stream does not list). Raises when it cannot be told."""
        ...


class ChunkObjects(Protocol):
    """The dynamodb backend's durable chunks: a batch's chunks in one S3 object, whose index
    (each chunk's file, partition, offset, size and sha256) and the files that may still need
    it are kept in a small item of the state table (adapters/chunk_objects.py).

    An object goes only when every file that may need it is closed: a file that admitted a
    chunk from it keeps it until its finish or give-up, so no file ever names bytes that
    are gone.
    """

    def store(self, chunks: Sequence[Chunk]) -> str:
        """Make ``chunks`` durable in one new object (its item first names every file in it,
        each then taken to need it); return the object's id."""

    def unneeded(self, object_id: str, files: Collection[FileId]) -> None:
        """These files admitted nothing from the object: they no longer keep it, and it is
        deleted when no file does."""

    def parts(
        self,
        file_id: FileId,
        partition_count: int,
        stored: Mapping[int, tuple[str, str]],
        held: Collection[int] = (),
    ) -> PartitionSet | None:
        """The file's chunks as ``stored`` (partition: digest prefix, object id) names them,
        found in the objects' indexes; None when one is not found there. ``held``: chunks
        this container reads from elsewhere (its disk): no read of others takes them along."""

    def open(
        self, file_id: FileId, partition: int, partition_count: int, ref: ChunkRef
    ) -> ByteStream:
        """Read one chunk of a file ``parts`` found: one ranged GET, or none when this
        container still has a copy of a chunk it stored (adapters/chunk_copies.py)."""

    def assembled(self, file_id: FileId) -> None:
        """An upload of a file ``parts`` found ended: what was read along for it goes."""

    def release(self, file_id: FileId, object_ids: Collection[str]) -> None:
        """The file is closed: delete each of these objects that no file needs any more."""


class StoredChunkState(Protocol):
    """What the dynamodb backend's state store keeps beside a FileStateStore's: where each
    admitted chunk's bytes are (the id of the object holding them)."""

    def add_stored(self, arrival: PartitionArrival, object_id: str) -> int | FileState:
        """``FileStateStore.add_chunk``, recording the object that holds the chunk. A refusal
        that finds this very chunk of this very object (a retried request whose answer was
        lost) answers as the add did."""

    def add_stored_together(
        self, arrivals: Sequence[PartitionArrival], object_id: str
    ) -> int | None:
        """Count distinct partitions of one file (at most COUNTED_TOGETHER_MOST), all in one
        object, together when the store can: the received count after, or None when any of
        them would not be admitted alone (or the store cannot): each is then added alone, and
        one this call counted answers as added."""

    def stored(self, file_id: FileId) -> dict[int, tuple[str, str]]:
        """Every held partition's digest prefix and object id ("" when it has none)."""


class ShardLedgerMoved(Exception):
    """Another writer changed the shard's log after this container read it: an entry of
    that number exists, or the snapshot is not the one read."""


class ChunkSource(Protocol):
    """Where assembly reads a stored chunk that this container does not hold."""

    def assembling(self, file_id: FileId, parts: Mapping[int, ChunkRef]) -> None:
        """An upload of the file is about to read these of its chunks from here, one after
        another: chunks that lie side by side, of this file or of others being uploaded at
        the same time, may then come back in one read (application/shared_reads.py)."""

    def assembled(self, file_id: FileId) -> None:
        """That upload ended: whatever was read along for it and not asked for is let go."""

    def open(
        self, file_id: FileId, partition: int, partition_count: int, ref: ChunkRef
    ) -> ByteStream:
        """Open one stored chunk for streaming reads."""


class ShardLog(Protocol):
    """The local backend's per-shard log in S3: a snapshot (``shards/<shard>.json``) and
    one object per invocation that had something to make durable (its chunks' bytes and an
    index), each created only where none is, so that two writers never share a number."""

    def read_snapshot(self, shard: str) -> ShardLedger | None:
        """The shard's snapshot, or None when none was written yet; asked again, it costs
        no transfer while the snapshot is the one this container last read or wrote."""

    def write_snapshot(self, shard: str, ledger: ShardLedger) -> None:
        """Store ``ledger`` if the stored snapshot is still the version it follows
        (``ledger.version - 1``; 0 is none); else raise ShardLedgerMoved, storing nothing."""

    def read_entry(self, shard: str, seq: int) -> LogEntry | None:
        """Entry ``seq``'s index (not its bytes), or None when there is no such entry."""

    def write_entry(self, shard: str, entry: LogEntry, contents: Sequence[bytes]) -> None:
        """Create entry ``entry.seq`` holding ``contents`` (the entry's chunks' bytes, in
        order, at their offsets); raise ShardLedgerMoved when it exists, storing nothing."""

    def open_chunk(self, shard: str, seq: int, offset: int, size: int) -> ByteStream:
        """Read ``size`` bytes at ``offset`` of entry ``seq`` (one ranged GET)."""

    def delete_entries(self, shard: str, seqs: Iterable[int]) -> None:
        """Remove entries that hold nothing open any more; a missing one is no error."""


class FileStateStore(Protocol):
    """Shared, atomically updated state of each file (DynamoDB in production).

    Every change is made by conditional requests, never read-modify-write, so any number of
    containers may call them at once (a large file's chunk takes two: see the adapter).
    """

    def add_chunk(self, arrival: PartitionArrival) -> int | FileState:
        """Record a partition of a collecting file whose count agrees and that has room.

        Returns the number of partitions received after it; or, when the store refused
        (already held, other count, no room, file closed), the file's state seen for this
        partition, as the refusal itself found it: judging it needs no second request.
        """

    def read(self, file_id: FileId, partition: int) -> FileState | None:
        """The file's state, with the digest held for ``partition``; None if unknown."""

    def digests(self, file_id: FileId) -> dict[int, str]:
        """Every held partition's digest prefix, for checking chunks before assembly."""

    def claim(self, file_id: FileId, owner: str, now: float, until: float) -> Claim:
        """Take the right to assemble a complete file, if nobody holds an unexpired claim;
        a refusal carries the state that refused it.

        Keeps the item as long as a collecting file's (an unfinished file must not vanish
        while its chunks are stored)."""

    def finish(self, file_id: FileId, owner: str, status: FileStatus, now: float) -> bool:
        """Close a claimed file (uploaded or failed) as a tombstone; False if the claim was lost.

        Idempotent for its owner: asked again after it closed the file with that status (a
        retried request whose answer was lost), it answers True."""

    def release(self, file_id: FileId, owner: str, now: float) -> None:
        """Give a claim back so the next delivery may try again; keeps the item as ``claim``."""


class FileStateBatches(Protocol):
    """Many files' shared state in one request (DynamoDB's BatchGetItem and BatchWriteItem):
    what a batch of whole files shares instead of several requests a file."""

    def unknown(self, file_ids: Collection[FileId]) -> frozenset[FileId]:
        """Those of ``file_ids`` the store holds nothing for, by a consistent read. A file it
        could not answer for (still unprocessed after its retries) is left out."""

    def close(self, tombstones: Sequence[Tombstone]) -> list[FileId]:
        """Write each file's tombstone, unconditionally (a batch write takes no condition);
        return the files whose tombstone is still unwritten after the retries.

        Raises on an error of the store: none of ``tombstones`` is known to be written.
        """


class RecordArchive(Protocol):
    """Where records and files that cannot be delivered are kept for inspection."""

    def quarantine(
        self, record: StreamRecord, reason: RejectionReason, detail: str, file_id: FileId | None
    ) -> str:
        """Keep a rejected record's raw data; return the key it was stored under."""

    def keep_failed(self, assembled: AssembledFile, body: Body) -> str:
        """Keep a file whose upload failed for good, with its endpoint; return its key."""


class Body(Protocol):
    """A request body of known length that can be read again from the start."""

    @property
    def size(self) -> int: ...

    def open(self) -> ByteStream:
        """A fresh reader positioned at the first byte."""


class Metrics(Protocol):
    """Counters and timings gathered during a batch, published at its end."""

    def add(self, metric: Metric, value: float = 1.0, reason: str | None = None) -> None:
        """Add to a counter, or record one timing; ``reason`` splits rejections."""

    def publish(self) -> None:
        """Write what was gathered since the last publish, then start again from zero."""


class Uploader(Protocol):
    def upload(self, put_endpoint: str, body: Body) -> None:
        """PUT the body with Content-Length and no Content-Type.

        Raises
        ------
        TransientUploadError
            When the endpoint may accept the same request later (5xx, 429, 408, S3's
            RequestTimeout, network).
        PermanentUploadError
            When it never will (other 4xx, redirects).
        """


class RequestValidator(Protocol):
    """The seed's Request validator: payload decoding and schema checks in one pass."""

    def validate(self, data: str) -> Chunk:
        """Turn a record's base64 data into a validated chunk.

        Raises
        ------
        domain.ChunkRejected
            With the reason: not base64, not JSON, schema, partition range, content.
        """


class EndpointPolicy(Protocol):
    def check(self, put_endpoint: str) -> None:
        """Refuse endpoints the service must never send to.

        Raises
        ------
        domain.EndpointRefused
            With a reason that names the redacted endpoint only.
        """


class UploadError(Exception):
    """An upload did not succeed; the message never holds the endpoint's query string."""


class TransientUploadError(UploadError):
    pass


class PermanentUploadError(UploadError):
    pass
