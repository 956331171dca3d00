"""The dynamodb backend's flow on fakes: shared state, claims, leases and tombstones."""

from __future__ import annotations

import random
import sys
import threading
from collections.abc import Callable

import pytest

from application.ports import Body
from application.shared_ingest import LEASE_MARGIN_SECONDS
from domain import FileId, FileStatus, RejectionReason
from tests.factories import file_records, payload, record
from tests.fakes import (
    FakeArchive,
    FakeClock,
    FakeRemoteStore,
    FakeStateStore,
    FakeUploader,
    SharedFakeContainer,
)

URL = "https://bucket.example.com/exports/report.csv?X-Amz-Signature=SECRET"
CONTENT = bytes(range(256)) * 30


class Crash(BaseException):
    """What a Lambda timeout does to an invocation: nothing below it gets to react."""


@pytest.fixture
def state() -> FakeStateStore:
    return FakeStateStore()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def shards(
    remote: FakeRemoteStore,
    state: FakeStateStore,
    uploader: FakeUploader,
    archive: FakeArchive,
    clock: FakeClock,
) -> list[SharedFakeContainer]:
    """Four containers, one per shard, sharing only the remote store and the state store."""
    return [SharedFakeContainer(remote, state, uploader, archive, clock) for _ in range(4)]


def test_a_batch_costs_one_object_and_its_item_then_one_update_a_file_and_one_upload(
    shards: list[SharedFakeContainer],
    remote: FakeRemoteStore,
    state: FakeStateStore,
    uploader: FakeUploader,
) -> None:
    records = file_records(URL, CONTENT, 1000)

    assert shards[0].process(records[:-1]) == []
    assert remote.operations == {"put": 1}
    assert state.requests == 1 + 1, "the object's item, then the file's chunks at once"

    assert shards[0].process(records[-1:]) == []
    assert uploader.bodies_for(URL) == [CONTENT]
    assert remote.pending() == []
    assert state.items[FileId.for_endpoint(URL)].status is FileStatus.UPLOADED


def test_chunks_spread_over_shards_make_one_whole_upload(
    shards: list[SharedFakeContainer], uploader: FakeUploader
) -> None:
    records = file_records(URL, CONTENT, 500)
    random.Random(3).shuffle(records)

    for index, shard in enumerate(shards):
        assert shard.process(records[index::4] + records[: index + 1]) == []

    assert uploader.bodies_for(URL) == [CONTENT]


def test_other_bytes_on_another_shard_are_quarantined_and_leave_no_object(
    shards: list[SharedFakeContainer],
    remote: FakeRemoteStore,
    archive: FakeArchive,
    uploader: FakeUploader,
) -> None:
    records = file_records(URL, b"aaaabbbb", 4)
    shards[0].process([records[0]])
    forged = record(payload(URL, 0, 2, b"XXXX"))

    assert shards[1].process([forged]) == []
    assert archive.reasons() == [RejectionReason.CONTENT_CONFLICT]
    assert remote.partitions_of(FileId.for_endpoint(URL)) == {0}
    assert len(remote.batch_objects) == 1, "the refused chunk's object is gone"

    shards[2].process([records[1]])
    assert uploader.bodies_for(URL) == [b"aaaabbbb"]


def test_a_partition_count_conflict_on_another_shard_is_quarantined(
    shards: list[SharedFakeContainer], archive: FakeArchive, uploader: FakeUploader
) -> None:
    records = file_records(URL, b"aaaabbbb", 4)
    shards[0].process([records[0]])

    assert shards[1].process([record(payload(URL, 1, 3, b"bbbb")), records[1]]) == []

    assert archive.reasons() == [RejectionReason.PARTITION_COUNT_CONFLICT]
    assert uploader.bodies_for(URL) == [b"aaaabbbb"]


def test_a_late_duplicate_of_an_uploaded_file_is_ignored_and_leaves_nothing_behind(
    shards: list[SharedFakeContainer], remote: FakeRemoteStore, uploader: FakeUploader
) -> None:
    records = file_records(URL, CONTENT, 1000)
    shards[0].process(records)

    assert shards[1].process(records[2:4]) == []

    assert uploader.bodies_for(URL) == [CONTENT]
    assert remote.pending() == []


def test_a_claim_whose_holder_died_is_taken_over_after_the_lease(
    shards: list[SharedFakeContainer], uploader: FakeUploader, clock: FakeClock
) -> None:
    records = file_records(URL, CONTENT, 1000)
    assert shards[0].process(records[:-1]) == []
    uploader.script.append(Crash())
    with pytest.raises(Crash):
        shards[0].process(records[-1:])

    assert shards[1].process(records[-1:]) == [records[-1].sequence_number]
    assert uploader.uploads == []

    clock.now += shards[0].lease_seconds + 1
    assert shards[1].process(records[-1:]) == []
    assert uploader.bodies_for(URL) == [CONTENT]


def test_a_transient_upload_failure_releases_the_claim_and_reports_the_record(
    shards: list[SharedFakeContainer], uploader: FakeUploader
) -> None:
    records = file_records(URL, CONTENT, 1000)
    uploader.fail_transiently(1)

    assert shards[0].process(records) == [records[-1].sequence_number]

    assert shards[3].process(records[-1:]) == []
    assert uploader.bodies_for(URL) == [CONTENT]


