"""Warm containers sharing a shard's log (local backend): a container that missed entries, a
fresh one and an overlapping writer all judge against the whole log, every upload carries
each partition's first bytes, nothing stays under pending/, and the hot path costs one PUT
an invocation and no LIST."""

from __future__ import annotations

import hashlib
import threading

import pytest
from attrs import evolve

from application.batch_state import BatchState
from application.records import StreamRecord
from application.shard_book import CATCH_UP_READS, SNAPSHOT_EVERY, ShardBook
from domain import ChunkRef, FileId, LogEntry, LoggedChunk, RejectionReason, ShardLedger
from domain.shard_ledger import MAX_FINISHED
from tests.factories import file_records, payload, raw_record, record
from tests.fakes import FakeArchive, FakeContainer, FakeRemoteStore, FakeUploader

F = "https://bucket.example.com/f.bin?X-Amz-Signature=SECRET"
G = "https://bucket.example.com/g.bin?X-Amz-Signature=SECRET"
FILE_F = FileId.for_endpoint(F)


def parts(url: str, count: int) -> list[bytes]:
    return [f"{url[-30:-24]} part {p} ".encode() * 3 for p in range(count)]


def chunk(url: str, partition: int, content: bytes, count: int = 4) -> StreamRecord:
    return record(payload(url, partition, count, content))


@pytest.mark.parametrize("finisher", ["the container that missed entries", "a fresh container"])
def test_a_container_that_missed_entries_or_never_saw_the_shard_judges_against_the_whole_log(
    remote: FakeRemoteStore, uploader: FakeUploader, archive: FakeArchive, finisher: str
) -> None:
    f, g = parts(F, 4), parts(G, 4)
    a, b = FakeContainer(remote, uploader, archive), FakeContainer(remote, uploader, archive)
    assert a.process([chunk(F, 0, f[0]), chunk(G, 0, g[0])]) == []
    assert b.process([chunk(F, 1, f[1])]) == []
    assert a.process([chunk(F, 2, f[2]), chunk(G, 1, g[1])]) == []  # b misses this entry
    last = b if finisher == "the container that missed entries" else a.recycled()

    retry = chunk(F, 2, b"other bytes of partition 2")  # a producer's retry, other bytes
    assert last.process([retry, chunk(F, 3, f[3]), chunk(G, 2, g[2]), chunk(G, 3, g[3])]) == []

    assert uploader.bodies_for(F) == [b"".join(f)]
    assert uploader.bodies_for(G) == [b"".join(g)]
    assert archive.reasons() == [RejectionReason.CONTENT_CONFLICT]
    assert remote.pending() == []
    assert last.process([chunk(F, 0, f[0])]) == []  # a late duplicate leaves nothing
    assert remote.pending() == []


def test_an_overlapping_writer_storing_other_bytes_first_makes_the_batch_chunk_a_late_rejection(
    remote: FakeRemoteStore, uploader: FakeUploader, archive: FakeArchive
) -> None:
    f = parts(F, 4)
    container = FakeContainer(remote, uploader, archive)
    theirs = b"their bytes of partition 0"

    def overlapping_write() -> None:  # another invocation on the shard, past its timeout
        seq = remote.log_state().seq + 1
        stored = LoggedChunk(FILE_F, 0, 4, _digest(theirs), 0, len(theirs))
        remote.log[("", seq)] = (LogEntry(seq, 1.0, "them", (stored,), {FILE_F: F}), theirs)

    remote.before_log_write = [overlapping_write]
    mine = [chunk(F, 0, f[0]), chunk(F, 1, f[1])]

    assert container.process(mine) == []

    assert archive.reasons() == [RejectionReason.CONTENT_CONFLICT]
    assert remote.partitions_of(FILE_F) == {0, 1}
    assert container.recycled().process([chunk(F, 2, f[2]), chunk(F, 3, f[3])]) == []
    assert uploader.bodies_for(F) == [theirs + b"".join(f[1:])]
    assert remote.pending() == []


def test_an_entry_written_under_a_number_another_writer_used_and_deleted_is_written_again(
    remote: FakeRemoteStore, uploader: FakeUploader, archive: FakeArchive
) -> None:
    """The overlap that a probe cannot see: between this batch's read and its write, another
    invocation wrote the next entry, a snapshot covering it, and deleted it (its files all
    finished). The create-only write then succeeds under a number no reader will look at."""
    f = parts(F, 4)
    container = FakeContainer(remote, uploader, archive)
    assert container.process([chunk(F, 0, f[0])]) == []
    theirs = FileId.for_endpoint("https://bucket.example.com/theirs.bin")

    def overlapping_finisher() -> None:
        state = remote.log_state()
        entry = LogEntry(state.seq + 1, 1.0, "them", finished={theirs: 1.0})
        remote.snapshots[""] = state.folded(entry).snapshot()  # covers it; it holds nothing
        # ...so its writer deletes it right away: its number is free again.

    remote.before_log_write = [overlapping_finisher]
    assert container.process([chunk(F, 1, f[1])]) == []

    assert remote.partitions_of(FILE_F) == {0, 1}  # reachable from the snapshot
    assert container.recycled().process([chunk(F, 2, f[2]), chunk(F, 3, f[3])]) == []
    assert uploader.bodies_for(F) == [b"".join(f)]
    assert remote.pending() == []


