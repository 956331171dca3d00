"""A putEndpoint names a file; its query string may be a presigned secret."""

from __future__ import annotations

import hashlib
import re
from urllib.parse import urlsplit

from attrs import field, frozen

_HEX_ID = re.compile(r"^[0-9a-f]{32}$")


def redact(url: str) -> str:
    """Return scheme://host[:port]/path: never the query, fragment or credentials."""
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:
        return "<unparseable endpoint>"
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _is_hex_id(_: object, __: object, value: str) -> None:
    if not _HEX_ID.match(value):
        raise ValueError(f"not a file id: {value!r}")


@frozen(order=True)
class FileId:
    """Stable id of a file: a hash of the whole putEndpoint, safe as a path or S3 key."""

    value: str = field(validator=_is_hex_id)

    @classmethod
    def for_endpoint(cls, put_endpoint: str) -> FileId:
        return cls(hashlib.sha256(put_endpoint.encode("utf-8")).hexdigest()[:32])

    def __str__(self) -> str:
        return self.value
