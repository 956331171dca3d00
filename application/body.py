"""A complete file as a stream of its stored chunks, each checked before any of it is sent.

Nothing here joins a file in memory: peak memory is one part (a chunk, at most about 1 MiB)
plus the read buffer, whatever the file's size.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

from attrs import frozen

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
    """Serves the parts one after another; each part is read whole and checked first.

    A part that fails its check raises before its first byte is returned, so no receiver
    ever holds a complete body with a wrong part in it.
    """

    def __init__(self, parts: Sequence[Part]) -> None:
        self._parts = parts
        self._index = 0
        self._current = b""
        self._offset = 0

    def read(self, size: int = -1, /) -> bytes:
        if size == 0:
            return b""
        while self._offset >= len(self._current):
            if self._index >= len(self._parts):
                return b""
            self._current = _checked(self._parts[self._index], self._index)
            self._offset = 0
            self._index += 1
        end = len(self._current) if size < 0 else min(len(self._current), self._offset + size)
        data = self._current[self._offset : end]  # the whole part is returned without a copy
        self._offset = end
        return data

    def close(self) -> None:
        self._current = b""
        self._offset = 0
        self._index = len(self._parts)


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
    """The Body port's shape: known size, re-openable from the first byte for each retry."""

    parts: tuple[Part, ...]

    @property
    def size(self) -> int:
        return sum(part.ref.size for part in self.parts)

    def open(self) -> ConcatenatedReader:
        return ConcatenatedReader(self.parts)
