"""Small builders the adapter tests share: chunks, bodies and endpoints with secrets in them."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence

from application.body import AssembledBody, Part
from application.ports import ByteStream
from domain import Chunk, ChunkRef

BUCKET = "sfb-integration-test"
SECRET = "X-Amz-Signature=t0ps3cr3t"
SIGNED_QUERY = f"?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAEXAMPLE&{SECRET}"


def signed(url: str) -> str:
    """The URL as a presigned endpoint: a query string that must never be logged or stored."""
    return f"{url}{SIGNED_QUERY}"


def ref_of(content: bytes) -> ChunkRef:
    return ChunkRef(hashlib.sha256(content).hexdigest(), len(content))


def chunk(endpoint: str, partition: int, count: int, content: bytes) -> Chunk:
    return Chunk(put_endpoint=endpoint, partition=partition, partition_count=count, content=content)


def _opener(content: bytes) -> ByteStream:
    return io.BytesIO(content)


def part_of(content: bytes) -> Part:
    return Part(ref_of(content), lambda: _opener(content))


def body_of(pieces: Sequence[bytes]) -> AssembledBody:
    return AssembledBody(tuple(part_of(piece) for piece in pieces))


def read_all(stream: ByteStream) -> bytes:
    """Read until the end, whatever size each read returns."""
    pieces = []
    try:
        while block := stream.read(64 * 1024):
            pieces.append(block)
    finally:
        stream.close()
    return b"".join(pieces)
