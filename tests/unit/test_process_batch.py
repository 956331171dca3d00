"""The local backend's flow on fakes: what is uploaded, kept, reported and quarantined."""

from __future__ import annotations

import errno
import random

import pytest

from application.metrics import Metric
from application.ports import TransientUploadError
from domain import FileId, Limits, RejectionReason
from tests.factories import file_records, payload, raw_record, record
from tests.fakes import (
    FakeArchive,
    FakeContainer,
    FakeLocalStore,
    FakePolicy,
    FakeRemoteStore,
    FakeUploader,
)

URL = "https://bucket.example.com/files/photo.jpg?X-Amz-Signature=SECRET"
CONTENT = bytes(range(256)) * 40 + b"tail"


def test_a_file_completing_inside_one_batch_costs_a_log_read_and_one_write_per_batch_none_per_file(
    container: FakeContainer, remote: FakeRemoteStore, uploader: FakeUploader
) -> None:
    records = file_records(URL, CONTENT, 1000)
    random.Random(1).shuffle(records)

    assert container.process(records + records[:3]) == []

    assert uploader.bodies_for(URL) == [CONTENT]
    # The snapshot's conditional GET, the probe of the next entry, the snapshot noting it.
    assert remote.operations == {"read_snapshot": 1, "read_entry": 1, "write_snapshot": 1}
    assert container.local.files == {}


def test_a_file_spread_over_batches_waits_in_remote_storage_and_is_then_cleared(
    container: FakeContainer, remote: FakeRemoteStore, uploader: FakeUploader
) -> None:
    records = file_records(URL, CONTENT, 1000)

    assert container.process(records[:4]) == []
    assert remote.partitions_of(FileId.for_endpoint(URL)) == {0, 1, 2, 3}
    assert uploader.uploads == []

    assert container.process(records[4:]) == []
    assert uploader.bodies_for(URL) == [CONTENT]
    assert remote.pending() == []


def test_alternating_warm_containers_upload_the_file_whole_and_exactly_once(
    container: FakeContainer, other_container: FakeContainer, uploader: FakeUploader
) -> None:
    records = file_records(URL, CONTENT[:5000], 1000)
    assert len(records) == 5

    assert container.process(records[0:2]) == []
    assert other_container.process(records[2:4]) == []
    assert container.process(records[4:5]) == []  # its cache still says {0, 1}: stale

    assert uploader.bodies_for(URL) == [CONTENT[:5000]]


def test_a_stale_container_never_uploads_again_what_another_finished(
    container: FakeContainer, other_container: FakeContainer, uploader: FakeUploader
) -> None:
    records = file_records(URL, CONTENT[:5000], 1000)
    container.process(records[0:2])
    other_container.process(records[2:5])
    assert uploader.bodies_for(URL) == [CONTENT[:5000]]

    assert container.process([records[4], records[0]]) == []  # late duplicates

    assert uploader.bodies_for(URL) == [CONTENT[:5000]]


def test_a_recycled_container_resumes_from_remote_storage(
    container: FakeContainer, uploader: FakeUploader
) -> None:
    records = file_records(URL, CONTENT, 1000)
    container.process(records[:7])

    assert container.recycled().process(records[7:] + records[:2]) == []

    assert uploader.bodies_for(URL) == [CONTENT]


def test_other_bytes_for_a_held_partition_are_quarantined_and_the_first_bytes_stand(
    container: FakeContainer, archive: FakeArchive, uploader: FakeUploader
) -> None:
    records = file_records(URL, b"aaaabbbb", 4)
    forged = record(payload(URL, 0, 2, b"XXXX"))

    assert container.process([records[0], forged, records[1]]) == []

    assert archive.reasons() == [RejectionReason.CONTENT_CONFLICT]
    assert archive.quarantined[0].record == forged
    assert uploader.bodies_for(URL) == [b"aaaabbbb"]


