"""TmpChunkStore on a real directory."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path
from typing import NamedTuple

import pytest

from adapters.tmp_storage import SWEEP_SECONDS
from adapters.tmp_storage import TmpChunkStore as BufferingStore
from domain import FileId
from tests.integration.builders import read_all, signed

FILE_ID = FileId.for_endpoint(signed("https://uploads.example.com/a.bin"))
OTHER_ID = FileId.for_endpoint(signed("https://uploads.example.com/b.bin"))


class TmpChunkStore(BufferingStore):
    """The store persisted after every put: these tests are about what lands on disk."""

    def put(self, file_id: FileId, partition: int, content: bytes) -> None:
        super().put(file_id, partition, content)
        assert self.persist(file_id, partition)


def files_under(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if path.is_file())


def bytes_under(root: Path) -> int:
    return sum(path.stat().st_size for path in files_under(root))


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


def test_a_new_store_on_the_same_root_sweeps_what_an_earlier_container_left(
    tmp_path: Path,
) -> None:
    earlier = TmpChunkStore(tmp_path)
    earlier.put(FILE_ID, 1, b"left by a container whose cache died with it")
    legacy = tmp_path / "sfb-chunks" / OTHER_ID.value
    legacy.mkdir(parents=True)
    (legacy / "00000").write_bytes(b"an older layout's chunk")
    (tmp_path / "sfb-chunks" / ".part-stray").write_bytes(b"half a write")
    (tmp_path / "not-ours").write_bytes(b"another user of /tmp")

    store = TmpChunkStore(tmp_path)

    with pytest.raises(FileNotFoundError):
        store.get(FILE_ID, 1)
    assert files_under(tmp_path) == [tmp_path / "not-ours"]
    assert store.usage == 0


def test_the_sweep_of_a_crowded_disk_is_bounded_in_time_and_finished_by_later_tidies(
    tmp_path: Path,
) -> None:
    earlier = TmpChunkStore(tmp_path)
    for partition in range(30):
        earlier.put(FILE_ID, partition, b"x")
    ticks = iter(range(10_000))

    def clock() -> float:
        """Each reading a tenth of the sweep's allowance later than the one before."""
        return next(ticks) * SWEEP_SECONDS / 10

    store = TmpChunkStore(tmp_path, budget=100, clock=clock)

    left = len(files_under(tmp_path))
    assert 0 < left < 30
    for _ in range(3):
        store.tidy()
    assert files_under(tmp_path) == []


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


def test_a_failed_write_leaves_the_old_chunk_on_disk_the_new_one_in_memory_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = TmpChunkStore(tmp_path)
    store.put(FILE_ID, 0, b"old bytes")

    def refuse(src: str, dst: str) -> None:
        raise OSError(errno.EIO, "Input/output error")

    with monkeypatch.context() as patched:
        patched.setattr(os, "replace", refuse)
        for partition, content in [(0, b"new bytes"), (1, b"new partition")]:
            BufferingStore.put(store, FILE_ID, partition, content)
            with pytest.raises(OSError, match="Input/output"):
                store.persist(FILE_ID, partition)

    assert [path.read_bytes() for path in files_under(tmp_path)] == [b"old bytes"]
    assert store.usage == len(b"old bytes")
    assert store.get(FILE_ID, 0) == b"new bytes"
    assert store.held(FILE_ID, 1) == b"new partition"


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
    assert len(stored[0].relative_to(root).parts) == 4  # sfb-chunks/<store>/<file id>/<n>
    store.delete(file_id, 0)
    assert files_under(tmp_path) == []


@pytest.mark.parametrize("hostile", ["../../etc", "/etc/passwd", "a" * 32 + "/..", ""])
def test_a_file_id_that_is_not_a_hex_digest_cannot_be_built(hostile: str) -> None:
    with pytest.raises(ValueError, match="not a file id"):
        FileId(hostile)


def test_chunks_stay_in_memory_until_persisted_and_a_deleted_one_never_reaches_the_disk(
    tmp_path: Path,
) -> None:
    store = BufferingStore(tmp_path)
    store.put(FILE_ID, 0, b"finished inside its batch")
    store.put(FILE_ID, 1, b"still open at the batch end")

    assert files_under(tmp_path) == []
    assert store.get(FILE_ID, 1) == b"still open at the batch end"
    assert read_all(store.open(FILE_ID, 0)) == b"finished inside its batch"

    store.delete(FILE_ID, 0)
    assert store.persist(FILE_ID, 1)

    assert [path.name for path in files_under(tmp_path)] == ["00001"]
    assert store.held(FILE_ID, 1) is None
    assert store.get(FILE_ID, 1) == b"still open at the batch end"


