"""Where uploads may go: the guard against using the service to reach internal addresses."""

from __future__ import annotations

import fnmatch
import ipaddress
import socket
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

from domain import EndpointRefused, redact

Resolver = Callable[[str], Sequence[str]]


def resolve_host(host: str) -> list[str]:
    """Every address the host resolves to, IPv4 and IPv6."""
    infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    return sorted({str(info[4][0]) for info in infos})


class TransientResolutionError(OSError):
    """The resolver could not answer now; the record is delivered again later."""


class HostPolicy:
    """With an allow-list: http(s) to those hosts only. Without: https to public addresses.

    Decisions are kept per scheme and host for the container's life.
    """

    def __init__(
        self, allowed_hosts: Sequence[str] | None, resolver: Resolver = resolve_host
    ) -> None:
        self._allowed = tuple(h.lower() for h in allowed_hosts) if allowed_hosts else None
        self._resolve = resolver
        self._decided: dict[tuple[str, str], str | None] = {}

    def check(self, put_endpoint: str) -> None:
        try:
            parts = urlsplit(put_endpoint)
            scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
        except ValueError:
            raise EndpointRefused("putEndpoint is not a URL") from None
        key = (scheme, host)
        if key not in self._decided:
            if len(self._decided) > 10_000:
                self._decided.clear()
            self._decided[key] = self._decide(scheme, host)
        refusal = self._decided[key]
        if refusal is not None:
            raise EndpointRefused(f"{redact(put_endpoint)}: {refusal}")

    def connect_addresses(self, scheme: str, host: str) -> list[str]:
        """Resolve once, vet every address, and return them: what a connection may use."""
        refusal = self._name_refusal(scheme.lower(), host.lower())
        if refusal is not None:
            raise EndpointRefused(f"{scheme}://{host}: {refusal}")
        addresses = self._addresses(host.lower())
        if not addresses:
            raise EndpointRefused(f"{scheme}://{host}: host does not resolve")
        if self._allowed is None:
            for address in addresses:
                if not _is_public(ipaddress.ip_address(address)):
                    raise EndpointRefused(
                        f"{scheme}://{host}: resolves to a non-public address ({address})"
                    )
        return addresses

    def _decide(self, scheme: str, host: str) -> str | None:
        refusal = self._name_refusal(scheme, host)
        if refusal is not None or self._allowed is not None:
            return refusal
        try:
            addresses = self._addresses(host)
        except socket.gaierror as error:
            if error.errno == socket.EAI_AGAIN:
                raise TransientResolutionError(f"could not resolve {host} now") from None
            return "host does not resolve"
        if not addresses:
            return "host does not resolve"
        for address in addresses:
            if not _is_public(ipaddress.ip_address(address)):
                return f"host resolves to a non-public address ({address})"
        return None

    def _name_refusal(self, scheme: str, host: str) -> str | None:
        """The rules that need no resolution: scheme, presence, allow-list."""
        if scheme not in ("http", "https"):
            return f"scheme {scheme or '(none)'!r} is not http or https"
        if not host:
            return "no host"
        if self._allowed is not None:
            if any(_matches(host, pattern) for pattern in self._allowed):
                return None
            return "host is not in UPLOAD_ALLOWED_HOSTS"
        if scheme != "https":
            return "only https is allowed when UPLOAD_ALLOWED_HOSTS is unset"
        return None

    def _addresses(self, host: str) -> list[str]:
        """An IP literal is its own address; a name is resolved (gaierror passes through)."""
        try:
            return [str(ipaddress.ip_address(host.strip("[]")))]
        except ValueError:
            return [a.split("%")[0] for a in self._resolve(host)]


def _matches(host: str, pattern: str) -> bool:
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) and fnmatch.fnmatchcase(host, pattern)
    return host == pattern


def _is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast and not address.is_reserved
