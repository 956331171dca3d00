"""InMemoryPartitionCache: the warm container's memory of files being collected."""

from __future__ import annotations

from adapters.memory_cache import InMemoryPartitionCache
from application.pending import PendingFile
from domain import FileId, FileStatus
from tests.integration.builders import ref_of, signed

ENDPOINTS = [signed(f"https://uploads.example.com/{name}") for name in ("a", "b", "c")]


def pending(endpoint: str, batch: int = 1) -> PendingFile:
    return PendingFile.new(FileId.for_endpoint(endpoint), endpoint, 3, batch)


def test_an_unknown_file_is_not_in_the_cache() -> None:
    cache = InMemoryPartitionCache()

    assert cache.get(FileId.for_endpoint(ENDPOINTS[0])) is None
    assert cache.all_keys() == []


def test_a_pushed_entry_is_returned_by_its_file_id() -> None:
    cache = InMemoryPartitionCache()
    entry = pending(ENDPOINTS[0])

    cache.push(entry)

    assert cache.get(entry.file_id) == entry


def test_a_push_replaces_the_entry_of_the_same_file() -> None:
    cache = InMemoryPartitionCache()
    entry = pending(ENDPOINTS[0])
    cache.push(entry)
    grown = entry.with_local_part(0, ref_of(b"zero"), batch=2)

    cache.push(grown)

    assert cache.get(entry.file_id) == grown
    assert cache.all_keys() == [entry.file_id]


def test_all_keys_lists_files_in_insertion_order() -> None:
    cache = InMemoryPartitionCache()
    entries = [pending(endpoint) for endpoint in reversed(ENDPOINTS)]

    for entry in entries:
        cache.push(entry)

    assert cache.all_keys() == [entry.file_id for entry in entries]


def test_delete_forgets_only_that_file_and_says_whether_it_was_there() -> None:
    cache = InMemoryPartitionCache()
    first, second = pending(ENDPOINTS[0]), pending(ENDPOINTS[1])
    cache.push(first)
    cache.push(second)

    assert cache.delete(first.file_id) is True
    assert cache.delete(first.file_id) is False
    assert cache.get(first.file_id) is None
    assert cache.get(second.file_id) == second
    assert cache.all_keys() == [second.file_id]


def test_two_caches_share_nothing() -> None:
    container_a, container_b = InMemoryPartitionCache(), InMemoryPartitionCache()

    container_a.push(pending(ENDPOINTS[0]))

    assert container_b.get(FileId.for_endpoint(ENDPOINTS[0])) is None


def test_open_keys_are_the_collecting_entries_only_as_they_close_reopen_and_go() -> None:
    cache = InMemoryPartitionCache()
    a, b, c = (pending(endpoint) for endpoint in ENDPOINTS)
    for entry in (a, b, c):
        cache.push(entry)

    cache.push(b.closed(FileStatus.UPLOADED, batch=2))
    assert cache.open_keys() == [a.file_id, c.file_id]
    cache.delete(c.file_id)
    assert cache.open_keys() == [a.file_id]
    cache.push(b)  # started again (a late chunk after its tombstone was forgotten)
    assert cache.open_keys() == [a.file_id, b.file_id]
    assert cache.all_keys() == [a.file_id, b.file_id]
