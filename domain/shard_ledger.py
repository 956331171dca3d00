"""One shard's state on the local backend, as its log folds it (pure: no I/O here).

The log is a sequence of entries, one per invocation that had something to make durable:
its new chunks (bytes stored in the entry's own object, at an offset), the endpoint of each
file whose chunks first became durable there, the files it finished and those given up. A
shard's state is its snapshot (the fold of the entries up to ``seq``) with every later entry
folded on, in order. An entry is written only by one that knew the head (a create-only
write), so folding is plain application: the writer checked its chunks against the state it
folded, and the rules below (first count and first bytes stand, finished stays finished)
only guard against what a buggy or overlapping writer could still add.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from attrs import evolve, field, frozen

from domain.chunk import ChunkRef
from domain.endpoint import FileId, redact
from domain.partition_set import PartitionSet


def _frozen_map(value: Mapping[FileId, float]) -> Mapping[FileId, float]:
    return dict(value)


MAX_FINISHED = 5_000
"""Finished files a shard's state remembers at most (about 50 bytes each, so about 250 KB
in its snapshot at worst): minutes of a stream of small files, days of one of large files."""


@frozen
class StoredChunk:
    """Where a partition's bytes are: ``size`` bytes at ``offset`` in entry ``seq``'s object
    of ``shard``'s log (a parent shard's after a reshard, this one's otherwise)."""

    digest: str
    size: int
    seq: int
    offset: int
    shard: str = ""

    @property
    def ref(self) -> ChunkRef:
        return ChunkRef(self.digest, self.size)


@frozen
class LoggedFile:
    """A file with chunks in the log and no final answer yet."""

    partition_count: int
    put_endpoint: str = field(repr=redact)
    first_seen: float
    parts: Mapping[int, StoredChunk] = field(factory=dict)

    @property
    def size(self) -> int:
        return sum(part.size for part in self.parts.values())

    @property
    def is_complete(self) -> bool:
        return len(self.parts) == self.partition_count

    def listing(self) -> PartitionSet:
        """What the log holds of the file, as the admission rules see it (no locations)."""
        return PartitionSet(self.partition_count, {p: c.ref for p, c in self.parts.items()})


@frozen
class LoggedChunk:
    """One chunk of an entry: whose, which, and where in the entry's object."""

    file_id: FileId
    partition: int
    partition_count: int
    digest: str
    offset: int
    size: int


@frozen
class LogEntry:
    """One invocation's changes to its shard. ``writer`` is unique to the write: it tells
    the entry from another that a stale writer could put under the same number."""

    seq: int
    at: float
    writer: str
    chunks: tuple[LoggedChunk, ...] = ()
    endpoints: Mapping[FileId, str] = field(factory=dict, repr=False)
    finished: Mapping[FileId, float] = field(factory=dict, converter=_frozen_map)
    given_up: frozenset[FileId] = frozenset()

    @property
    def size(self) -> int:
        """Bytes of chunks the entry's object holds."""
        return sum(chunk.size for chunk in self.chunks)


@frozen
class LiveEntry:
    """An entry whose object still exists: who wrote it, and the files with chunks in it
    (the object may go once none of them is open)."""

    writer: str
    files: frozenset[FileId] = frozenset()


