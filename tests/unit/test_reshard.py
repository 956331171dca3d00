"""A file sent across a reshard (local backend): its first chunks in a parent shard's log, the
rest in a child's. The child follows its parents' logs, uploads the file whole and once, tells
the parent, and nothing stays under pending/; a sibling child and shards never resharded pay
nothing for it."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import pytest
from attrs import evolve

from application.records import StreamRecord
from application.shard_book import LINEAGE_RETRY_SECONDS
from domain import FileId
from tests.factories import payload, record
from tests.fakes import FakeArchive, FakeContainer, FakeRemoteStore, FakeUploader

ARN = "arn:aws:kinesis:us-east-1:123456789012:stream/files"
F = "https://bucket.example.com/f.bin?X-Amz-Signature=SECRET"
G = "https://bucket.example.com/g.bin?X-Amz-Signature=SECRET"
P, P2, C1, C2, GC = (f"shardId-00000000000{n}" for n in range(5))


def parts(url: str, count: int = 4) -> list[bytes]:
    return [f"{url[-30:-24]} part {p} ".encode() * 3 for p in range(count)]


def on(shard: str, url: str, partitions: Sequence[int], content: list[bytes]) -> list[StreamRecord]:
    """Records of ``url``'s ``partitions`` as Lambda delivers them from ``shard``."""
    made = [record(payload(url, p, len(content), content[p])) for p in partitions]
    return [evolve(r, source=f"{shard}:{r.sequence_number}", stream=ARN) for r in made]


@pytest.fixture
def world(
    remote: FakeRemoteStore, uploader: FakeUploader, archive: FakeArchive
) -> tuple[FakeRemoteStore, FakeUploader, FakeArchive]:
    return remote, uploader, archive


def split_after(
    world: tuple[FakeRemoteStore, FakeUploader, FakeArchive], partitions: list[int], count: int = 4
) -> tuple[FakeContainer, list[bytes]]:
    """A container that took F's ``partitions`` on P, then P split into C1 and C2."""
    remote, uploader, archive = world
    f = parts(F, count)
    a = FakeContainer(remote, uploader, archive)
    assert a.process(on(P, F, partitions, f)) == []
    remote.lineage.split(P, C1, C2)
    return a, f


@pytest.mark.parametrize(
    ("reshard", "parents", "child"),
    [
        ("split", (P,), C1),
        ("merge", (P, P2), C1),
    ],
)
@pytest.mark.parametrize("child_container", ["the parent's container", "a fresh container"])
def test_a_file_sent_across_a_reshard_is_uploaded_once_whole_and_nothing_stays_pending(
    world: tuple[FakeRemoteStore, FakeUploader, FakeArchive],
    reshard: str,
    parents: tuple[str, ...],
    child: str,
    child_container: str,
) -> None:
    remote, uploader, archive = world
    f, g = parts(F), parts(G)
    before = FakeContainer(remote, uploader, archive)
    assert before.process(on(parents[0], F, [0, 1], f)) == []
    assert before.process(on(parents[-1], G, [0], g)) == []
    if reshard == "split":
        remote.lineage.split(P, C1, C2)
    else:
        remote.lineage.merge((P, P2), C1)
    after = before if child_container == "the parent's container" else before.recycled()

    assert after.process(on(child, F, [2], f)) == []  # kept in the child's log meanwhile
    assert after.process(on(child, G, [1, 2, 3], g) + on(child, F, [3], f)) == []

    assert uploader.bodies_for(F) == [b"".join(f)]
    assert uploader.bodies_for(G) == [b"".join(g)]
    assert archive.quarantined == []
    assert remote.pending() == []
    for shard in {*parents, child}:
        assert remote.log_state(shard).open == frozenset()


def test_a_sibling_child_never_reports_the_parents_files_and_reads_them_only_until_settled(
    world: tuple[FakeRemoteStore, FakeUploader, FakeArchive],
) -> None:
    remote, uploader, _ = world
    a, f = split_after(world, [0, 1])
    g = parts(G)
    sibling = a.recycled()

    assert sibling.process(on(C2, G, [0, 1, 2, 3], g)) == []  # a file all of its own
    assert [s.file_id for s in sibling.report()] == [FileId.for_endpoint(F)]  # the parent's

    assert a.process(on(C1, F, [2, 3], f)) == []
    reads = remote.operations["read_snapshot"]
    assert sibling.process(on(C2, G, [0], g)) == []  # a late duplicate: parent read, settled
    assert sibling.process(on(C2, G, [1], g)) == []
    assert remote.operations["read_snapshot"] - reads == 3  # its own twice, the parent once

    assert uploader.bodies_for(F) == [b"".join(f)]
    assert uploader.bodies_for(G) == [b"".join(g)]
    assert sibling.report() == []
    assert remote.pending() == []


