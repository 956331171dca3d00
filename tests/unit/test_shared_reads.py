"""Shared ranged reads: chunks side by side in one object, of one file or of several files
assembled at once, come back in one read; memory stays within the window and the bound."""

from __future__ import annotations

import hashlib
import io
import random
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import pytest
from attrs import frozen

from application.body import AssembledBody, Part
from application.ports import ByteStream
from application.shared_reads import NotAssembling, Place, SharedReads
from domain import ChunkRef, FileId
from tests.integration.builders import read_all

A, B, C = (FileId.for_endpoint(f"https://uploads.example.com/{n}.bin") for n in "abc")
NAMES = {A: "A", B: "B", C: "C"}
OBJECT = "pending/objects/0001"


@frozen
class Stored:
    """A chunk in the object: ``file`` None is bytes no file being assembled asks for."""

    file: FileId | None
    partition: int
    size: int = 100


class Objects:
    """Objects in memory; every ranged read is recorded, and may be made to fail or wait."""

    def __init__(self, layout: Sequence[Stored]) -> None:
        self.places: dict[tuple[FileId, int], Place] = {}
        self.content: dict[tuple[FileId, int], bytes] = {}
        data = bytearray()
        for n, stored in enumerate(layout):
            body = bytes([n % 251]) * stored.size
            if stored.file is not None:
                key = (stored.file, stored.partition)
                self.places[key] = Place(OBJECT, len(data), stored.size)
                self.content[key] = body
            data += body
        self.data = bytes(data)
        self.reads: list[tuple[int, int]] = []
        self.failures: list[Exception] = []
        self.gate: threading.Event | None = None
        self.entered = threading.Event()

    def fetch(self, key: str, start: int, end: int) -> ByteStream:
        assert key == OBJECT
        self.reads.append((start, end))
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(10)
        if self.failures:
            raise self.failures.pop()
        return io.BytesIO(self.data[start:end])

    def of(self, file: FileId) -> dict[int, Place]:
        return {p: place for (f, p), place in self.places.items() if f == file}


def reads_for(objects: Objects, span: int, assembling: Sequence[FileId]) -> SharedReads:
    shared = SharedReads(objects.fetch, span)
    for file in assembling:
        shared.assembling(file, objects.of(file))
    return shared


def ask(shared: SharedReads, objects: Objects, file: FileId, partition: int) -> None:
    got = shared.open(file, partition).read()
    assert got == objects.content[(file, partition)], f"{NAMES[file]}{partition}"


def interleaved(*files: FileId, chunks: int = 2) -> list[Stored]:
    """Each file's chunks together, files one after another (as a batch's object keeps them)."""
    return [Stored(f, p) for f in files for p in range(chunks)]