def test_three_interleaved_files_over_two_alternating_containers_cost_one_put_an_invocation(
    remote: FakeRemoteStore, uploader: FakeUploader, archive: FakeArchive
) -> None:
    """The bench's layout in small: 3 files of 8 chunks interleaved, 4 chunks an invocation."""
    contents = {f"https://bucket.example.com/{n}.bin?sig=S": bytes([n]) * 7_000 for n in range(3)}
    by_file = [file_records(url, data, 1_000) for url, data in contents.items()]
    stream = [records[i] for i in range(7) for records in by_file]
    containers = [FakeContainer(remote, uploader, archive) for _ in range(2)]
    invocations = [stream[i : i + 4] for i in range(0, len(stream), 4)]

    for n, batch in enumerate(invocations):
        assert containers[n % 2].process(batch) == []

    for url, data in contents.items():
        assert uploader.bodies_for(url) == [data]
    assert remote.pending() == []
    ops = remote.operations
    assert ops["get"] == ops["put"] == 0  # no LIST, no object a chunk
    assert ops["write_entry"] <= len(invocations)
    # While files collect, a finished file's entries wait for the periodic snapshot: one
    # snapshot in all, once no file is left open, lets every entry go.
    assert ops["write_snapshot"] == 1
    assert ops["read_snapshot"] <= 2 * len(invocations)


def test_a_finished_files_entries_go_with_the_periodic_snapshot_while_another_file_collects(
    remote: FakeRemoteStore, uploader: FakeUploader, archive: FakeArchive
) -> None:
    f, g = parts(F, 2), parts(G, SNAPSHOT_EVERY + 4)
    container = FakeContainer(remote, uploader, archive)
    count = len(g)
    assert container.process([chunk(F, 0, f[0], 2)]) == []  # entry 1: F alone
    assert container.process([chunk(F, 1, f[1], 2), chunk(G, 0, g[0], count)]) == []

    assert uploader.bodies_for(F) == [b"".join(f)]
    assert ("", 1) in remote.log  # F is finished, but G collects: no snapshot yet
    assert remote.operations["write_snapshot"] == 0
    for partition in range(1, SNAPSHOT_EVERY):
        assert container.process([chunk(G, partition, g[partition], count)]) == []
    assert ("", 1) not in remote.log  # the periodic snapshot let it go
    assert remote.operations["write_snapshot"] == 1
    assert remote.log_state().is_open(FileId.for_endpoint(G))

    rest = [chunk(G, p, g[p], count) for p in range(SNAPSHOT_EVERY, count)]
    assert container.process(rest) == []

    assert uploader.bodies_for(G) == [b"".join(g)]
    assert remote.pending() == []  # no file left open: every entry goes at once


def test_files_uploaded_at_once_read_the_entry_they_share_once(remote: FakeRemoteStore) -> None:
    """The other container's entry holds chunks of F and G side by side: once both files'
    uploads say what they read from here, the first read brings the others along."""
    book = ShardBook(remote, clock=remote.clock, retention_seconds=60.0, read_ahead=8)
    g_id = FileId.for_endpoint(G)
    contents = {(f, p): f"{f} {p} ".encode() * 50 for f in (FILE_F, g_id) for p in range(2)}
    logged, offset = [], 0
    for (file_id, partition), content in contents.items():
        digest = _digest(content)
        logged.append(LoggedChunk(file_id, partition, 2, digest, offset, len(content)))
        offset += len(content)
    entry = LogEntry(1, 1.0, "them", tuple(logged), {FILE_F: F, g_id: G})
    remote.log[("", 1)] = (entry, b"".join(contents.values()))
    book.state("")
    refs = {
        file_id: {
            p: ChunkRef(_digest(contents[(file_id, p)]), len(contents[(file_id, p)]))
            for p in range(2)
        }
        for file_id in (FILE_F, g_id)
    }
    for file_id, parts_of in refs.items():
        book.assembling(file_id, parts_of)
    before = remote.operations["open"]

    for (file_id, partition), content in contents.items():
        assert book.open(file_id, partition, 2, refs[file_id][partition]).read() == content

    assert remote.operations["open"] - before == 1
    for file_id in refs:
        book.assembled(file_id)
    ref = refs[FILE_F][1]
    assert book.open(FILE_F, 1, 2, ref).read() == contents[(FILE_F, 1)], "read alone"
    assert remote.operations["open"] - before == 2