@frozen
class ShardLedger:
    """The state of one shard's files: open ones with where each chunk is, finished ones
    (with the time, so that a container that never saw a file cannot finish it again with
    other bytes, and a late duplicate of it leaves nothing behind), and the live entries.

    ``seq`` is the last entry folded in; ``covered`` the last one the stored snapshot
    holds; ``version`` counts the snapshots written (what a conditional write follows).
    """

    version: int = 0
    seq: int = 0
    covered: int = 0
    files: Mapping[FileId, LoggedFile] = field(factory=dict)
    finished: Mapping[FileId, float] = field(factory=dict, converter=_frozen_map)
    entries: Mapping[int, LiveEntry] = field(factory=dict)
    lineage: tuple[str, ...] | None = None
    """The parent shards whose logs may still hold files this shard goes on with (a reshard):
    None until looked up, () once none of them has an open file (nothing left to inherit)."""
    inherited: Mapping[FileId, LoggedFile] = field(factory=dict, eq=False)
    """The parents' open files, each part tagged with the shard whose log holds it: read from
    their logs for the batch, never stored in this shard's."""
    inherited_finished: frozenset[FileId] = field(default=frozenset(), eq=False)
    """Files the parents finished: a late chunk of one is a duplicate here too."""

    def knows(self, file_id: FileId) -> bool:
        """True when the file was finished: a chunk of it is a late duplicate."""
        return file_id in self.finished or file_id in self.inherited_finished

    def is_open(self, file_id: FileId) -> bool:
        return file_id in self.files

    @property
    def open(self) -> frozenset[FileId]:
        return frozenset(self.files)

    def listing(self, file_id: FileId) -> PartitionSet | None:
        file = self.file(file_id)
        return file.listing() if file is not None else None

    def file(self, file_id: FileId) -> LoggedFile | None:
        """The file as this shard goes on with it: what its parents hold of it (their chunks
        came first, so they stand), then what this shard's own log adds."""
        own = self.files.get(file_id)
        inherited = self.inherited.get(file_id)
        if inherited is None or own is None:
            return own or inherited
        return _merged(inherited, own)

    def locate(self, file_id: FileId, partition: int, digest: str) -> StoredChunk | None:
        file = self.file(file_id)
        part = file.parts.get(partition) if file is not None else None
        return part if part is not None and part.digest == digest else None

    def inheriting(self, parents: Iterable[tuple[str, ShardLedger]]) -> ShardLedger:
        """This state with its parents' open and finished files (each parent as its own
        parents leave it): what a chunk of a file sent across the reshard is judged against."""
        inherited: dict[FileId, LoggedFile] = {}
        finished: set[FileId] = set()
        for shard, parent in parents:
            finished |= parent.finished.keys() | parent.inherited_finished
            for file_id in parent.files.keys() | parent.inherited.keys():
                held = parent.file(file_id)
                assert held is not None
                tagged = evolve(
                    held,
                    parts={
                        p: c if c.shard else evolve(c, shard=shard) for p, c in held.parts.items()
                    },
                )
                first = inherited.get(file_id)
                inherited[file_id] = tagged if first is None else _merged(first, tagged)
        return evolve(self, inherited=inherited, inherited_finished=frozenset(finished))

    @property
    def owed_upstream(self) -> frozenset[FileId]:
        """Files this shard finished that a parent still holds open: the parent's log must
        be told, or its expiry would give them up and its entries would stay."""
        return frozenset(self.finished.keys() & self.inherited.keys())

    def folded(self, entry: LogEntry, shard: str = "") -> ShardLedger:
        """The state once ``entry`` (the next one) is applied.

        A chunk of a finished file, of another partitionCount than the file's first, or of
        a partition already held is left out: the first count and the first bytes stand.
        """
        if entry.seq != self.seq + 1:
            raise ValueError(f"entry {entry.seq} does not follow {self.seq}")
        files = dict(self.files)
        grown: dict[FileId, dict[int, StoredChunk]] = {}
        stood: set[FileId] = set()
        for chunk in entry.chunks:
            if chunk.file_id in self.finished or chunk.file_id in entry.given_up:
                continue
            file = files.get(chunk.file_id)
            if file is None:
                file = LoggedFile(
                    chunk.partition_count,
                    entry.endpoints.get(chunk.file_id, ""),
                    entry.at,
                )
                files[chunk.file_id] = file
            parts = grown.get(chunk.file_id)
            if parts is None:
                parts = grown[chunk.file_id] = dict(file.parts)
            if (
                chunk.partition_count != file.partition_count
                or not 0 <= chunk.partition < file.partition_count
                or chunk.partition in parts
            ):
                continue
            parts[chunk.partition] = StoredChunk(
                chunk.digest, chunk.size, entry.seq, chunk.offset, shard
            )
            stood.add(chunk.file_id)
        for file_id, parts in grown.items():
            files[file_id] = evolve(files[file_id], parts=parts)
        entries = dict(self.entries)
        entries[entry.seq] = LiveEntry(entry.writer, frozenset(stood))
        # A file none of whose chunks stood opens nothing.
        files = {f: v for f, v in files.items() if v.parts}
        state = evolve(self, seq=entry.seq, files=files, entries=entries)
        return state.finished_at(entry.finished.keys(), entry.at, entry.finished).given_up(
            entry.given_up
        )

    def finished_at(
        self,
        file_ids: Iterable[FileId],
        now: float,
        times: Mapping[FileId, float] | None = None,
    ) -> ShardLedger:
        ids = frozenset(file_ids)
        if not ids:
            return self
        finished = dict(self.finished)
        for file_id in ids:
            finished.setdefault(file_id, (times or {}).get(file_id, now))
        files = {f: v for f, v in self.files.items() if f not in ids}
        return evolve(self, files=files, finished=finished)

    def given_up(self, file_ids: Iterable[FileId]) -> ShardLedger:
        """Files the expiry gave up stop collecting; a later chunk starts them again."""
        ids = frozenset(file_ids) & self.files.keys()
        if not ids:
            return self
        # Its entries no longer hold it, even if a later chunk starts it again.
        entries = {
            seq: live if not live.files & ids else evolve(live, files=live.files - ids)
            for seq, live in self.entries.items()
        }
        files = {f: v for f, v in self.files.items() if f not in ids}
        return evolve(self, files=files, entries=entries)

    def pruned(self, before: float, keep_at_most: int = MAX_FINISHED) -> ShardLedger:
        """Forget files finished before ``before`` (no redelivery reaches back that far), and
        all but the ``keep_at_most`` latest: every new container reads the snapshot, so its
        size must not grow with the stream's rate. Sorts only when something is to go: a
        stream of small files writes a snapshot of thousands of finished files every batch."""
        if len(self.finished) <= keep_at_most and all(
            at >= before for at in self.finished.values()
        ):
            return self
        recent = sorted(((at, f) for f, at in self.finished.items() if at >= before), reverse=True)[
            :keep_at_most
        ]
        kept = {f: at for at, f in recent}
        return self if len(kept) == len(self.finished) else evolve(self, finished=kept)

    @property
    def deletable(self) -> frozenset[int]:
        """Live entries no open file has a chunk in: their objects may go once a snapshot
        that holds everything else they said is stored."""
        return frozenset(
            seq for seq, live in self.entries.items() if not live.files & self.files.keys()
        )

    @property
    def uncovered(self) -> int:
        """Entries a container starting from the stored snapshot would read one by one."""
        return self.seq - self.covered

    def snapshot(self) -> ShardLedger:
        """The next snapshot: everything folded so far, without the entries it lets go."""
        gone = self.deletable
        return evolve(
            self,
            version=self.version + 1,
            covered=self.seq,
            entries={s: e for s, e in self.entries.items() if s not in gone},
        )

    def same_as(self, other: ShardLedger) -> bool:
        """Same files and entries, whatever the version: nothing to write."""
        return (
            self.seq == other.seq
            and dict(self.files) == dict(other.files)
            and dict(self.finished) == dict(other.finished)
            and dict(self.entries) == dict(other.entries)
        )


def _merged(first: LoggedFile, then: LoggedFile) -> LoggedFile:
    """``first``'s parts stand; ``then`` adds the partitions it lacks, of the same count."""
    if then.partition_count != first.partition_count:
        return first
    parts = dict(then.parts)
    parts.update(first.parts)
    return evolve(first, first_seen=min(first.first_seen, then.first_seen), parts=parts)


def shard_of(event_id: str) -> str:
    """The shard part of a Kinesis eventID (``shardId-000000000001:4959...``); "" if none."""
    return event_id.split(":", 1)[0] if event_id else ""
