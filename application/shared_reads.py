"""Ranged reads shared by the chunks that lie side by side in one stored object.

A stored object (a batch's chunk object, a shard log's entry) keeps each file's chunks
together, and the files of one batch next to each other. A file's chunks that follow each
other within the read-ahead window are one GET; so are the neighbouring chunks of other
files being assembled at the same time, when their bodies have not read them yet: files that
complete in one invocation (producers interleaved, chunks spread over shards) read each
object once instead of once a file. S3 bills a GET per request, not per byte.

Memory stays bounded: a read holds a file's own chunks only within its window (each is asked
for while the first is still held), and chunks read along for other files number at most
``span - 1`` at any time (none when reading ahead is off). A read along that is never asked
for is let go when its file's assembly ends (``forget``).
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future

from attrs import define, frozen

from application.ports import ByteStream
from domain import ChunkRef, FileId


@frozen
class Place:
    """Where a chunk's bytes are: ``size`` bytes at ``offset`` of the object ``key`` (an id
    the reader's ``fetch`` knows)."""

    key: str
    offset: int
    size: int

    @property
    def end(self) -> int:
        return self.offset + self.size


@define(eq=False)
class _Slot:
    file_id: FileId
    partition: int
    place: Place
    reading: Future[bytes] | None = None
    """The chunk's bytes, read (or being read) with another chunk's, until it is asked for."""
    along: bool = False
    """``reading`` was started for another file: counted against the read-along bound."""
    served: bool = False
    """Asked for by the file's current upload attempt."""


class ReadsAlone:
    """A ChunkSource whose chunks are each read alone (a chunk in Redis, a spilled chunk's own
    object): an upload's ``assembling`` and ``assembled`` have nothing to share or let go."""

    def assembling(self, file_id: FileId, parts: Mapping[int, ChunkRef]) -> None:
        """Nothing to read together."""

    def assembled(self, file_id: FileId) -> None:
        """Nothing was read along."""


class NotAssembling(LookupError):
    """The chunk is not one an upload under way reads from here (``assembling``)."""


Fetch = Callable[[str, int, int], ByteStream]
"""Open ``key``'s bytes from ``start`` to ``end`` (exclusive): one ranged GET."""


