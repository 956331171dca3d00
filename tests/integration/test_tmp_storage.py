"""TmpChunkStore on a real directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from adapters.tmp_storage import TmpChunkStore as BufferingStore
from domain import FileId
from tests.integration.builders import read_all, signed

FILE_ID = FileId.for_endpoint(signed("https://uploads.example.com/a.bin"))
OTHER_ID = FileId.for_endpoint(signed("https://uploads.example.com/b.bin"))


class TmpChunkStore(BufferingStore):
    """The store settled after every put: these tests are about what lands on disk."""

    def put(self, file_id: FileId, partition: int, content: bytes) -> None:
        super().put(file_id, partition, content)
        self.settle()


def files_under(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if path.is_file())


def test_a_stored_chunk_reads_back_byte_for_byte(tmp_path: Path) -> None:
    store = TmpChunkStore(tmp_path)
    content = bytes(range(256)) * 100 + b"\r\n\x00"

    store.put(FILE_ID, 3, content)

    assert store.get(FILE_ID, 3) == content
    assert read_all(store.open(FILE_ID, 3)) == content


def test_an_empty_chunk_reads_back_empty(tmp_path: Path) -> None:
    store = TmpChunkStore(tmp_path)

    store.put(FILE_ID, 0, b"")

    assert store.get(FILE_ID, 0) == b""


def test_a_second_put_of_a_partition_replaces_the_first(tmp_path: Path) -> None:
    store = TmpChunkStore(tmp_path)

    store.put(FILE_ID, 0, b"first")
    store.put(FILE_ID, 0, b"second")

    assert store.get(FILE_ID, 0) == b"second"
    assert len(files_under(tmp_path)) == 1


def test_a_new_store_on_the_same_root_sees_earlier_chunks(tmp_path: Path) -> None:
    TmpChunkStore(tmp_path).put(FILE_ID, 1, b"kept between invocations")

    assert TmpChunkStore(tmp_path).get(FILE_ID, 1) == b"kept between invocations"


def test_get_of_a_chunk_that_is_not_stored_raises_file_not_found(tmp_path: Path) -> None:
    store = TmpChunkStore(tmp_path)
    store.put(OTHER_ID, 0, b"another file")

    with pytest.raises(FileNotFoundError):
        store.get(FILE_ID, 0)
    with pytest.raises(FileNotFoundError):
        store.get(OTHER_ID, 1)


def test_delete_removes_only_the_named_chunk(tmp_path: Path) -> None:
    store = TmpChunkStore(tmp_path)
    store.put(FILE_ID, 0, b"zero")
    store.put(FILE_ID, 1, b"one")
    store.put(OTHER_ID, 0, b"other zero")

    store.delete(FILE_ID, 0)

    with pytest.raises(FileNotFoundError):
        store.get(FILE_ID, 0)
    assert store.get(FILE_ID, 1) == b"one"
    assert store.get(OTHER_ID, 0) == b"other zero"


def test_deleting_the_last_chunk_of_a_file_leaves_no_directory_behind(tmp_path: Path) -> None:
    store = TmpChunkStore(tmp_path)
    store.put(FILE_ID, 0, b"zero")

    store.delete(FILE_ID, 0)

    assert list(tmp_path.rglob(FILE_ID.value)) == []


def test_delete_of_a_missing_chunk_is_not_an_error(tmp_path: Path) -> None:
    store = TmpChunkStore(tmp_path)
    store.put(FILE_ID, 0, b"zero")

    store.delete(FILE_ID, 5)
    store.delete(OTHER_ID, 0)
    store.delete(FILE_ID, 0)
    store.delete(FILE_ID, 0)

    assert files_under(tmp_path) == []


def test_writes_leave_no_temporary_files(tmp_path: Path) -> None:
    store = TmpChunkStore(tmp_path)

    for partition in range(5):
        store.put(FILE_ID, partition, b"x" * (partition * 1000))
    store.put(FILE_ID, 2, b"replaced")

    names = [path.name for path in files_under(tmp_path)]
    assert names == [f"{partition:05d}" for partition in range(5)]


def test_a_failed_write_leaves_neither_the_chunk_nor_a_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = TmpChunkStore(tmp_path)
    store.put(FILE_ID, 0, b"old bytes")

    def refuse(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patched:
        patched.setattr(os, "replace", refuse)
        with pytest.raises(OSError, match="No space"):
            store.put(FILE_ID, 0, b"new bytes")
        with pytest.raises(OSError, match="No space"):
            store.put(FILE_ID, 1, b"new partition")

    assert TmpChunkStore(tmp_path).get(FILE_ID, 0) == b"old bytes"
    assert [path.name for path in files_under(tmp_path)] == ["00000"]


@pytest.mark.parametrize(
    "endpoint",
    [
        "../../etc/passwd",
        "https://h/../../../../etc/passwd",
        "/etc/passwd",
        "file:///etc/shadow",
        "C:\\Windows\\System32\\config",
        "https://h/a\x00b",
        "\x00",
        "https://h/" + "../" * 5000 + "x" * 20000,
        "",
        "~/.ssh/id_rsa",
        "https://h/%2e%2e/%2e%2e/etc/passwd",
    ],
)
def test_no_put_endpoint_can_steer_a_chunk_outside_the_root(tmp_path: Path, endpoint: str) -> None:
    root = tmp_path / "root"
    root.mkdir()
    store = TmpChunkStore(root)
    file_id = FileId.for_endpoint(endpoint)

    store.put(file_id, 0, b"payload")

    assert store.get(file_id, 0) == b"payload"
    stored = files_under(tmp_path)
    assert len(stored) == 1
    assert stored[0].resolve().is_relative_to(root.resolve())
    assert len(stored[0].relative_to(root).parts) == 3
    store.delete(file_id, 0)
    assert files_under(tmp_path) == []


@pytest.mark.parametrize("hostile", ["../../etc", "/etc/passwd", "a" * 32 + "/..", ""])
def test_a_file_id_that_is_not_a_hex_digest_cannot_be_built(hostile: str) -> None:
    with pytest.raises(ValueError, match="not a file id"):
        FileId(hostile)


def test_chunks_stay_in_memory_until_settled_and_a_deleted_one_never_reaches_the_disk(
    tmp_path: Path,
) -> None:
    store = BufferingStore(tmp_path)
    store.put(FILE_ID, 0, b"finished inside its batch")
    store.put(FILE_ID, 1, b"still open at the batch end")

    assert files_under(tmp_path) == []
    assert store.get(FILE_ID, 1) == b"still open at the batch end"
    assert read_all(store.open(FILE_ID, 0)) == b"finished inside its batch"

    store.delete(FILE_ID, 0)
    store.settle()

    assert [path.name for path in files_under(tmp_path)] == ["00001"]
    assert BufferingStore(tmp_path).get(FILE_ID, 1) == b"still open at the batch end"
