"""What the tests mean by "uploaded": one spelling of it, with a failure that says what came.

The uploads are the fake uploader's bodies (``FakeUploader.bodies_for``) or the local
receiver's PUTs (``Stack.uploads_of``, ``LocalReceiver.received``); a failure lists every
upload by size and sha256, so a file PUT twice, never, or with other bytes reads at a glance
instead of as a tuple that would not unpack or a diff of megabytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, TypeVar

from tests.tools.receiver import ReceivedPut

if TYPE_CHECKING:
    from tests.fakes import FakeArchive, FakeUploader

Upload = TypeVar("Upload", bound=ReceivedPut | bytes)


def _digest(size: int, sha256: str) -> str:
    return f"{size} bytes (sha256 {sha256[:16]})"


def _expected(data: bytes) -> str:
    return _digest(len(data), hashlib.sha256(data).hexdigest())


def _seen(upload: ReceivedPut | bytes) -> str:
    """Size and digest, and for a PUT its path without the query string (a signature)."""
    if isinstance(upload, bytes):
        return _expected(upload)
    return f"{_digest(upload.size, upload.sha256)} to {upload.path.split('?')[0]}"


def _matches(upload: ReceivedPut | bytes, data: bytes) -> bool:
    if isinstance(upload, bytes):
        return upload == data
    same_digest = upload.size == len(data) and upload.sha256 == hashlib.sha256(data).hexdigest()
    return same_digest and (upload.body is None or upload.body == data)


def _listed(uploads: Sequence[ReceivedPut | bytes]) -> str:
    return "; ".join(_seen(upload) for upload in uploads) or "none"


def assert_uploaded_once(uploads: Sequence[Upload], data: bytes, to: str = "") -> Upload:
    """Exactly one upload, whose body is exactly ``data``; returns it, for its headers."""
    where = f"{to}: " if to else ""
    once = len(uploads) == 1 and _matches(uploads[0], data)
    assert once, (
        f"{where}expected one upload of {_expected(data)}, got {len(uploads)}: {_listed(uploads)}"
    )
    return uploads[0]


def assert_uploaded_whole(uploads: Sequence[Upload], data: bytes, to: str = "") -> None:
    """At least one upload, and every one exactly ``data``: for schedules that may redeliver
    a batch after its file was PUT, where a second PUT of the same bytes is allowed."""
    where = f"{to}: " if to else ""
    whole = bool(uploads) and all(_matches(upload, data) for upload in uploads)
    assert whole, (
        f"{where}expected uploads of {_expected(data)} only, got {len(uploads)}: {_listed(uploads)}"
    )


def assert_every_file_uploaded_once(
    contents: Mapping[str, bytes], uploader: FakeUploader, archive: FakeArchive
) -> None:
    """Nothing quarantined; every file uploaded exactly once, with its exact bytes."""
    assert archive.quarantined == []
    for endpoint, content in contents.items():
        assert_uploaded_once(uploader.bodies_for(endpoint), content, to=endpoint)


def assert_every_file_uploaded_whole(
    contents: Mapping[str, bytes], uploader: FakeUploader, archive: FakeArchive
) -> None:
    """Nothing quarantined; every file uploaded, and every upload of it its exact bytes."""
    assert archive.quarantined == []
    for endpoint, content in contents.items():
        assert_uploaded_whole(uploader.bodies_for(endpoint), content, to=endpoint)
