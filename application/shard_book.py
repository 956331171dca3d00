"""ShardBook: one container's view of each shard's log (local backend), and its writes.

Per invocation: at its first chunk, the snapshot is read (a conditional GET: 304 while it is
unchanged) and the next entries are probed until one is missing (usually the first probe, a
404; a container behind reads the next ones a growing window at a time); at its end, ONE
object holds every chunk only this container holds and the files the invocation finished. A
snapshot is written only when a batch finished files without writing an entry, when no file
of the shard is left open, or every SNAPSHOT_EVERY entries; the entries it lets go (none of
their files open) are deleted right after it. So a finished file's entries outlive it by at
most SNAPSHOT_EVERY entries while other files collect, and nothing stays under pending/ once
every file of the shard is finished (a snapshot each time a file finished cost a stream of 3
MiB files 24 PUTs where 20 do now).

Why a probe's 404 means "head": an entry is deleted only after a snapshot that covers it
was stored, so a container whose snapshot read answers "unchanged" knows every entry past
it still exists. A writer that overlapped another invocation (one that outlived its
timeout) may still find its number free because the other deleted it meanwhile: it reads
the snapshot once more after writing (``_verify``), unless it just stored one itself.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait

from attrs import evolve, field, frozen

from application.batch_state import BatchState
from application.in_context import submit
from application.ports import ByteStream, ShardLedgerMoved, ShardLineage, ShardLog
from application.shared_reads import NotAssembling, Place, SharedReads
from domain import ChunkRef, FileId, LogEntry, LoggedChunk, ShardLedger, StoredChunk, redact

log = logging.getLogger("sfb")

SNAPSHOT_EVERY = 16
"""Entries after which a writer stores a snapshot while files are still open: a container
new to the shard reads at most this many entries' indexes (in 7 round trips: CATCH_UP_READS),
for one more PUT every 16 invocations (+6 % of the PUTs); and the most entries a finished
file's objects outlive it by."""

_SNAPSHOT_ATTEMPTS = 3

CATCH_UP_READS = 4
"""The most entries a container reads at once once it found itself behind the shard (a new or
recycled container, or the other one wrote): one, then two, then this many at a time. The
16 entries a snapshot may leave take 7 round trips instead of 17; one entry behind (the
other container wrote once) costs no read more than reading one after another, and a longer
way at most 3 reads past the last entry, each a GET (12.5 times cheaper than the PUT that
wrote an entry)."""

KEPT_SHARDS = 8
"""Shards whose state a container keeps: Lambda gives a warm container other shards too."""

LINEAGE_DEPTH = 3
"""Reshards in a row that a file sent across all of them is followed through."""

LINEAGE_RETRY_SECONDS = 60.0
"""After a failed lookup of a shard's parents, how long a container goes on without them."""


@frozen
class HeldChunk:
    """A chunk only this container holds, with the digest it was admitted with."""

    file_id: FileId
    put_endpoint: str = field(repr=redact)
    partition: int
    partition_count: int
    ref: ChunkRef
    content: bytes = field(repr=lambda content: f"<{len(content)} bytes>")


