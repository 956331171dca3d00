"""Files of one batch at once (FileLanes): uploads and AWS requests of different files
overlap, at most UPLOAD_CONCURRENCY at a time; each file's own records stay in order; the
batch response rule holds. No sleeps: barriers make the overlap a condition of success."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from application.lanes import FileLanes
from application.ports import Body
from domain import RejectionReason
from tests.assertions import assert_uploaded_once
from tests.factories import payload, raw_record, record
from tests.fakes import (
    FakeArchive,
    FakeContainer,
    FakeRemoteStore,
    FakeStateStore,
    FakeUploader,
    SharedFakeContainer,
)

WAIT = 10.0
"""Seconds a barrier waits before it breaks: only ever reached when the overlap is missing."""


class MeetingUploader(FakeUploader):
    """Each upload waits at a barrier of ``parties``: they pass only ``parties`` at a time,
    so uploads that never overlap break it. Counts the most in flight at once."""

    def __init__(self, parties: int) -> None:
        super().__init__()
        self._barrier = threading.Barrier(parties, timeout=WAIT)
        self._gate = threading.Lock()
        self.in_flight = 0
        self.most_in_flight = 0

    def upload(self, put_endpoint: str, body: Body) -> None:
        with self._gate:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            self._barrier.wait()
            super().upload(put_endpoint, body)
        finally:
            with self._gate:
                self.in_flight -= 1


def small_files(count: int) -> dict[str, bytes]:
    return {f"https://images.example.com/{n}.jpg?sig=S{n}": b"img%d" % n for n in range(count)}


def local(uploader: FakeUploader, concurrency: int) -> FakeContainer:
    settings = {"UPLOAD_CONCURRENCY": str(concurrency)}
    return FakeContainer(FakeRemoteStore(), uploader, FakeArchive(), settings=settings)


def shared(uploader: FakeUploader, concurrency: int) -> SharedFakeContainer:
    settings = {"UPLOAD_CONCURRENCY": str(concurrency)}
    return SharedFakeContainer(
        FakeRemoteStore(), FakeStateStore(), uploader, FakeArchive(), settings=settings
    )


BACKENDS: dict[str, Callable[[FakeUploader, int], FakeContainer | SharedFakeContainer]] = {
    "local": local,
    "dynamodb": shared,
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("files", "concurrency"),
    [(8, 8), (24, 4)],
    ids=["as many files as lanes", "more files than lanes"],
)
def test_the_small_files_of_a_batch_are_uploaded_at_once_never_more_than_the_concurrency(
    backend: str, files: int, concurrency: int
) -> None:
    contents = small_files(files)
    uploader = MeetingUploader(parties=concurrency)
    container = BACKENDS[backend](uploader, concurrency)

    batch = [record(payload(url, 0, 1, body)) for url, body in contents.items()]
    failed = container.process(batch)

    assert failed == []
    assert uploader.most_in_flight == concurrency
    for url, body in contents.items():
        assert_uploaded_once(uploader.bodies_for(url), body, to=url)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_files_own_records_keep_their_order_while_other_files_run_at_once(
    backend: str,
) -> None:
    """p0=X before p0=Y in the batch: X stands and Y is a conflict, every time."""
    url = "https://bucket.example.com/doc.pdf?sig=SECRET"
    others = small_files(6)
    records = [record(payload(u, 0, 1, b)) for u, b in others.items()]
    records[1:1] = [record(payload(url, 0, 2, b"X"))]
    records[4:4] = [record(payload(url, 0, 2, b"Y"))]
    records.append(record(payload(url, 1, 2, b"Z")))
    uploader = FakeUploader()
    container = BACKENDS[backend](uploader, 8)

    assert container.process(records) == []

    assert_uploaded_once(uploader.bodies_for(url), b"XZ", to=url)
    assert container.archive.reasons() == [RejectionReason.CONTENT_CONFLICT]


def test_near_the_deadline_lanes_leave_their_records_for_redelivery_and_the_first_is_kept() -> None:
    files = small_files(12)
    records = [record(payload(url, 0, 1, body)) for url, body in files.items()]
    uploader = FakeUploader()
    container = local(uploader, 4)

    failed = container.process(records, lambda: 60.0 if len(uploader.uploads) < 3 else 1.0)

    reported = set(failed)
    assert records[0].sequence_number not in reported
    # The answer is a suffix of the batch, and every record left out of it is uploaded.
    assert failed == [r.sequence_number for r in records[len(records) - len(failed) :]]
    uploaded = {url for url, _ in uploader.uploads}
    for kept, url in zip(records, files, strict=True):
        if kept.sequence_number not in reported:
            assert url in uploaded


def test_lanes_run_everything_in_order_in_the_callers_thread_with_a_concurrency_of_one() -> None:
    seen: list[tuple[int, str]] = []
    FileLanes(1).run(
        [(0, "a"), (1, "b"), (2, "a")],
        lambda item: item[1],
        lambda item: seen.append((item[0], threading.current_thread().name)),
    )

    assert [index for index, _ in seen] == [0, 1, 2]
    assert {name for _, name in seen} == {threading.current_thread().name}


def test_an_error_a_lane_lets_out_is_raised_once_every_lane_ended() -> None:
    done: list[str] = []

    def work(item: str) -> None:
        if item == "bad":
            raise RuntimeError("a bug in a lane")
        done.append(item)

    with pytest.raises(RuntimeError, match="a bug in a lane"):
        FileLanes(4).run(["bad", "x", "y", "z"], lambda item: item, work)
    assert sorted(done) == ["x", "y", "z"]


def test_a_concurrency_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        FileLanes(0)


FIRST = "https://images.example.com/first.jpg?sig=S"


def test_near_the_deadline_a_flood_of_poison_records_is_cut_before_its_quarantines() -> None:
    """With lanes, refused records are quarantined in the main loop: the time left is asked
    before each quarantine, so a batch of poison records cannot outlast the invocation."""
    uploader, archive = FakeUploader(), FakeArchive()
    container = FakeContainer(FakeRemoteStore(), uploader, archive)
    good = record(payload(FIRST, 0, 1, b"first"))
    poison = [raw_record(f"not a chunk {n}") for n in range(10)]
    batch = [good, *poison]

    failed = container.process(batch, lambda: 60.0 if len(archive.quarantined) < 3 else 1.0)

    assert len(archive.quarantined) == 3
    assert failed == [r.sequence_number for r in batch[4:]]
    assert_uploaded_once(uploader.bodies_for(FIRST), b"first")
