"""What one shard's containers must agree on between batches (local backend)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from attrs import evolve, field, frozen

from domain.endpoint import FileId


def _frozen_map(value: Mapping[FileId, float]) -> Mapping[FileId, float]:
    return dict(value)


MAX_FINISHED = 5_000
"""Finished files a shard's ledger remembers at most (about 50 bytes each, so about 250 KB
read per batch at worst): minutes of a stream of small files, days of one of large files."""


@frozen
class ShardLedger:
    """Files with chunks durable under pending/ (``open``) and files finished (``finished``,
    with the time), so that a container that never saw a file cannot finish it again with
    other bytes, and a late duplicate of a finished file leaves nothing behind.

    Holds file ids only, never an endpoint.
    """

    version: int = 0
    open: frozenset[FileId] = frozenset()
    finished: Mapping[FileId, float] = field(factory=dict, converter=_frozen_map)

    def knows(self, file_id: FileId) -> bool:
        """True when the file was finished: a chunk of it is a late duplicate."""
        return file_id in self.finished

    def is_open(self, file_id: FileId) -> bool:
        return file_id in self.open

    def opened(self, file_ids: Iterable[FileId]) -> ShardLedger:
        added = frozenset(file_ids) - self.open - self.finished.keys()
        return evolve(self, open=self.open | added) if added else self

    def finished_at(self, file_ids: Iterable[FileId], now: float) -> ShardLedger:
        ids = frozenset(file_ids)
        if not ids:
            return self
        finished = dict(self.finished)
        for file_id in ids:
            finished.setdefault(file_id, now)
        return evolve(self, open=self.open - ids, finished=finished)

    def pruned(self, before: float, keep_at_most: int = MAX_FINISHED) -> ShardLedger:
        """Forget files finished before ``before`` (no redelivery reaches back that far), and
        all but the ``keep_at_most`` latest: every batch reads the ledger, so its size must
        not grow with the stream's rate."""
        recent = sorted(((at, f) for f, at in self.finished.items() if at >= before), reverse=True)[
            :keep_at_most
        ]
        kept = {f: at for at, f in recent}
        return self if len(kept) == len(self.finished) else evolve(self, finished=kept)

    def same_as(self, other: ShardLedger) -> bool:
        """Same files, whatever the version: nothing to write."""
        return self.open == other.open and dict(self.finished) == dict(other.finished)

    def next_version(self) -> ShardLedger:
        return evolve(self, version=self.version + 1)


def shard_of(event_id: str) -> str:
    """The shard part of a Kinesis eventID (``shardId-000000000001:4959...``); "" if none."""
    return event_id.split(":", 1)[0] if event_id else ""
