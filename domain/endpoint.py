"""A putEndpoint names a file; its query string may be a presigned secret."""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import re
from urllib.parse import urlsplit

import idna
from attrs import field, frozen

from domain.errors import InvalidEndpoint

_HEX_ID = re.compile(r"^[0-9a-f]{32}$")

MAX_ENDPOINT_BYTES = 8192
"""The longest putEndpoint accepted, in UTF-8 bytes: what HTTP servers commonly take as a
request line (S3's presigned URLs with a session token stay well under it)."""

_HOST_LABEL = re.compile(r"^[a-z0-9_-]{1,63}$")
_NUMERIC_LABEL = re.compile(r"^(?:0x[0-9a-f]*|[0-9]+)$")
_PORT = re.compile(r"^[0-9]{1,5}$")
_MAX_HOST_LENGTH = 253


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
    return _printable(f"{parts.scheme}://{host}{port}{parts.path}")


def _printable(text: str) -> str:
    """Escape what a log line or a terminal should not carry raw (controls, lone surrogates)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


@frozen
class Endpoint:
    """A putEndpoint checked once for every later step that reads it.

    Hashing (the file id), logging, S3 metadata, requests' and urllib3's URL parsing, the
    IDNA encoding of the name and the connection all meet only text that passed here, so
    none of them can raise on it or read a different host than the upload policy checked.
    """

    text: str = field(repr=redact)
    """The producer's whole text: what the file id hashes and what is PUT to."""
    scheme: str
    host: str
    """ASCII and canonical: a lower-case name in IDNA A-labels without its trailing dot, or an
    IP address as ``ipaddress`` writes it (IPv6 without brackets)."""
    port: int | None

    @classmethod
    def parse(cls, text: str) -> Endpoint:
        """The endpoint with its host made canonical, once every rule holds.

        Raises
        ------
        domain.InvalidEndpoint
            With a reason that never quotes the endpoint.
        """
        try:
            scheme, host, port = _checked(text)
        except _Invalid as invalid:
            raise InvalidEndpoint(str(invalid), redact(text)) from None
        return cls(text=text, scheme=scheme, host=host, port=port)


class _Invalid(Exception):
    """What is wrong with an endpoint; parse adds the redacted endpoint."""


@functools.lru_cache(maxsize=64)
def _checked(text: str) -> tuple[str, str, int | None]:
    """Kept for the last endpoints (an exception is not): a record's endpoint is parsed by
    its validation and again by the upload policy right after, on a small file's hot path."""
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise _Invalid("putEndpoint holds a lone surrogate: not valid Unicode") from None
    if size > MAX_ENDPOINT_BYTES:
        raise _Invalid(f"putEndpoint is {size} bytes long, over the maximum {MAX_ENDPOINT_BYTES}")
    # Whitespace, controls, invisible formatting and unassigned characters: no well-formed
    # URL holds them raw, and parsers disagree on them (requests strips, urlsplit drops
    # tabs, urllib3 refuses). isprintable() finds them all at C speed, but for the space.
    if not text.isprintable() or " " in text:
        raise _Invalid(
            "putEndpoint holds whitespace, a control or an invisible or unassigned character"
        )
    if "\\" in text:
        raise _Invalid("putEndpoint holds a backslash")
    try:
        parts = urlsplit(text)
    except ValueError:
        raise _Invalid("putEndpoint is not a URL") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not text[: len(scheme) + 3].lower().endswith("://"):
        raise _Invalid("putEndpoint must start with http:// or https://")
    if "#" in text:
        raise _Invalid("putEndpoint has a fragment (#), which is never sent")
    if "@" in parts.netloc:
        raise _Invalid("putEndpoint carries user information (user@host)")
    host, port = _host_and_port(parts.netloc)
    return scheme, host, port


def _host_and_port(netloc: str) -> tuple[str, int | None]:
    if netloc.startswith("["):
        literal, bracket, rest = netloc[1:].partition("]")
        if not bracket:
            raise _Invalid("putEndpoint has an unclosed '[' in its host")
        if rest and not rest.startswith(":"):
            raise _Invalid("putEndpoint has text after its IPv6 address")
        return _ipv6_literal(literal), _port(rest[1:]) if rest else None
    if netloc.count(":") > 1:
        raise _Invalid("putEndpoint has an IPv6 address outside brackets")
    name, colon, port_text = netloc.partition(":")
    return _host_name(name), _port(port_text) if colon else None


def _port(text: str) -> int | None:
    if text == "":
        return None  # "host:" means the default port to every parser
    if not _PORT.match(text) or not 1 <= int(text) <= 65535:
        raise _Invalid("putEndpoint's port is not a number from 1 to 65535")
    return int(text)


def _ipv6_literal(literal: str) -> str:
    if "%" in literal:
        raise _Invalid("putEndpoint's IPv6 address has a zone id (%)")
    try:
        return str(ipaddress.IPv6Address(literal))
    except ValueError:
        raise _Invalid("putEndpoint has no IPv6 address inside its brackets") from None


def _host_name(name: str) -> str:
    """Encode the name as urllib3 will (lower case, IDNA 2008 per label) and check it.

    DNS rules as the resolver's IDNA codec applies them: labels of 1 to 63 characters, 253
    in all; one trailing dot (a fully qualified name) is allowed and dropped.
    """
    if not name:
        raise _Invalid("putEndpoint has no host")
    labels = name.lower().split(".")
    if len(labels) > 1 and labels[-1] == "":
        labels.pop()
    ascii_labels: list[str] = []
    for label in labels:
        if not label:
            raise _Invalid("putEndpoint's host has an empty label (..)")
        if label.isascii():
            if len(label) > 63:
                raise _Invalid("putEndpoint's host has a label over 63 characters")
            if not _HOST_LABEL.match(label):
                raise _Invalid(
                    "putEndpoint's host holds a character other than a letter, a digit, '-', "
                    "'_' or '.' (percent-encoding included)"
                )
            if label.startswith("xn--"):
                _check_a_label(label)
            ascii_labels.append(label)
            continue
        try:
            ascii_labels.append(idna.encode(label, strict=True, std3_rules=True).decode("ascii"))
        except UnicodeError:
            raise _Invalid(
                "putEndpoint's host is not a valid internationalised name (IDNA)"
            ) from None
    host = ".".join(ascii_labels)
    if len(host) > _MAX_HOST_LENGTH:
        raise _Invalid(f"putEndpoint's host is longer than {_MAX_HOST_LENGTH} characters")
    if _NUMERIC_LABEL.match(ascii_labels[-1]):
        # A name ending in a number is an IPv4 address to every resolver: only the plain
        # dotted-quad form is accepted, so that "127.1" or "0x7f.1" cannot pose as a name.
        if host != name.lower():
            raise _Invalid("putEndpoint's IPv4 address has a trailing dot")
        try:
            return str(ipaddress.IPv4Address(host))
        except ValueError:
            raise _Invalid(
                "putEndpoint's host is a number but not a dotted-quad IPv4 address"
            ) from None
    return host


def _check_a_label(label: str) -> None:
    try:
        idna.decode(label)
    except UnicodeError:
        raise _Invalid("putEndpoint's host has an invalid IDNA label (xn--)") from None


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
