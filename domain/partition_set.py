"""Which partitions of a file are held, with their digests: the rules of admission."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from enum import Enum
from types import MappingProxyType

from attrs import field, frozen
from attrs.validators import ge

from domain.chunk import ChunkRef
from domain.errors import (
    ChunkContentConflict,
    ChunkRejected,
    PartitionCountConflict,
    PartitionOutOfRange,
)
from domain.limits import Limits


class Admission(Enum):
    NEW = "new"
    DUPLICATE = "duplicate"


def _freeze(parts: Mapping[int, ChunkRef]) -> Mapping[int, ChunkRef]:
    return MappingProxyType(dict(parts))


@frozen
class PartitionSet:
    partition_count: int = field(validator=ge(1))
    parts: Mapping[int, ChunkRef] = field(factory=dict, converter=_freeze)
    size: int = field()

    @size.default
    def _total_size(self) -> int:
        return sum(ref.size for ref in self.parts.values())

    def admit(
        self, partition: int, partition_count: int, ref: ChunkRef, limits: Limits
    ) -> Admission:
        """Decide whether a chunk is new or a duplicate; raise if it contradicts what is held.

        The first partitionCount and the first bytes of a partition stand.
        """
        if partition_count != self.partition_count:
            raise PartitionCountConflict.against(partition_count, self.partition_count)
        if not 0 <= partition < self.partition_count:
            raise PartitionOutOfRange(
                f"partition {partition} is outside 0..{self.partition_count - 1}"
            )
        held = self.parts.get(partition)
        if held is not None:
            if held != ref:
                raise ChunkContentConflict.at(partition)
            return Admission.DUPLICATE
        limits.check_growth(self.size, ref.size)
        return Admission.NEW

    def merged(
        self, newcomers: Mapping[int, ChunkRef], limits: Limits
    ) -> tuple[PartitionSet, dict[int, ChunkRejected]]:
        """Join partitions that another holder received to these, which stand.

        Each newcomer is admitted in partition order by the rules of ``admit``, so one that
        contradicts a held partition, or would push the file past ``limits.max_file_bytes``,
        is left out and returned as a rejection: the first bytes stand and the merged file
        stays within the limit whichever containers its chunks went to.
        """
        merged = self
        rejected: dict[int, ChunkRejected] = {}
        for partition in sorted(newcomers):
            ref = newcomers[partition]
            try:
                admission = merged.admit(partition, self.partition_count, ref, limits)
            except ChunkRejected as error:
                rejected[partition] = error
                continue
            if admission is Admission.NEW:
                merged = merged.with_part(partition, ref)
        return merged, rejected

    def with_part(self, partition: int, ref: ChunkRef) -> PartitionSet:
        held = self.parts.get(partition)
        size = self.size + ref.size - (held.size if held else 0)
        return PartitionSet(self.partition_count, {**self.parts, partition: ref}, size)

    def only(self, partitions: frozenset[int]) -> PartitionSet:
        return PartitionSet(
            self.partition_count, {p: r for p, r in self.parts.items() if p in partitions}
        )

    @property
    def is_complete(self) -> bool:
        return len(self.parts) == self.partition_count

    def missing(self) -> Iterator[int]:
        return (p for p in range(self.partition_count) if p not in self.parts)

    def __contains__(self, partition: object) -> bool:
        return partition in self.parts

    def __len__(self) -> int:
        return len(self.parts)