CASES: dict[str, tuple[list[Stored], list[FileId], int, list[tuple[FileId, int]], int]] = {
    # case: (the object, files being assembled, span, chunks asked for in order, reads)
    "one file: its chunks together": (interleaved(A, B), [A], 8, [(A, 0), (A, 1)], 1),
    "two files at once: one read for both": (
        interleaved(A, B),
        [A, B],
        8,
        [(A, 0), (A, 1), (B, 0), (B, 1)],
        1,
    ),
    "the later file asks first: the earlier one's chunks come along": (
        interleaved(A, B),
        [A, B],
        8,
        [(B, 0), (A, 0), (A, 1), (B, 1)],
        1,
    ),
    "no read ahead: each chunk alone": (
        interleaved(A, B),
        [A, B],
        1,
        [(A, 0), (A, 1), (B, 0), (B, 1)],
        4,
    ),
    "a window of 2: one chunk of another file along": (
        interleaved(A, B),
        [A, B],
        2,
        [(A, 0), (A, 1), (B, 0), (B, 1)],
        2,
    ),
    "a file's chunks past its window wait for their own read": (
        interleaved(A, chunks=5),
        [A],
        2,
        [(A, p) for p in range(5)],
        3,
    ),
    "over a finished file's chunks, twice as long as the one asked for": (
        [Stored(A, 0), Stored(None, 0), Stored(None, 1), Stored(B, 0)],
        [A, B],
        8,
        [(A, 0), (B, 0)],
        1,
    ),
    "not over a longer stretch": (
        [Stored(A, 0), Stored(None, 0, 201), Stored(B, 0)],
        [A, B],
        8,
        [(A, 0), (B, 0)],
        2,
    ),
    "over one stretch only": (
        [Stored(A, 0), Stored(None, 0), Stored(B, 0), Stored(None, 1), Stored(C, 0)],
        [A, B, C],
        8,
        [(A, 0), (B, 0), (C, 0)],
        2,
    ),
    "a chunk its file already read is not read again for it": (
        interleaved(A, B),
        [A, B],
        8,
        [(B, 1), (A, 0), (A, 1), (B, 0)],
        2,
    ),
    "a retried upload reads again": (
        interleaved(A),
        [A],
        8,
        [(A, 0), (A, 1), (A, 0), (A, 1)],
        2,
    ),
    "empty chunks cost no read": (
        [Stored(A, 0, 0), Stored(A, 1, 0)],
        [A],
        8,
        [(A, 0), (A, 1)],
        0,
    ),
}


@pytest.mark.parametrize(
    ("layout", "assembling", "span", "asked", "reads"), CASES.values(), ids=CASES.keys()
)
def test_chunks_side_by_side_share_a_read(
    layout: list[Stored],
    assembling: list[FileId],
    span: int,
    asked: list[tuple[FileId, int]],
    reads: int,
) -> None:
    objects = Objects(layout)
    shared = reads_for(objects, span, assembling)

    for file, partition in asked:
        ask(shared, objects, file, partition)

    assert len(objects.reads) == reads


def test_chunks_asked_out_of_order_are_each_read_once() -> None:
    """The window's threads may ask a later chunk first: an earlier one's read does not take
    it again (its bytes would wait, never asked for, until the upload ends)."""
    objects = Objects(interleaved(A, chunks=4))
    shared = reads_for(objects, 8, [A])

    for partition in (2, 0, 1, 3):
        ask(shared, objects, A, partition)

    assert objects.reads == [(200, 400), (0, 200)]


def test_an_upload_tried_again_reads_its_chunks_together_again() -> None:
    objects = Objects(interleaved(A, chunks=3))
    shared = reads_for(objects, 8, [A])

    for _attempt in (1, 2):
        for partition in (1, 0, 2):
            ask(shared, objects, A, partition)

    assert objects.reads == [(100, 300), (0, 100)] * 2


def test_chunks_read_along_never_number_more_than_the_window_allows() -> None:
    """A window of 3: two chunks of other files along at most."""
    objects = Objects([Stored(A, 0), Stored(B, 0), Stored(B, 1), Stored(C, 0)])
    shared = reads_for(objects, 3, [A, B, C])

    ask(shared, objects, A, 0)
    assert objects.reads == [(0, 300)], "A0 with B0 and B1, not C0"
    for file, partition in ((B, 0), (B, 1), (C, 0)):
        ask(shared, objects, file, partition)

    assert objects.reads == [(0, 300), (300, 400)]


def test_the_bound_is_given_back_when_a_file_stops_being_assembled() -> None:
    """B's chunk read along for it and never asked for (its upload failed) is let go."""
    objects = Objects([Stored(A, 0), Stored(B, 0), Stored(C, 0)])
    shared = reads_for(objects, 2, [A, B, C])

    ask(shared, objects, A, 0)  # B0 along: the one chunk a window of 2 allows
    shared.forget(B)
    ask(shared, objects, A, 0)  # A's upload tried again: over B0's bytes, C0 along
    ask(shared, objects, C, 0)

    assert objects.reads == [(0, 200), (0, 300)]