def test_a_conflict_with_chunks_another_container_stored_is_found_at_flush(
    container: FakeContainer,
    other_container: FakeContainer,
    archive: FakeArchive,
    uploader: FakeUploader,
) -> None:
    records = file_records(URL, b"aaaabbbbcccc", 4)
    container.process([records[0]])
    forged = record(payload(URL, 0, 3, b"XXXX"))

    assert other_container.process([forged, records[1]]) == []
    assert archive.reasons() == [RejectionReason.CONTENT_CONFLICT]

    assert other_container.process([records[2]]) == []
    assert uploader.bodies_for(URL) == [b"aaaabbbbcccc"]


def test_a_partition_count_conflict_is_quarantined_and_the_first_count_stands(
    container: FakeContainer, archive: FakeArchive, uploader: FakeUploader
) -> None:
    records = file_records(URL, b"aaaabbbb", 4)
    wrong = record(payload(URL, 1, 3, b"bbbb"))

    assert container.process([records[0], wrong, records[1]]) == []

    assert archive.reasons() == [RejectionReason.PARTITION_COUNT_CONFLICT]
    assert uploader.bodies_for(URL) == [b"aaaabbbb"]


def test_poison_records_are_quarantined_without_failing_the_batch(
    container: FakeContainer, archive: FakeArchive, uploader: FakeUploader
) -> None:
    records = file_records(URL, CONTENT, 2000)
    poison = [raw_record("%%% not base64"), record(b"{not json"), record({"putEndpoint": URL})]
    batch = [records[0], poison[0], records[1], poison[1], poison[2], *records[2:]]

    assert container.process(batch) == []

    assert len(archive.quarantined) == 3
    assert [q.record for q in archive.quarantined] == poison
    assert uploader.bodies_for(URL) == [CONTENT]


def test_a_refused_endpoint_is_quarantined_and_never_contacted(
    remote: FakeRemoteStore, uploader: FakeUploader, archive: FakeArchive
) -> None:

    guarded = FakeContainer(remote, uploader, archive, policy=FakePolicy({"169.254.169.254"}))
    records = file_records("http://169.254.169.254/latest/meta-data", b"x", 10)

    assert guarded.process(records) == []

    assert archive.reasons() == [RejectionReason.ENDPOINT_REFUSED]
    assert uploader.attempts == 0


def test_limits_reject_oversized_counts_and_files(
    remote: FakeRemoteStore, uploader: FakeUploader, archive: FakeArchive
) -> None:
    limited = FakeContainer(
        remote, uploader, archive, Limits(max_partition_count=3, max_file_bytes=10)
    )
    too_many = record(payload(URL, 0, 4, b"a"))
    big = file_records("https://example.com/big", b"123456789012", 6)

    assert limited.process([too_many, *big]) == []

    assert archive.reasons() == [
        RejectionReason.PARTITION_COUNT_TOO_LARGE,
        RejectionReason.FILE_TOO_LARGE,
    ]
    assert uploader.uploads == []


def test_when_remote_storage_refuses_writes_the_first_record_not_durable_and_all_after_are_reported(
    container: FakeContainer, remote: FakeRemoteStore, uploader: FakeUploader
) -> None:
    done = file_records("https://example.com/small", b"done", 10)
    pending = file_records(URL, CONTENT, 1000)
    batch = [*done, pending[0], pending[1]]
    remote.failing_operations = {"write_entry"}

    failed = container.process(batch)

    assert failed == [r.sequence_number for r in batch[1:]]
    assert uploader.bodies_for("https://example.com/small") == [b"done"]

    remote.failing_operations = set()
    assert container.recycled().process(batch[1:] + pending[2:]) == []
    assert uploader.bodies_for(URL) == [CONTENT]


def test_a_transient_upload_failure_reports_the_completing_record_and_redelivery_uploads(
    container: FakeContainer, other_container: FakeContainer, uploader: FakeUploader
) -> None:
    records = file_records(URL, CONTENT, 2000)
    uploader.fail_transiently(1)

    assert container.process(records) == [records[-1].sequence_number]
    assert uploader.uploads == []

    assert other_container.process([records[-1]]) == []
    assert uploader.bodies_for(URL) == [CONTENT]


