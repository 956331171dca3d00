"""The body of an upload: every part checked before any of its bytes leaves."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from functools import partial

import pytest
from hypothesis import given
from hypothesis import strategies as st

from application.assemble import AssembleAndUpload
from application.body import AssembledBody, ChunkCorrupted, ChunkUnavailable, ChunkUnreadable, Part
from application.outcomes import FileOutcome
from application.pending import PendingFile
from application.ports import ByteStream
from domain import AssembledFile, Chunk, ChunkRef, FileId, PartitionSet
from tests.fakes import FakeArchive, FakeLocalStore, FakeRemoteStore, FakeUploader


def part(content: bytes, stored: bytes | None = None) -> Part:
    ref = ChunkRef(hashlib.sha256(content).hexdigest(), len(content))
    return Part(ref, partial(io.BytesIO, content if stored is None else stored))


def read_in_blocks(body: AssembledBody, block: int) -> bytes:
    reader = body.open()
    out = bytearray()
    while data := reader.read(block):
        out.extend(data)
    reader.close()
    return bytes(out)


@given(st.lists(st.binary(max_size=50), max_size=6), st.integers(min_value=1, max_value=64))
def test_reading_in_any_block_size_yields_the_parts_concatenated(
    contents: list[bytes], block: int
) -> None:
    body = AssembledBody(tuple(part(c) for c in contents))
    assert body.size == sum(len(c) for c in contents)
    assert read_in_blocks(body, block) == b"".join(contents)


def test_read_all_at_once_and_reopen_give_identical_bytes() -> None:
    body = AssembledBody((part(b"abc"), part(b""), part(b"defg")))
    assert body.open().read() == b"abc"  # an unbounded read stops at a part: memory stays flat
    assert read_in_blocks(body, 1000) == read_in_blocks(body, 3) == b"abcdefg"


@pytest.mark.parametrize("stored", [b"abX", b"ab", b"abcd"])
def test_a_stored_chunk_that_changed_aborts_the_read(stored: bytes) -> None:
    body = AssembledBody((part(b"abc", stored), part(b"def")))
    with pytest.raises(ChunkCorrupted):
        read_in_blocks(body, 2)


def read_until_refused(body: AssembledBody, block: int) -> tuple[bytes, ChunkUnavailable]:
    """What a receiver would get before the reader refuses to go on, and why it refused."""
    reader = body.open()
    out = bytearray()
    try:
        while data := reader.read(block):
            out.extend(data)
    except ChunkUnavailable as refused:
        return bytes(out), refused
    finally:
        reader.close()
    raise AssertionError(f"the whole body was served: {bytes(out)!r}")


FIRST, MIDDLE, LAST = b"first part", b"middle part", b"last part"


@pytest.mark.parametrize("block", [1, 4, 1 << 20])
@pytest.mark.parametrize("position", [0, 1, 2])
@pytest.mark.parametrize(
    "change", [b"X", b"", b"XX"], ids=["other-byte", "one-byte-short", "one-byte-long"]
)
def test_a_part_that_changed_in_storage_raises_before_any_of_its_bytes_is_returned(
    position: int, change: bytes, block: int
) -> None:
    contents = [FIRST, MIDDLE, LAST]
    stored = contents[position][:-1] + change
    parts = [part(c, stored if i == position else None) for i, c in enumerate(contents)]

    sent, error = read_until_refused(AssembledBody(tuple(parts)), block)

    assert sent == b"".join(contents[:position])
    assert isinstance(error, ChunkCorrupted)


class BreaksMidway:
    """A stored chunk's stream that gives some bytes, then fails as S3 or a disk may."""

    def __init__(self, content: bytes, error: Exception) -> None:
        self._stream = io.BytesIO(content[:3])
        self._error = error

    def read(self, size: int = -1, /) -> bytes:
        return self._stream.read(size) or self._raise()

    def _raise(self) -> bytes:
        raise self._error

    def close(self) -> None:
        self._stream.close()


class ReadTimeout(Exception):
    """Not an OSError, as botocore's ClientError and some of its timeouts are not."""


def refuses_to_open() -> ByteStream:
    raise ReadTimeout("GetObject timed out")


@pytest.mark.parametrize(
    "opener",
    [
        refuses_to_open,
        partial(BreaksMidway, LAST, ReadTimeout("read timed out")),
        partial(BreaksMidway, LAST, PermissionError(13, "disk refuses")),
    ],
    ids=["open-fails", "read-times-out-midway", "disk-error-midway"],
)
def test_storage_failing_under_a_part_is_an_unreadable_chunk_before_any_of_its_bytes_is_sent(
    opener: Callable[[], ByteStream],
) -> None:
    body = AssembledBody((part(FIRST), Part(ref_of(LAST), opener)))

    sent, error = read_until_refused(body, 4)

    assert sent == FIRST
    assert isinstance(error, ChunkUnreadable)  # a ChunkUnavailable: the upload is retried later


