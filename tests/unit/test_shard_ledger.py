"""The local backend's shard log: a finished file stays finished for every container,
and late duplicates of it leave nothing under pending/ (findings 6 and 7)."""

from __future__ import annotations

import pytest

from adapters.memory_cache import InMemoryPartitionCache
from application.flush import RETAIN_BATCHES, SWEEP_EVERY
from application.pending import PendingFile
from domain import FileId, LogEntry, ShardLedger
from tests.factories import payload, raw_record, record
from tests.fakes import FakeArchive, FakeContainer, FakeRemoteStore, FakeUploader

URL = "https://bucket.example.com/files/report.pdf?X-Amz-Signature=SECRET"
FILE = FileId.for_endpoint(URL)
X, Y, Z = b"first bytes of p0", b"OTHER bytes of p0", b"bytes of p1"


def chunk(partition: int, content: bytes) -> object:
    return payload(URL, partition, 2, content)


@pytest.fixture
def container(
    remote: FakeRemoteStore, uploader: FakeUploader, archive: FakeArchive
) -> FakeContainer:
    return FakeContainer(remote, uploader, archive)


@pytest.mark.parametrize("redelivered_to", ["a fresh container", "a warm one that missed both"])
def test_a_batch_redelivered_to_another_container_cannot_upload_a_second_body(
    container: FakeContainer, uploader: FakeUploader, redelivered_to: str
) -> None:
    other = container.recycled()
    if redelivered_to == "a warm one that missed both":
        other.process([record(payload("https://bucket.example.com/other.bin", 0, 1, b"o"))])
    container.process([record(chunk(0, X))])
    second = [record(chunk(1, Z)), record(chunk(0, Y))]
    assert container.process(second) == []
    assert uploader.bodies_for(URL) == [X + Z]

    # A timeout, or a transient failure of an earlier record: the batch comes again elsewhere.
    assert other.process(second) == []

    assert uploader.bodies_for(URL) == [X + Z]


@pytest.mark.parametrize("redelivered_to", ["a fresh container", "the same container"])
def test_a_batch_cut_by_a_reported_record_cannot_upload_a_second_body_on_redelivery(
    container: FakeContainer,
    remote: FakeRemoteStore,
    uploader: FakeUploader,
    redelivered_to: str,
) -> None:
    failing = raw_record("reported: remote storage refuses its quarantine")
    batch = [record(chunk(0, X)), failing, record(chunk(1, Z)), record(chunk(0, Y))]
    container.archive.quarantine_refused = True
    first = container.process(batch)
    assert first[0] == failing.sequence_number
    assert uploader.bodies_for(URL) == [X + Z]
    container.archive.quarantine_refused = False

    again = container.recycled() if redelivered_to == "a fresh container" else container
    assert again.process(batch[1:]) == []

    assert uploader.bodies_for(URL) == [X + Z]
    assert remote.pending() == []


def test_a_late_duplicate_reaching_another_container_after_the_upload_leaves_nothing_behind(
    container: FakeContainer,
    remote: FakeRemoteStore,
    uploader: FakeUploader,
    archive: FakeArchive,
) -> None:
    container.process([record(chunk(0, X))])
    container.process([record(chunk(1, Z))])
    assert uploader.bodies_for(URL) == [X + Z]

    other = container.recycled()
    assert other.process([record(chunk(0, X))]) == []
    other.process([record(chunk(1, Z))])

    assert uploader.bodies_for(URL) == [X + Z]
    assert remote.pending() == []
    assert remote.log_state().files == {}  # only the failed/ copy may hold the endpoint
    assert container.recycled().report() == []


def test_a_file_finished_inside_one_batch_is_never_started_again_by_another_container(
    container: FakeContainer, remote: FakeRemoteStore, uploader: FakeUploader
) -> None:
    container.process([record(chunk(0, X)), record(chunk(1, Z))])
    other = container.recycled()

    other.process([record(chunk(0, Y))])  # other bytes, after the upload
    other.process([record(chunk(1, Z))])  # a producer's retry

    assert uploader.bodies_for(URL) == [X + Z]
    assert remote.pending() == []
    assert remote.log_state().files == {}


