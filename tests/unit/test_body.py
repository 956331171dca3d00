"""The body of an upload: every part checked before any of its bytes leaves."""

from __future__ import annotations

import hashlib
import io
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from functools import partial
from typing import Any, ParamSpec, TypeVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from application.assemble import AssembleAndUpload
from application.body import (
    READ_AHEAD_THREADS,
    AssembledBody,
    ChunkCorrupted,
    ChunkUnavailable,
    ChunkUnreadable,
    Part,
)
from application.outcomes import FileOutcome
from application.pending import PendingFile
from application.ports import ByteStream
from domain import AssembledFile, Chunk, ChunkRef, FileId, PartitionSet
from tests.fakes import FakeArchive, FakeLocalStore, FakeRemoteStore, FakeUploader, fake_container

P = ParamSpec("P")
T = TypeVar("T")


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


@given(
    st.lists(st.binary(max_size=50), max_size=6),
    st.integers(min_value=1, max_value=64),
    st.integers(min_value=1, max_value=8),
)
def test_reading_in_any_block_size_yields_the_parts_concatenated(
    contents: list[bytes], block: int, read_ahead: int
) -> None:
    body = AssembledBody(tuple(part(c) for c in contents), read_ahead)
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
    try:
        return serve_until_refused(reader, block)
    finally:
        reader.close()


def serve_until_refused(reader: ByteStream, block: int) -> tuple[bytes, ChunkUnavailable]:
    out = bytearray()
    try:
        while data := reader.read(block):
            out.extend(data)
    except ChunkUnavailable as refused:
        return bytes(out), refused
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


@pytest.fixture(params=[1, 8], ids=["one-at-a-time", "read-ahead-8"])
def assemble_world(
    request: pytest.FixtureRequest,
) -> tuple[FakeLocalStore, FakeRemoteStore, FakeUploader, AssembleAndUpload]:
    """A file of three chunks: one put in this batch, one on disk, one only in remote storage."""
    local, remote, uploader = FakeLocalStore(), FakeRemoteStore(), FakeUploader()
    local.put(FILE_ID, 0, CHUNKS[0])
    local.files[(FILE_ID, 1)] = CHUNKS[1]  # written by an earlier batch: read back from disk
    remote.put([Chunk(URL, 2, 3, CHUNKS[2])])
    read_ahead: int = request.param
    assemble = AssembleAndUpload(local, remote, uploader, FakeArchive(), read_ahead=read_ahead)
    return local, remote, uploader, assemble


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


# Read-ahead: up to ASSEMBLY_READ_AHEAD parts fetched and checked at once, in a window that
# slides with the upload; the bytes, their checks and the failures are the same as one at a
# time.

TEN = [bytes([65 + i]) * (1 + i * 7 % 11) for i in range(10)]  # distinct parts
READ_AHEADS = [1, 2, 3, 8, 50]
"""One at a time, a few, the default, and more than the file has parts."""


class Opens:
    """Openers that record which parts were opened, and how many were being read at once."""

    def __init__(self, contents: Sequence[bytes]) -> None:
        self.contents = contents
        self.opened: list[int] = []
        self.running = 0
        self.most_running = 0
        self.finished = 0
        self.lock = threading.Lock()
        self.while_open: Callable[[int], object] = lambda index: None
        """Runs inside each open, on the fetching thread, after it has counted."""

    def part(self, index: int, stored: bytes | None = None) -> Part:
        content = self.contents[index]
        return Part(ref_of(content), partial(self._open, index, stored or content))

    def body(self, read_ahead: int, **options: Any) -> AssembledBody:
        parts = tuple(self.part(i) for i in range(len(self.contents)))
        return AssembledBody(parts, read_ahead, **options)

    def _open(self, index: int, content: bytes) -> ByteStream:
        with self.lock:
            self.opened.append(index)
            self.running += 1
            self.most_running = max(self.most_running, self.running)
        try:
            self.while_open(index)
        finally:
            with self.lock:
                self.running -= 1
                self.finished += 1
        return io.BytesIO(content)


class InlineExecutor(Executor):
    """Runs each fetch as it is asked for: what was opened is exactly what was asked for."""

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        future: Future[T] = Future()
        future.set_result(fn(*args, **kwargs))
        return future


def inline(workers: int) -> Executor:
    return InlineExecutor()


def read_ahead_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(READ_AHEAD_THREADS)]


@pytest.mark.parametrize("block", [1, 5, 1 << 20])
@pytest.mark.parametrize("read_ahead", READ_AHEADS)
def test_the_body_is_the_file_in_order_whatever_the_read_ahead(read_ahead: int, block: int) -> None:
    with_an_empty_part = [*TEN[:5], b"", *TEN[5:]]
    body = Opens(with_an_empty_part).body(read_ahead)

    assert read_in_blocks(body, block) == read_in_blocks(body, 3) == b"".join(TEN)
    assert read_ahead_threads() == []