class SharedReads:
    """The places of the files being assembled, and the reads that serve them."""

    def __init__(self, fetch: Fetch, span: int) -> None:
        self._fetch = fetch
        self._span = span
        self._along_most = max(0, span - 1)
        self._along = 0
        self._slots: dict[tuple[FileId, int], _Slot] = {}
        self._files: dict[FileId, list[_Slot]] = {}
        self._by_key: dict[str, list[_Slot]] = {}
        self._lock = threading.Lock()

    def assembling(self, file_id: FileId, places: Mapping[int, Place]) -> None:
        """``file_id`` is about to be read back: its remote chunks' ``places``."""
        with self._lock:
            self._remove(file_id)
            mine: list[_Slot] = []
            for partition, place in places.items():
                slot = _Slot(file_id, partition, place)
                mine.append(slot)
                self._slots[(file_id, partition)] = slot
                self._by_key.setdefault(place.key, []).append(slot)
            self._files[file_id] = mine
            for key in {place.key for place in places.values()}:
                self._by_key[key].sort(key=lambda s: (s.place.offset, s.place.size))

    def forget(self, file_id: FileId) -> None:
        """The file's assembly ended: what was read for it and not asked for goes."""
        with self._lock:
            self._remove(file_id)

    def open(self, file_id: FileId, partition: int) -> ByteStream:
        """The chunk's bytes: from a read that already holds them, else from a new read
        that takes its neighbours along."""
        with self._lock:
            slot = self._slots.get((file_id, partition))
            if slot is None:
                raise NotAssembling(f"partition {partition} of {file_id} is not being assembled")
            if slot.served:  # asked again: the upload started over, and reads every chunk anew
                for mine in self._files[file_id]:
                    mine.served = False
            slot.served = True
            taken = slot.reading
            group: list[_Slot] = [slot]
            others: list[tuple[_Slot, Future[bytes]]] = []
            if taken is not None:
                self._release(slot)
            else:
                group = self._group(slot)
                for member in group:
                    if member is not slot:
                        member.reading = Future()
                        member.along = member.file_id != file_id
                        self._along += member.along
                        others.append((member, member.reading))
        if taken is not None:
            try:
                return io.BytesIO(taken.result())
            except Exception:
                return self._alone(slot.place)  # the read that failed was reported by its reader
        if not others:
            return self._alone(slot.place)
        return self._read(slot, group, others)

    def _read(
        self, slot: _Slot, group: list[_Slot], others: list[tuple[_Slot, Future[bytes]]]
    ) -> ByteStream:
        """One read for ``group``: each of the ``others`` gets its own bytes, the rest goes."""
        start, end = group[0].place.offset, group[-1].place.end
        try:
            data = self._fetch(slot.place.key, start, end).read()
            if len(data) != end - start:
                raise OSError(f"a ranged read returned {len(data)} bytes of {end - start}")
        except BaseException as error:
            with self._lock:
                for member, future in others:
                    if member.reading is future:
                        self._release(member)
            for _, future in others:
                future.set_exception(error)
            raise
        for member, future in others:
            future.set_result(_bytes(data, start, member.place))
        return io.BytesIO(_bytes(data, start, slot.place))

    def _alone(self, place: Place) -> ByteStream:
        if place.size == 0:
            return io.BytesIO(b"")
        return self._fetch(place.key, place.offset, place.end)

    def _release(self, slot: _Slot) -> None:
        self._along -= slot.along
        slot.reading, slot.along = None, False

    def _group(self, slot: _Slot) -> list[_Slot]:
        """``slot`` and the chunks on either side of it, in offset order, that one read can
        take: the same file's next ones within the window, and other files' within the
        read-along bound; none that its upload already read. A read may step over one
        stretch nobody asks for (a finished file's chunks, a chunk read from disk) as long as
        two chunks the size of the one asked for at most: S3 bills the request, not the
        bytes, and such bytes are let go as soon as the read is cut up."""
        if slot.place.size == 0:
            return [slot]
        row = self._by_key[slot.place.key]
        at = row.index(slot)
        room = self._along_most - self._along
        skip = 2 * slot.place.size
        after: list[_Slot] = []
        for other in row[at + 1 :]:
            gap = other.place.offset - (after[-1] if after else slot).place.end
            if not self._joins(slot, other, gap, skip, room):
                break
            skip, room = (skip if gap == 0 else -1), room - (other.file_id != slot.file_id)
            after.append(other)
        ahead: list[_Slot] = []
        for other in reversed(row[:at]):
            gap = (ahead[-1] if ahead else slot).place.offset - other.place.end
            # Earlier chunks of the same file were asked for before this one.
            if other.file_id == slot.file_id or not self._joins(slot, other, gap, skip, room):
                break
            skip, room = (skip if gap == 0 else -1), room - 1
            ahead.append(other)
        return [*reversed(ahead), slot, *after]

    def _joins(self, slot: _Slot, other: _Slot, gap: int, skip: int, room: int) -> bool:
        if not 0 <= gap <= max(skip, 0) or other.reading is not None or other.place.size == 0:
            return False
        if other.served:  # its upload read it already (the window's threads ask in any order)
            return False
        if other.file_id == slot.file_id:
            return 0 < other.partition - slot.partition < self._span
        return room > 0

    def _remove(self, file_id: FileId) -> None:
        for slot in self._files.pop(file_id, ()):
            self._release(slot)
            del self._slots[(file_id, slot.partition)]
            row = self._by_key[slot.place.key]
            row.remove(slot)
            if not row:
                del self._by_key[slot.place.key]


def _bytes(data: bytes, start: int, place: Place) -> bytes:
    at = place.offset - start
    return data[at : at + place.size]
