"""AssemblyPlan: what AssembleAndUpload streams, whichever backend asks."""

from __future__ import annotations

from attrs import field, frozen

from domain import FileId, PartitionSet, redact


@frozen
class AssemblyPlan:
    """What to stream, and from where: a partition in ``local`` from this container's disk
    (or memory), any other from remote storage; a ``durable`` one has a remote copy to fall
    back on when its local copy fails."""

    file_id: FileId
    put_endpoint: str = field(repr=redact)
    partitions: PartitionSet
    local: frozenset[int] = frozenset()
    durable: frozenset[int] = frozenset()

    @classmethod
    def from_remote(cls, file_id: FileId, put_endpoint: str, listing: PartitionSet) -> AssemblyPlan:
        """Every partition read from remote storage (the dynamodb backend, a redrive)."""
        return cls(file_id, put_endpoint, listing, durable=frozenset(listing.parts))
