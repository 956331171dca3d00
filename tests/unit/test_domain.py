from __future__ import annotations

import hashlib

import idna
import pytest

from domain import (
    MAX_ENDPOINT_BYTES,
    Admission,
    AssembledFile,
    Chunk,
    ChunkContentConflict,
    ChunkRef,
    Endpoint,
    EndpointRefused,
    FileExpired,
    FileId,
    FileIncomplete,
    FileState,
    FileStatus,
    FileTooLarge,
    IncompleteFile,
    InvalidEndpoint,
    Limits,
    PartitionArrival,
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


def _held(**parts: bytes) -> dict[int, ChunkRef]:
    return {int(name[1:]): ref(content) for name, content in parts.items()}


MERGES: list[
    tuple[str, dict[int, ChunkRef], dict[int, ChunkRef], int, set[int], dict[int, str]]
] = [
    # name, held (they stand), newcomers, MAX_FILE_BYTES, partitions after, rejections
    ("newcomers that fit join", _held(p0=b"aaaa"), _held(p1=b"bbbb"), 8, {0, 1}, {}),
    (
        "the newcomer that pushes past the limit is refused, a later one that fits joins",
        _held(p0=b"aaaa"),
        _held(p1=b"bbbbb", p2=b"cc", p3=b"dd"),
        8,
        {0, 2, 3},
        {1: "file-too-large"},
    ),
    (
        "every newcomer past a limit the held chunks already fill is refused",
        _held(p0=b"aaaa", p1=b"bbbb"),
        _held(p2=b"c", p3=b""),
        8,
        {0, 1, 3},
        {2: "file-too-large"},
    ),
    (
        "other bytes for a held partition conflict and the held bytes stand",
        _held(p0=b"aaaa"),
        _held(p0=b"AAAA", p1=b"bb"),
        100,
        {0, 1},
        {0: "content-conflict"},
    ),
    (
        "the same bytes again are a duplicate, not a rejection",
        _held(p0=b"aa"),
        _held(p0=b"aa"),
        2,
        {0},
        {},
    ),
    (
        "nothing held: newcomers fill up to the limit",
        {},
        _held(p0=b"aaa", p1=b"bbb"),
        5,
        {0},
        {1: "file-too-large"},
    ),
]


@pytest.mark.parametrize(
    ("held", "newcomers", "limit", "after", "rejections"),
    [case[1:] for case in MERGES],
    ids=[case[0] for case in MERGES],
)
def test_a_merge_keeps_the_held_partitions_and_refuses_newcomers_past_the_limit_or_in_conflict(
    held: dict[int, ChunkRef],
    newcomers: dict[int, ChunkRef],
    limit: int,
    after: set[int],
    rejections: dict[int, str],
) -> None:
    first = PartitionSet(4, held)

    merged, rejected = first.merged(newcomers, Limits(max_file_bytes=limit))

    assert set(merged.parts) == after
    assert {p: error.reason.value for p, error in rejected.items()} == rejections
    assert all(merged.parts[p] == r for p, r in held.items())
    assert merged.size == sum(r.size for r in merged.parts.values())
    assert merged.size <= max(limit, first.size)


REBASES: list[
    tuple[
        str,
        dict[int, ChunkRef],
        set[int],
        PartitionSet | None,
        int,
        PartitionSet,
        set[int],
        dict[int, str],
    ]
] = [
    # name, held (count 4), newcomers among them, remote listing, MAX_FILE_BYTES,
    # the set after, the held partitions that stand, rejections
    (
        "a listing of another count stands and every newcomer conflicts with it",
        _held(p0=b"aa", p1=b"bb", p2=b"cc"),
        {1, 2},
        PartitionSet(3, _held(p0=b"aa")),
        100,
        PartitionSet(3, _held(p0=b"aa")),
        set(),
        {1: "partition-count-conflict", 2: "partition-count-conflict"},
    ),
    (
        "a missing listing is an empty one: newcomers make the set, held ones are dropped",
        _held(p0=b"aa", p1=b"bb", p2=b"cc"),
        {1, 2},
        None,
        100,
        PartitionSet(4, _held(p1=b"bb", p2=b"cc")),
        {1, 2},
        {},
    ),
    (
        "a missing listing still holds newcomers to the limit",
        _held(p0=b"aaa", p1=b"bbb"),
        {0, 1},
        None,
        5,
        PartitionSet(4, _held(p0=b"aaa")),
        {0},
        {1: "file-too-large"},
    ),
    (
        "the same bytes listed remotely are a duplicate, not a rejection",
        _held(p0=b"aa", p1=b"bb"),
        {1},
        PartitionSet(4, _held(p0=b"aa", p1=b"bb")),
        100,
        PartitionSet(4, _held(p0=b"aa", p1=b"bb")),
        {0, 1},
        {},
    ),
    (
        "other bytes listed remotely stand and the newcomer conflicts",
        _held(p0=b"aa", p1=b"bb"),
        {1},
        PartitionSet(4, _held(p1=b"BB")),
        100,
        PartitionSet(4, _held(p1=b"BB")),
        set(),
        {1: "content-conflict"},
    ),
    (
        "chunks stored by other containers count towards MAX_FILE_BYTES",
        _held(p0=b"aaaa", p1=b"bbbb"),
        {0, 1},
        PartitionSet(4, _held(p2=b"cccc", p3=b"dd")),
        10,
        PartitionSet(4, _held(p0=b"aaaa", p2=b"cccc", p3=b"dd")),
        {0},
        {1: "file-too-large"},
    ),
    (
        "a held chunk no longer listed and not a newcomer was finished elsewhere: dropped",
        _held(p0=b"aa", p1=b"bb"),
        {1},
        PartitionSet(4, _held(p3=b"dd")),
        100,
        PartitionSet(4, _held(p1=b"bb", p3=b"dd")),
        {1},
        {},
    ),
]


@pytest.mark.parametrize(
    ("held", "newcomers", "remote", "limit", "after", "standing", "rejections"),
    [case[1:] for case in REBASES],
    ids=[case[0] for case in REBASES],
)
def test_rebasing_on_a_remote_listing_keeps_its_count_and_bytes_and_rejects_what_contradicts(
    held: dict[int, ChunkRef],
    newcomers: set[int],
    remote: PartitionSet | None,
    limit: int,
    after: PartitionSet,
    standing: set[int],
    rejections: dict[int, str],
) -> None:
    mine = PartitionSet(4, held)

    merged, rejected = mine.rebased_on(remote, frozenset(newcomers), Limits(max_file_bytes=limit))

    assert merged == after
    assert merged.agreeing_with(mine) == standing
    assert [(p, error.reason.value) for p, error in rejected.items()] == sorted(rejections.items())


def _prefixes(**parts: bytes) -> dict[int, str]:
    return {p: r.digest_prefix for p, r in _held(**parts).items()}


LISTING_CHECKS: list[tuple[str, PartitionSet, dict[int, str], int, bool]] = [
    # name, stored chunks, digest prefixes in shared state, its partitionCount, whether they match
    (
        "every partition stored with the digest the state holds",
        PartitionSet(2, _held(p0=b"a", p1=b"b")),
        _prefixes(p0=b"a", p1=b"b"),
        2,
        True,
    ),
    (
        "a stored chunk whose digest prefix differs",
        PartitionSet(2, _held(p0=b"a", p1=b"B")),
        _prefixes(p0=b"a", p1=b"b"),
        2,
        False,
    ),
    (
        "a partition the state counts that is not stored (yet)",
        PartitionSet(2, _held(p0=b"a")),
        _prefixes(p0=b"a", p1=b"b"),
        2,
        False,
    ),
    (
        "the state counts fewer partitions than the file has",
        PartitionSet(2, _held(p0=b"a", p1=b"b")),
        _prefixes(p0=b"a"),
        2,
        False,
    ),
    (
        "the stored chunks were written under another count",
        PartitionSet(3, _held(p0=b"a", p1=b"b")),
        _prefixes(p0=b"a", p1=b"b"),
        2,
        False,
    ),
    (
        "whole digests are not the prefixes the state keeps",
        PartitionSet(1, _held(p0=b"a")),
        {0: ref(b"a").digest},
        1,
        False,
    ),
]


@pytest.mark.parametrize(
    ("listing", "digests", "count", "matches"),
    [case[1:] for case in LISTING_CHECKS],
    ids=[case[0] for case in LISTING_CHECKS],
)
def test_stored_chunks_match_the_shared_state_only_with_its_count_and_every_digest_prefix(
    listing: PartitionSet, digests: dict[int, str], count: int, matches: bool
) -> None:
    assert listing.holds_digests(digests, count) is matches


ADMISSIONS: list[
    tuple[str, dict[int, ChunkRef], int, int, ChunkRef, int, type[Exception] | Admission]
] = [
    # name, held (count 3), partition, its partitionCount, its bytes, MAX_FILE_BYTES, outcome
    ("another partition count", {}, 0, 4, ref(b"a"), 100, PartitionCountConflict),
    ("the same bytes again", _held(p1=b"bb"), 1, 3, ref(b"bb"), 100, Admission.DUPLICATE),
    (
        "other bytes for a held partition",
        _held(p1=b"bb"),
        1,
        3,
        ref(b"BB"),
        100,
        ChunkContentConflict,
    ),
    (
        "the same bytes again at a full file",
        _held(p1=b"bb"),
        1,
        3,
        ref(b"bb"),
        2,
        Admission.DUPLICATE,
    ),
    ("a new partition past MAX_FILE_BYTES", _held(p0=b"aaaa"), 1, 3, ref(b"bb"), 5, FileTooLarge),
    ("a new partition that fits", _held(p0=b"aaaa"), 1, 3, ref(b"b"), 5, Admission.NEW),
]


@pytest.mark.parametrize(
    ("held", "partition", "count", "arriving", "limit", "outcome"),
    [case[1:] for case in ADMISSIONS],
    ids=[case[0] for case in ADMISSIONS],
)
def test_the_shared_state_judges_a_refused_chunk_by_the_same_rule_a_partition_set_admits_it(
    held: dict[int, ChunkRef],
    partition: int,
    count: int,
    arriving: ChunkRef,
    limit: int,
    outcome: type[Exception] | Admission,
) -> None:
    mine = PartitionSet(3, held)
    held_ref = held.get(partition)
    shared = FileState(
        3, len(held), mine.size, FileStatus.COLLECTING, held_ref.digest_prefix if held_ref else None
    )
    limits = Limits(max_file_bytes=limit)

    if isinstance(outcome, Admission):
        assert mine.admit(partition, count, arriving, limits) is outcome
        if outcome is Admission.NEW:
            # The store refused what the rule admits: not a verdict the rule can give.
            with pytest.raises(RuntimeError, match="no known reason"):
                shared.judge(partition, count, arriving, limits)
        else:
            assert shared.judge(partition, count, arriving, limits) is outcome
    else:
        with pytest.raises(outcome):
            mine.admit(partition, count, arriving, limits)
        with pytest.raises(outcome):
            shared.judge(partition, count, arriving, limits)


@pytest.mark.parametrize("status", [FileStatus.UPLOADED, FileStatus.FAILED])
def test_any_chunk_late_at_a_finished_file_is_a_duplicate_whatever_it_contradicts(
    status: FileStatus,
) -> None:
    finished = FileState(3, 3, 30, status, ref(b"first").digest_prefix)

    for partition, count, arriving in [(0, 3, ref(b"other")), (0, 4, ref(b"x"))]:
        assert finished.judge(partition, count, arriving, Limits(max_file_bytes=1)) is (
            Admission.DUPLICATE
        )


def test_a_partition_arrival_names_its_file_by_endpoint_and_never_shows_the_secret() -> None:
    chunk = Chunk(SECRET_URL, 1, 3, b"12345")

    arrival = PartitionArrival.of(chunk, Limits(max_file_bytes=12), now=7.0)

    assert arrival == PartitionArrival(SECRET_URL, 1, 3, ref(b"12345"), 12, 7.0)
    assert arrival.file_id == chunk.file_id
    assert arrival.room == 7
    assert "SECRET" not in repr(arrival)


# The putEndpoint parser: every later step reads only what it accepted.

SIG = "?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=SECRETSIG"

HOSTILE_ENDPOINTS: list[tuple[str, str, str]] = [
    # name, putEndpoint, what the reason says
    ("lone surrogate in the path", "https://files.example.com/a\ud800b" + SIG, "surrogate"),
    ("lone surrogate in the host", "https://files\udc80.example.com/k" + SIG, "surrogate"),
    ("host label over 63 characters", "https://" + "a" * 64 + ".example.com/k", "63"),
    ("IDN label over 63 once encoded", "https://" + "ü" * 58 + ".example.com/k", "IDNA"),
    ("host over 253 characters", "https://" + ("a" * 60 + ".") * 5 + "com/k", "253"),
    ("port out of range", "https://files.example.com:99999/k" + SIG, "port"),
    ("port not a number", "https://files.example.com:https/k" + SIG, "port"),
    ("port zero", "https://files.example.com:0/k", "port"),
    ("port with a sign", "https://files.example.com:+443/k", "port"),
    ("port of six digits", "https://files.example.com:000443/k", "port"),
    ("user and password", "https://user:hunter2@files.example.com/k" + SIG, "user information"),
    ("user only", "https://user@files.example.com/k", "user information"),
    ("userinfo posing as the host", "https://files.example.com@evil.example/k", "user info"),
    ("NUL in the path", "https://files.example.com/k\x00" + SIG, "control"),
    ("CRLF header injection", "https://files.example.com/k\r\nX-Evil: 1" + SIG, "control"),
    ("tab in the host", "https://files.example.com\t/k", "control"),
    ("DEL in the path", "https://files.example.com/k\x7f", "control"),
    ("C1 control in the path", "https://files.example.com/k\x85", "control"),
    ("space in the path", "https://files.example.com/a b" + SIG, "whitespace"),
    ("space in the host", "https://files example.com/k", "whitespace"),
    ("leading space", " https://files.example.com/k", "whitespace"),
    ("trailing newline", "https://files.example.com/k" + SIG + "\n", "control"),
    ("no-break space", "https://files.example.com/a\u00a0b", "whitespace"),
    ("zero-width space in the host", "https://files\u200b.example.com/k", "invisible"),
    ("right-to-left override in the path", "https://files.example.com/\u202ek", "invisible"),
    ("backslash before @", "https://evil.example\\@files.example.com/k" + SIG, "backslash"),
    ("backslash as a slash", "https://files.example.com\\evil/k", "backslash"),
    ("IPv6 zone id, encoded", "https://[fe80::1%25eth0]/k", "zone id"),
    ("IPv6 zone id, raw", "https://[fe80::1%eth0]/k", "zone id"),
    ("IPv6 outside brackets", "https://fe80::1/k", "IPv6"),
    ("IPvFuture literal", "https://[v1.fe80]/k", "IPv6"),
    ("IPv4 inside brackets", "https://[127.0.0.1]/k", "not a URL"),
    ("unclosed bracket", "https://[::1/k", "not a URL"),
    ("text after an IPv6 literal", "https://[::1]evil/k", "IPv6"),
    ("over the maximum length", "https://files.example.com/" + "a" * 8192, "8192"),
    (
        "fullwidth letters, which urllib3 cannot IDNA-encode",
        "https://\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com/k",
        "IDNA",
    ),
    ("ideographic full stop", "https://bücher。example/k", "IDNA"),
    ("invalid punycode label", "https://xn--zz.example.com/k", "IDNA"),
    ("empty host", "https:///k" + SIG, "no host"),
    ("port without a host", "https://:443/k", "no host"),
    ("empty label", "https://files..example.com/k", "empty label"),
    ("leading dot", "https://.example.com/k", "empty label"),
    ("two trailing dots", "https://files.example.com../k", "empty label"),
    ("percent-encoded host", "https://%66iles.example.com/k", "percent"),
    ("wildcard host", "https://*.example.com/k", "character"),
    ("short IPv4 form", "https://127.1/k", "dotted-quad"),
    ("hex IPv4 form", "https://0x7f.0.0.1/k", "dotted-quad"),
    ("IPv4 as one number", "https://2130706433/k", "dotted-quad"),
    ("octal-looking IPv4", "https://010.0.0.1/k", "dotted-quad"),
    ("IPv4 with a trailing dot", "https://10.0.0.1./k", "trailing dot"),
    ("a fragment", "https://files.example.com/k" + SIG + "#frag-secret", "fragment"),
    ("ftp", "ftp://files.example.com/k", "http"),
    ("file", "file:///etc/passwd", "http"),
    ("javascript", "javascript:alert(1)", "http"),
    ("no scheme", "files.example.com/k", "http"),
    ("scheme-relative", "//files.example.com/k", "http"),
    ("scheme without slashes", "https:files.example.com/k", "http"),
    ("scheme with one slash", "https:/files.example.com/k", "http"),
]


@pytest.mark.parametrize(
    ("endpoint", "says"),
    [case[1:] for case in HOSTILE_ENDPOINTS],
    ids=[case[0] for case in HOSTILE_ENDPOINTS],
)
def test_a_hostile_endpoint_is_invalid_with_a_reason_that_never_quotes_it(
    endpoint: str, says: str
) -> None:
    with pytest.raises(InvalidEndpoint) as raised:
        Endpoint.parse(endpoint)

    error = raised.value
    assert says in error.detail
    assert error.reason is RejectionReason.ENDPOINT_INVALID
    assert isinstance(error, EndpointRefused)
    for text in (error.detail, str(error), repr(error)):
        for secret in ("SECRETSIG", "X-Amz", "hunter2", "frag-secret", "example", "/k"):
            assert secret not in text


@pytest.mark.parametrize(
    "endpoint", [case[1] for case in HOSTILE_ENDPOINTS], ids=[case[0] for case in HOSTILE_ENDPOINTS]
)
def test_a_hostile_endpoint_is_shown_redacted_and_printable(endpoint: str) -> None:
    with pytest.raises(InvalidEndpoint) as raised:
        Endpoint.parse(endpoint)

    shown = raised.value.shown_endpoint
    assert shown is not None
    assert shown.isprintable()
    for secret in ("SECRETSIG", "X-Amz", "hunter2", "frag-secret"):
        assert secret not in shown


VALID_ENDPOINTS: list[tuple[str, str, tuple[str, str, int | None]]] = [
    # name, putEndpoint, (scheme, host as checked, port)
    (
        "S3 presigned URL",
        "https://bucket.s3.amazonaws.com/exports/a.csv" + SIG,
        ("https", "bucket.s3.amazonaws.com", None),
    ),
    (
        "upper-case scheme and host",
        "HTTPS://Files.Example.COM/k",
        ("https", "files.example.com", None),
    ),
    ("explicit https port", "https://files.example.com:443/k", ("https", "files.example.com", 443)),
    ("explicit http port", "http://files.example.com:80/k", ("http", "files.example.com", 80)),
    ("highest port", "https://files.example.com:65535/k", ("https", "files.example.com", 65535)),
    (
        "port with leading zeros",
        "https://files.example.com:0443/k",
        ("https", "files.example.com", 443),
    ),
    ("empty port", "https://files.example.com:/k", ("https", "files.example.com", None)),
    ("IDN", "https://bücher.example/k", ("https", "xn--bcher-kva.example", None)),
    ("IDN in upper case", "https://BÜCHER.example/k", ("https", "xn--bcher-kva.example", None)),
    ("IDN with ß", "https://faß.example/k", ("https", "xn--fa-hia.example", None)),
    (
        "IDN as A-labels",
        "https://xn--bcher-kva.example/k",
        ("https", "xn--bcher-kva.example", None),
    ),
    (
        "IDN label that encodes to 63 characters",
        "https://" + "ü" * 57 + ".example/k",
        ("https", idna.encode("ü" * 57).decode("ascii") + ".example", None),
    ),
    ("fully qualified name", "https://files.example.com./k", ("https", "files.example.com", None)),
    ("IPv4 literal", "https://93.184.216.34/k", ("https", "93.184.216.34", None)),
    (
        "IPv6 literal",
        "https://[2606:4700::6810:84E5]:8443/k",
        ("https", "2606:4700::6810:84e5", 8443),
    ),
    ("IPv6 literal spelt out", "http://[0:0:0:0:0:0:0:1]/k", ("http", "::1", None)),
    ("IPv4-mapped IPv6", "https://[::ffff:8.8.8.8]/k", ("https", "::ffff:808:808", None)),
    (
        "underscore in a label",
        "https://my_bucket.example.com/k",
        ("https", "my_bucket.example.com", None),
    ),
    (
        "label of 63 characters",
        "https://" + "a" * 63 + ".example/k",
        ("https", "a" * 63 + ".example", None),
    ),
    ("no path", "https://files.example.com", ("https", "files.example.com", None)),
    ("query without path", "https://files.example.com?x=1", ("https", "files.example.com", None)),
    (
        "non-ASCII path",
        "https://files.example.com/résumé.pdf" + SIG,
        ("https", "files.example.com", None),
    ),
    (
        "query with odd characters",
        "https://files.example.com/k?a=%2F%zz&b=~!$'()*+,;=:@/?&c=ü&d=100%&e=[x]{y}|^`\"<>",
        ("https", "files.example.com", None),
    ),
    (
        "long path at the maximum length",
        "https://files.example.com/" + "p" * (MAX_ENDPOINT_BYTES - 26),
        ("https", "files.example.com", None),
    ),
]


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [case[1:] for case in VALID_ENDPOINTS],
    ids=[case[0] for case in VALID_ENDPOINTS],
)
def test_a_valid_endpoint_is_accepted_as_it_is_with_its_host_made_canonical(
    endpoint: str, expected: tuple[str, str, int | None]
) -> None:
    parsed = Endpoint.parse(endpoint)

    assert (parsed.scheme, parsed.host, parsed.port) == expected
    assert parsed.text == endpoint
    assert parsed.host.isascii()
    assert "SECRETSIG" not in repr(parsed)


def test_the_maximum_length_counts_utf8_bytes() -> None:
    at_max = "https://files.example.com/" + "p" * (MAX_ENDPOINT_BYTES - 26)

    Endpoint.parse(at_max)
    with pytest.raises(InvalidEndpoint, match=f"{MAX_ENDPOINT_BYTES + 1} bytes"):
        Endpoint.parse(at_max + "p")
    with pytest.raises(InvalidEndpoint, match=f"{MAX_ENDPOINT_BYTES + 1} bytes"):
        Endpoint.parse(at_max[:-1] + "é")  # as many characters as at_max, one byte more


def test_redaction_escapes_what_a_log_line_should_not_carry_raw() -> None:
    assert redact("https://h.example/a\ud800b?sig=x") == "https://h.example/a\\ud800b"
    assert redact("https://h.example/a\x1bb?sig=x") == "https://h.example/a\\x1bb"
    assert redact("https://bücher.example/résumé?sig=x") == "https://bücher.example/résumé"