def _digest(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


@pytest.mark.parametrize(
    ("behind", "reads"),
    [(1, 2), (2, 4), (3, 4), (4, 8), (7, 8), (SNAPSHOT_EVERY - 1, 16)],
)
def test_a_container_behind_the_shard_reads_the_entries_it_missed_in_growing_windows(
    remote: FakeRemoteStore, uploader: FakeUploader, archive: FakeArchive, behind: int, reads: int
) -> None:
    """After the first read, windows of 1, 2, then CATCH_UP_READS entries, each read at once
    on the catch-up threads: one entry behind (the other container wrote once) costs no read
    more than reading one after another, a longer way at most 3 reads past the last entry."""
    count = behind + 1
    f = parts(F, count)
    a = FakeContainer(remote, uploader, archive)
    for partition in range(behind):
        assert a.process([chunk(F, partition, f[partition], count)]) == []
    readers: list[str] = []
    read_entry = remote.read_entry

    def noted(shard: str, seq: int) -> LogEntry | None:
        readers.append(threading.current_thread().name)
        return read_entry(shard, seq)

    remote.read_entry = noted  # type: ignore[method-assign]

    assert a.recycled().process([chunk(F, behind, f[behind], count)]) == []

    assert len(readers) == reads
    assert len(readers) - (behind + 1) <= CATCH_UP_READS - 1
    assert sum(name.startswith("sfb-catch-up") for name in readers) == reads - 1
    assert uploader.bodies_for(F) == [b"".join(f)]
    assert remote.pending() == []


def test_a_container_given_two_shards_keeps_their_logs_apart(
    remote: FakeRemoteStore, uploader: FakeUploader, archive: FakeArchive
) -> None:
    """Lambda hands a warm container batches of other shards too: each shard's log is folded
    and written on its own, and a file's chunks are judged against its shard's log only."""
    f = parts(F, 2)
    container = FakeContainer(remote, uploader, archive)

    def on(shard: str, *records: StreamRecord) -> list[StreamRecord]:
        return [evolve(r, source=f"{shard}:{r.sequence_number}") for r in records]

    assert container.process(on("shardId-1", chunk(F, 0, f[0], count=2))) == []
    assert container.process(on("shardId-2", chunk(F, 0, b"other bytes", count=2))) == []
    assert container.process(on("shardId-1", chunk(F, 1, f[1], count=2))) == []

    assert uploader.bodies_for(F) == [b"".join(f)]
    assert archive.quarantined == []
    assert remote.log_state("shardId-2").open == {FILE_F}  # still collecting there
    assert remote.log_state("shardId-1").open == frozenset()


NOW = 1_000_000.0
RETENTION = 60.0


@pytest.mark.parametrize(
    ("ages", "kept"),
    [
        pytest.param([10.0, 20.0], 2, id="all recent: every one kept"),
        pytest.param([10.0, RETENTION + 1], 1, id="one past the retention: forgotten"),
        pytest.param([10.0] * (MAX_FINISHED + 1), MAX_FINISHED, id="over the cap: the latest"),
    ],
)
def test_a_snapshot_forgets_finished_files_past_the_retention_or_the_cap(
    remote: FakeRemoteStore, ages: list[float], kept: int
) -> None:
    """The snapshot write skips the sort when nothing is to be forgotten: it must still
    forget what is too old and cap the rest."""
    finished = {FileId(f"{n:032x}"): NOW - age for n, age in enumerate(ages)}
    remote.snapshots[""] = ShardLedger(version=1, finished=finished)
    book = ShardBook(remote, clock=lambda: NOW, retention_seconds=RETENTION)
    batch = BatchState(1)
    newest = FileId.for_endpoint(F)
    batch.finished.add(newest)

    book.write(batch, [])

    stored = remote.snapshots[""].finished
    assert newest in stored
    assert len(stored) == min(kept + 1, MAX_FINISHED)
    assert all(NOW - at <= RETENTION for at in stored.values())


@pytest.mark.parametrize("refused", ["read_snapshot", "read_entry"])
@pytest.mark.parametrize("lanes", ["1", "32"])
def test_a_log_that_cannot_be_read_reports_every_chunk_of_the_batch_and_a_redelivery_goes_on(
    remote: FakeRemoteStore,
    uploader: FakeUploader,
    archive: FakeArchive,
    refused: str,
    lanes: str,
) -> None:
    """The log is read while the records are validated: its failure is every chunk's, as
    if the first chunk had read it (the batch is reported from its first chunk on), and
    nothing of the batch is kept or uploaded until the redelivery reads it."""
    f, g = parts(F, 2), parts(G, 1)
    container = FakeContainer(remote, uploader, archive, settings={"UPLOAD_CONCURRENCY": lanes})
    batch = [chunk(F, 0, f[0], count=2), raw_record("not a chunk"), chunk(G, 0, g[0], count=1)]
    remote.failing_operations = {refused}

    assert container.process(batch) == [
        batch[0].sequence_number,
        batch[1].sequence_number,
        batch[2].sequence_number,
    ]
    assert uploader.bodies_for(G) == []
    assert remote.pending() == []
    remote.failing_operations = set()

    assert container.process(batch) == []
    assert container.process([chunk(F, 1, f[1], count=2)]) == []
    assert uploader.bodies_for(F) == [b"".join(f)]
    assert uploader.bodies_for(G) == [g[0]]
