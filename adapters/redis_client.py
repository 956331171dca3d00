"""The redis backend's client: one connection pool per container, timeouts and retries that
end inside the deadline margin, and a URL that is never shown with its password."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redis import Redis

SCHEMES = ("redis", "rediss")
RETRIES = 2
"""Attempts after the first, on a dropped connection or a timeout: the same bound as the AWS
clients' (3 attempts in all)."""


def redis_client(url: str, deadline_margin: float, connections: int) -> Redis:
    """A stalled call, retries included, ends within the margin (as aws_client_config's:
    3 x (connect margin/20 + read margin/8), backoff capped at 0.5 s).

    redis-py is imported here, not at the top: the other backends' cold starts skip it."""
    from redis import BlockingConnectionPool, Redis
    from redis.backoff import ExponentialBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError
    from redis.retry import Retry

    # Blocking: lanes and their read-ahead threads outnumber the pool at times; a call then
    # waits (at most a read timeout) for a connection instead of failing "too many".
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max(10, connections),
        timeout=deadline_margin / 8,
        socket_connect_timeout=deadline_margin / 20,
        socket_timeout=deadline_margin / 8,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), RETRIES),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        health_check_interval=30,
        client_name="streaming-file-builder",
    )
    return Redis(connection_pool=pool)


def redact_url(url: str) -> str:
    """The URL with any password replaced: safe for a log line or an error message. Only
    the text is rewritten, never parsed further, so a malformed URL is redacted too."""
    scheme, separator, rest = url.partition("://")
    if not separator:
        return "<not a URL>"
    # The last "@" ends the user part even when an unescaped password holds "@" or "/".
    userinfo, at, location = rest.rpartition("@")
    if not at:
        return url
    user = userinfo.split(":", 1)[0] if ":" in userinfo else ""
    return f"{scheme}://{user}:***@{location}"
