"""sfb status and sfb redrive on fakes: nothing needs a duplicate record to finish a file."""

from __future__ import annotations

from application.operations import Redrive
from application.outcomes import FileOutcome
from domain import FileId, FileStatus
from tests.factories import file_records
from tests.fakes import (
    FakeArchive,
    FakeContainer,
    FakeRemoteStore,
    FakeStateStore,
    FakeUploader,
    SharedFakeContainer,
)

URL = "https://bucket.example.com/a/b.bin?X-Amz-Signature=SECRET"
CONTENT = bytes(range(256)) * 20
FILE = FileId.for_endpoint(URL)


def local_redrive(remote: FakeRemoteStore, archive: FakeArchive, uploader: FakeUploader) -> Redrive:
    """The redrive ``sfb`` runs: a fresh container of the local backend."""
    return FakeContainer(remote, uploader, archive).redrive()


def shared_redrive(
    remote: FakeRemoteStore, archive: FakeArchive, uploader: FakeUploader, state: FakeStateStore
) -> Redrive:
    """The redrive ``sfb`` runs: a fresh container of the dynamodb backend."""
    return SharedFakeContainer(remote, state, uploader, archive, owner="operator").redrive()


def test_a_complete_file_whose_upload_kept_failing_is_finished_by_redrive() -> None:
    remote, archive, uploader = FakeRemoteStore(), FakeArchive(), FakeUploader()
    container = FakeContainer(remote, uploader, archive)
    uploader.fail_transiently(1)
    container.process(file_records(URL, CONTENT, 1000))  # Kinesis then gives up on it

    report = FakeContainer(remote, uploader, archive).report()
    assert [(r.file_id, r.status, r.received) for r in report] == [(FILE, "complete", 6)]

    assert local_redrive(remote, archive, uploader)(FILE) is FileOutcome.UPLOADED
    assert uploader.bodies_for(URL) == [CONTENT]
    assert remote.pending() == []
    assert remote.log_state().files == {}  # no snapshot keeps the endpoint


def test_an_incomplete_or_unknown_file_is_not_redriven() -> None:
    remote, archive, uploader = FakeRemoteStore(), FakeArchive(), FakeUploader()
    FakeContainer(remote, uploader, archive).process(file_records(URL, CONTENT, 1000)[:3])
    redrive = local_redrive(remote, archive, uploader)

    assert redrive(FILE) is FileOutcome.INCOMPLETE
    assert redrive(FileId.for_endpoint("https://example.com/other")) is FileOutcome.NOT_FOUND
    assert uploader.uploads == []


def test_a_file_refused_for_good_is_uploaded_again_from_its_kept_copy() -> None:
    remote, archive, uploader = FakeRemoteStore(), FakeArchive(), FakeUploader()
    uploader.fail_permanently()
    FakeContainer(remote, uploader, archive).process(file_records(URL, CONTENT, 1000))
    assert [r.status for r in FakeContainer(remote, uploader, archive).report()] == ["failed"]

    results = local_redrive(remote, archive, uploader).all_failed()

    assert results == {FILE: FileOutcome.UPLOADED}
    assert uploader.bodies_for(URL) == [CONTENT]
    assert archive.failed == {}


def test_a_redrive_refused_again_keeps_the_copy() -> None:
    remote, archive, uploader = FakeRemoteStore(), FakeArchive(), FakeUploader()
    uploader.fail_permanently()
    FakeContainer(remote, uploader, archive).process(file_records(URL, CONTENT, 1000))
    uploader.fail_permanently()

    assert local_redrive(remote, archive, uploader)(FILE) is FileOutcome.REFUSED
    assert FILE in archive.failed


def test_the_shared_backend_redrives_complete_and_failed_files() -> None:
    remote, archive, uploader, state = (
        FakeRemoteStore(),
        FakeArchive(),
        FakeUploader(),
        FakeStateStore(),
    )
    container = SharedFakeContainer(remote, state, uploader, archive)
    uploader.fail_transiently(1)
    container.process(file_records(URL, CONTENT, 1000))
    other = "https://example.com/refused.bin"
    uploader.fail_permanently()
    container.process(file_records(other, b"refused body", 1000))

    report = container.report()
    assert sorted((r.status, r.received) for r in report) == [("collecting", 6), ("failed", 0)]

    redrive = shared_redrive(remote, archive, uploader, state)
    assert redrive(FILE) is FileOutcome.UPLOADED
    assert redrive.all_failed() == {FileId.for_endpoint(other): FileOutcome.UPLOADED}
    assert uploader.bodies_for(URL) == [CONTENT]
    assert uploader.bodies_for(other) == [b"refused body"]
    assert state.items[FILE].status is FileStatus.UPLOADED
    assert state.items[FileId.for_endpoint(other)].status is FileStatus.UPLOADED
    assert container.report() == []
