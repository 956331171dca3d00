"""Which partitions of a file are held, with their digests: the rules of admission."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from enum import Enum
from types import MappingProxyType
from typing import Protocol

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


class HeldFile(Protocol):
    """What a holder of a file's state knows, as far as admitting one chunk needs."""

    @property
    def partition_count(self) -> int: ...

    @property
    def size(self) -> int: ...

    def holds_same(self, partition: int, ref: ChunkRef) -> bool | None:
        """None if ``partition`` is not held; else whether ``ref`` is the bytes held."""


def admit(
    held: HeldFile, partition: int, partition_count: int, ref: ChunkRef, limits: Limits
) -> Admission:
    """Decide whether a chunk is new or a duplicate; raise if it contradicts what is held.

    The one rule of admission, whoever holds the state (a container's PartitionSet, or the
    shared FileState): the first partitionCount and the first bytes of a partition stand,
    and a file stays within MAX_FILE_BYTES.
    """
    if partition_count != held.partition_count:
        raise PartitionCountConflict.against(partition_count, held.partition_count)
    if not 0 <= partition < held.partition_count:
        raise PartitionOutOfRange(f"partition {partition} is outside 0..{held.partition_count - 1}")
    same = held.holds_same(partition, ref)
    if same is not None:
        if not same:
            raise ChunkContentConflict.at(partition)
        return Admission.DUPLICATE
    limits.check_growth(held.size, ref.size)
    return Admission.NEW


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
        """Decide whether a chunk is new or a duplicate by the rule of ``admit``."""
        return admit(self, partition, partition_count, ref, limits)

    def holds_same(self, partition: int, ref: ChunkRef) -> bool | None:
        held = self.parts.get(partition)
        return None if held is None else held == ref

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

    def rebased_on(
        self, remote: PartitionSet | None, newcomers: frozenset[int], limits: Limits
    ) -> tuple[PartitionSet, dict[int, ChunkRejected]]:
        """Join the ``newcomers`` among these partitions to a remote listing, which stands.

        A listing of another partitionCount rejects every newcomer: the first count stands.
        Otherwise they join by ``merged`` (first bytes, MAX_FILE_BYTES); no listing at all is
        an empty one of this count. Rejections come in partition order.
        """
        if remote is not None and remote.partition_count != self.partition_count:
            first, other = remote.partition_count, self.partition_count
            return remote, {
                p: PartitionCountConflict.against(other, first) for p in sorted(newcomers)
            }
        base = remote if remote is not None else PartitionSet(self.partition_count)
        return base.merged({p: self.parts[p] for p in newcomers}, limits)

    def agreeing_with(self, other: PartitionSet) -> frozenset[int]:
        """The partitions both sets hold with the same bytes under the same partitionCount."""
        if other.partition_count != self.partition_count:
            return frozenset()
        return frozenset(p for p, ref in self.parts.items() if other.parts.get(p) == ref)

    def holds_digests(self, digests: Mapping[int, str], partition_count: int) -> bool:
        """Whether these are exactly the chunks shared state counted: its count, and for each
        of its partitions a chunk whose digest prefix it holds."""
        if self.partition_count != partition_count or len(digests) != partition_count:
            return False
        return all(
            (ref := self.parts.get(partition)) is not None and ref.digest_prefix == held
            for partition, held in digests.items()
        )

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
