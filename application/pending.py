"""What one container knows of a file it is collecting, and where each chunk's bytes are."""

from __future__ import annotations

from attrs import evolve, field, frozen

from application.plan import AssemblyPlan
from domain import (
    ChunkRef,
    ChunkRejected,
    FileId,
    FileStatus,
    Limits,
    PartitionSet,
    redact,
)


@frozen
class PendingFile:
    """A cache entry: the seed's Set of partitions, plus where their bytes live.

    ``local`` partitions have bytes in this container's local store; ``durable`` ones are in
    remote storage as far as this container last saw, which is trusted only when
    ``checked_in`` is the current batch: another container may have changed it since.
    """

    file_id: FileId
    put_endpoint: str = field(repr=redact)
    partitions: PartitionSet
    local: frozenset[int] = frozenset()
    durable: frozenset[int] = frozenset()
    checked_in: int | None = None
    touched_in: int = 0
    status: FileStatus = FileStatus.COLLECTING

    @classmethod
    def new(
        cls, file_id: FileId, put_endpoint: str, partition_count: int, batch: int
    ) -> PendingFile:
        return cls(file_id, put_endpoint, PartitionSet(partition_count), touched_in=batch)

    def with_local_part(self, partition: int, ref: ChunkRef, batch: int) -> PendingFile:
        return evolve(
            self,
            partitions=self.partitions.with_part(partition, ref),
            local=self.local | {partition},
            touched_in=batch,
        )

    def without_local(self, partitions: frozenset[int]) -> PendingFile:
        """The bytes of ``partitions`` left this container's store (evicted, or dropped)."""
        return evolve(self, local=self.local - partitions)

    def touched(self, batch: int) -> PendingFile:
        return evolve(self, touched_in=batch)

    @property
    def unflushed(self) -> frozenset[int]:
        """Partitions whose bytes exist only in this container: lost if it dies."""
        return self.local - self.durable

    @property
    def remote_only(self) -> frozenset[int]:
        return frozenset(self.partitions.parts) - self.local

    def is_fresh(self, batch: int) -> bool:
        return self.checked_in == batch

    def plan(self) -> AssemblyPlan:
        """What assembly streams: held chunks from this container, the rest from remote."""
        return AssemblyPlan(
            self.file_id, self.put_endpoint, self.partitions, self.local, self.durable
        )

    @property
    def is_open(self) -> bool:
        return self.status is FileStatus.COLLECTING

    def closed(self, status: FileStatus, batch: int) -> PendingFile:
        """A tombstone: keeps the digests so late duplicates are recognised, drops locations."""
        return evolve(self, status=status, local=frozenset(), durable=frozenset(), touched_in=batch)


def reconcile(
    entry: PendingFile, listing: PartitionSet | None, batch: int, limits: Limits
) -> tuple[PendingFile, list[tuple[int, ChunkRejected]]]:
    """Merge what remote storage holds with what this container holds; remote stands.

    Remote storage is the truth between batches: chunks this container holds from earlier
    batches but remote storage no longer lists were finished (or expired) elsewhere and are
    dropped. Chunks received in this batch and not yet flushed join the remote ones by the
    domain's rule (``PartitionSet.rebased_on``); those it rejects are returned, and only the
    held bytes that stand stay local.
    """
    merged, rejected = entry.partitions.rebased_on(listing, entry.unflushed, limits)
    fresh = PendingFile(
        entry.file_id,
        entry.put_endpoint,
        merged,
        local=entry.local & merged.agreeing_with(entry.partitions),
        durable=frozenset(listing.parts) if listing is not None else frozenset(),
        checked_in=batch,
        touched_in=batch,
    )
    return fresh, list(rejected.items())