def test_a_transient_failure_redelivered_to_the_same_container_uploads_from_its_disk(
    container: FakeContainer, remote: FakeRemoteStore, uploader: FakeUploader
) -> None:
    records = file_records(URL, CONTENT, 2000)
    uploader.script.append(TransientUploadError("timeout"))
    container.process(records)

    assert container.process([records[-1]]) == []
    assert uploader.bodies_for(URL) == [CONTENT]
    assert remote.pending() == []


def test_a_permanent_upload_failure_keeps_the_file_and_does_not_block_the_shard(
    container: FakeContainer, archive: FakeArchive, uploader: FakeUploader
) -> None:
    records = file_records(URL, CONTENT, 2000)
    uploader.fail_permanently()

    assert container.process(records) == []
    assert archive.failed == {FileId.for_endpoint(URL): CONTENT}

    assert container.process([records[0]]) == []  # a late duplicate does not start it again
    assert uploader.attempts == 1


def test_an_unexpected_error_reports_that_record_onward_and_keeps_the_others_work(
    container: FakeContainer, uploader: FakeUploader
) -> None:
    good = file_records("https://example.com/a", b"aaaa", 2)
    broken = file_records(URL, b"bbbb", 2)

    def refuse(*_: object) -> None:
        raise OSError("disk full")

    original = container.local.put

    def put(file_id: FileId, partition: int, content: bytes) -> None:
        if file_id == FileId.for_endpoint(URL):
            refuse()
        original(file_id, partition, content)

    container.local.put = put  # type: ignore[method-assign]  # a disk that fails for one file
    batch = [good[0], broken[0], good[1]]

    assert container.process(batch) == [r.sequence_number for r in batch[1:]]
    assert uploader.bodies_for("https://example.com/a") == [b"aaaa"]


def test_a_stale_container_holding_every_chunk_locally_checks_before_uploading_again(
    container: FakeContainer, other_container: FakeContainer, uploader: FakeUploader
) -> None:
    records = file_records(URL, CONTENT[:3000], 1000)
    container.process([records[0]])
    other_container.process([records[1], records[2]])
    assert uploader.bodies_for(URL) == [CONTENT[:3000]]

    assert container.process([records[2], records[1]]) == []

    assert uploader.bodies_for(URL) == [CONTENT[:3000]]


def test_a_failed_cleanup_after_an_upload_neither_fails_the_batch_nor_uploads_again(
    container: FakeContainer, remote: FakeRemoteStore, uploader: FakeUploader
) -> None:
    records = file_records(URL, CONTENT, 2000)
    container.process(records[:2])
    remote.failing_operations.add("delete")
    assert container.process(records[2:]) == []
    remote.failing_operations.clear()

    assert container.process(records[2:]) == []
    assert uploader.bodies_for(URL) == [CONTENT]


def test_near_the_deadline_the_rest_of_the_batch_is_left_and_the_done_part_made_durable(
    container: FakeContainer, remote: FakeRemoteStore
) -> None:
    records = file_records(URL, CONTENT, 1000)
    left = iter([60.0, 30.0, 5.0])  # seconds remaining before records 1, 2 and 3

    failed = container.process(records, lambda: next(left))

    assert failed == [r.sequence_number for r in records[3:]]
    assert remote.partitions_of(FileId.for_endpoint(URL)) == {0, 1, 2}


def test_the_first_record_is_processed_even_past_the_margin_so_the_shard_moves(
    container: FakeContainer, remote: FakeRemoteStore
) -> None:
    records = file_records(URL, CONTENT, 1000)

    failed = container.process(records, lambda: 0.5)

    assert failed == [r.sequence_number for r in records[1:]]
    assert remote.partitions_of(FileId.for_endpoint(URL)) == {0}


def test_a_batch_counts_accepted_duplicate_and_rejected_records(
    remote: FakeRemoteStore, uploader: FakeUploader, archive: FakeArchive
) -> None:
    container = FakeContainer(remote, uploader, archive)
    process, metrics = container.process, container.metrics
    records = file_records(URL, CONTENT, 5000)

    process([*records, records[0], raw_record("%% not base64")])

    assert metrics.published == [
        {
            (Metric.CHUNKS_ACCEPTED, None): len(records),
            (Metric.DUPLICATES, None): 1,
            (Metric.REJECTIONS, "data-not-json"): 1,
            (Metric.FILES_COMPLETED, None): 1,
            (Metric.BYTES_UPLOADED, None): len(CONTENT),
            (Metric.UPLOAD_LATENCY, None): metrics.published[0][(Metric.UPLOAD_LATENCY, None)],
        }
    ]