def test_usage_counts_the_bytes_on_disk_through_writes_replacements_and_deletes(
    tmp_path: Path,
) -> None:
    store = TmpChunkStore(tmp_path)
    steps = [
        ("put", FILE_ID, 0, b"a" * 1000),
        ("put", FILE_ID, 1, b"b" * 300),
        ("put", OTHER_ID, 0, b""),
        ("put", FILE_ID, 0, b"a" * 10),
        ("delete", FILE_ID, 1, b""),
        ("delete", FILE_ID, 1, b""),
        ("put", OTHER_ID, 4, b"c" * 77),
        ("delete", OTHER_ID, 0, b""),
    ]

    for action, file_id, partition, content in steps:
        if action == "put":
            store.put(file_id, partition, content)
        else:
            store.delete(file_id, partition)
        assert store.usage == bytes_under(tmp_path), (action, partition)

    assert store.usage == 10 + 77


def test_a_chunk_over_the_budget_stays_in_memory_and_never_reaches_the_disk(
    tmp_path: Path,
) -> None:
    store = BufferingStore(tmp_path, budget=1000)
    store.put(FILE_ID, 0, b"x" * 600)
    store.put(FILE_ID, 1, b"y" * 600)

    assert store.persist(FILE_ID, 0)
    assert not store.persist(FILE_ID, 1)

    assert store.usage == bytes_under(tmp_path) == 600
    assert store.held(FILE_ID, 1) == b"y" * 600
    store.delete(FILE_ID, 0)
    assert store.persist(FILE_ID, 1)
    assert store.usage == bytes_under(tmp_path) == 600


class _DiskUsage(NamedTuple):
    total: int
    used: int
    free: int


def test_the_default_budget_is_half_of_what_tmp_dir_has_free_at_the_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[Path] = []

    def disk_usage(path: Path) -> _DiskUsage:
        asked.append(Path(path))
        return _DiskUsage(10_000, 2_999, 7_001)

    monkeypatch.setattr(shutil, "disk_usage", disk_usage)

    assert BufferingStore(tmp_path / "tmp").budget == 3_500
    assert asked == [tmp_path / "tmp"]
    assert BufferingStore(tmp_path, budget=123).budget == 123


def test_a_full_disk_lowers_the_budget_to_what_is_on_it_and_keeps_the_chunk_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = BufferingStore(tmp_path, budget=1_000_000)
    store.put(FILE_ID, 0, b"on disk")
    assert store.persist(FILE_ID, 0)
    store.put(FILE_ID, 1, b"no room")

    def full(src: str, dst: str) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patched:
        patched.setattr(os, "replace", full)
        with pytest.raises(OSError, match="No space"):
            store.persist(FILE_ID, 1)

    assert store.budget == store.usage == len(b"on disk")
    assert store.held(FILE_ID, 1) == b"no room"
    assert [path.name for path in files_under(tmp_path)] == ["00000"]


def test_a_tmp_dir_that_cannot_hold_a_directory_gives_no_budget_and_never_raises_at_start(
    tmp_path: Path,
) -> None:
    not_a_directory = tmp_path / "file"
    not_a_directory.write_bytes(b"")

    store = BufferingStore(not_a_directory)
    store.put(FILE_ID, 0, b"kept in memory")

    assert store.budget == 0
    assert not store.persist(FILE_ID, 0)
    assert store.get(FILE_ID, 0) == b"kept in memory"
    budgeted = BufferingStore(not_a_directory, budget=100)
    budgeted.put(FILE_ID, 0, b"x")
    with pytest.raises(NotADirectoryError):
        budgeted.persist(FILE_ID, 0)
    assert budgeted.get(FILE_ID, 0) == b"x"


def test_a_disk_that_refuses_a_delete_costs_no_error_and_the_chunk_is_no_longer_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = TmpChunkStore(tmp_path)
    store.put(FILE_ID, 0, b"stuck")

    def refuse(self: Path, missing_ok: bool = False) -> None:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(Path, "unlink", refuse)
    store.delete(FILE_ID, 0)

    assert store.usage == 0
    with pytest.raises(FileNotFoundError):
        store.get(FILE_ID, 0)
