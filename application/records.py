"""The shape of a stream record as the use cases see it, whatever the event source."""

from __future__ import annotations

from attrs import field, frozen

from domain import ChunkRejected, InvalidRecord, RejectionReason


@frozen
class Unusable:
    """Why the event decoder could make no payload of a record (a broken KPL aggregate or
    user record): the record is quarantined with this reason instead of being validated."""

    reason: RejectionReason
    detail: str

    def rejection(self) -> ChunkRejected:
        return InvalidRecord(self.reason, self.detail)


@frozen
class StreamRecord:
    """One record of a batch: its checkpoint id and its still-encoded payload."""

    sequence_number: str
    data: str = field(repr=lambda data: f"<{len(data)} chars>")
    partition_key: str = ""
    source: str = ""
    """The Kinesis eventID: the shard, then the sequence number."""
    stream: str = ""
    """The stream's ARN (the event's eventSourceARN): where the shard's parents are looked up."""
    sub_sequence: int | None = None
    """Position inside a KPL-aggregated Kinesis record; None for a plain record."""
    unusable: Unusable | None = None
    """Set by the decoder when the record cannot be a payload; None for every other record."""

    @property
    def record_id(self) -> str:
        """Unique per user record: the sequence number, with the sub-sequence when aggregated."""
        if self.sub_sequence is None:
            return self.sequence_number
        return f"{self.sequence_number}-{self.sub_sequence}"