def test_the_log_costs_a_snapshot_read_and_a_probe_per_batch_and_a_write_only_when_it_changes(
    container: FakeContainer, remote: FakeRemoteStore
) -> None:
    container.process([record(chunk(0, X))])  # the file opens: read, probe, entry, verify
    container.process([raw_record("not a chunk")])  # read while validating; no write
    container.process([record(chunk(0, X))])  # a duplicate while open: read, probe, no write

    assert remote.operations == {"read_snapshot": 4, "read_entry": 3, "write_entry": 1}
    assert remote.log_state().open == {FILE}


def test_a_log_that_cannot_be_written_reports_the_records_and_keeps_nothing_pending(
    container: FakeContainer, remote: FakeRemoteStore, uploader: FakeUploader
) -> None:
    container.process([record(chunk(0, X))])
    second = [record(chunk(1, Z)), record(chunk(0, Y))]
    remote.failing_operations = {"write_entry", "write_snapshot"}

    assert container.process(second) == [second[0].sequence_number, second[1].sequence_number]
    assert remote.partitions_of(FILE) == {0}
    remote.failing_operations = set()

    assert container.recycled().process(second) == []
    assert set(uploader.bodies_for(URL)) == {X + Z}
    assert remote.pending() == []


@pytest.mark.parametrize("overlaps", [1, 2, 3])
def test_an_invocation_overlapping_on_the_shard_is_merged_not_overwritten_or_reported_past_three(
    container: FakeContainer, remote: FakeRemoteStore, overlaps: int
) -> None:
    theirs = FileId.for_endpoint("https://bucket.example.com/theirs.bin")

    def overlapping_write() -> None:
        seq = remote.log_state().seq + 1
        remote.log[("", seq)] = (LogEntry(seq, 1.0, f"theirs-{seq}", finished={theirs: 1.0}), b"")

    remote.before_log_write = [overlapping_write] * overlaps
    failed = container.process([record(chunk(0, X))])

    if overlaps < 3:  # read again and merged
        assert failed == []
        assert remote.log_state().is_open(FILE)
    else:  # moved on every attempt: the record is reported, its chunk kept in memory
        assert len(failed) == 1
        assert not remote.log_state().is_open(FILE)
        assert remote.partitions_of(FILE) == set()
    assert remote.log_state().knows(theirs)


def test_finished_files_are_forgotten_by_the_ledger_after_the_retention() -> None:
    ledger = ShardLedger().finished_at([FILE], now=100.0)

    assert ledger.knows(FILE)
    assert not ledger.is_open(FILE)
    assert ledger.pruned(before=100.0).knows(FILE)
    assert not ledger.pruned(before=100.5).knows(FILE)


def test_the_ledger_keeps_only_the_latest_finished_files_so_its_size_stays_bounded() -> None:
    files = [FileId.for_endpoint(f"https://bucket.example.com/{n}.jpg") for n in range(6)]
    ledger = ShardLedger()
    for at, file_id in enumerate(files):
        ledger = ledger.finished_at([file_id], now=float(at))

    kept = ledger.pruned(before=0.0, keep_at_most=4)

    assert [kept.knows(f) for f in files] == [False, False, True, True, True, True]


class CountingCache(InMemoryPartitionCache):
    """Counts the entries a batch's end reads."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def get(self, file_id: FileId) -> PendingFile | None:
        self.reads += 1
        return super().get(file_id)


def test_a_batch_end_walks_the_collecting_files_and_the_tombstones_only_every_few_batches(
    remote: FakeRemoteStore, uploader: FakeUploader, archive: FakeArchive
) -> None:
    """A stream of small files leaves a tombstone a file: a batch's end must not walk them
    all every batch, yet tombstones untouched for RETAIN_BATCHES still go."""
    cache = CountingCache()
    container = FakeContainer(remote, uploader, archive, cache=cache)
    reads = []
    for n in range(RETAIN_BATCHES + SWEEP_EVERY):
        files = [f"https://bucket.example.com/{n}-{i}.bin?X-Amz-Signature=SECRET" for i in range(5)]
        before = cache.reads
        assert container.process([record(payload(url, 0, 1, b"x")) for url in files]) == []
        reads.append(cache.reads - before)

    walks = [count for number, count in enumerate(reads, start=1) if number % SWEEP_EVERY]
    assert max(walks) < 5 * 10  # the batch's own files, not the hundreds of tombstones
    assert len(cache.all_keys()) <= 5 * (RETAIN_BATCHES + SWEEP_EVERY)
    first = FileId.for_endpoint("https://bucket.example.com/0-0.bin?X-Amz-Signature=SECRET")
    assert first not in cache.all_keys()