class ShardBook:
    def __init__(
        self,
        log: ShardLog,
        clock: Callable[[], float],
        retention_seconds: float,
        snapshot_every: int = SNAPSHOT_EVERY,
        lineage: ShardLineage | None = None,
        read_ahead: int = 1,
    ) -> None:
        """``read_ahead``: chunks an upload reads ahead (ASSEMBLY_READ_AHEAD): how far one
        ranged read of an entry reaches (application/shared_reads.py)."""
        self._log = log
        self._shared = SharedReads(self._read_entry, read_ahead)
        self._lineage = lineage
        self._parents: dict[tuple[str, str], tuple[str, ...]] = {}
        self._lookup_failed: dict[tuple[str, str], float] = {}
        self._ancestors: dict[str, tuple[str, ...]] = {}
        """Per shard, the ancestors read for its last batch: where its finished files are owed."""
        self._clock = clock
        self._retention = retention_seconds
        self._snapshot_every = snapshot_every
        self._lock = threading.RLock()
        self._states: OrderedDict[str, ShardLedger] = OrderedDict()
        self._owed: dict[str, dict[FileId, float]] = {}
        """Per shard, files finished by a batch whose write failed: the next write says so."""
        self._prefetcher: ThreadPoolExecutor | None = None
        self._readers: ThreadPoolExecutor | None = None

    def current(self, batch: BatchState) -> ShardLedger:
        """The shard's state for this batch: read the first time it is asked for, even by
        several files' lanes at once."""
        with self._lock:
            if batch.ledger_error is not None:
                raise batch.ledger_error
            if batch.ledger is None:
                try:
                    batch.ledger = self._with_parents(batch, self._catch_up(batch.shard))
                except Exception as error:
                    # Without it no file can be told finished or not: nothing is taken.
                    batch.ledger_error = error
                    raise
            return batch.ledger

    def prefetch(self, batch: BatchState) -> None:
        """Read the shard's log for ``batch`` in the background (while its records are
        validated): its first chunk then finds it read, or waits less. A failure is kept in
        the batch, as ``current`` keeps it, and raised to every chunk that asks."""
        if self._prefetcher is None:
            self._prefetcher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sfb-log")
        batch.reading = submit(self._prefetcher, self._read_for, batch)

    def read_done(self, batch: BatchState) -> None:
        """Wait for ``batch``'s read begun by ``prefetch``: no request of an invocation goes
        on after it ends (a batch with no valid chunk never asks for the state), and what
        the batch end writes does not depend on whether the read came first."""
        if batch.reading is not None:
            batch.reading.result()

    def _read_for(self, batch: BatchState) -> None:
        with contextlib.suppress(Exception):  # kept in batch.ledger_error by current()
            self.current(batch)

    def catch_up(self, batch: BatchState) -> ShardLedger:
        """Read the shard's log again (after a write found it moved)."""
        with self._lock:
            batch.ledger = self._with_parents(batch, self._catch_up(batch.shard))
            return batch.ledger

    def state(self, shard: str) -> ShardLedger:
        """The shard's state now, for operators (``sfb status``, redrive, the expiry)."""
        with self._lock:
            return self._catch_up(shard)

    def assembling(self, file_id: FileId, parts: Mapping[int, ChunkRef]) -> None:
        """Where each of these chunks is: the entries' chunks of files uploaded at once
        (the ones a batch finishes together) are read together (ChunkSource)."""
        with self._lock:
            states = list(self._states.items())
        places = {}
        for partition, ref in parts.items():
            where = _locate(states, file_id, partition, ref)
            if where is not None:
                shard, stored = where
                places[partition] = Place(
                    _entry_name(shard, stored.seq), stored.offset, stored.size
                )
        self._shared.assembling(file_id, places)

    def assembled(self, file_id: FileId) -> None:
        self._shared.forget(file_id)

    def open(
        self, file_id: FileId, partition: int, partition_count: int, ref: ChunkRef
    ) -> ByteStream:
        """A stored chunk, by a ranged read of the entry that holds it (ChunkSource)."""
        with contextlib.suppress(NotAssembling):  # a disk copy's stand-in, an operator's read
            return self._shared.open(file_id, partition)
        with self._lock:
            states = list(self._states.items())
        where = _locate(states, file_id, partition, ref)
        if where is None:
            raise FileNotFoundError(f"no entry holds partition {partition} of {file_id}")
        shard, stored = where
        return self._log.open_chunk(shard, stored.seq, stored.offset, stored.size)

    def _read_entry(self, name: str, start: int, end: int) -> ByteStream:
        seq, shard = name.split(":", 1)
        return self._log.open_chunk(shard, int(seq), start, end - start)

    def write(self, batch: BatchState, chunks: Sequence[HeldChunk]) -> None:
        """Store ``chunks`` (checked against ``batch.ledger``) and the batch's finished files
        in one entry; a batch that finished files and has no chunk stores the snapshot
        instead; one that changed nothing stores nothing.

        Raises ShardLedgerMoved once ``batch.ledger`` is read again, when another invocation
        wrote first: the caller judges its chunks against it and calls again. Any other
        error leaves the finished files owed to the shard's next write.
        """
        owed = self._owed.pop(batch.shard, {})
        if not chunks and not batch.finished and not owed and batch.ledger is None:
            return
        try:
            self._write(batch, chunks, owed)
        except BaseException:
            owed.update(dict.fromkeys(batch.finished - owed.keys(), self._clock()))
            self._owed[batch.shard] = owed
            raise
        self._tell_parents(batch)

    def give_up(self, shard: str, file_id: FileId) -> None:
        """Stop collecting a file (the expiry): an entry saying so, then the snapshot that
        lets its entries go. Raises ShardLedgerMoved when another writer was first."""
        batch = BatchState(0, shard=shard)
        state = self.current(batch)
        entry = LogEntry(state.seq + 1, self._clock(), _writer(), given_up=frozenset({file_id}))
        self._create(batch, entry, [])
        self._settle(batch, batch.ledger or state, entry, eager=True)

    def _write(
        self, batch: BatchState, chunks: Sequence[HeldChunk], owed: dict[FileId, float]
    ) -> None:
        state = self.current(batch)
        now = self._clock()
        finished = {f: owed.get(f, now) for f in batch.finished | owed.keys() if not state.knows(f)}
        if chunks:
            entry = _entry(state, chunks, finished, now)
            self._create(batch, entry, [chunk.content for chunk in chunks])
            self._settle(batch, batch.ledger or state, entry)
        elif finished or _idle(state):
            self._settle(batch, state.finished_at(finished, now, finished), None)

    def _create(self, batch: BatchState, entry: LogEntry, contents: Sequence[bytes]) -> None:
        try:
            self._log.write_entry(batch.shard, entry, contents)
        except ShardLedgerMoved:
            self.catch_up(batch)
            raise
        with self._lock:
            batch.ledger = (batch.ledger or ShardLedger()).folded(entry, batch.shard)
            self._remember(batch.shard, batch.ledger)

    def _settle(
        self, batch: BatchState, state: ShardLedger, written: LogEntry | None, eager: bool = False
    ) -> None:
        """Store a snapshot when ``written`` is None (the batch's finished files go in it),
        when no file is left open (``_idle``), or every SNAPSHOT_EVERY entries; then delete
        what it lets go. ``eager``: whenever entries could go (a give-up, whose promise is
        that the file's chunks are deleted; a parent's log, which the stream no longer
        writes). An entry just written is verified unless a snapshot stored after it vouches.
        A snapshot another writer changed meanwhile is read again and the write retried."""
        for attempt in range(1, _SNAPSHOT_ATTEMPTS + 1):
            wanted = (
                written is None
                or (bool(state.deletable) if eager else _idle(state))
                or state.uncovered >= self._snapshot_every
            )
            if not wanted:
                break
            snapshot = state.pruned(self._clock() - self._retention).snapshot()
            try:
                self._log.write_snapshot(batch.shard, snapshot)
            except ShardLedgerMoved:
                if written is None:
                    self.catch_up(batch)
                    raise
                self._verify(batch, written)
                if attempt == _SNAPSHOT_ATTEMPTS:
                    log.warning(
                        "the shard's snapshot kept changing: another invocation runs on this "
                        "shard at the same time; the next writer stores it",
                        extra={"shard": batch.shard},
                    )
                    return
                state = self.catch_up(batch)
                continue
            self._forget_entries(batch.shard, state.deletable)
            with self._lock:
                batch.ledger = snapshot
                self._remember(batch.shard, snapshot)
            return
        if written is not None:
            self._verify(batch, written)

    def _verify(self, batch: BatchState, written: LogEntry) -> None:
        """Make sure no snapshot stored meanwhile covers ``written``'s number without it: if
        one does, that number was another entry's, deleted since, and ours is unreachable."""
        read = batch.ledger or ShardLedger()
        stored = self._log.read_snapshot(batch.shard)
        if stored is None or stored.version == read.version or stored.covered < written.seq:
            return
        live = stored.entries.get(written.seq)
        if live is not None and live.writer == written.writer:
            return
        log.warning(
            "the shard's log moved past this batch's entry during the batch: another "
            "invocation ran on this shard at the same time; writing it again",
            extra={"shard": batch.shard, "entry": written.seq},
        )
        self._log.delete_entries(batch.shard, [written.seq])
        self.catch_up(batch)
        raise ShardLedgerMoved(f"entry {written.seq} was written after its number was reused")

    def _forget_entries(self, shard: str, seqs: Iterable[int]) -> None:
        gone = sorted(seqs)
        if not gone:
            return
        try:
            self._log.delete_entries(shard, gone)
        except Exception as error:
            log.warning(
                "entries of finished files could not be deleted; the pending/ lifecycle "
                "rule expires them",
                extra={"shard": shard, "reason": f"{type(error).__name__}: {error}"},
            )

    def _with_parents(self, batch: BatchState, state: ShardLedger) -> ShardLedger:
        """``state`` with what its parents' logs still hold, after a reshard.

        A file sent across a split or merge has its first chunks in a parent's log and the
        rest in a child's (the partition key keeps a file's chunks on one child). Settling
        relies on a parent's records being processed before its children's. The child reads
        its parents' logs for each batch while one holds an open file, judges and assembles
        such a file against both, and tells the parent once it finished it
        (``_tell_parents``), so the parent's entries can go. Once no parent holds an open
        file the lineage is settled: the parents' finished files become the child's and the
        parents are not read again. The lineage is looked up (ListShards) while the shard's
        log does not tell it.
        """
        self._ancestors.pop(batch.shard, None)
        lineage = state.lineage
        if lineage is None:
            lineage = self._lookup(batch.stream, batch.shard)
            if lineage is None:
                return state.inheriting(())
            state = evolve(state, lineage=lineage)  # the next snapshot stores it
        if lineage:
            visited: list[str] = []
            parents = [
                (shard, self._parent(batch.stream, shard, LINEAGE_DEPTH, visited))
                for shard in lineage
            ]
            # A parent whose entries wait for a snapshot (a crash after its last change) is
            # kept too: the child stores that snapshot (``_tell_parents``).
            if any(p.files or p.inherited or p.deletable for _, p in parents):
                self._ancestors[batch.shard] = tuple(visited)
                state = state.inheriting(parents)
                self._remember(batch.shard, state)  # assembly locates parents' chunks in it
                return state
            state = self._settled(state, [parent for _, parent in parents])
        state = state.inheriting(())
        self._remember(batch.shard, state)
        return state

    def _settled(self, state: ShardLedger, parents: Sequence[ShardLedger]) -> ShardLedger:
        """No parent holds an open file: the files they finished become this shard's, so a
        late chunk of one stays a duplicate once the parents are no longer read."""
        now = self._clock()
        times: dict[FileId, float] = {}
        for parent in parents:
            times.update(parent.finished)
            times.update(dict.fromkeys(parent.inherited_finished - times.keys(), now))
        fresh = {f: at for f, at in times.items() if f not in state.finished}
        return evolve(state, lineage=()).finished_at(fresh, now, fresh)

    def _parent(self, stream: str, shard: str, depth: int, visited: list[str]) -> ShardLedger:
        """A parent's state, with what its own parents still hold (its log names them, or
        they are looked up: it may have been resharded before it stored a snapshot)."""
        visited.append(shard)
        state = self._catch_up(shard)
        lineage = state.lineage if state.lineage is not None else self._lookup(stream, shard)
        if depth > 1 and lineage:
            state = state.inheriting(
                [(grand, self._parent(stream, grand, depth - 1, visited)) for grand in lineage]
            )
        return state

    def _lookup(self, stream: str, shard: str) -> tuple[str, ...] | None:
        """The shard's parents, asked once per container; None while they cannot be told."""
        if self._lineage is None or not stream or not shard:
            return None
        key = (stream, shard)
        known = self._parents.get(key)
        if known is not None:
            return known
        failed = self._lookup_failed.get(key)
        if failed is not None and self._clock() - failed < LINEAGE_RETRY_SECONDS:
            return None
        try:
            parents = self._lineage.parents(stream, shard)
        except Exception as error:
            self._lookup_failed[key] = self._clock()
            log.warning(
                "the shard's parents could not be looked up: a file sent across a reshard "
                "of this shard is not followed until they are",
                extra={"shard": shard, "reason": f"{type(error).__name__}: {error}"},
            )
            return None
        self._parents[key] = parents
        return parents

    def _tell_parents(self, batch: BatchState) -> None:
        """Note in each parent's log the files this batch finished that it holds open.

        Never raises: a parent not told now is told after a later batch, since the parents
        are read (and the files owed) until none of them holds an open file.
        """
        state = batch.ledger
        if state is None:
            return
        owed = state.owed_upstream
        for shard in self._ancestors.get(batch.shard, ()):
            held = self._states.get(shard)
            files = owed & held.files.keys() if held is not None else frozenset()
            if held is None or not (files or held.deletable):
                continue
            try:
                self._finish_in(shard, {f: state.finished[f] for f in files})
            except Exception as error:
                log.warning(
                    "files finished after a reshard could not be noted in their parent "
                    "shard's log; a later batch notes them",
                    extra={"shard": shard, "reason": f"{type(error).__name__}: {error}"},
                )

    def _finish_in(self, shard: str, finished: dict[FileId, float]) -> None:
        """An entry in ``shard``'s log that finishes ``finished``, then the snapshot that lets
        their entries go (that snapshot alone if they are finished there already); read
        again and retried when another writer was first."""
        for attempt in range(1, _SNAPSHOT_ATTEMPTS + 1):
            batch = BatchState(0, shard=shard)
            with self._lock:
                batch.ledger = state = self._catch_up(shard)
            files = {f: at for f, at in finished.items() if state.is_open(f)}
            if not files:
                if state.deletable:
                    self._settle(batch, state, None)
                return
            entry = LogEntry(state.seq + 1, self._clock(), _writer(), finished=files)
            try:
                self._create(batch, entry, [])
            except ShardLedgerMoved:
                if attempt == _SNAPSHOT_ATTEMPTS:
                    raise
                continue
            self._settle(batch, batch.ledger or state, entry, eager=True)
            return

    def _catch_up(self, shard: str) -> ShardLedger:
        """The snapshot, then every entry after it. A container that knows the shard probes
        its next entry while the snapshot is read (one round trip for both): the probe
        stands when the snapshot read ends where the known state did, since no entry past a
        snapshot is deleted before a newer snapshot covering it is stored."""
        known = self._states.get(shard)
        probe = None
        if known is not None:
            probe = submit(self._reads(), self._log.read_entry, shard, known.seq + 1)
        stored = self._log.read_snapshot(shard)
        if stored is None:
            state = known if known is not None and known.version == 0 else ShardLedger()
        elif known is not None and known.version == stored.version:
            state = known
        else:
            state = stored
        if probe is not None and known is not None and state.seq == known.seq:
            entry = probe.result()
        else:
            entry = self._log.read_entry(shard, state.seq + 1)
        if entry is not None:
            state = state.folded(entry, shard)
            for entry in self._following(shard, state.seq + 1):
                state = state.folded(entry, shard)
        self._remember(shard, state)
        return state

    def _following(self, shard: str, seq: int) -> Iterator[LogEntry]:
        """Entries ``seq``, ``seq + 1``, ... up to the first missing one, read a window at a
        time, each twice the last up to CATCH_UP_READS. A read past the missing one is not
        looked at (one in order would never have been made); every read of a window ends
        before the window is: none outlives the batch."""
        size = 1
        while True:
            window = [
                submit(self._reads(), self._log.read_entry, shard, seq + i) for i in range(size)
            ]
            wait(window)
            for read in window:
                entry = read.result()
                if entry is None:
                    return
                yield entry
            seq += size
            size = min(2 * size, CATCH_UP_READS)

    def _reads(self) -> ThreadPoolExecutor:
        """The probe and the windows' reads of entries (one catch-up at a time, under the
        lock)."""
        if self._readers is None:
            self._readers = ThreadPoolExecutor(CATCH_UP_READS, thread_name_prefix="sfb-catch-up")
        return self._readers

    def _remember(self, shard: str, state: ShardLedger) -> None:
        self._states[shard] = state
        self._states.move_to_end(shard)
        while len(self._states) > KEPT_SHARDS:
            self._states.popitem(last=False)


