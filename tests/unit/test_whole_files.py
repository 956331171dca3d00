"""Whole files on the dynamodb backend: a file whose every partition is in the batch, and that
the shared state knows nothing of, is uploaded from memory with no request of its own; its
tombstone is written with others'. Any other file takes the per-file path, as before."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import pytest

from adapters.dynamodb_batch import DynamoDbFileStateBatches
from application.backends import StateBackend
from application.backends.local import LocalBackend
from application.backends.shared import SharedBackend
from application.batch_state import BatchState
from application.metrics import Metric
from application.ports import Body, FileStateBatches, TransientUploadError
from application.records import StreamRecord
from application.whole_files import TOMBSTONES_PER_WRITE, whole_files
from domain import Chunk, FileId, FileStatus, Limits, PartitionArrival, RejectionReason
from tests.assertions import assert_uploaded_once
from tests.factories import file_records, payload, record
from tests.fakes import (
    FakeArchive,
    FakeClock,
    FakeMetrics,
    FakeRemoteStore,
    FakeStateBatches,
    FakeStateStore,
    FakeUploader,
    SharedFakeContainer,
)

URL = "https://images.example.com/cat.jpg?X-Amz-Signature=SECRET"
FILE = FileId.for_endpoint(URL)
CONTENT = bytes(range(256)) * 12
WAIT = 10.0
"""Seconds a barrier waits before it breaks: only ever reached when an overlap is missing."""


@pytest.fixture
def state() -> FakeStateStore:
    return FakeStateStore()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def container_of(
    remote: FakeRemoteStore,
    state: FakeStateStore,
    uploader: FakeUploader,
    archive: FakeArchive,
    clock: FakeClock,
    **settings: str,
) -> SharedFakeContainer:
    return SharedFakeContainer(remote, state, uploader, archive, clock, settings=settings)


@pytest.fixture
def shard(
    remote: FakeRemoteStore,
    state: FakeStateStore,
    uploader: FakeUploader,
    archive: FakeArchive,
    clock: FakeClock,
) -> SharedFakeContainer:
    return container_of(remote, state, uploader, archive, clock)


@pytest.fixture
def other(
    remote: FakeRemoteStore,
    state: FakeStateStore,
    uploader: FakeUploader,
    archive: FakeArchive,
    clock: FakeClock,
) -> SharedFakeContainer:
    """Another container, on another shard: only S3 and DynamoDB are shared."""
    return container_of(remote, state, uploader, archive, clock)


def small_files(count: int) -> dict[str, bytes]:
    return {f"https://images.example.com/{n}.jpg?sig=S{n}": b"img%d" % n for n in range(count)}


def single_chunks(files: dict[str, bytes]) -> list[StreamRecord]:
    return [record(payload(url, 0, 1, body)) for url, body in files.items()]


def sequences(records: list[StreamRecord]) -> list[str]:
    return [r.sequence_number for r in records]


# --- what a whole file costs ----------------------------------------------------------------


def test_a_batch_of_small_files_costs_one_lookup_and_one_tombstone_write_per_25_files(
    shard: SharedFakeContainer,
    remote: FakeRemoteStore,
    state: FakeStateStore,
    uploader: FakeUploader,
) -> None:
    files = small_files(100)

    assert shard.process(single_chunks(files)) == []

    for url, body in files.items():
        assert_uploaded_once(uploader.bodies_for(url), body, to=url)
    assert (remote.requests, state.requests) == (0, 0), "no request of the file's own"
    assert shard.batches.operations == {"unknown": 1, "close": 4}
    assert {t.file_id for t in shard.batches.closed} == {FileId.for_endpoint(u) for u in files}
    for url, body in files.items():
        item = state.items[FileId.for_endpoint(url)]
        assert (item.status, item.partition_count, item.size) == (
            FileStatus.UPLOADED,
            1,
            len(body),
        )
        assert item.expires_at == shard.clock.now + 86_400


def test_a_file_of_many_chunks_all_in_the_batch_goes_whole_too(
    shard: SharedFakeContainer, remote: FakeRemoteStore, state: FakeStateStore
) -> None:
    records = file_records(URL, CONTENT, 300)
    batch = [*records[5:], records[2], *records[:5]]  # out of order, with a duplicate

    assert shard.process(batch) == []

    assert_uploaded_once(shard.uploader.bodies_for(URL), CONTENT)
    assert (remote.requests, state.requests) == (0, 0)
    assert shard.metrics.published[0][(Metric.CHUNKS_ACCEPTED, None)] == len(records)
    assert shard.metrics.published[0][(Metric.DUPLICATES, None)] == 1
    [tombstone] = shard.batches.closed
    assert (tombstone.partition_count, tombstone.size) == (len(records), len(CONTENT))


def test_a_batch_with_no_whole_file_asks_nothing_more(shard: SharedFakeContainer) -> None:
    records = file_records(URL, CONTENT, 300)

    assert shard.process(records[:-1]) == []

    assert shard.batches.requests == 0
    assert shard.uploader.uploads == []


# --- which path a whole file takes: the table decides ---------------------------------------


def _nothing(other: SharedFakeContainer) -> None:
    """The table knows nothing of the file."""


def _collecting_elsewhere(other: SharedFakeContainer) -> None:
    assert other.process(file_records(URL, CONTENT, 300)[:1]) == []


def _uploaded_before(other: SharedFakeContainer) -> None:
    assert other.process(file_records(URL, CONTENT, 300)) == []


def _refused_before(other: SharedFakeContainer) -> None:
    other.uploader.fail_permanently()
    assert other.process(file_records(URL, CONTENT, 300)) == []


def _uploaded_through_the_shared_state(other: SharedFakeContainer) -> None:
    records = file_records(URL, CONTENT, 300)
    assert other.process(records[:-1]) == []
    assert other.process(records[-1:]) == []


@pytest.mark.parametrize(
    ("before", "uploads", "counted_as"),
    [
        (_nothing, 1, Metric.CHUNKS_ACCEPTED),
        (_collecting_elsewhere, 1, None),
        (_uploaded_before, 1, Metric.DUPLICATES),
        (_refused_before, 0, Metric.DUPLICATES),
        (_uploaded_through_the_shared_state, 1, Metric.DUPLICATES),
    ],
    ids=[
        "unknown-goes-whole",
        "collecting-elsewhere-completes-through-the-shared-state",
        "uploaded-whole-before-is-a-late-duplicate",
        "refused-before-is-a-late-duplicate",
        "uploaded-through-the-shared-state-before-is-a-late-duplicate",
    ],
)
def test_a_whole_file_the_table_knows_takes_the_per_file_path_which_judges_it(
    shard: SharedFakeContainer,
    other: SharedFakeContainer,
    remote: FakeRemoteStore,
    state: FakeStateStore,
    uploader: FakeUploader,
    before: Callable[[SharedFakeContainer], None],
    uploads: int,
    counted_as: Metric | None,
) -> None:
    before(other)
    records = file_records(URL, CONTENT, 300)

    assert shard.process(records) == []

    assert uploader.bodies_for(URL) == [CONTENT] * uploads
    assert remote.pending() == [], "a late duplicate or a finished file leaves nothing behind"
    assert state.items[FILE].status.is_closed
    went_whole = [t.file_id for t in shard.batches.closed]
    assert went_whole == ([FILE] if before is _nothing else [])
    if counted_as is not None:
        assert shard.metrics.published[-1][(counted_as, None)] == len(records)


def test_a_file_given_up_by_the_expiry_is_rejected_even_when_whole_in_the_batch(
    shard: SharedFakeContainer, other: SharedFakeContainer, state: FakeStateStore
) -> None:
    records = file_records(URL, CONTENT, 300)
    assert other.process(records[:1]) == []
    state.items[FILE].status = FileStatus.EXPIRED

    assert shard.process(records) == []

    assert shard.uploader.uploads == []
    assert set(shard.archive.reasons()) == {RejectionReason.FILE_EXPIRED}


# --- the same answers as the per-file path, for what a batch may hold ----------------------


def _conflicting_bytes() -> list[StreamRecord]:
    records = file_records(URL, CONTENT, 1000)
    return [records[0], record(payload(URL, 0, len(records), b"other")), *records[1:]]


def _conflicting_count() -> list[StreamRecord]:
    records = file_records(URL, CONTENT, 1000)
    return [*records[:2], record(payload(URL, 2, 9, b"x")), *records[2:]]


def _late_copy_after_completion() -> list[StreamRecord]:
    records = file_records(URL, CONTENT, 1000)
    return [*records, record(payload(URL, 1, len(records), b"other bytes, too late"))]


def _too_large() -> list[StreamRecord]:
    return file_records(URL, b"x" * 5000, 1000)  # over the 4,000 bytes the test allows


def _too_large_a_copy_after_completion() -> list[StreamRecord]:
    records = file_records(URL, CONTENT[:3000], 1000)
    return [*records, record(payload(URL, 0, len(records), b"y" * 4001))]


def _too_many_partitions_after_completion() -> list[StreamRecord]:
    records = file_records(URL, CONTENT[:3000], 1000)
    return [*records, record(payload(URL, 0, 11, b"z"))]


@pytest.mark.parametrize(
    "batch",
    [
        _conflicting_bytes,
        _conflicting_count,
        _late_copy_after_completion,
        _too_large,
        _too_large_a_copy_after_completion,
        _too_many_partitions_after_completion,
    ],
    ids=[
        "other-bytes-first-stand",
        "other-count-first-stands",
        "copy-after-done",
        "too-large",
        "too-large-a-chunk-after-done",
        "too-many-partitions-after-done",
    ],
)
def test_a_whole_file_gets_the_answers_the_per_file_path_gives(
    remote: FakeRemoteStore, batch: Callable[[], list[StreamRecord]]
) -> None:
    def run(whole: bool) -> tuple[list[str], list[bytes], list[str], dict[str, float]]:
        uploader, archive, metrics = FakeUploader(), FakeArchive(), FakeMetrics()
        shard = SharedFakeContainer(
            FakeRemoteStore(),
            FakeStateStore(),
            uploader,
            archive,
            limits=Limits(max_partition_count=10, max_file_bytes=4000),
            metrics=metrics,
        )
        if not whole:
            shard.batches.failing.add("unknown")  # the lookup fails: every file per file
        failed = shard.process(records)
        counted = {
            f"{metric.name}:{reason}": value
            for (metric, reason), value in metrics.published[0].items()
            if metric is not Metric.UPLOAD_LATENCY
        }
        rejected = [f"{q.reason.value}: {q.detail}" for q in archive.quarantined]
        return failed, uploader.bodies_for(URL), rejected, counted

    records = batch()

    assert run(whole=True) == run(whole=False)


# --- failures -------------------------------------------------------------------------------


def test_a_whole_file_whose_upload_fails_for_now_is_stored_complete_for_its_last_record(
    shard: SharedFakeContainer,
    other: SharedFakeContainer,
    remote: FakeRemoteStore,
    state: FakeStateStore,
    uploader: FakeUploader,
) -> None:
    records = file_records(URL, CONTENT, 1000)
    uploader.fail_transiently(1)

    assert shard.process(records) == [records[-1].sequence_number]

    assert remote.partitions_of(FILE) == set(range(len(records)))
    item = state.items[FILE]
    assert (item.status, item.claim_owner, len(item.digests)) == (
        FileStatus.COLLECTING,
        None,
        len(records),
    )
    assert other.process(records[-1:]) == []
    assert_uploaded_once(uploader.bodies_for(URL), CONTENT)
    assert remote.pending() == []


class RefusesFor(FakeUploader):
    """Answers HTTP 503 to the next ``times`` uploads to ``url``; the others go through."""

    def __init__(self, url: str, times: int = 1) -> None:
        super().__init__()
        self.url = url
        self.times = times

    def upload(self, put_endpoint: str, body: Body) -> None:
        if put_endpoint == self.url and self.times:
            self.times -= 1
            raise TransientUploadError("HTTP 503")
        super().upload(put_endpoint, body)


def test_a_whole_file_that_can_be_neither_uploaded_nor_stored_has_all_its_records_reported(
    remote: FakeRemoteStore, state: FakeStateStore, archive: FakeArchive, clock: FakeClock
) -> None:
    uploader = RefusesFor(URL)
    shard = container_of(remote, state, uploader, archive, clock)
    others = single_chunks(small_files(2))
    records = [others[0], *file_records(URL, CONTENT, 1000), others[1]]
    remote.failing_operations.add("put")

    failed = shard.process(records)

    assert failed == sequences(records[1:]), "the file's first record and all after it"
    assert (remote.pending(), FILE in state.items) == ([], False)
    remote.failing_operations.clear()
    assert shard.process(records[1:]) == []
    assert_uploaded_once(uploader.bodies_for(URL), CONTENT)


class CountedMeanwhile(FakeUploader):
    """Answers HTTP 503, after another delivery of the file counted its first chunk (with
    other bytes) in the shared state: the race the lookup cannot see."""

    def __init__(self, state: FakeStateStore, other_first_chunk: PartitionArrival) -> None:
        super().__init__()
        self.state = state
        self.other = other_first_chunk

    def upload(self, put_endpoint: str, body: Body) -> None:
        assert isinstance(self.state.add_chunk(self.other), int)
        raise TransientUploadError("HTTP 503")


def test_a_whole_file_another_delivery_counted_meanwhile_has_all_its_records_reported(
    remote: FakeRemoteStore, state: FakeStateStore, archive: FakeArchive, clock: FakeClock
) -> None:
    records = file_records(URL, CONTENT, 1000)
    count = len(records)
    other = Chunk(URL, 0, count, b"other bytes")
    other_bytes = PartitionArrival.of(other, Limits(), clock())
    shard = container_of(remote, state, CountedMeanwhile(state, other_bytes), archive, clock)

    failed = shard.process(records)

    assert failed == sequences(records), "the redelivery judges the file by the state"
    assert state.items[FILE].digests[0] == other_bytes.ref.digest_prefix


def test_a_whole_file_refused_for_good_is_kept_under_failed_and_closed(
    shard: SharedFakeContainer,
    other: SharedFakeContainer,
    state: FakeStateStore,
    archive: FakeArchive,
    uploader: FakeUploader,
) -> None:
    records = file_records(URL, CONTENT, 1000)
    uploader.fail_permanently()

    assert shard.process(records) == []

    assert archive.failed == {FILE: CONTENT}
    assert state.items[FILE].status is FileStatus.FAILED
    assert shard.metrics.published[0][(Metric.UPLOADS_FAILED, None)] == 1
    assert other.process(records) == []
    assert uploader.attempts == 1, "a late duplicate of a refused file is not tried again"


# --- the tombstones -------------------------------------------------------------------------


def _close_fails(shard: SharedFakeContainer) -> None:
    shard.batches.failing.add("close")


def _close_leaves_items_unprocessed(shard: SharedFakeContainer) -> None:
    shard.batches.unwritten = 100


@pytest.mark.parametrize(
    "fault", [_close_fails, _close_leaves_items_unprocessed], ids=["error", "unprocessed"]
)
def test_tombstones_that_cannot_be_written_leave_the_uploaded_files_done_and_say_so(
    shard: SharedFakeContainer,
    state: FakeStateStore,
    uploader: FakeUploader,
    caplog: pytest.LogCaptureFixture,
    fault: Callable[[SharedFakeContainer], None],
) -> None:
    files = small_files(3)
    fault(shard)

    with caplog.at_level(logging.WARNING, logger="sfb"):
        assert shard.process(single_chunks(files)) == [], "the work is done: the files are up"

    for url, body in files.items():
        assert_uploaded_once(uploader.bodies_for(url), body, to=url)
    assert state.items == {}
    [warning] = [r for r in caplog.records if "tombstones" in r.getMessage()]
    assert set(warning.__dict__["file_ids"]) == {str(FileId.for_endpoint(u)) for u in files}
    assert "SECRET" not in caplog.text


def test_tombstones_are_written_as_soon_as_25_files_are_finished_not_all_at_the_end(
    remote: FakeRemoteStore, state: FakeStateStore, archive: FakeArchive, clock: FakeClock
) -> None:
    written_before: list[int] = []

    class Watching(FakeUploader):
        def upload(self, put_endpoint: str, body: Body) -> None:
            written_before.append(len(container.batches.closed))
            super().upload(put_endpoint, body)

    container = container_of(remote, state, Watching(), archive, clock, UPLOAD_CONCURRENCY="1")
    files = small_files(TOMBSTONES_PER_WRITE + 5)

    assert container.process(single_chunks(files)) == []

    assert written_before[TOMBSTONES_PER_WRITE] == TOMBSTONES_PER_WRITE
    assert len(container.batches.closed) == len(files)
    assert container.batches.operations["close"] == 2


# --- the lookup -----------------------------------------------------------------------------


def _lookup_fails(shard: SharedFakeContainer) -> None:
    shard.batches.failing.add("unknown")


def _lookup_leaves_keys_unprocessed(shard: SharedFakeContainer) -> None:
    shard.batches.unanswered = 100


@pytest.mark.parametrize(
    "fault", [_lookup_fails, _lookup_leaves_keys_unprocessed], ids=["error", "unprocessed"]
)
def test_whole_files_the_lookup_cannot_answer_for_take_the_per_file_path(
    shard: SharedFakeContainer,
    remote: FakeRemoteStore,
    state: FakeStateStore,
    uploader: FakeUploader,
    fault: Callable[[SharedFakeContainer], None],
) -> None:
    records = file_records(URL, CONTENT, 1000)
    fault(shard)

    assert shard.process(records) == []

    assert_uploaded_once(uploader.bodies_for(URL), CONTENT)
    assert remote.operations["put"] == 1, "the chunks stored in one object, as per file"
    assert len(state.items[FILE].digests) == len(records)
    assert shard.batches.closed == []
    assert remote.pending() == []


# --- the deadline: a whole file is taken all or none ----------------------------------------

SINGLE = "https://images.example.com/single.jpg?sig=S"
PAST_THE_MARGIN = 1.0
"""Seconds left, from the batch's start: fewer than the deadline's margin."""


@pytest.fixture(params=["1", "8"], ids=["one-by-one", "lanes"])
def late(
    request: pytest.FixtureRequest,
    remote: FakeRemoteStore,
    state: FakeStateStore,
    uploader: FakeUploader,
    archive: FakeArchive,
    clock: FakeClock,
) -> SharedFakeContainer:
    """A shared backend's container, taking records one after another or in lanes."""
    return container_of(remote, state, uploader, archive, clock, UPLOAD_CONCURRENCY=request.param)


