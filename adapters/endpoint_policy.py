"""Where uploads may go: the guard against using the service to reach internal addresses."""

from __future__ import annotations

import fnmatch
import ipaddress
import socket
from collections.abc import Callable, Sequence

from domain import Endpoint, EndpointRefused

Resolver = Callable[[str], Sequence[str]]

# The name definitely does not exist (NXDOMAIN, or no address of any family): an answer.
_NO_SUCH_NAME = frozenset({socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)})


def resolve_host(host: str) -> list[str]:
    """Every address the host resolves to, IPv4 and IPv6."""
    infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    return sorted({str(info[4][0]) for info in infos})


class TransientResolutionError(OSError):
    """The resolver could not answer now; the record is delivered again later."""


class _Unresolved(Exception):
    """The name has no address: refused for this record, never remembered for the next."""


class HostPolicy:
    """With an allow-list: http(s) to those hosts only. Without: https to public addresses.

    The endpoint is parsed by ``domain.Endpoint`` (an ``InvalidEndpoint`` when malformed), so
    the host decided on is the one every later step reads. Decisions are kept per scheme and
    host for the container's life, but only those made on an answer: a failed lookup is
    asked again for the next record, so one DNS blip cannot refuse a host for good.
    """

    def __init__(
        self, allowed_hosts: Sequence[str] | None, resolver: Resolver = resolve_host
    ) -> None:
        self._allowed = tuple(_pattern(h) for h in allowed_hosts) if allowed_hosts else None
        self._resolve = resolver
        self._decided: dict[tuple[str, str], str | None] = {}

    def check(self, put_endpoint: str) -> None:
        """Raises EndpointRefused (InvalidEndpoint when malformed); TransientResolutionError
        when the name could not be looked up now."""
        endpoint = Endpoint.parse(put_endpoint)
        key = (endpoint.scheme, endpoint.host)
        if key not in self._decided:
            try:
                refusal = self._decide(endpoint.scheme, endpoint.host)
            except _Unresolved as unresolved:
                raise EndpointRefused(str(unresolved)) from None
            if len(self._decided) > 10_000:
                self._decided.clear()
            self._decided[key] = refusal
        refusal = self._decided[key]
        if refusal is not None:
            # The detail goes into quarantine metadata: it never names the endpoint.
            raise EndpointRefused(refusal)

    def connect_addresses(self, scheme: str, host: str) -> list[str]:
        """Resolve once, vet every address, and return them: what a connection may use."""
        scheme, host = scheme.lower(), _canonical(host)
        refusal = self._name_refusal(scheme, host)
        if refusal is not None:
            raise EndpointRefused(refusal)
        try:
            addresses = self._addresses(host)
        except UnicodeError:
            raise EndpointRefused("the host name cannot be looked up") from None
        if not addresses:
            raise EndpointRefused("host does not resolve")
        if self._allowed is None:
            for address in addresses:
                if not _is_public(ipaddress.ip_address(address)):
                    raise EndpointRefused(_non_public(host, address))
        return addresses

    def _decide(self, scheme: str, host: str) -> str | None:
        refusal = self._name_refusal(scheme, host)
        if refusal is not None or self._allowed is not None:
            return refusal
        try:
            addresses = self._addresses(host)
        except socket.gaierror as error:
            if error.errno in _NO_SUCH_NAME:
                raise _Unresolved("host does not resolve") from None
            raise TransientResolutionError(f"could not resolve {host} now ({error})") from None
        except OSError as error:  # a timeout, or the resolver itself unreachable
            raise TransientResolutionError(f"could not resolve {host} now ({error})") from None
        except UnicodeError:  # Endpoint.parse leaves no such name; kept as a last guard
            return "the host name cannot be looked up"
        if not addresses:
            raise _Unresolved("host does not resolve")
        for address in addresses:
            if not _is_public(ipaddress.ip_address(address)):
                return _non_public(host, address)
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
            return [str(ipaddress.ip_address(host))]
        except ValueError:
            return [a.split("%")[0] for a in self._resolve(host)]


def _non_public(host: str, address: str) -> str:
    """The refusal for a non-public address, naming it only when it is not the host itself."""
    if _canonical(address) == host:
        return "the address is not public"
    return f"host resolves to a non-public address ({address})"


def _canonical(host: str) -> str:
    """A host as ``domain.Endpoint`` writes it: lower case, no brackets or trailing dot, IP
    addresses in ``ipaddress`` form (urllib3 hands the connection another spelling)."""
    host = host.strip("[]").rstrip(".").lower()
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host


def _pattern(allowed: str) -> str:
    """An UPLOAD_ALLOWED_HOSTS entry written as ``domain.Endpoint`` writes hosts (an IDN in
    A-labels, an IPv6 address without brackets), so that it can match them."""
    wildcard = allowed.startswith("*.")
    name = allowed[2:] if wildcard else allowed
    if ":" in name and not name.startswith("["):
        name = f"[{name}]"
    try:
        name = Endpoint.parse(f"http://{name}/").host
    except EndpointRefused:
        name = _canonical(name)  # not a host: it matches no checked endpoint, admits nothing
    return f"*.{name}" if wildcard else name


def _matches(host: str, pattern: str) -> bool:
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) and fnmatch.fnmatchcase(host, pattern)
    return host == pattern


def _is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast and not address.is_reserved
