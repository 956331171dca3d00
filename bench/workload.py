"""Files cut into chunks and Kinesis events, made lazily: a generator never holds a whole file."""

from __future__ import annotations

import base64
import hashlib
import random
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Any

from attrs import frozen

from entrypoints.events import encode_payload, kinesis_record
from tests.tools.sequencer import Record as Record
from tests.tools.sequencer import Sequencer as Sequencer

Event = dict[str, Any]
"""A Kinesis event: ``{"Records": [...]}``."""

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB


@frozen
class FileSpec:
    """A file a producer sends: its size, its chunk size and where it is to be PUT.

    The content is made chunk by chunk from one random block and the partition number, so
    it is the same every time it is made and costs nothing to keep.
    """

    endpoint: str
    size: int
    chunk_size: int
    seed: int = 0

    @property
    def partition_count(self) -> int:
        return max(1, -(-self.size // self.chunk_size))

    @property
    def path(self) -> str:
        """The request path the receiver records, query string included."""
        return "/" + self.endpoint.split("/", 3)[3]

    def contents(self) -> Iterator[bytes]:
        block = random.Random(self.seed).randbytes(self.chunk_size)
        for partition in range(self.partition_count):
            length = min(self.chunk_size, self.size - partition * self.chunk_size)
            yield (partition.to_bytes(8, "big") + block[8:length])[:length]

    def sha256(self) -> str:
        digest = hashlib.sha256()
        for content in self.contents():
            digest.update(content)
        return digest.hexdigest()


def records(spec: FileSpec, sequence: Sequencer) -> Iterator[Record]:
    """The file's records in partition order, each made only when it is asked for."""
    for partition, content in enumerate(spec.contents()):
        payload = {
            "putEndpoint": spec.endpoint,
            "partition": partition,
            "partitionCount": spec.partition_count,
            "content": base64.b64encode(content).decode("ascii"),
        }
        yield kinesis_record(encode_payload(payload), sequence())


def batches(stream: Iterable[Record], batch_size: int) -> Iterator[Event]:
    """Events of ``batch_size`` records, the last one possibly shorter."""
    if batch_size < 1:
        raise ValueError("a batch holds at least one record")
    iterator = iter(stream)
    while batch := list(islice(iterator, batch_size)):
        yield {"Records": batch}


def size_label(size: int) -> str:
    for unit, factor in (("GiB", GIB), ("MiB", MIB), ("KiB", KIB)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size} B"