def single() -> StreamRecord:
    return record(payload(SINGLE, 0, 1, b"single"))


def test_a_whole_file_begun_before_the_deadline_is_taken_whole_and_the_first_record_kept(
    late: SharedFakeContainer, uploader: FakeUploader
) -> None:
    first, second = file_records(URL, CONTENT, len(CONTENT) // 2 + 1)
    batch = [first, single(), second]

    failed = late.process(batch, lambda: PAST_THE_MARGIN)

    assert first.sequence_number not in failed, "the first record always goes"
    assert failed == sequences(batch[1:])
    assert_uploaded_once(uploader.bodies_for(URL), CONTENT)
    assert uploader.bodies_for(SINGLE) == []


def test_a_whole_file_not_begun_before_the_deadline_is_left_whole_for_redelivery(
    late: SharedFakeContainer,
    uploader: FakeUploader,
    remote: FakeRemoteStore,
    state: FakeStateStore,
) -> None:
    batch = [single(), *file_records(URL, CONTENT, 1000)]

    failed = late.process(batch, lambda: PAST_THE_MARGIN)

    assert failed == sequences(batch[1:])
    assert uploader.bodies_for(URL) == []
    assert (remote.pending(), FILE in state.items) == ([], False)


# --- what the whole-file path gives up ------------------------------------------------------


class Meeting(FakeUploader):
    """Each upload waits for another at a barrier of two: two uploads of one file at once."""

    def __init__(self) -> None:
        super().__init__()
        self._barrier = threading.Barrier(2, timeout=WAIT)

    def upload(self, put_endpoint: str, body: Body) -> None:
        self._barrier.wait()
        super().upload(put_endpoint, body)


def test_two_deliveries_of_a_whole_file_racing_before_its_tombstone_both_upload_its_bytes(
    remote: FakeRemoteStore, state: FakeStateStore, archive: FakeArchive, clock: FakeClock
) -> None:
    """The price of no per-file request, said in the README: both found the file unknown."""
    uploader = Meeting()
    shards = [container_of(remote, state, uploader, archive, clock) for _ in range(2)]
    records = file_records(URL, CONTENT, 1000)
    answers: list[list[str]] = []
    racers = [
        threading.Thread(target=lambda s=s: answers.append(s.process(records))) for s in shards
    ]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join()

    assert answers == [[], []]
    assert uploader.bodies_for(URL) == [CONTENT, CONTENT], "the same bytes, twice"
    assert state.items[FILE].status is FileStatus.UPLOADED
    assert remote.pending() == []


# --- which files are whole ------------------------------------------------------------------


def chunk(partition: int, count: int, content: bytes = b"abc", url: str = URL) -> Chunk:
    return Chunk(url, partition, count, content)


@pytest.mark.parametrize(
    ("chunks", "whole"),
    [
        ([chunk(0, 1)], True),
        ([chunk(1, 3), chunk(0, 3), chunk(2, 3)], True),
        ([chunk(0, 3), chunk(2, 3)], False),
        ([chunk(0, 2), chunk(0, 2, b"other"), chunk(1, 2)], True),
        ([chunk(0, 2), chunk(1, 3), chunk(2, 3)], False),
        ([chunk(0, 2), chunk(1, 3), chunk(1, 2)], True),
        ([chunk(0, 2, b"x" * 60), chunk(1, 2, b"x" * 50)], False),
        ([chunk(0, 20), *(chunk(p, 20) for p in range(1, 20))], False),
        ([], False),
    ],
    ids=[
        "single-chunk",
        "every-partition-in-any-order",
        "a-partition-missing",
        "other-bytes-later-do-not-matter",
        "a-later-count-does-not-replace-the-first",
        "the-first-count-completes",
        "over-max-file-bytes",
        "over-max-partition-count",
        "no-chunk",
    ],
)
def test_a_file_is_whole_when_the_batch_completes_it_by_the_one_rule_of_admission(
    chunks: list[Chunk], whole: bool
) -> None:
    limits = Limits(max_partition_count=10, max_file_bytes=100)

    assert whole_files(chunks, limits) == ({FILE: URL} if whole else {})


# --- the seam and the port, by shape (mypy checks these) ------------------------------------


def _local_fits(backend: LocalBackend) -> StateBackend:
    return backend


def _shared_fits(backend: SharedBackend) -> StateBackend:
    return backend


def _adapter_fits(batches: DynamoDbFileStateBatches) -> FileStateBatches:
    return batches


def _fake_fits(batches: FakeStateBatches) -> FileStateBatches:
    return batches


def test_the_local_backend_takes_no_file_whole(remote: FakeRemoteStore) -> None:
    container = SharedFakeContainer(remote, FakeStateStore(), FakeUploader(), FakeArchive())
    local = container.container.local_backend()

    assert local.prepare([chunk(0, 1)], BatchState(1)) == frozenset()
