from __future__ import annotations

import hashlib
import io
from functools import partial

import pytest
from hypothesis import given
from hypothesis import strategies as st

from application.body import AssembledBody, ChunkCorrupted, Part
from domain import ChunkRef


def part(content: bytes, stored: bytes | None = None) -> Part:
    ref = ChunkRef(hashlib.sha256(content).hexdigest(), len(content))
    return Part(ref, partial(io.BytesIO, content if stored is None else stored))


def read_in_blocks(body: AssembledBody, block: int) -> bytes:
    reader = body.open()
    out = bytearray()
    while data := reader.read(block):
        out.extend(data)
    reader.close()
    return bytes(out)


@given(st.lists(st.binary(max_size=50), max_size=6), st.integers(min_value=1, max_value=64))
def test_reading_in_any_block_size_yields_the_parts_concatenated(
    contents: list[bytes], block: int
) -> None:
    body = AssembledBody(tuple(part(c) for c in contents))
    assert body.size == sum(len(c) for c in contents)
    assert read_in_blocks(body, block) == b"".join(contents)


def test_read_all_at_once_and_reopen_give_identical_bytes() -> None:
    body = AssembledBody((part(b"abc"), part(b""), part(b"defg")))
    assert body.open().read() == b"abc"  # an unbounded read stops at a part: memory stays flat
    assert read_in_blocks(body, 1000) == read_in_blocks(body, 3) == b"abcdefg"


@pytest.mark.parametrize("stored", [b"abX", b"ab", b"abcd"])
def test_a_stored_chunk_that_changed_aborts_the_read(stored: bytes) -> None:
    body = AssembledBody((part(b"abc", stored), part(b"def")))
    with pytest.raises(ChunkCorrupted):
        read_in_blocks(body, 2)