@pytest.mark.parametrize("read_ahead", READ_AHEADS)
def test_a_reader_asks_for_a_part_only_once_it_holds_fewer_than_read_ahead(
    read_ahead: int,
) -> None:
    """Memory is read_ahead parts: the one served and those fetched or being fetched."""
    opens = Opens(TEN)
    reader = opens.body(read_ahead, executor=inline).open()

    for index, content in enumerate(TEN):
        assert reader.read() == content  # an unbounded read returns one part
        assert len(opens.opened) == min(len(TEN), index + read_ahead)
    assert reader.read() == b""
    assert opens.opened == list(range(len(TEN)))  # each part once, in the file's order


@pytest.mark.parametrize("read_ahead", [2, 4])
def test_read_ahead_parts_are_fetched_at_once_never_more(read_ahead: int) -> None:
    """Each fetch waits until read_ahead fetches are running: one at a time never gets there."""
    opens = Opens([bytes([i]) * 100 for i in range(3 * read_ahead)])
    all_running = threading.Barrier(read_ahead)
    opens.while_open = lambda index: all_running.wait(timeout=10)

    body = opens.body(read_ahead)

    assert read_in_blocks(body, 64) == b"".join(opens.contents)
    assert opens.most_running == read_ahead


def corrupt(content: bytes) -> bytes:
    return content[:-1] + b"X"


@pytest.mark.parametrize("read_ahead", [1, 3, 8])
@pytest.mark.parametrize("position", [0, 4, 9])
@pytest.mark.parametrize(
    ("failure", "raised"),
    [("corrupt", ChunkCorrupted), ("unreadable", ChunkUnreadable)],
)
def test_a_part_fetched_ahead_that_fails_stops_the_body_just_before_it(
    read_ahead: int, position: int, failure: str, raised: type[ChunkUnavailable]
) -> None:
    contents = [bytes([97 + i]) * 10 for i in range(10)]
    opens = Opens(contents)
    parts = [opens.part(i) for i in range(len(contents))]
    if failure == "corrupt":
        parts[position] = opens.part(position, corrupt(contents[position]))
    else:
        parts[position] = Part(ref_of(contents[position]), refuses_to_open)
    reader = AssembledBody(tuple(parts), read_ahead).open()

    sent, stopped = serve_until_refused(reader, 4)

    assert isinstance(stopped, raised)
    assert isinstance(stopped, OSError)  # requests: a failed connection, retried later
    assert sent == b"".join(contents[:position])
    with pytest.raises(raised):
        reader.read(4)  # the reader stays stopped: nothing after the failed part is served
    assert read_ahead_threads() == []  # the failure let go of the rest of the window
    reader.close()


@pytest.mark.parametrize("read_ahead", [1, 3, 8])
def test_reopening_after_a_partial_read_gives_the_whole_body_again(read_ahead: int) -> None:
    body = Opens(TEN).body(read_ahead)
    first = body.open()
    partial_read = first.read(5) + first.read(5)
    assert partial_read == b"".join(TEN)[: len(partial_read)]

    assert read_in_blocks(body, 4) == b"".join(TEN)  # the first reader still open
    first.close()
    assert read_in_blocks(body, 4) == b"".join(TEN)


def test_closing_early_waits_for_the_running_fetches_and_starts_no_more() -> None:
    """An upload cut short: close returns with no fetch running, no thread, no part held."""
    opens = Opens([bytes([i]) * 100 for i in range(12)])
    closing = threading.Event()
    opens.while_open = lambda index: index == 0 or closing.wait(timeout=10)

    class SignalsClosing(ThreadPoolExecutor):
        def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
            closing.set()  # the fetches of parts 1 to 3 are still running here
            super().shutdown(wait, cancel_futures=cancel_futures)

    reader = opens.body(
        4, executor=partial(SignalsClosing, thread_name_prefix="closing-test")
    ).open()
    assert reader.read(10) == opens.contents[0][:10]

    reader.close()

    assert opens.finished == len(opens.opened) <= 4
    assert [t for t in threading.enumerate() if t.name.startswith("closing-test")] == []
    assert reader.read() == b""


@pytest.mark.parametrize("read_ahead", [1, 4])
def test_a_durable_part_fetched_ahead_falls_back_to_its_remote_copy(read_ahead: int) -> None:
    good = [b"first part", b"changed on disk", b"third part"]
    bad_disk = Part(
        ref_of(good[1]),
        partial(io.BytesIO, b"CHANGED ON DISK"),
        fallback=partial(io.BytesIO, good[1]),
    )
    body = AssembledBody((part(good[0]), bad_disk, part(good[2])), read_ahead)

    assert read_in_blocks(body, 3) == b"".join(good)


@pytest.mark.parametrize(("setting", "read_ahead"), [({}, 8), ({"ASSEMBLY_READ_AHEAD": "3"}, 3)])
def test_the_container_gives_assembly_the_read_ahead_setting(
    setting: dict[str, str], read_ahead: int
) -> None:
    container = fake_container(
        setting,
        local_store=FakeLocalStore(),
        remote_store=FakeRemoteStore(),
        uploader=FakeUploader(),
        archive=FakeArchive(),
    )
    file = entry()
    assembled = AssembledFile.from_partitions(FILE_ID, URL, file.partitions)

    body = container.assemble().body(file.plan(), assembled)

    assert body.read_ahead == read_ahead
