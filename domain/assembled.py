"""A complete file: its parts in order and its exact length, before any byte is read."""

from __future__ import annotations

from attrs import field, frozen

from domain.chunk import ChunkRef
from domain.endpoint import FileId, redact
from domain.errors import FileIncomplete
from domain.partition_set import PartitionSet


@frozen
class AssembledFile:
    file_id: FileId
    put_endpoint: str = field(repr=redact)
    parts: tuple[ChunkRef, ...]

    @classmethod
    def from_partitions(
        cls, file_id: FileId, put_endpoint: str, partitions: PartitionSet
    ) -> AssembledFile:
        if not partitions.is_complete:
            missing = list(partitions.missing())[:5]
            raise FileIncomplete(f"file {file_id} still misses partitions {missing}")
        return cls(
            file_id,
            put_endpoint,
            tuple(partitions.parts[p] for p in range(partitions.partition_count)),
        )

    @property
    def size(self) -> int:
        return sum(part.size for part in self.parts)
