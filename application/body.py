"""A complete file as a stream of its stored chunks, each checked before any of it is sent.

Nothing here joins a file in memory: peak memory is ``read_ahead`` parts (a part is a chunk,
at most about 1 MiB) plus the read buffer, whatever the file's size.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor

from attrs import field, frozen
from attrs.validators import ge

from application.in_context import submit
from application.ports import ByteStream
from domain import ChunkRef


class ChunkUnavailable(OSError):
    """A stored chunk cannot be served as it was admitted; the upload is retried later.

    An OSError, so that an HTTP client reading the body (requests) reports it as a failed
    connection, a transient upload failure, instead of letting it escape unclassified.
    """


class ChunkCorrupted(ChunkUnavailable):
    """A stored chunk no longer matches the length or digest it was admitted with."""


class ChunkUnreadable(ChunkUnavailable):
    """Storage failed while a chunk was read (an S3 error or timeout, a disk error)."""


@frozen
class Part:
    """One chunk of the body. ``verify``: hash it when it is read back from storage; False
    only for bytes still in memory since they were hashed on arrival. The length is always
    checked."""

    ref: ChunkRef
    open: Callable[[], ByteStream]
    verify: bool = True
    fallback: Callable[[], ByteStream] | None = None
    """Another copy (remote storage), read and hashed when this one cannot be read or fails
    its check: a failing local disk must not hold up a file whose chunks are durable."""


class ConcatenatedReader:
    """Serves the parts one after another, in the file's order; each is read whole and
    checked first, up to ``read_ahead`` parts at once.

    A part that fails its check raises before its first byte is returned, so no receiver
    ever holds a complete body with a wrong part in it; the reader then stays failed, so
    nothing after that part is ever served.

    Read-ahead is a sliding window: the part being served and the parts being fetched or
    waiting together never number more than ``read_ahead``, so memory is ``read_ahead``
    parts whatever the file's size. Part i + ``read_ahead`` is only asked for once part i
    has been served. The threads are this reader's own: created at its first read, gone
    when it is closed, so no fetch outlives an upload attempt.
    """

    def __init__(
        self,
        parts: Sequence[Part],
        read_ahead: int = 1,
        executor: Callable[[int], Executor] | None = None,
    ) -> None:
        self._parts = parts
        self._read_ahead = read_ahead
        self._executor = executor or _thread_pool
        self._pool: Executor | None = None
        self._window: deque[Future[bytes]] = deque()
        self._asked = 0
        """Parts handed to the pool so far (the window's far end)."""
        self._index = 0
        self._current = b""
        self._offset = 0
        self._failed: ChunkUnavailable | None = None

    def read(self, size: int = -1, /) -> bytes:
        if size == 0:
            return b""
        while self._offset >= len(self._current):
            if self._failed is not None:
                raise self._failed
            if self._index >= len(self._parts):
                return b""
            self._current = b""  # let go of the part served before the next is asked for
            try:
                self._current = self._next_part()
            except ChunkUnavailable as error:
                self._failed = error
                self._stop()
                raise
            self._offset = 0
            self._index += 1
        end = len(self._current) if size < 0 else min(len(self._current), self._offset + size)
        data = self._current[self._offset : end]  # the whole part is returned without a copy
        self._offset = end
        return data

    def close(self) -> None:
        """Cancels the fetches not started and waits for those running: no thread is left."""
        self._stop()
        self._current = b""
        self._offset = 0
        self._index = len(self._parts)

    def _next_part(self) -> bytes:
        if self._read_ahead == 1 or len(self._parts) == 1:
            return _checked(self._parts[self._index], self._index)  # nothing to overlap
        if self._pool is None:
            self._pool = self._executor(min(self._read_ahead, len(self._parts)))
        while len(self._window) < self._read_ahead and self._asked < len(self._parts):
            self._window.append(submit(self._pool, _checked, self._parts[self._asked], self._asked))
            self._asked += 1
        return self._window.popleft().result()

    def _stop(self) -> None:
        for future in self._window:
            future.cancel()
        self._window.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def _thread_pool(workers: int) -> Executor:
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix=READ_AHEAD_THREADS)


READ_AHEAD_THREADS = "sfb-read-ahead"
"""The name every read-ahead thread starts with."""


def _checked(part: Part, index: int) -> bytes:
    try:
        return _read_checked(part.open, part.verify, part.ref, index)
    except ChunkUnavailable:
        if part.fallback is None:
            raise
        return _read_checked(part.fallback, True, part.ref, index)


def _read_checked(
    open_part: Callable[[], ByteStream], verify: bool, ref: ChunkRef, index: int
) -> bytes:
    """The part's bytes, read whole (one byte more than expected tells a longer object)."""
    try:
        stream = open_part()
        try:
            data = _read_up_to(stream, ref.size + 1)
        finally:
            stream.close()
    except Exception as error:
        raise ChunkUnreadable(
            f"part {index} could not be read: {type(error).__name__}: {error}"
        ) from error
    if len(data) != ref.size:
        raise ChunkCorrupted(f"part {index} has the wrong length")
    if verify and hashlib.sha256(data).hexdigest() != ref.digest:
        raise ChunkCorrupted(f"part {index} does not match its digest")
    return data


def _read_up_to(stream: ByteStream, limit: int) -> bytes:
    first = stream.read(limit)
    if not first or len(first) >= limit:
        return first
    pieces = [first]
    got = len(first)
    while got < limit and (more := stream.read(limit - got)):
        pieces.append(more)
        got += len(more)
    return b"".join(pieces)


@frozen
class AssembledBody:
    """The Body port's shape: known size, re-openable from the first byte for each retry.

    ``read_ahead``: how many parts each reader may hold or fetch at once (1: one after
    another, on the caller's thread). ``executor``: makes a reader's pool of that many
    workers; a thread pool unless a test needs to see the order of the fetches.
    """

    parts: tuple[Part, ...]
    read_ahead: int = field(default=1, validator=ge(1))
    executor: Callable[[int], Executor] | None = None

    @property
    def size(self) -> int:
        return sum(part.ref.size for part in self.parts)

    def open(self) -> ConcatenatedReader:
        return ConcatenatedReader(self.parts, self.read_ahead, self.executor)
