"""Settings from the environment (and Parameter Store when asked): checked once, at start.

Every invalid value fails with one message naming its variable.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlsplit

from attrs import field, frozen

from adapters.redis_client import SCHEMES as REDIS_SCHEMES
from adapters.redis_client import redact_url
from domain import Limits


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


MAX_CONCURRENCY = 64
"""Files assembled and uploaded at once per container, at most: each holds a connection,
a thread and at most a few parts in memory."""


class BackendName(StrEnum):
    LOCAL = "local"
    DYNAMODB = "dynamodb"
    REDIS = "redis"


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
SETTING_NAMES = (
    "S3_BUCKET",
    "LOG_LEVEL",
    "STATE_BACKEND",
    "STATE_TABLE",
    "TMP_DIR",
    "LOCAL_DISK_BUDGET_BYTES",
    "UPLOAD_ALLOWED_HOSTS",
    "MAX_PARTITION_COUNT",
    "MAX_FILE_BYTES",
    "UPLOAD_MAX_ATTEMPTS",
    "UPLOAD_CONCURRENCY",
    "UPLOAD_CONNECT_TIMEOUT",
    "UPLOAD_READ_TIMEOUT",
    "UPLOAD_RETRY_SECONDS",
    "CLAIM_LEASE_SECONDS",
    "STATE_TTL_SECONDS",
    "DEADLINE_MARGIN_SECONDS",
    "INCOMPLETE_FILE_TTL_SECONDS",
    "METRICS_SERVICE",
    "ASSEMBLY_READ_AHEAD",
    "REDIS_URL",
    "REDIS_MAX_CHUNK_BYTES",
)
REDIS_DEFAULT_CHUNK_BYTES = 128 * 1024 * 1024
"""A quarter of the smallest ElastiCache node's 0.5 GiB: room for state and replication."""
MAX_READ_AHEAD = 10
"""botocore's connection pool per client (max_pool_connections, 10 by default): more S3
reads at once than pooled connections would open and drop a connection for each one."""


