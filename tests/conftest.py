"""Every test runs behind a network guard: only loopback, only names that mean loopback.

If the service's own upload guard ever breaks, a test fails here instead of a packet
leaving this machine.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from tests.tools.redis_server import running_redis

# Property tests: a fixed seed by default (CI repeats itself); `make chaos` runs many more.
settings.register_profile(
    "ci",
    max_examples=50,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "chaos",
    max_examples=2000,
    derandomize=False,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "chaos-server",
    parent=settings.get_profile("chaos"),
    max_examples=400,
)
"""The schedules against a real server: each example talks to it, so fewer of them."""
settings.load_profile(os.environ.get("SFB_HYPOTHESIS_PROFILE", "ci"))

_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


class NetworkGuardTripped(PermissionError):
    """A test tried to reach beyond loopback."""


def _is_loopback(host: object) -> bool:
    if not isinstance(host, str):
        return False
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def network_guard(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The list of refused attempts, for tests that want to see them."""
    refused: list[str] = []
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def allowed(sock: socket.socket, address: Any) -> bool:
        if sock.family == socket.AF_UNIX:
            return True
        return isinstance(address, tuple) and _is_loopback(address[0])

    def connect(sock: socket.socket, address: Any) -> None:
        if not allowed(sock, address):
            refused.append(f"connect {address!r}")
            raise NetworkGuardTripped(f"test network guard: connect to {address!r} refused")
        real_connect(sock, address)

    def connect_ex(sock: socket.socket, address: Any) -> int:
        if not allowed(sock, address):
            refused.append(f"connect {address!r}")
            raise NetworkGuardTripped(f"test network guard: connect to {address!r} refused")
        return real_connect_ex(sock, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name is not None and not _is_loopback(name):
            try:
                ipaddress.ip_address(str(name).split("%")[0])
            except ValueError:
                refused.append(f"resolve {name!r}")
                raise NetworkGuardTripped(
                    f"test network guard: lookup of {name!r} refused"
                ) from None
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return refused


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A real redis-server on 127.0.0.1 for the whole run, started at its first use; each
    test flushes what it uses."""
    with running_redis() as url:
        yield url
