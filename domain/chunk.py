"""One partition of a file, as carried by one Kinesis record."""

from __future__ import annotations

import hashlib
from functools import cached_property

from attrs import field, frozen
from attrs.validators import ge

from domain.endpoint import FileId, redact
from domain.errors import PartitionOutOfRange

DIGEST_PREFIX = 32
"""Hex digits of a chunk's sha256 kept in shared state: 128 bits, 16 bytes a partition."""


@frozen
class ChunkRef:
    """What is known of stored chunk bytes without holding them: enough to dedupe and verify."""

    digest: str
    size: int = field(validator=ge(0))

    @property
    def digest_prefix(self) -> str:
        """The digest as shared state keeps it: equal prefixes are taken as equal bytes."""
        return self.digest[:DIGEST_PREFIX]


@frozen
class Chunk:
    put_endpoint: str = field(repr=redact)
    partition: int
    partition_count: int
    content: bytes = field(repr=lambda content: f"<{len(content)} bytes>")

    def __attrs_post_init__(self) -> None:
        if self.partition_count < 1 or not 0 <= self.partition < self.partition_count:
            raise PartitionOutOfRange(
                f"partition {self.partition} is outside 0..{self.partition_count - 1}"
            )

    @cached_property
    def file_id(self) -> FileId:
        return FileId.for_endpoint(self.put_endpoint)

    @cached_property
    def ref(self) -> ChunkRef:
        return ChunkRef(hashlib.sha256(self.content).hexdigest(), len(self.content))