def test_a_permanent_upload_failure_is_kept_closed_and_not_started_again(
    shards: list[SharedFakeContainer],
    archive: FakeArchive,
    state: FakeStateStore,
    uploader: FakeUploader,
) -> None:
    records = file_records(URL, CONTENT, 1000)
    uploader.fail_permanently()

    assert shards[0].process(records) == []
    assert archive.failed == {FileId.for_endpoint(URL): CONTENT}
    assert state.items[FileId.for_endpoint(URL)].status is FileStatus.FAILED

    assert shards[1].process(records[:1]) == []
    assert uploader.attempts == 1


@pytest.mark.parametrize("failing", ["remote", "state"])
def test_a_storage_outage_reports_the_record_and_all_after_it(
    shards: list[SharedFakeContainer],
    remote: FakeRemoteStore,
    state: FakeStateStore,
    uploader: FakeUploader,
    failing: str,
) -> None:
    records = file_records(URL, CONTENT, 1000)
    shards[0].process(records[:2])
    (remote if failing == "remote" else state).failing = True

    assert shards[0].process(records[2:]) == [r.sequence_number for r in records[2:]]

    remote.failing = state.failing = False
    assert shards[1].process(records[2:]) == []
    assert uploader.bodies_for(URL) == [CONTENT]


def test_racing_containers_upload_each_file_exactly_once(
    remote: FakeRemoteStore, state: FakeStateStore, archive: FakeArchive
) -> None:
    uploader = FakeUploader()
    files = {f"https://example.com/race/{i}": random.Random(i).randbytes(4000) for i in range(3)}
    records = [r for url, data in files.items() for r in file_records(url, data, 500)]
    containers = [SharedFakeContainer(remote, state, uploader, archive) for _ in range(8)]
    start = threading.Barrier(len(containers))
    errors: list[BaseException] = []

    def run(index: int) -> None:
        # Each container lacks one partition of every file: none is whole in its batches, so
        # every file completes through the shared state (whole files race otherwise: below).
        mine = [r for n, r in enumerate(records) if n % 8 != index]
        random.Random(index).shuffle(mine)
        start.wait()
        try:
            pending = mine
            for _ in range(2000):
                failed = set(containers[index].process(pending))
                pending = [r for r in pending if r.sequence_number in failed]
                if not pending:
                    return
            raise AssertionError("a container never got its batch accepted")
        except BaseException as error:  # reported to the main thread below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(containers))]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter can
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)

    assert errors == []
    for url, data in files.items():
        assert uploader.bodies_for(url) == [data]


