"""An HTTP transport that connects only to addresses the endpoint policy has just vetted.

Checking a host when its first chunk arrives is not enough: its name may resolve elsewhere
by the time the file is uploaded (DNS rebinding). Here the connection itself resolves the
name once, asks the policy about every address, and connects to those addresses only, so
what was checked is what is reached. Proxies from the environment are ignored for the same
reason.
"""

from __future__ import annotations

import socket
from http.cookiejar import Cookie, DefaultCookiePolicy
from typing import Any, Protocol

import requests
from requests.adapters import HTTPAdapter
from requests.exceptions import InvalidSchema, InvalidURL, MissingSchema, URLRequired
from urllib3 import HTTPConnectionPool, HTTPSConnectionPool, PoolManager
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import (
    ConnectTimeoutError,
    LocationValueError,
    NameResolutionError,
    NewConnectionError,
)
from urllib3.util import connection

from domain import EndpointRefused


class AddressGuard(Protocol):
    def connect_addresses(self, scheme: str, host: str) -> list[str]:
        """The addresses a connection to ``host`` may use.

        Raises
        ------
        domain.EndpointRefused
            When the host, or any address it resolves to, is not allowed.
        socket.gaierror
            When the name does not resolve.
        """


class GuardRefused(NewConnectionError):
    """The policy refused the address at connect time: a permanent answer."""


URL_ERRORS: tuple[type[Exception], ...] = (
    InvalidURL,
    InvalidSchema,
    MissingSchema,
    URLRequired,
    LocationValueError,
)
"""requests' and urllib3's refusals of the URL itself (urllib3's may escape requests
unwrapped): no later attempt can succeed, so they are never transient."""


def _guarded(base: type[HTTPConnection], guard: AddressGuard, scheme: str) -> type[HTTPConnection]:
    class GuardedConnection(base):  # type: ignore[valid-type,misc]  # a class made per guard
        def _new_conn(self) -> socket.socket:
            try:
                addresses = guard.connect_addresses(scheme, self.host)
            except EndpointRefused as refused:
                raise GuardRefused(self, f"refused by the upload guard: {refused.detail}") from None
            except socket.gaierror as error:
                raise NameResolutionError(self.host, self, error) from error
            except UnicodeError:  # a name no resolver can encode: never worth another try
                raise GuardRefused(self, "refused by the upload guard: invalid host name") from None
            failure: Exception = NewConnectionError(self, "the host has no address")
            for address in addresses:
                try:
                    return connection.create_connection(
                        (address, self.port),
                        self.timeout,
                        source_address=self.source_address,
                        socket_options=self.socket_options,
                    )
                except TimeoutError as error:
                    failure = ConnectTimeoutError(
                        self, f"Connection to {self.host} timed out ({self.timeout})"
                    )
                    failure.__cause__ = error
                except OSError as error:
                    failure = NewConnectionError(self, f"Failed to establish a connection: {error}")
            raise failure

    return GuardedConnection


class _GuardedAdapter(HTTPAdapter):
    def __init__(self, guard: AddressGuard, connections: int) -> None:
        self._guard = guard
        super().__init__(pool_maxsize=connections)

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any
    ) -> None:
        guard = self._guard

        class Pool(HTTPConnectionPool):
            ConnectionCls = _guarded(HTTPConnection, guard, "http")

        class SecurePool(HTTPSConnectionPool):
            ConnectionCls = _guarded(HTTPSConnection, guard, "https")  # type: ignore[assignment]  # still an HTTPS connection

        # 1 MiB blocks: a 16 KiB default means thousands of Python-level reads a file.
        self.poolmanager = PoolManager(
            num_pools=connections, maxsize=maxsize, block=block, blocksize=1 << 20, **pool_kwargs
        )
        self.poolmanager.pool_classes_by_scheme = {"http": Pool, "https": SecurePool}


class _NoCookies(DefaultCookiePolicy):
    """One session uploads every producer's files: a cookie an endpoint answers one upload
    with (a gateway's session, a tenant's token) is neither kept nor sent with the next."""

    def set_ok(self, cookie: Cookie, request: Any) -> bool:
        return False

    def return_ok(self, cookie: Cookie, request: Any) -> bool:
        return False


def guarded_session(guard: AddressGuard, connections: int = 10) -> requests.Session:
    """``connections`` kept open per host: one for each upload that may run at once."""
    session = requests.Session()
    session.trust_env = False
    session.cookies.set_policy(_NoCookies())
    adapter = _GuardedAdapter(guard, max(10, connections))
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def refused_by_guard(error: Exception) -> bool:
    """Whether a requests error came from the guard (permanent) rather than the network."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, GuardRefused):
            return True
        seen.add(id(current))
        reason = getattr(current, "reason", None)
        nested = (
            current.args[0] if current.args and isinstance(current.args[0], BaseException) else None
        )
        current = reason if isinstance(reason, BaseException) else nested or current.__cause__
    return False