def test_a_late_chunk_of_a_file_the_parent_finished_is_a_duplicate_in_the_child_after_settling(
    world: tuple[FakeRemoteStore, FakeUploader, FakeArchive],
) -> None:
    remote, uploader, archive = world
    a, f = split_after(world, [0, 1, 2, 3])  # finished before the reshard

    for container in (a, a.recycled()):
        assert container.process(on(C1, F, [2], [b"other bytes"] * 4)) == []
    g = parts(G)
    assert a.process(on(C1, G, [0, 1, 2, 3], g)) == []  # its snapshot stores the settling
    assert remote.log_state(C1).lineage == ()
    assert FileId.for_endpoint(F) in remote.log_state(C1).finished
    reads = remote.operations["read_snapshot"]
    assert a.recycled().process(on(C1, F, [2], [b"other bytes"] * 4)) == []

    assert remote.operations["read_snapshot"] - reads == 1  # the parent is not read again
    assert uploader.bodies_for(F) == [b"".join(f)]
    assert archive.quarantined == []
    assert remote.pending() == []


def test_the_lineage_is_looked_up_once_and_stored_with_the_shards_snapshot(
    world: tuple[FakeRemoteStore, FakeUploader, FakeArchive],
) -> None:
    remote, uploader, archive = world
    g = parts(G)
    a = FakeContainer(remote, uploader, archive)

    assert a.process(on(C1, G, [0, 1], g)) == []
    assert a.process(on(C1, G, [2], g)) == []
    assert remote.lineage.lookups[C1] == 1  # once per container
    assert a.process(on(C1, G, [3], g)) == []  # finishing stores a snapshot
    assert a.recycled().process(on(C1, G, [3], g)) == []

    assert remote.lineage.lookups[C1] == 1  # a new container reads it from the snapshot
    assert remote.log_state(C1).lineage == ()
    assert uploader.bodies_for(G) == [b"".join(g)]


def test_a_failed_lineage_lookup_warns_goes_on_and_is_tried_again_a_minute_later(
    world: tuple[FakeRemoteStore, FakeUploader, FakeArchive], caplog: pytest.LogCaptureFixture
) -> None:
    remote, uploader, archive = world
    now = [1_000.0]
    remote.clock = lambda: now[0]
    f = parts(F)
    a = FakeContainer(remote, uploader, archive)
    assert a.process(on(P, F, [0, 1], f)) == []
    remote.lineage.split(P, C1, C2)
    remote.lineage.failing = True

    with caplog.at_level(logging.WARNING, logger="sfb"):
        assert a.process(on(C1, F, [2], f)) == []  # held in the child's log, not lost
    assert "parents could not be looked up" in caplog.text
    assert "SECRET" not in caplog.text
    remote.lineage.failing = False
    assert a.process(on(C1, F, [3], f)) == []
    assert uploader.bodies_for(F) == []  # not asked again within the minute

    now[0] += LINEAGE_RETRY_SECONDS + 1
    assert a.process(on(C1, F, [3], f)) == []  # the producer's retry, or the next batch
    assert uploader.bodies_for(F) == [b"".join(f)]
    assert remote.pending() == []


def test_a_parent_not_told_of_a_finished_file_is_told_after_a_later_batch(
    world: tuple[FakeRemoteStore, FakeUploader, FakeArchive], caplog: pytest.LogCaptureFixture
) -> None:
    remote, uploader, _ = world
    a, f = split_after(world, [0, 1])
    g = parts(G)
    assert a.process(on(C1, F, [2], f)) == []

    def refuse_the_parents_entry() -> None:
        raise RuntimeError("the parent's log refuses")

    remote.before_log_write = [lambda: None, refuse_the_parents_entry]  # the child's, then
    with caplog.at_level(logging.WARNING, logger="sfb"):
        assert a.process(on(C1, F, [3], f)) == []
    assert "a later batch notes them" in caplog.text
    assert remote.log_state(P).open == {FileId.for_endpoint(F)}

    assert a.recycled().process(on(C1, G, [0], g)) == []

    assert remote.log_state(P).open == frozenset()
    assert uploader.bodies_for(F) == [b"".join(f)]
    assert remote.pending() == [p for p in remote.pending() if f"/{C1}/" in p]  # G's chunk


def test_a_file_sent_across_two_reshards_in_a_row_is_followed_through_both(
    world: tuple[FakeRemoteStore, FakeUploader, FakeArchive],
) -> None:
    remote, uploader, _ = world
    a, f = split_after(world, [0, 1], 6)
    assert a.process(on(C1, F, [2, 3], f)) == []
    assert a.process(on(C1, G, [0], parts(G, 2))) == []  # C1 stores its snapshot, lineage too
    remote.lineage.split(C1, GC)

    assert a.recycled().process(on(GC, F, [4, 5], f)) == []

    assert uploader.bodies_for(F) == [b"".join(f)]
    assert all(FileId.for_endpoint(F) not in remote.log_state(s).open for s in (P, C1, GC))
    assert not [p for p in remote.pending() if f"/{P}/" in p]