class HeldUploader(FakeUploader):
    """Holds the first upload open until released, so another container can race it."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def upload(self, put_endpoint: str, body: Body) -> None:
        if not self.entered.is_set():
            self.entered.set()
            if not self.release.wait(timeout=30):
                raise AssertionError("the held upload was never released")
        super().upload(put_endpoint, body)


def test_while_one_container_uploads_another_completing_the_file_does_not_upload(
    remote: FakeRemoteStore, state: FakeStateStore, archive: FakeArchive
) -> None:
    uploader = HeldUploader()
    first, second = (SharedFakeContainer(remote, state, uploader, archive) for _ in range(2))
    records = file_records(URL, CONTENT, 1000)
    assert first.process(records[:-1]) == []
    results: list[list[str]] = []
    holder = threading.Thread(target=lambda: results.append(first.process(records[-1:])))
    holder.start()
    assert uploader.entered.wait(timeout=30)

    reported = second.process(records[-2:])

    uploader.release.set()
    holder.join()
    assert reported == [records[-1].sequence_number]  # back later, in case the holder dies
    assert results == [[]]
    assert uploader.bodies_for(URL) == [CONTENT]


class Unexpected(Exception):
    """An error no layer classifies: it must still give the claim back."""


def _open_fails(remote: FakeRemoteStore, state: FakeStateStore, uploader: FakeUploader) -> None:
    remote.failing_operations.add("open")


def _stream_breaks_midway(
    remote: FakeRemoteStore, state: FakeStateStore, uploader: FakeUploader
) -> None:
    remote.broken_reads = 1


def _listing_fails(remote: FakeRemoteStore, state: FakeStateStore, uploader: FakeUploader) -> None:
    state.failing_operations.add("object items")


def _chunk_changed(remote: FakeRemoteStore, state: FakeStateStore, uploader: FakeUploader) -> None:
    remote.corrupt_batch_objects()


def _uploader_raises(
    remote: FakeRemoteStore, state: FakeStateStore, uploader: FakeUploader
) -> None:
    uploader.script.append(Unexpected("the uploader broke"))


@pytest.mark.parametrize(
    "fault",
    [_open_fails, _stream_breaks_midway, _listing_fails, _chunk_changed, _uploader_raises],
    ids=["s3-open-fails", "s3-read-breaks-midway", "listing-fails", "chunk-changed", "other-error"],
)
def test_any_failure_after_the_claim_gives_it_back_so_the_next_delivery_finishes_at_once(
    shards: list[SharedFakeContainer],
    remote: FakeRemoteStore,
    state: FakeStateStore,
    uploader: FakeUploader,
    fault: Callable[[FakeRemoteStore, FakeStateStore, FakeUploader], None],
) -> None:
    records = file_records(URL, CONTENT, 1000)
    assert shards[1].process(records[:-1]) == []  # shard 0 reads these back from S3
    stored = dict(remote.batch_objects)
    fault(remote, state, uploader)

    assert shards[0].process(records[-1:]) == [records[-1].sequence_number]

    item = state.items[FileId.for_endpoint(URL)]
    assert (item.status, item.claim_owner) == (FileStatus.COLLECTING, None)
    assert uploader.uploads == []
    remote.failing_operations.clear()
    state.failing_operations.clear()
    remote.batch_objects.update(stored)  # the fault passes; the clock has not moved
    assert shards[1].process(records[-1:]) == []
    assert uploader.bodies_for(URL) == [CONTENT]
    assert remote.pending() == []


@pytest.mark.parametrize(
    ("remaining", "lease"),
    [(30.0, 30.0 + LEASE_MARGIN_SECONDS), (0.0, LEASE_MARGIN_SECONDS), (5_000.0, 960.0)],
    ids=["its-remaining-time", "a-timeout-at-hand", "never-past-claim-lease-seconds"],
)
def test_a_dead_holders_claim_is_taken_over_once_its_invocation_must_have_ended(
    shards: list[SharedFakeContainer],
    uploader: FakeUploader,
    clock: FakeClock,
    remaining: float,
    lease: float,
) -> None:
    records = file_records(URL, CONTENT, 1000)
    assert shards[0].process(records[:-1]) == []
    uploader.script.append(Crash())
    with pytest.raises(Crash):
        shards[0].process(records[-1:], lambda: remaining)
    claimed_at = clock.now

    clock.now = claimed_at + lease
    assert shards[1].process(records[-1:]) == [records[-1].sequence_number]
    assert uploader.uploads == []

    clock.now = claimed_at + lease + 0.5
    assert shards[1].process(records[-1:]) == []
    assert uploader.bodies_for(URL) == [CONTENT]


def test_a_redrive_outside_any_invocation_claims_for_claim_lease_seconds(
    shards: list[SharedFakeContainer], state: FakeStateStore, uploader: FakeUploader
) -> None:
    records = file_records(URL, CONTENT, 1000)
    assert shards[0].process(records[:-1]) == []
    uploader.script.append(Crash())
    with pytest.raises(Crash):
        shards[0].process(records[-1:], lambda: 30.0)
    item = state.items[FileId.for_endpoint(URL)]
    assert item.claim_until == pytest.approx(shards[0].clock.now + 30.0 + LEASE_MARGIN_SECONDS)

    item.status, item.claim_owner = FileStatus.COLLECTING, None
    uploader.script.append(Crash())
    with pytest.raises(Crash):
        shards[0].process(records[-1:])  # no remaining time known, as for `sfb redrive`

    assert item.claim_until == shards[0].clock.now + shards[0].lease_seconds


def test_a_finish_whose_answer_was_lost_still_counts_and_the_chunks_are_deleted(
    shards: list[SharedFakeContainer],
    remote: FakeRemoteStore,
    state: FakeStateStore,
    uploader: FakeUploader,
    caplog: pytest.LogCaptureFixture,
) -> None:
    records = file_records(URL, CONTENT, 1000)
    assert shards[0].process(records[:-1]) == []
    state.lost_finish_answers = 1

    assert shards[0].process(records[-1:]) == []

    assert state.lost_finish_answers == 0, "the lost answer was exercised"
    assert state.items[FileId.for_endpoint(URL)].status is FileStatus.UPLOADED
    assert remote.pending() == []
    assert "claim expired" not in caplog.text
    assert shards[1].process(records[-1:]) == []
    assert uploader.bodies_for(URL) == [CONTENT]


def test_a_file_whose_records_were_left_for_redelivery_does_not_keep_the_batchs_object(
    shards: list[SharedFakeContainer], remote: FakeRemoteStore, uploader: FakeUploader
) -> None:
    other = "https://bucket.example.com/exports/other.csv?X-Amz-Signature=OTHER"
    first, last = file_records(URL, b"aaaabbbb", 4)
    others = file_records(other, b"cccc" * 3, 4)
    batch = [first, *others[:2]]  # neither file whole in it: both stored in its object

    assert shards[0].process(batch, lambda: 0.0) == [r.sequence_number for r in others[:2]]
    [stored] = remote.batch_index.values()
    assert {placed.partition for placed in stored} == {0, 1}
    assert len(stored) == 3, "the batch's chunks, stored before the deadline"
    assert shards[1].process([last]) == []

    assert uploader.bodies_for(URL) == [b"aaaabbbb"]
    assert remote.pending() == [], "the other file, still collecting, took nothing from it"
    assert shards[2].process(others) == []
    assert uploader.bodies_for(other) == [b"cccc" * 3]
    assert remote.pending() == []
