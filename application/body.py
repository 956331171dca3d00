"""A complete file as a stream of its stored chunks, checked as it is read.

Nothing here joins a file in memory: peak memory is one read buffer, whatever the size.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Protocol

from attrs import frozen

from domain import ChunkRef


class ByteStream(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...

    def close(self) -> None: ...


class ChunkCorrupted(OSError):
    """A stored chunk no longer matches the digest it was admitted with."""


@frozen
class Part:
    """One chunk of the body. ``verify``: hash it as it passes (bytes that crossed a network);
    the length is always checked."""

    ref: ChunkRef
    open: Callable[[], ByteStream]
    verify: bool = True


class ConcatenatedReader:
    """Reads the parts one after another, verifying each part's size and sha256 at its end."""

    def __init__(self, parts: Sequence[Part]) -> None:
        self._parts = parts
        self._index = 0
        self._current: ByteStream | None = None
        self._hash = hashlib.sha256()
        self._read_in_part = 0

    def read(self, size: int = -1, /) -> bytes:
        while self._index < len(self._parts):
            part = self._parts[self._index]
            if self._current is None:
                self._current = part.open()
                self._hash = hashlib.sha256()
                self._read_in_part = 0
            want = part.ref.size - self._read_in_part
            if size >= 0:
                want = min(want, size)
            data = self._current.read(want) if want > 0 else b""
            if data:
                if part.verify:
                    self._hash.update(data)
                self._read_in_part += len(data)
                return data
            self._finish_part(part)
            if size == 0:
                return b""
        return b""

    def _finish_part(self, part: Part) -> None:
        assert self._current is not None
        trailing = self._current.read(1)
        self._current.close()
        self._current = None
        self._index += 1
        if trailing or self._read_in_part != part.ref.size:
            raise ChunkCorrupted(f"part {self._index - 1} has the wrong length")
        if part.verify and self._hash.hexdigest() != part.ref.digest:
            raise ChunkCorrupted(f"part {self._index - 1} does not match its digest")

    def close(self) -> None:
        if self._current is not None:
            self._current.close()
            self._current = None
        self._index = len(self._parts)


@frozen
class AssembledBody:
    """The Body port's shape: known size, re-openable from the first byte for each retry."""

    parts: tuple[Part, ...]

    @property
    def size(self) -> int:
        return sum(part.ref.size for part in self.parts)

    def open(self) -> ConcatenatedReader:
        return ConcatenatedReader(self.parts)
