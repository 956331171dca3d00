"""The shard log's fold (domain.ShardLedger.folded): a shard's state is its snapshot with
every later entry applied in order, and the first count and the first bytes stand."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from domain import FileId, LogEntry, LoggedChunk, ShardLedger, StoredChunk

A_URL = "https://bucket.example.com/a.bin?X-Amz-Signature=SECRET"
A, B = FileId.for_endpoint(A_URL), FileId.for_endpoint("https://bucket.example.com/b.bin")


def c(file_id: FileId, partition: int, digest: str = "x", count: int = 2) -> LoggedChunk:
    return LoggedChunk(file_id, partition, count, digest * 64, 10 * partition, 10)


def e(
    *chunks: LoggedChunk,
    finished: Sequence[FileId] = (),
    given_up: Sequence[FileId] = (),
) -> tuple[tuple[LoggedChunk, ...], Sequence[FileId], Sequence[FileId]]:
    return chunks, finished, given_up


def fold(
    *entries: tuple[tuple[LoggedChunk, ...], Sequence[FileId], Sequence[FileId]],
) -> ShardLedger:
    state = ShardLedger()
    for seq, (chunks, finished, given_up) in enumerate(entries, start=1):
        endpoints = {chunk.file_id: f"endpoint of {chunk.file_id}" for chunk in chunks}
        entry = LogEntry(
            seq,
            float(seq),
            f"w{seq}",
            chunks,
            endpoints,
            dict.fromkeys(finished, float(seq)),
            frozenset(given_up),
        )
        state = state.folded(entry, "shard-1")
    return state


def held(state: ShardLedger) -> dict[FileId, dict[int, tuple[str, int]]]:
    """Each open file's partitions: the first digest letter and the entry holding it."""
    return {
        f: {p: (s.digest[0], s.seq) for p, s in file.parts.items()}
        for f, file in state.files.items()
    }


CASES = [
    ("a first chunk opens its file", [e(c(A, 0))], {A: {0: ("x", 1)}}, set(), set()),
    (
        "a duplicate stands where it was first stored",
        [e(c(A, 0)), e(c(A, 0))],
        {A: {0: ("x", 1)}},
        set(),
        {2},
    ),
    (
        "other bytes of a held partition: the first bytes stand",
        [e(c(A, 0)), e(c(A, 0, "y"), c(A, 1))],
        {A: {0: ("x", 1), 1: ("x", 2)}},
        set(),
        set(),
    ),
    (
        "another partitionCount: the first count stands",
        [e(c(A, 0)), e(c(A, 1, count=3))],
        {A: {0: ("x", 1)}},
        set(),
        {2},
    ),
    ("a partition past the count is left out", [e(c(A, 2))], {}, set(), {1}),
    (
        "finished: the file closes and its entries may go",
        [e(c(A, 0), c(B, 0)), e(c(A, 1)), e(finished=[A])],
        {B: {0: ("x", 1)}},
        {A},
        {2, 3},
    ),
    (
        "a late chunk of a finished file is left out",
        [e(c(A, 0)), e(finished=[A]), e(c(A, 1), c(B, 1))],
        {B: {1: ("x", 3)}},
        {A},
        {1, 2},
    ),
    (
        "given up: the file stops collecting, a later chunk starts it again",
        [e(c(A, 0)), e(given_up=[A]), e(c(A, 1))],
        {A: {1: ("x", 3)}},
        set(),
        {1, 2},
    ),
]


@pytest.mark.parametrize(
    ("case", "entries", "files", "finished", "deletable"), CASES, ids=[c[0] for c in CASES]
)
def test_folding_entries_in_order_keeps_first_counts_first_bytes_and_finished_files(
    case: str,
    entries: list[tuple[tuple[LoggedChunk, ...], Sequence[FileId], Sequence[FileId]]],
    files: dict[FileId, dict[int, tuple[str, int]]],
    finished: set[FileId],
    deletable: set[int],
) -> None:
    state = fold(*entries)

    assert held(state) == files, case
    assert set(state.finished) == finished, case
    assert state.deletable == deletable, case
    assert state.seq == len(entries)


def test_an_open_file_says_where_each_chunk_is_and_keeps_its_first_endpoint_and_time() -> None:
    state = fold(e(c(A, 1)), e(c(A, 0)))

    file = state.files[A]
    assert file.put_endpoint == f"endpoint of {A}"
    assert file.first_seen == 1.0
    assert file.parts[1] == StoredChunk("x" * 64, 10, 1, 10, "shard-1")
    assert state.locate(A, 0, "x" * 64) == StoredChunk("x" * 64, 10, 2, 0, "shard-1")
    assert state.locate(A, 0, "y" * 64) is None
    listing = state.listing(A)
    assert listing is not None
    assert listing.is_complete
    assert "SECRET" not in repr(state)  # the endpoint is a secret: redacted in a repr


def test_an_entry_out_of_order_is_refused() -> None:
    state = fold(e(c(A, 0)))
    with pytest.raises(ValueError, match="does not follow"):
        state.folded(LogEntry(3, 3.0, "w3"))


def test_a_snapshot_with_the_later_entries_folded_on_is_the_whole_fold() -> None:
    entries = [e(c(A, 0), c(B, 0)), e(c(A, 1)), e(finished=[A]), e(c(B, 1, "y"))]
    whole = fold(*entries)

    snapshot = fold(*entries[:3]).snapshot()
    resumed = snapshot
    chunks, _, _ = entries[3]
    resumed = resumed.folded(
        LogEntry(4, 4.0, "w4", chunks, {B: f"endpoint of {B}"}, {}, frozenset()), "shard-1"
    )

    assert snapshot.covered == 3
    assert snapshot.version == 1
    assert set(snapshot.entries) == {1}  # 2 and 3 went with A; 1 holds B's open chunk
    assert held(resumed) == held(whole)
    assert resumed.finished == whole.finished
    assert resumed.uncovered == 1


def test_finished_files_are_pruned_by_age_and_by_count() -> None:
    files = [FileId.for_endpoint(f"https://bucket.example.com/{n}.jpg") for n in range(6)]
    state = fold(*[e(finished=[f]) for f in files])  # finished at 1.0 .. 6.0

    assert [state.pruned(before=3.0).knows(f) for f in files] == [False, False] + [True] * 4
    kept = state.pruned(before=0.0, keep_at_most=2)
    assert [kept.knows(f) for f in files] == [False] * 4 + [True, True]
