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