def _idle(state: ShardLedger) -> bool:
    """No file of the shard is open and some entries could go: the snapshot that lets them
    go is worth its PUT now (while files collect, the next periodic one takes them)."""
    return bool(state.deletable) and not state.files


def _writer() -> str:
    return uuid.uuid4().hex[:16]


def _locate(
    states: Sequence[tuple[str, ShardLedger]], file_id: FileId, partition: int, ref: ChunkRef
) -> tuple[str, StoredChunk] | None:
    """The shard whose entry holds the chunk, and where: the newest state that knows it."""
    for shard, state in reversed(states):
        where = state.locate(file_id, partition, ref.digest)
        if where is not None:
            return where.shard or shard, where
    return None


def _entry_name(shard: str, seq: int) -> str:
    """An entry as SharedReads names it (ShardBook._read_entry reads it back)."""
    return f"{seq}:{shard}"


def _entry(
    state: ShardLedger, chunks: Sequence[HeldChunk], finished: dict[FileId, float], now: float
) -> LogEntry:
    logged = []
    offset = 0
    for chunk in chunks:
        logged.append(
            LoggedChunk(
                chunk.file_id,
                chunk.partition,
                chunk.partition_count,
                chunk.ref.digest,
                offset,
                chunk.ref.size,
            )
        )
        offset += chunk.ref.size
    endpoints = {c.file_id: c.put_endpoint for c in chunks if not state.is_open(c.file_id)}
    return LogEntry(state.seq + 1, now, _writer(), tuple(logged), endpoints, finished)