def test_a_failed_read_fails_its_asker_and_each_chunk_it_carried_is_read_alone() -> None:
    objects = Objects(interleaved(A, B))
    shared = reads_for(objects, 8, [A, B])
    objects.failures.append(TimeoutError("S3 timed out"))

    with pytest.raises(TimeoutError):
        shared.open(A, 0)
    ask(shared, objects, B, 0)
    ask(shared, objects, A, 0)

    assert objects.reads[0] == (0, 400)
    assert len(objects.reads) == 3


def test_a_chunk_asked_for_while_its_read_is_under_way_waits_for_it() -> None:
    objects = Objects(interleaved(A, B))
    shared = reads_for(objects, 8, [A, B])
    objects.gate = threading.Event()

    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(ask, shared, objects, A, 0)
        assert objects.entered.wait(10)
        second = pool.submit(ask, shared, objects, B, 1)
        objects.gate.set()
        first.result(10)
        second.result(10)

    assert objects.reads == [(0, 400)]


def test_a_read_that_comes_back_short_is_a_failure_not_a_wrong_chunk() -> None:
    objects = Objects(interleaved(A, B))
    shared = reads_for(objects, 8, [A, B])
    objects.data = objects.data[:250]

    with pytest.raises(OSError, match="250 bytes of 400"):
        shared.open(A, 0)


def test_a_chunk_not_being_assembled_is_not_served() -> None:
    objects = Objects(interleaved(A, B))
    shared = reads_for(objects, 8, [A])

    with pytest.raises(NotAssembling):
        shared.open(B, 0)
    shared.forget(A)
    with pytest.raises(NotAssembling):
        shared.open(A, 0)


def _random_object(seed: int) -> tuple[list[Stored], list[FileId]]:
    """A batch's object as many batches make them: a few files' chunks, each file's together
    and in order, sizes uneven, with finished files' bytes between some of them."""
    rng = random.Random(seed)
    files = [FileId.for_endpoint(f"https://uploads.example.com/{seed}-{n}.bin") for n in range(4)]
    layout: list[Stored] = []
    for file in files:
        for partition in range(rng.randint(1, 6)):
            if rng.random() < 0.2:
                layout.append(Stored(None, 0, rng.randint(1, 150)))
            layout.append(Stored(file, partition, rng.randint(0, 150)))
    return layout, files


@pytest.mark.parametrize("span", [1, 2, 8])
@pytest.mark.parametrize("seed", range(12))
def test_bodies_read_at_once_get_every_chunk_whole_and_read_each_at_most_once(
    seed: int, span: int
) -> None:
    """Several files' uploads read side by side, each with its own read-ahead threads:
    every body is the file's bytes in order, and no chunk is read twice."""
    layout, files = _random_object(seed)
    objects = Objects(layout)
    shared = reads_for(objects, span, files)

    def body_of(file: FileId) -> bytes:
        parts = sorted(p for f, p in objects.places if f == file)
        contents = [objects.content[(file, p)] for p in parts]
        refs = [ChunkRef(hashlib.sha256(c).hexdigest(), len(c)) for c in contents]
        opens = [partial(shared.open, file, p) for p in parts]
        body = AssembledBody(tuple(map(Part, refs, opens)), read_ahead=span)
        return read_all(body.open())  # read_all closes the reader

    with ThreadPoolExecutor(len(files)) as pool:
        bodies = dict(zip(files, pool.map(body_of, files), strict=True))

    for file, got in bodies.items():
        parts = sorted(p for f, p in objects.places if f == file)
        assert got == b"".join(objects.content[(file, p)] for p in parts)
    for key, place in objects.places.items():
        if not place.size:
            continue  # an empty chunk is never read
        covering = [r for r in objects.reads if r[0] <= place.offset and place.end <= r[1]]
        assert len(covering) <= 1, f"{key} read {len(covering)} times"
