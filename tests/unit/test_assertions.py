"""The shared upload assertions fail on a file PUT never, twice or with other bytes, and say so."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import pytest

from tests.assertions import assert_uploaded_once, assert_uploaded_whole
from tests.tools.receiver import ReceivedPut

DATA = b"the file's bytes"
OTHER = b"other bytes, longer"
SIGNED = "/uploads/f.bin?X-Amz-Signature=SECRETSIG"


def put(body: bytes, path: str = SIGNED) -> ReceivedPut:
    return ReceivedPut(
        path=path,
        headers={"content-length": str(len(body))},
        size=len(body),
        sha256=hashlib.sha256(body).hexdigest(),
        body=body,
        finished_at=0.0,
    )


def digest(data: bytes) -> str:
    return f"{len(data)} bytes (sha256 {hashlib.sha256(data).hexdigest()[:16]})"


@pytest.mark.parametrize(
    ("uploads", "named"),
    [
        ([], ["got 0: none"]),
        ([DATA, DATA], ["got 2", digest(DATA)]),
        ([OTHER], ["got 1", digest(OTHER)]),
        ([put(DATA), put(DATA)], ["got 2", f"{digest(DATA)} to /uploads/f.bin"]),
        ([put(OTHER)], ["got 1", f"{digest(OTHER)} to /uploads/f.bin"]),
    ],
    ids=["never", "twice", "other-bytes", "put-twice", "put-other-bytes"],
)
def test_assert_uploaded_once_fails_naming_how_many_uploads_came_and_their_sizes_and_digests(
    uploads: Sequence[bytes | ReceivedPut], named: list[str]
) -> None:
    with pytest.raises(AssertionError) as failure:
        assert_uploaded_once(uploads, DATA, to="f.bin")

    message = str(failure.value)
    assert message.startswith(f"f.bin: expected one upload of {digest(DATA)}")
    for part in named:
        assert part in message
    assert "SECRETSIG" not in message


def test_assert_uploaded_once_returns_the_one_upload_for_checks_of_its_headers() -> None:
    one = put(DATA)

    assert assert_uploaded_once([one], DATA) is one
    assert assert_uploaded_once([DATA], DATA) == DATA


def test_a_put_whose_kept_body_differs_from_its_digest_is_not_the_file() -> None:
    forged = ReceivedPut(SIGNED, {}, len(DATA), hashlib.sha256(DATA).hexdigest(), OTHER, 0.0)

    with pytest.raises(AssertionError):
        assert_uploaded_once([forged], DATA)


@pytest.mark.parametrize(
    ("uploads", "holds"),
    [
        ([], False),
        ([DATA], True),
        ([DATA, DATA], True),
        ([DATA, OTHER], False),
        ([put(DATA), put(DATA)], True),
        ([put(DATA), put(OTHER)], False),
    ],
    ids=["never", "once", "twice-same", "twice-one-other", "put-twice-same", "put-one-other"],
)
def test_assert_uploaded_whole_allows_repeated_puts_of_the_same_bytes_only(
    uploads: Sequence[bytes | ReceivedPut], holds: bool
) -> None:
    if holds:
        assert_uploaded_whole(uploads, DATA)
    else:
        with pytest.raises(AssertionError, match=f"got {len(uploads)}"):
            assert_uploaded_whole(uploads, DATA)
