"""Limits that keep one producer from exhausting the service."""

from __future__ import annotations

from attrs import field, frozen
from attrs.validators import ge

from domain.errors import FileTooLarge, PartitionCountTooLarge

S3_SINGLE_PUT_LIMIT = 5 * 1024**3


@frozen
class Limits:
    max_partition_count: int = field(default=10_000, validator=ge(1))
    max_file_bytes: int = field(default=S3_SINGLE_PUT_LIMIT, validator=ge(1))

    def check_growth(self, size: int, added: int) -> None:
        if size + added > self.max_file_bytes:
            raise FileTooLarge(
                f"file would grow to {size + added} bytes, over MAX_FILE_BYTES "
                f"{self.max_file_bytes}"
            )

    def check_partition_count(self, partition_count: int) -> None:
        if partition_count > self.max_partition_count:
            raise PartitionCountTooLarge(
                f"partitionCount {partition_count} exceeds MAX_PARTITION_COUNT "
                f"{self.max_partition_count}"
            )