# A local disk that is small, full or broken (findings 3 and 9 of "Never stuck, never a wrong
# body"): no record whose chunk is durable is reported, nothing is uploaded wrong, and the
# disk is never used past its budget.

CHUNK = 1000
"""The chunk size of these tests' files: budgets are counted in chunks of it."""


def small_disk_container(
    remote: FakeRemoteStore, uploader: FakeUploader, archive: FakeArchive, chunks: float
) -> FakeContainer:
    return FakeContainer(
        remote, uploader, archive, local=FakeLocalStore(budget=int(chunks * CHUNK))
    )


def local_sets_are_truthful(container: FakeContainer) -> bool:
    """The cache's entries claim as local exactly the chunks the store holds."""
    entries = (container.cache.get(f) for f in container.cache.all_keys())
    claimed = {(e.file_id, p) for e in entries if e is not None for p in e.local}
    return claimed == set(container.local.files)


def test_files_bigger_than_a_tiny_budget_arrive_whole_and_the_disk_never_exceeds_it(
    remote: FakeRemoteStore, uploader: FakeUploader, archive: FakeArchive
) -> None:
    container = small_disk_container(remote, uploader, archive, chunks=2.5)
    files = {f"https://example.com/big-{n}?sig=S": CONTENT[: 8 * CHUNK] for n in range(2)}
    streams = [file_records(url, content, CHUNK) for url, content in files.items()]
    interleaved = [r for pair in zip(*streams, strict=True) for r in pair]

    for start in range(0, len(interleaved), 4):
        assert container.process(interleaved[start : start + 4]) == []
        assert local_sets_are_truthful(container)

    for url, content in files.items():
        assert uploader.bodies_for(url) == [content]
    assert container.local.peak_usage <= 2.5 * CHUNK
    assert remote.pending() == []
    assert container.local.files == {}


def test_room_for_a_new_chunk_is_made_by_evicting_the_least_recently_used_file_first(
    remote: FakeRemoteStore, uploader: FakeUploader, archive: FakeArchive
) -> None:
    container = small_disk_container(remote, uploader, archive, chunks=4)
    urls = [f"https://example.com/f{n}?sig=S" for n in range(3)]
    records = [file_records(url, CONTENT[: 3 * CHUNK], CHUNK) for url in urls]
    container.process(records[0][:2])
    container.process(records[1][:2])

    container.process(records[2][:2])  # the disk holds four chunks: two must go

    ids = [FileId.for_endpoint(url) for url in urls]
    assert container.local.on_disk() == {(ids[f], p) for f in (1, 2) for p in (0, 1)}
    assert local_sets_are_truthful(container)
    for last in (records[0][2], records[1][2], records[2][2]):
        assert container.process([last]) == []  # the first file's evicted chunks come from S3
    assert [uploader.bodies_for(url) for url in urls] == [[CONTENT[: 3 * CHUNK]]] * 3


DISK_ERRORS = [errno.ENOSPC, errno.EIO, errno.EACCES, errno.EROFS, errno.EDQUOT]


@pytest.mark.parametrize("error", DISK_ERRORS, ids=[errno.errorcode[e] for e in DISK_ERRORS])
def test_a_disk_that_refuses_writes_reports_no_record_whose_chunk_is_durable(
    remote: FakeRemoteStore, uploader: FakeUploader, archive: FakeArchive, error: int
) -> None:
    container = FakeContainer(remote, uploader, archive)
    container.local.write_error = error
    spanning = file_records(URL, CONTENT[: 5 * CHUNK], CHUNK)
    small = file_records("https://example.com/small", b"inside one batch", 4)

    assert container.process([spanning[0], *small, spanning[1]]) == []
    assert container.process(spanning[2:4]) == []
    assert container.local.files == {}  # durable in remote storage: dropped, not kept on disk
    assert local_sets_are_truthful(container)
    assert container.process(spanning[4:]) == []

    assert uploader.bodies_for(URL) == [CONTENT[: 5 * CHUNK]]
    assert uploader.bodies_for("https://example.com/small") == [b"inside one batch"]
    assert remote.pending() == []


