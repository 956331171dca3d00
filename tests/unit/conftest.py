from __future__ import annotations

import pytest

from tests.fakes import FakeArchive, FakeContainer, FakeRemoteStore, FakeUploader


@pytest.fixture
def remote() -> FakeRemoteStore:
    return FakeRemoteStore()


@pytest.fixture
def uploader() -> FakeUploader:
    return FakeUploader()


@pytest.fixture
def archive() -> FakeArchive:
    return FakeArchive()


@pytest.fixture
def container(
    remote: FakeRemoteStore, uploader: FakeUploader, archive: FakeArchive
) -> FakeContainer:
    return FakeContainer(remote, uploader, archive)


@pytest.fixture
def other_container(
    remote: FakeRemoteStore, uploader: FakeUploader, archive: FakeArchive
) -> FakeContainer:
    """A second warm container on the same shard, sharing only remote storage."""
    return FakeContainer(remote, uploader, archive)