def ref_of(content: bytes) -> ChunkRef:
    return ChunkRef(hashlib.sha256(content).hexdigest(), len(content))


URL = "https://bucket.example.com/report.bin?X-Amz-Signature=SECRET"
FILE_ID = FileId.for_endpoint(URL)
CHUNKS = [b"in memory, hashed on arrival", b"on this container's disk", b"in remote storage"]


@pytest.fixture
def assemble_world() -> tuple[FakeLocalStore, FakeRemoteStore, FakeUploader, AssembleAndUpload]:
    """A file of three chunks: one put in this batch, one on disk, one only in remote storage."""
    local, remote, uploader = FakeLocalStore(), FakeRemoteStore(), FakeUploader()
    local.put(FILE_ID, 0, CHUNKS[0])
    local.files[(FILE_ID, 1)] = CHUNKS[1]  # written by an earlier batch: read back from disk
    remote.put([Chunk(URL, 2, 3, CHUNKS[2])])
    return local, remote, uploader, AssembleAndUpload(local, remote, uploader, FakeArchive())


def entry() -> PendingFile:
    parts = {p: ref_of(c) for p, c in enumerate(CHUNKS)}
    return PendingFile(FILE_ID, URL, PartitionSet(3, parts), local=frozenset({0, 1}))


def test_only_bytes_still_in_memory_since_they_were_hashed_skip_the_second_hash(
    assemble_world: tuple[FakeLocalStore, FakeRemoteStore, FakeUploader, AssembleAndUpload],
) -> None:
    *_, assemble = assemble_world
    file = entry()
    assembled = AssembledFile.from_partitions(FILE_ID, URL, file.partitions)

    body = assemble.body(file.plan(), assembled)

    assert [p.verify for p in body.parts] == [False, True, True]
    assert read_in_blocks(body, 5) == b"".join(CHUNKS)


@pytest.mark.parametrize("where", ["disk", "remote"])
def test_a_chunk_changed_on_disk_or_in_remote_storage_is_never_uploaded(
    assemble_world: tuple[FakeLocalStore, FakeRemoteStore, FakeUploader, AssembleAndUpload],
    where: str,
) -> None:
    local, remote, uploader, assemble = assemble_world
    if where == "disk":
        local.files[(FILE_ID, 1)] = CHUNKS[1].upper()
    else:
        [stored] = remote.objects.values()
        stored.content = CHUNKS[2].upper()

    assert assemble(entry().plan()) is FileOutcome.RETRY_LATER
    assert uploader.uploads == []


@pytest.mark.parametrize(
    "primary",
    [
        pytest.param(lambda: io.BytesIO(b"changed on disk"), id="changed"),
        pytest.param(partial(io.BytesIO, b"short"), id="short"),
        pytest.param(lambda: (_ for _ in ()).throw(OSError(5, "EIO")), id="unreadable"),
    ],
)
def test_a_part_whose_copy_fails_is_served_from_its_fallback_copy_after_its_check(
    primary: Callable[[], ByteStream],
) -> None:
    good = part(b"the durable copy")
    with_fallback = Part(good.ref, primary, fallback=partial(io.BytesIO, b"the durable copy"))
    without = Part(good.ref, primary)

    assert read_in_blocks(AssembledBody((with_fallback,)), 4) == b"the durable copy"
    with pytest.raises(ChunkUnavailable):
        read_in_blocks(AssembledBody((without,)), 4)


def test_a_fallback_copy_is_checked_too() -> None:
    good = part(b"the durable copy")
    both_bad = Part(
        good.ref, partial(io.BytesIO, b"changed on disk!"), fallback=partial(io.BytesIO, b"x" * 16)
    )

    with pytest.raises(ChunkCorrupted):
        read_in_blocks(AssembledBody((both_bad,)), 4)


def test_a_durable_chunk_whose_disk_copy_changed_is_uploaded_from_remote_storage(
    assemble_world: tuple[FakeLocalStore, FakeRemoteStore, FakeUploader, AssembleAndUpload],
) -> None:
    local, remote, uploader, assemble = assemble_world
    remote.put([Chunk(URL, 1, 3, CHUNKS[1])])  # made durable at an earlier batch's end
    local.files[(FILE_ID, 1)] = CHUNKS[1].upper()  # then the disk copy went bad
    durable = entry()
    durable = PendingFile(
        FILE_ID, URL, durable.partitions, local=durable.local, durable=frozenset({1, 2})
    )

    assert assemble(durable.plan()) is FileOutcome.UPLOADED
    [(_, body)] = uploader.uploads
    assert body == b"".join(CHUNKS)
