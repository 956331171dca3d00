"""The shape of a stream record as the use cases see it, whatever the event source."""

from __future__ import annotations

from attrs import field, frozen


@frozen
class StreamRecord:
    """One record of a batch: its checkpoint id and its still-encoded payload."""

    sequence_number: str
    data: str = field(repr=lambda data: f"<{len(data)} chars>")
    partition_key: str = ""
    source: str = ""
    sub_sequence: int | None = None
    """Position inside a KPL-aggregated Kinesis record; None for a plain record."""

    @property
    def record_id(self) -> str:
        """Unique per user record: the sequence number, with the sub-sequence when aggregated."""
        if self.sub_sequence is None:
            return self.sequence_number
        return f"{self.sequence_number}-{self.sub_sequence}"
