"""ExpireIncompleteFiles on fakes of both backends: what is given up, what is kept, what a
late chunk of a given-up file does afterwards."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from dependency_injector import providers

from application.metrics import Metric
from application.records import StreamRecord
from domain import ExpiredFile, FileId, FileStatus, IncompleteFile, RejectionReason
from tests.factories import file_records
from tests.fakes import (
    FakeArchive,
    FakeClock,
    FakeContainer,
    FakeMetrics,
    FakeRemoteStore,
    FakeStateStore,
    FakeUploader,
    SharedFakeContainer,
)

TTL = 3_600.0
EXPIRY_SETTINGS = {"INCOMPLETE_FILE_TTL_SECONDS": str(int(TTL))}
URL = "https://bucket.example.com/exports/part.bin?X-Amz-Signature=SECRET"
FILE = FileId.for_endpoint(URL)
CONTENT = bytes(range(256)) * 12
RECORDS = file_records(URL, CONTENT, 1000)  # 4 partitions


class LogRecords(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def errors(self) -> list[logging.LogRecord]:
        return [r for r in self.records if r.levelno == logging.ERROR]


@pytest.fixture
def logged() -> Iterator[LogRecords]:
    handler = LogRecords()
    logger = logging.getLogger("sfb")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def metrics() -> FakeMetrics:
    return FakeMetrics()


class Local:
    """The local backend: a container and the expiry reading the same fake S3."""

    def __init__(self, clock: FakeClock, metrics: FakeMetrics) -> None:
        self.clock = clock
        self.remote = FakeRemoteStore(clock)
        self.archive = FakeArchive()
        self.uploader = FakeUploader()
        self.container = FakeContainer(
            self.remote, self.uploader, self.archive, settings=EXPIRY_SETTINGS
        )
        self.expire = self.container.container.expire_incomplete(metrics=metrics)

    def process(self, records: list[StreamRecord]) -> list[str]:
        return self.container.process(records)


class Shared:
    """The dynamodb backend: the state store lists and gives up, S3 holds the chunks."""

    def __init__(self, clock: FakeClock, metrics: FakeMetrics) -> None:
        self.clock = clock
        self.remote = FakeRemoteStore(clock)
        self.state = FakeStateStore()
        self.archive = FakeArchive()
        self.uploader = FakeUploader()
        self.container = SharedFakeContainer(
            self.remote, self.state, self.uploader, self.archive, clock, settings=EXPIRY_SETTINGS
        )
        self.expire = self.container.container.expire_incomplete(metrics=metrics)

    def process(self, records: list[StreamRecord]) -> list[str]:
        return self.container.process(records)


@pytest.fixture(params=["local", "dynamodb"])
def backend(
    request: pytest.FixtureRequest, clock: FakeClock, metrics: FakeMetrics
) -> Local | Shared:
    return Local(clock, metrics) if request.param == "local" else Shared(clock, metrics)


def test_an_incomplete_file_past_the_ttl_is_given_up_and_its_chunks_deleted(
    backend: Local | Shared, logged: LogRecords
) -> None:
    assert backend.process(RECORDS[:3]) == []
    assert backend.remote.partitions_of(FILE) == {0, 1, 2}
    backend.clock.now += TTL + 1

    run = backend.expire()

    assert [f.file_id for f in run.expired] == [FILE]
    assert (run.incomplete, run.failed) == (1, ())
    assert backend.remote.pending() == []
    assert all(not state.files for state in backend.remote.snapshots.values())
    assert FILE in backend.archive.expired
    [error] = logged.errors()
    assert error.getMessage() == "incomplete file given up"
    assert error.__dict__["file_id"] == str(FILE)
    assert error.__dict__["endpoint"] == "https://bucket.example.com/exports/part.bin"
    assert (error.__dict__["received"], error.__dict__["partition_count"]) == (3, 4)
    assert error.__dict__["age_seconds"] == TTL + 1
    assert "SECRET" not in str(error.__dict__)


def test_an_incomplete_file_younger_than_the_ttl_is_kept(
    backend: Local | Shared, logged: LogRecords
) -> None:
    backend.process(RECORDS[:3])
    backend.clock.now += TTL - 1

    run = backend.expire()

    assert (run.incomplete, run.expired, run.oldest_age) == (1, (), TTL - 1)
    assert backend.remote.partitions_of(FILE) == {0, 1, 2}
    assert backend.archive.expired == {}
    assert logged.errors() == []


def test_a_complete_file_never_uploaded_is_kept_for_redrive(backend: Local | Shared) -> None:
    backend.uploader.fail_transiently(1)
    backend.process(RECORDS)  # ...and the stream gives up on the file's last record
    backend.clock.now += 10 * TTL

    run = backend.expire()

    assert (run.incomplete, run.expired) == (0, ())
    assert backend.remote.partitions_of(FILE) == {0, 1, 2, 3}
    assert backend.archive.expired == {}


def test_each_run_publishes_what_it_saw_the_oldest_age_and_what_it_gave_up(
    backend: Local | Shared, metrics: FakeMetrics
) -> None:
    backend.process(RECORDS[:2])
    backend.clock.now += TTL
    young = "https://bucket.example.com/exports/young.bin"
    backend.process(file_records(young, CONTENT, 1000)[:1])
    backend.clock.now += 60

    backend.expire()
    backend.expire()

    first, second = metrics.published
    assert first == {
        (Metric.INCOMPLETE_FILES, None): 2,
        (Metric.OLDEST_INCOMPLETE_FILE_AGE, None): TTL + 60,
        (Metric.INCOMPLETE_FILES_EXPIRED, None): 1,
    }
    assert second == {
        (Metric.INCOMPLETE_FILES, None): 1,
        (Metric.OLDEST_INCOMPLETE_FILE_AGE, None): 60,
        (Metric.INCOMPLETE_FILES_EXPIRED, None): 0,
    }


def test_the_kept_record_says_what_arrived_and_when_but_never_the_endpoint(
    backend: Local | Shared,
) -> None:
    started = backend.clock.now
    backend.process(RECORDS[1:3])
    backend.clock.now += TTL + 5

    backend.expire()

    record = backend.archive.expired[FILE]
    backend_name = "local" if isinstance(backend, Local) else "dynamodb"
    assert record == ExpiredFile(FILE, 4, 2, 2000, started, started + TTL + 5, backend_name)
    assert "SECRET" not in repr(record)
    assert not hasattr(record, "put_endpoint")
    [row] = backend.container.report()
    assert (row.file_id, row.status, row.received, row.partition_count) == (
        FILE,
        "expired",
        2,
        4,
    )
    assert (row.size, row.since) == (2000, started)


def test_a_dry_run_lists_what_would_be_given_up_and_changes_nothing(
    backend: Local | Shared, metrics: FakeMetrics, logged: LogRecords
) -> None:
    backend.process(RECORDS[:3])
    backend.clock.now += TTL + 1

    run = backend.expire(dry_run=True)

    [would] = run.expired
    assert (would.file_id, would.received, would.put_endpoint) == (FILE, 3, URL)
    assert run.dry_run
    assert backend.remote.partitions_of(FILE) == {0, 1, 2}
    assert backend.archive.expired == {}
    assert metrics.published == []
    assert logged.errors() == []


def test_on_the_dynamodb_backend_a_chunk_completing_the_file_just_before_the_give_up_wins(
    clock: FakeClock, metrics: FakeMetrics
) -> None:
    world = Shared(clock, metrics)
    world.process(RECORDS[:3])
    clock.now += TTL + 1

    class CompletedMeanwhile:
        """The state store as the expiry sees it, with the last chunk arriving in between."""

        def incomplete(self) -> list[IncompleteFile]:
            return world.state.incomplete()

        def give_up(self, file: IncompleteFile, cutoff: float, now: float) -> bool:
            assert world.process(RECORDS[3:]) == []
            return world.state.give_up(file, cutoff, now)

        def endpoint(self, file_id: FileId) -> str | None:
            return world.state.endpoint(file_id)

    container = world.container.container
    with container.incomplete_files.override(providers.Object(CompletedMeanwhile())):
        run = container.expire_incomplete(metrics=metrics)()

    assert (run.incomplete, run.expired) == (1, ())
    assert world.uploader.bodies_for(URL) == [CONTENT]
    assert world.state.items[FILE].status is FileStatus.UPLOADED
    assert world.archive.expired == {}
    assert metrics.published[0][(Metric.INCOMPLETE_FILES_EXPIRED, None)] == 0


def test_on_the_dynamodb_backend_a_file_given_up_stays_closed_and_is_given_up_once(
    clock: FakeClock, metrics: FakeMetrics
) -> None:
    world = Shared(clock, metrics)
    world.process(RECORDS[:3])
    clock.now += TTL + 1
    [file] = world.state.incomplete()

    assert world.state.give_up(file, clock.now - TTL, clock.now)
    assert not world.state.give_up(file, clock.now - TTL, clock.now)
    assert world.state.items[FILE].status is FileStatus.EXPIRED
    assert world.state.incomplete() == []


def test_on_the_dynamodb_backend_a_late_chunk_of_a_given_up_file_is_rejected_as_file_expired(
    clock: FakeClock, metrics: FakeMetrics
) -> None:
    world = Shared(clock, metrics)
    world.process(RECORDS[:3])
    clock.now += TTL + 1
    world.expire()

    assert world.process(RECORDS[3:] + RECORDS[:1]) == []

    assert world.archive.reasons() == [RejectionReason.FILE_EXPIRED] * 2
    assert world.remote.pending() == []
    assert world.uploader.uploads == []
    assert world.state.items[FILE].status is FileStatus.EXPIRED
    report = world.container.report()
    assert [(r.file_id, r.status) for r in report] == [(FILE, "expired")]


def test_on_the_local_backend_a_late_chunk_starts_the_file_again_which_expires_again(
    clock: FakeClock, metrics: FakeMetrics, logged: LogRecords
) -> None:
    world = Local(clock, metrics)
    world.process(RECORDS[:3])
    clock.now += TTL + 1
    world.expire()

    assert world.process(RECORDS[3:]) == []  # the container still caching the file

    assert world.uploader.uploads == []
    assert world.archive.quarantined == []
    assert world.remote.partitions_of(FILE) == {3}
    assert world.remote.log_state().files[FILE].put_endpoint == URL
    report = world.container.report()
    assert [(r.file_id, r.status, r.received) for r in report] == [(FILE, "collecting", 1)]

    clock.now += TTL - 1
    assert world.expire().expired == ()
    clock.now += 2
    assert [f.received for f in world.expire().expired] == [1]
    assert world.remote.pending() == []
    assert len(logged.errors()) == 2


def test_on_the_local_backend_a_file_completed_since_the_listing_is_kept(
    clock: FakeClock, metrics: FakeMetrics
) -> None:
    world = Local(clock, metrics)
    world.uploader.fail_transiently(1)
    world.process(RECORDS[:3])
    clock.now += TTL + 1
    files = world.container.container.logged_files()
    [file] = files.incomplete()
    world.process(RECORDS[3:])  # complete; its upload deferred, its chunks all stored

    assert not files.give_up(file, clock.now - TTL, clock.now)
    assert world.remote.partitions_of(FILE) == {0, 1, 2, 3}


def test_a_file_that_cannot_be_given_up_is_reported_and_the_others_still_are(
    clock: FakeClock, metrics: FakeMetrics, logged: LogRecords
) -> None:
    world = Shared(clock, metrics)
    world.process(RECORDS[:3])
    other = "https://bucket.example.com/exports/other.bin?X-Amz-Signature=SECRET"
    world.process(file_records(other, CONTENT, 1000)[:1])
    clock.now += TTL + 1
    world.remote.failing_operations.add("delete")

    run = world.expire()

    assert len(run.expired) == 2
    assert set(run.failed) == {FILE, FileId.for_endpoint(other)}
    assert set(world.archive.expired) == {FILE, FileId.for_endpoint(other)}
    messages = [r.getMessage() for r in logged.errors()]
    assert messages.count("incomplete file given up") == 2
    assert all("SECRET" not in str(r.__dict__) for r in logged.records)