def test_chunks_not_durable_stay_in_memory_without_room_until_a_redelivery_makes_them_durable(
    remote: FakeRemoteStore, uploader: FakeUploader, archive: FakeArchive
) -> None:
    container = small_disk_container(remote, uploader, archive, chunks=0)
    records = file_records(URL, CONTENT[: 3 * CHUNK], CHUNK)
    remote.failing_operations = {"write_entry"}

    assert container.process(records[:2]) == [r.sequence_number for r in records[:2]]
    assert set(container.local.files) == {(FileId.for_endpoint(URL), p) for p in (0, 1)}
    assert container.local.on_disk() == set()

    remote.failing_operations = set()
    assert container.process(records[:2]) == []
    assert container.local.files == {}  # durable now; the disk has no room for them
    assert container.process(records[2:]) == []

    assert uploader.bodies_for(URL) == [CONTENT[: 3 * CHUNK]]
    assert container.local.peak_usage == 0


def test_a_chunk_the_disk_cannot_read_back_is_made_durable_from_its_redelivered_record(
    remote: FakeRemoteStore, uploader: FakeUploader, archive: FakeArchive
) -> None:
    container = FakeContainer(remote, uploader, archive)
    records = file_records(URL, CONTENT[: 2 * CHUNK], CHUNK)
    remote.failing_operations = {"write_entry"}
    assert container.process(records[:1]) == [records[0].sequence_number]
    remote.failing_operations = set()
    key = (FileId.for_endpoint(URL), 0)
    assert container.local.on_disk() == {key}
    container.local.unreadable.add(key)

    assert container.process(records[:1]) == []
    assert container.process(records[1:]) == []

    assert uploader.bodies_for(URL) == [CONTENT[: 2 * CHUNK]]


def test_a_local_store_that_breaks_unexpectedly_at_the_batch_end_fails_no_durable_record(
    container: FakeContainer, uploader: FakeUploader
) -> None:
    records = file_records(URL, CONTENT[: 3 * CHUNK], CHUNK)

    def broken() -> None:
        raise RuntimeError("a bug in the store")

    container.local.tidy = broken  # type: ignore[method-assign]  # a store that breaks

    assert container.process(records[:2]) == []
    assert container.process(records[2:]) == []
    assert uploader.bodies_for(URL) == [CONTENT[: 3 * CHUNK]]


MERGED_LIMITS = [
    # MAX_FILE_BYTES, what the second container's batch leaves rejected, whether uploaded
    (4 * CHUNK, [], True),
    (4 * CHUNK - 1, [RejectionReason.FILE_TOO_LARGE], False),
    (3 * CHUNK, [RejectionReason.FILE_TOO_LARGE], False),
    (2 * CHUNK, [RejectionReason.FILE_TOO_LARGE] * 2, False),
]


@pytest.mark.parametrize(("limit", "rejected", "uploaded"), MERGED_LIMITS)
def test_max_file_bytes_holds_for_a_file_whose_chunks_went_to_two_containers(
    remote: FakeRemoteStore,
    uploader: FakeUploader,
    archive: FakeArchive,
    limit: int,
    rejected: list[RejectionReason],
    uploaded: bool,
) -> None:
    limits = Limits(max_file_bytes=limit)
    first, second = (FakeContainer(remote, uploader, archive, limits) for _ in range(2))
    records = file_records(URL, CONTENT[: 4 * CHUNK], CHUNK)
    assert first.process(records[:2]) == []

    assert second.process(records[2:]) == []  # each container alone sees 2 chunks: no limit

    assert archive.reasons() == rejected
    assert [q.record for q in archive.quarantined] == records[4 - len(rejected) :]
    assert uploader.bodies_for(URL) == ([CONTENT[: 4 * CHUNK]] if uploaded else [])
    assert all(len(body) <= limit for _, body in uploader.uploads)
