from __future__ import annotations

import hashlib

import pytest

from domain import (
    Admission,
    AssembledFile,
    Chunk,
    ChunkContentConflict,
    ChunkRef,
    FileExpired,
    FileId,
    FileIncomplete,
    FileState,
    FileStatus,
    FileTooLarge,
    IncompleteFile,
    Limits,
    PartitionCountConflict,
    PartitionCountTooLarge,
    PartitionOutOfRange,
    PartitionSet,
    RejectionReason,
    redact,
)

SECRET_URL = "https://user:pw@bucket.s3.amazonaws.com:8443/a/b.jpg?X-Amz-Signature=SECRET#frag"


def ref(content: bytes) -> ChunkRef:
    return ChunkRef(hashlib.sha256(content).hexdigest(), len(content))


def test_file_id_is_stable_and_safe_as_a_name() -> None:
    first = FileId.for_endpoint("https://example.com/x?sig=1")
    assert first == FileId.for_endpoint("https://example.com/x?sig=1")
    assert first.value.isalnum()
    assert len(first.value) == 32
    assert first != FileId.for_endpoint("https://example.com/x?sig=2")


def test_file_id_refuses_anything_but_its_own_hex_form() -> None:
    with pytest.raises(ValueError, match="not a file id"):
        FileId("../../etc/passwd")


def test_redaction_keeps_scheme_host_port_and_path_only() -> None:
    assert redact(SECRET_URL) == "https://bucket.s3.amazonaws.com:8443/a/b.jpg"


def test_redaction_of_ipv6_and_garbage() -> None:
    assert redact("http://[::1]:9000/p?q=1") == "http://[::1]:9000/p"
    assert redact("http://host:notaport/p?sig=x") == "<unparseable endpoint>"


def test_chunk_repr_shows_neither_secret_nor_content() -> None:
    chunk = Chunk(SECRET_URL, 0, 1, b"payload-bytes")
    text = repr(chunk)
    assert "SECRET" not in text
    assert "pw" not in text
    assert "payload-bytes" not in text


@pytest.mark.parametrize(("partition", "count"), [(-1, 3), (3, 3), (0, 0)])
def test_chunk_outside_its_partition_range_is_rejected(partition: int, count: int) -> None:
    with pytest.raises(PartitionOutOfRange):
        Chunk("https://example.com/f", partition, count, b"x")


def test_a_new_partition_is_admitted_and_the_same_bytes_again_are_a_duplicate() -> None:
    limits = Limits()
    empty = PartitionSet(2)
    assert empty.admit(0, 2, ref(b"a"), limits) is Admission.NEW
    held = empty.with_part(0, ref(b"a"))
    assert held.admit(0, 2, ref(b"a"), limits) is Admission.DUPLICATE
    assert held.size == 1
    assert not held.is_complete
    assert list(held.missing()) == [1]


def test_other_bytes_for_a_held_partition_conflict_and_the_first_stand() -> None:
    held = PartitionSet(2).with_part(0, ref(b"first"))
    with pytest.raises(ChunkContentConflict):
        held.admit(0, 2, ref(b"second"), Limits())
    assert held.parts[0] == ref(b"first")


def test_a_different_partition_count_conflicts_with_the_first() -> None:
    with pytest.raises(PartitionCountConflict, match="contradicts the earlier 2"):
        PartitionSet(2).admit(0, 3, ref(b"a"), Limits())


def test_a_file_may_not_grow_past_the_byte_limit() -> None:
    held = PartitionSet(3).with_part(0, ref(b"12345"))
    with pytest.raises(FileTooLarge):
        held.admit(1, 3, ref(b"123456"), Limits(max_file_bytes=10))
    assert held.admit(1, 3, ref(b"12345"), Limits(max_file_bytes=10)) is Admission.NEW


def test_partition_count_limit() -> None:
    Limits(max_partition_count=5).check_partition_count(5)
    with pytest.raises(PartitionCountTooLarge):
        Limits(max_partition_count=5).check_partition_count(6)


def test_partition_set_values_are_immutable() -> None:
    held = PartitionSet(2).with_part(0, ref(b"a"))
    with pytest.raises(TypeError):
        held.parts[1] = ref(b"b")  # type: ignore[index]  # proving the mapping is read-only


def test_assembled_file_lists_parts_in_partition_order_with_exact_size() -> None:
    parts = PartitionSet(3).with_part(2, ref(b"cc")).with_part(0, ref(b"a")).with_part(1, ref(b""))
    assembled = AssembledFile.from_partitions(FileId.for_endpoint("e"), "e", parts)
    assert assembled.parts == (ref(b"a"), ref(b""), ref(b"cc"))
    assert assembled.size == 3


def test_an_incomplete_file_cannot_be_assembled() -> None:
    with pytest.raises(FileIncomplete):
        AssembledFile.from_partitions(FileId.for_endpoint("e"), "e", PartitionSet(2))


def test_a_late_chunk_of_an_expired_file_is_rejected_but_of_an_uploaded_one_is_a_duplicate() -> (
    None
):
    expired = FileState(3, 2, 20, FileStatus.EXPIRED)
    uploaded = FileState(3, 3, 30, FileStatus.UPLOADED)

    with pytest.raises(FileExpired, match="given up with 2 of 3") as raised:
        expired.judge(2, 3, ref(b"late"), Limits())
    assert raised.value.reason is RejectionReason.FILE_EXPIRED
    assert FileStatus.EXPIRED.is_closed
    assert uploaded.judge(2, 3, ref(b"late"), Limits()) is Admission.DUPLICATE


def test_an_incomplete_file_is_overdue_once_first_seen_before_the_cutoff() -> None:
    file = IncompleteFile(FileId.for_endpoint(SECRET_URL), 4, 3, 300, 1_000.0, SECRET_URL)

    assert file.is_overdue(1_000.5)
    assert not file.is_overdue(1_000.0)
    assert file.age(4_600.0) == 3_600.0
    assert "SECRET" not in repr(file)