@frozen
class Settings:
    s3_bucket: str
    log_level: str = "INFO"
    state_backend: BackendName = BackendName.LOCAL
    state_table: str | None = None
    tmp_dir: Path = Path("/tmp")  # noqa: S108  # Lambda's only writable disk
    local_disk_budget_bytes: int | None = None
    """None: the local store takes a share of TMP_DIR's free space at the start; 0 keeps
    every chunk off the disk."""
    upload_allowed_hosts: tuple[str, ...] | None = None
    limits: Limits = field(factory=Limits)
    upload_max_attempts: int = 4
    upload_concurrency: int = 32
    upload_connect_timeout: float = 5.0
    upload_read_timeout: float = 60.0
    upload_retry_seconds: float = 30.0
    claim_lease_seconds: float = 960.0
    state_ttl_seconds: float = 86_400.0
    deadline_margin_seconds: float = 10.0
    incomplete_file_ttl_seconds: float = 86_400.0
    metrics_service: str = "streaming-file-builder"
    ssm_parameter_path: str | None = None
    assembly_read_ahead: int = 8
    """Parts of a file read and checked at once while it is uploaded: memory holds this many
    chunks (about 1 MiB each) during an upload, whatever the file's size."""
    redis_url: str | None = field(default=None, repr=lambda url: redact_url(url or ""))
    """The redis backend's server; its password is never shown (repr, errors, logs)."""
    redis_max_chunk_bytes: int = REDIS_DEFAULT_CHUNK_BYTES
    """Chunks are kept in Redis while the server's used memory stays under this; beyond it,
    in S3 as the dynamodb backend keeps them."""

    @classmethod
    def from_environ(
        cls,
        environ: Mapping[str, str],
        parameters: Callable[[str], Mapping[str, str]] | None = None,
    ) -> Settings:
        """Read the settings; with SSM_PARAMETER_PATH, ``parameters(path)`` fills the gaps."""
        values = {
            k: v
            for k, v in environ.items()
            if (k in SETTING_NAMES or k == "SSM_PARAMETER_PATH") and v.strip()
        }
        ssm_path = _optional(values, "SSM_PARAMETER_PATH")
        if ssm_path is not None:
            if parameters is None:
                raise SettingsError(
                    "SSM_PARAMETER_PATH is set but Parameter Store is not reachable"
                )
            try:
                stored = parameters(ssm_path)
            except Exception as error:
                raise SettingsError(
                    f"SSM_PARAMETER_PATH {ssm_path!r} could not be read: {type(error).__name__}"
                ) from error
            values = {**{k: v for k, v in stored.items() if k in SETTING_NAMES}, **values}

        bucket = _optional(values, "S3_BUCKET")
        if bucket is None:
            raise SettingsError("S3_BUCKET is required: the bucket for pending chunks")
        level = (_optional(values, "LOG_LEVEL") or "INFO").upper()
        if level not in LOG_LEVELS:
            raise SettingsError(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, not {level!r}")
        backend_name = (_optional(values, "STATE_BACKEND") or "local").lower()
        try:
            backend = BackendName(backend_name)
        except ValueError:
            names = ", ".join(repr(name.value) for name in BackendName)
            raise SettingsError(
                f"STATE_BACKEND must be one of {names}, not {backend_name!r}"
            ) from None
        table = _optional(values, "STATE_TABLE")
        if backend is BackendName.DYNAMODB and table is None:
            raise SettingsError("STATE_TABLE is required when STATE_BACKEND is dynamodb")
        redis_url = _redis_url(values, backend)
        hosts = _optional(values, "UPLOAD_ALLOWED_HOSTS")
        max_partitions = _integer(values, "MAX_PARTITION_COUNT", 10_000)
        return cls(
            s3_bucket=bucket,
            log_level=level,
            state_backend=backend,
            state_table=table,
            tmp_dir=Path(_optional(values, "TMP_DIR") or "/tmp"),  # noqa: S108
            local_disk_budget_bytes=_byte_count(values, "LOCAL_DISK_BUDGET_BYTES"),
            upload_allowed_hosts=_host_list(hosts) if hosts is not None else None,
            limits=Limits(
                max_partition_count=max_partitions,
                max_file_bytes=_integer(values, "MAX_FILE_BYTES", Limits().max_file_bytes),
            ),
            upload_max_attempts=_integer(values, "UPLOAD_MAX_ATTEMPTS", 4),
            upload_concurrency=_at_most(
                _integer(values, "UPLOAD_CONCURRENCY", 32), "UPLOAD_CONCURRENCY", MAX_CONCURRENCY
            ),
            upload_connect_timeout=_number(values, "UPLOAD_CONNECT_TIMEOUT", 5.0),
            upload_read_timeout=_number(values, "UPLOAD_READ_TIMEOUT", 60.0),
            upload_retry_seconds=_number(values, "UPLOAD_RETRY_SECONDS", 30.0),
            claim_lease_seconds=_number(values, "CLAIM_LEASE_SECONDS", 960.0),
            state_ttl_seconds=_number(values, "STATE_TTL_SECONDS", 86_400.0),
            deadline_margin_seconds=_number(values, "DEADLINE_MARGIN_SECONDS", 10.0),
            incomplete_file_ttl_seconds=_number(values, "INCOMPLETE_FILE_TTL_SECONDS", 86_400.0),
            metrics_service=_optional(values, "METRICS_SERVICE") or "streaming-file-builder",
            ssm_parameter_path=ssm_path,
            assembly_read_ahead=_read_ahead(values),
            redis_url=redis_url,
            redis_max_chunk_bytes=_redis_budget(values),
        )


def _redis_budget(values: Mapping[str, str]) -> int:
    """0 keeps every chunk out of Redis (all in S3); unset, the default."""
    budget = _byte_count(values, "REDIS_MAX_CHUNK_BYTES")
    return REDIS_DEFAULT_CHUNK_BYTES if budget is None else budget


def _redis_url(values: Mapping[str, str], backend: BackendName) -> str | None:
    """Checked without ever echoing it: the URL may carry a password."""
    url = _optional(values, "REDIS_URL")
    if backend is BackendName.REDIS and url is None:
        raise SettingsError("REDIS_URL is required when STATE_BACKEND is redis")
    if url is None:
        return None
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018  # raises on a port that is not a number
    except ValueError:
        raise SettingsError(f"REDIS_URL is not a URL: {redact_url(url)}") from None
    if parts.scheme not in REDIS_SCHEMES or not host:
        raise SettingsError(
            "REDIS_URL must be redis://[user:password@]host[:port][/db] (rediss:// for TLS), "
            f"not {redact_url(url)}"
        )
    return url


def _optional(values: Mapping[str, str], name: str) -> str | None:
    value = values.get(name, "").strip()
    return value or None


def _integer(values: Mapping[str, str], name: str, default: int) -> int:
    text = _optional(values, name)
    if text is None:
        return default
    try:
        number = int(text)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, not {text!r}") from None
    if number < 1:
        raise SettingsError(f"{name} must be at least 1, not {number}")
    return number


def _at_most(number: int, name: str, limit: int) -> int:
    if number > limit:
        raise SettingsError(f"{name} may not exceed {limit}, not {number}")
    return number


def _read_ahead(values: Mapping[str, str]) -> int:
    number = _integer(values, "ASSEMBLY_READ_AHEAD", 8)
    if number > MAX_READ_AHEAD:
        raise SettingsError(
            f"ASSEMBLY_READ_AHEAD must be from 1 to {MAX_READ_AHEAD} (chunks read at once, "
            f"each held in memory; S3 keeps {MAX_READ_AHEAD} connections), not {number}"
        )
    return number


def _byte_count(values: Mapping[str, str], name: str) -> int | None:
    """A number of bytes, 0 included; None when unset."""
    text = _optional(values, name)
    if text is None:
        return None
    try:
        number = int(text)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number of bytes, not {text!r}") from None
    if number < 0:
        raise SettingsError(f"{name} may not be negative, not {number}")
    return number


def _number(values: Mapping[str, str], name: str, default: float) -> float:
    text = _optional(values, name)
    if text is None:
        return default
    try:
        number = float(text)
    except ValueError:
        raise SettingsError(f"{name} must be a number, not {text!r}") from None
    if not number > 0:
        raise SettingsError(f"{name} must be above 0, not {text!r}")
    return number


def _host_list(text: str) -> tuple[str, ...]:
    hosts = tuple(h.strip().lower() for h in text.split(",") if h.strip())
    if not hosts:
        raise SettingsError("UPLOAD_ALLOWED_HOSTS is set but names no host")
    return hosts
