"""Settings.from_environ, alone and with Parameter Store (moto's SSM) filling the gaps."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
import pytest
from botocore.config import Config

from adapters.settings import BackendName, Settings, SettingsError
from adapters.ssm_parameters import read_parameters
from domain import Limits

if TYPE_CHECKING:
    from mypy_boto3_ssm import SSMClient

PATH = "/sfb/test"


def test_only_the_bucket_is_required_and_everything_else_has_its_default() -> None:
    settings = Settings.from_environ({"S3_BUCKET": "sfb-chunks"})

    assert settings == Settings(
        s3_bucket="sfb-chunks",
        log_level="INFO",
        state_backend=BackendName.LOCAL,
        state_table=None,
        tmp_dir=Path("/tmp"),
        local_disk_budget_bytes=None,
        upload_allowed_hosts=None,
        limits=Limits(max_partition_count=10_000, max_file_bytes=5 * 1024**3),
        upload_max_attempts=4,
        upload_concurrency=32,
        upload_connect_timeout=5.0,
        upload_read_timeout=60.0,
        ssm_parameter_path=None,
    )


def test_every_setting_is_read_from_the_environment() -> None:
    settings = Settings.from_environ(
        {
            "S3_BUCKET": " sfb-chunks ",
            "LOG_LEVEL": "debug",
            "STATE_BACKEND": "DynamoDB",
            "STATE_TABLE": "sfb-state",
            "TMP_DIR": "/var/sfb",
            "LOCAL_DISK_BUDGET_BYTES": "268435456",
            "UPLOAD_ALLOWED_HOSTS": "Uploads.Example.com, *.example.net ,",
            "MAX_PARTITION_COUNT": "500",
            "MAX_FILE_BYTES": "1048576",
            "UPLOAD_MAX_ATTEMPTS": "2",
            "UPLOAD_CONCURRENCY": "4",
            "UPLOAD_CONNECT_TIMEOUT": "1.5",
            "UPLOAD_READ_TIMEOUT": "30",
            "ASSEMBLY_READ_AHEAD": "3",
            "UNRELATED": "ignored",
        }
    )

    assert settings.s3_bucket == "sfb-chunks"
    assert settings.log_level == "DEBUG"
    assert settings.state_backend is BackendName.DYNAMODB
    assert settings.state_table == "sfb-state"
    assert settings.tmp_dir == Path("/var/sfb")
    assert settings.local_disk_budget_bytes == 256 * 1024**2
    assert settings.upload_allowed_hosts == ("uploads.example.com", "*.example.net")
    assert settings.limits == Limits(max_partition_count=500, max_file_bytes=1048576)
    assert settings.upload_max_attempts == 2
    assert settings.upload_concurrency == 4
    assert settings.upload_connect_timeout == 1.5
    assert settings.upload_read_timeout == 30.0
    assert settings.assembly_read_ahead == 3


def test_a_blank_allow_list_is_treated_as_unset() -> None:
    settings = Settings.from_environ({"S3_BUCKET": "b", "UPLOAD_ALLOWED_HOSTS": "  "})

    assert settings.upload_allowed_hosts is None


BASE = {"S3_BUCKET": "sfb-chunks"}
INVALID: list[tuple[str, dict[str, str], str]] = [
    ("missing bucket", {}, "S3_BUCKET"),
    ("blank bucket", {"S3_BUCKET": "   "}, "S3_BUCKET"),
    ("unknown backend", {**BASE, "STATE_BACKEND": "memcached"}, "STATE_BACKEND"),
    ("redis without a URL", {**BASE, "STATE_BACKEND": "redis"}, "REDIS_URL"),
    ("redis with a blank URL", {**BASE, "STATE_BACKEND": "redis", "REDIS_URL": " "}, "REDIS_URL"),
    (
        "redis URL of another scheme",
        {**BASE, "STATE_BACKEND": "redis", "REDIS_URL": "http://cache.internal:6379"},
        "REDIS_URL",
    ),
    (
        "redis URL without a host",
        {**BASE, "STATE_BACKEND": "redis", "REDIS_URL": "redis://"},
        "REDIS_URL",
    ),
    (
        "redis URL with a port that is no number",
        {**BASE, "STATE_BACKEND": "redis", "REDIS_URL": "redis://:pw@cache:port"},
        "REDIS_URL",
    ),
    ("units in a redis budget", {**BASE, "REDIS_MAX_CHUNK_BYTES": "1GB"}, "REDIS_MAX_CHUNK_BYTES"),
    ("dynamodb without table", {**BASE, "STATE_BACKEND": "dynamodb"}, "STATE_TABLE"),
    (
        "dynamodb with blank table",
        {**BASE, "STATE_BACKEND": "dynamodb", "STATE_TABLE": " "},
        "STATE_TABLE",
    ),
    ("words for a count", {**BASE, "MAX_PARTITION_COUNT": "lots"}, "MAX_PARTITION_COUNT"),
    ("fraction for a count", {**BASE, "MAX_PARTITION_COUNT": "10.5"}, "MAX_PARTITION_COUNT"),
    ("zero count", {**BASE, "MAX_PARTITION_COUNT": "0"}, "MAX_PARTITION_COUNT"),
    ("negative count", {**BASE, "MAX_PARTITION_COUNT": "-4"}, "MAX_PARTITION_COUNT"),
    ("units in a size", {**BASE, "MAX_FILE_BYTES": "5GB"}, "MAX_FILE_BYTES"),
    ("zero size", {**BASE, "MAX_FILE_BYTES": "0"}, "MAX_FILE_BYTES"),
    ("units in a budget", {**BASE, "LOCAL_DISK_BUDGET_BYTES": "512MB"}, "LOCAL_DISK_BUDGET_BYTES"),
    ("negative budget", {**BASE, "LOCAL_DISK_BUDGET_BYTES": "-1"}, "LOCAL_DISK_BUDGET_BYTES"),
    (
        "fraction for a budget",
        {**BASE, "LOCAL_DISK_BUDGET_BYTES": "0.5"},
        "LOCAL_DISK_BUDGET_BYTES",
    ),
    ("unknown level", {**BASE, "LOG_LEVEL": "VERBOSE"}, "LOG_LEVEL"),
    ("numeric level", {**BASE, "LOG_LEVEL": "10"}, "LOG_LEVEL"),
    ("hostless allow-list", {**BASE, "UPLOAD_ALLOWED_HOSTS": " , ,"}, "UPLOAD_ALLOWED_HOSTS"),
    ("words for attempts", {**BASE, "UPLOAD_MAX_ATTEMPTS": "many"}, "UPLOAD_MAX_ATTEMPTS"),
    ("zero timeout", {**BASE, "UPLOAD_READ_TIMEOUT": "0"}, "UPLOAD_READ_TIMEOUT"),
    ("nan timeout", {**BASE, "UPLOAD_CONNECT_TIMEOUT": "nan"}, "UPLOAD_CONNECT_TIMEOUT"),
    ("no file at a time", {**BASE, "UPLOAD_CONCURRENCY": "0"}, "UPLOAD_CONCURRENCY"),
    ("too many files at once", {**BASE, "UPLOAD_CONCURRENCY": "65"}, "UPLOAD_CONCURRENCY"),
    ("words for concurrency", {**BASE, "UPLOAD_CONCURRENCY": "all"}, "UPLOAD_CONCURRENCY"),
    ("no read-ahead", {**BASE, "ASSEMBLY_READ_AHEAD": "0"}, "ASSEMBLY_READ_AHEAD"),
    ("read-ahead past the pool", {**BASE, "ASSEMBLY_READ_AHEAD": "11"}, "ASSEMBLY_READ_AHEAD"),
    ("fraction for a read-ahead", {**BASE, "ASSEMBLY_READ_AHEAD": "1.5"}, "ASSEMBLY_READ_AHEAD"),
    ("words for a read-ahead", {**BASE, "ASSEMBLY_READ_AHEAD": "all"}, "ASSEMBLY_READ_AHEAD"),
]


@pytest.mark.parametrize(
    ("environ", "variable"),
    [(environ, variable) for _, environ, variable in INVALID],
    ids=[name for name, _, _ in INVALID],
)
def test_an_invalid_setting_fails_naming_its_variable(
    environ: dict[str, str], variable: str
) -> None:
    with pytest.raises(SettingsError, match=variable):
        Settings.from_environ(environ)


@pytest.mark.parametrize("backend", ["local", "dynamodb"])
@pytest.mark.parametrize("count", [15_001, 81_920, 1_000_000])
def test_max_partition_count_is_the_users_on_either_backend_with_no_cap_of_its_own(
    backend: str, count: int
) -> None:
    """A 5 GiB file in 64 KiB chunks has 81,920 partitions: the dynamodb backend's state no
    longer grows with the file, so it refuses no count the user allows."""
    settings = Settings.from_environ(
        {
            **BASE,
            "STATE_BACKEND": backend,
            "STATE_TABLE": "sfb-state",
            "MAX_PARTITION_COUNT": str(count),
        }
    )

    assert settings.limits.max_partition_count == count


def test_a_local_disk_budget_of_zero_is_valid_and_blank_means_the_default() -> None:
    def budget(text: str) -> int | None:
        return Settings.from_environ(
            {**BASE, "LOCAL_DISK_BUDGET_BYTES": text}
        ).local_disk_budget_bytes

    assert budget("0") == 0
    assert budget(" ") is None


@pytest.mark.parametrize(("text", "parts"), [(None, 8), ("1", 1), ("10", 10)])
def test_assembly_reads_ahead_8_parts_unless_told_from_1_to_10(
    text: str | None, parts: int
) -> None:
    environ = BASE if text is None else {**BASE, "ASSEMBLY_READ_AHEAD": text}

    assert Settings.from_environ(environ).assembly_read_ahead == parts


def test_parameters_fill_the_settings_the_environment_leaves_out() -> None:
    asked: list[str] = []

    def parameters(path: str) -> Mapping[str, str]:
        asked.append(path)
        return {"S3_BUCKET": "from-ssm", "LOG_LEVEL": "WARNING", "MAX_FILE_BYTES": "1000"}

    settings = Settings.from_environ(
        {"SSM_PARAMETER_PATH": PATH, "LOG_LEVEL": "ERROR"}, parameters=parameters
    )

    assert asked == [PATH]
    assert settings.s3_bucket == "from-ssm"
    assert settings.log_level == "ERROR"
    assert settings.limits.max_file_bytes == 1000
    assert settings.ssm_parameter_path == PATH


def test_parameter_store_is_not_asked_without_a_path() -> None:
    asked: list[str] = []

    def parameters(path: str) -> Mapping[str, str]:
        asked.append(path)
        return {}

    Settings.from_environ({"S3_BUCKET": "b"}, parameters=parameters)

    assert asked == []


def test_a_parameter_that_names_no_setting_is_ignored() -> None:
    settings = Settings.from_environ(
        {"SSM_PARAMETER_PATH": PATH},
        parameters=lambda path: {"S3_BUCKET": "b", "SSM_PARAMETER_PATH": "/elsewhere", "X": "1"},
    )

    assert settings.ssm_parameter_path == PATH


def test_an_invalid_parameter_fails_naming_its_variable() -> None:
    with pytest.raises(SettingsError, match="MAX_PARTITION_COUNT"):
        Settings.from_environ(
            {"SSM_PARAMETER_PATH": PATH, "S3_BUCKET": "b"},
            parameters=lambda path: {"MAX_PARTITION_COUNT": "ten"},
        )


def test_a_blank_environment_variable_does_not_hide_a_parameter() -> None:
    settings = Settings.from_environ(
        {"SSM_PARAMETER_PATH": PATH, "S3_BUCKET": ""},
        parameters=lambda path: {"S3_BUCKET": "from-ssm"},
    )

    assert settings.s3_bucket == "from-ssm"


def test_an_unreadable_parameter_path_fails_naming_it() -> None:
    def parameters(path: str) -> Mapping[str, str]:
        raise PermissionError("AccessDeniedException: not authorized to ssm:GetParametersByPath")

    with pytest.raises(SettingsError, match="SSM_PARAMETER_PATH") as failed:
        Settings.from_environ({"SSM_PARAMETER_PATH": PATH, "S3_BUCKET": "b"}, parameters)

    assert PATH in str(failed.value)


def test_a_parameter_path_without_a_reader_fails_naming_it() -> None:
    with pytest.raises(SettingsError, match="SSM_PARAMETER_PATH"):
        Settings.from_environ({"SSM_PARAMETER_PATH": PATH, "S3_BUCKET": "b"})


# read_parameters on moto's SSM


def test_read_parameters_maps_the_last_segment_to_the_value(ssm_client: SSMClient) -> None:
    ssm_client.put_parameter(Name=f"{PATH}/S3_BUCKET", Value="sfb-chunks", Type="String")
    ssm_client.put_parameter(Name=f"{PATH}/STATE_TABLE", Value="secret-table", Type="SecureString")
    ssm_client.put_parameter(Name=f"{PATH}/nested/LOG_LEVEL", Value="DEBUG", Type="String")
    ssm_client.put_parameter(Name="/sfb/other/S3_BUCKET", Value="not-ours", Type="String")

    assert read_parameters(ssm_client, PATH) == {
        "S3_BUCKET": "sfb-chunks",
        "STATE_TABLE": "secret-table",
    }


def test_read_parameters_reads_every_page(ssm_client: SSMClient) -> None:
    for index in range(23):
        ssm_client.put_parameter(Name=f"{PATH}/P{index:02d}", Value=str(index), Type="String")

    values = read_parameters(ssm_client, PATH)

    assert values == {f"P{index:02d}": str(index) for index in range(23)}


def test_read_parameters_of_an_empty_path_is_empty(ssm_client: SSMClient) -> None:
    assert read_parameters(ssm_client, "/sfb/nothing-here") == {}


def test_settings_come_from_parameter_store_with_the_environment_winning(
    ssm_client: SSMClient,
) -> None:
    ssm_client.put_parameter(Name=f"{PATH}/S3_BUCKET", Value="from-ssm", Type="String")
    ssm_client.put_parameter(Name=f"{PATH}/MAX_PARTITION_COUNT", Value="77", Type="SecureString")
    ssm_client.put_parameter(Name=f"{PATH}/LOG_LEVEL", Value="DEBUG", Type="String")

    settings = Settings.from_environ(
        {"SSM_PARAMETER_PATH": PATH, "LOG_LEVEL": "WARNING"},
        parameters=lambda path: read_parameters(ssm_client, path),
    )

    assert settings.s3_bucket == "from-ssm"
    assert settings.limits.max_partition_count == 77
    assert settings.log_level == "WARNING"


def test_the_redis_url_comes_from_a_secure_string_parameter(ssm_client: SSMClient) -> None:
    url = f"rediss://app:{SECRET}@cache.internal:6380/0"
    ssm_client.put_parameter(Name=f"{PATH}/REDIS_URL", Value=url, Type="SecureString")

    settings = Settings.from_environ(
        {"SSM_PARAMETER_PATH": PATH, "S3_BUCKET": "b", "STATE_BACKEND": "redis"},
        parameters=lambda path: read_parameters(ssm_client, path),
    )

    assert settings.redis_url == url
    assert SECRET not in repr(settings)


def test_a_parameter_store_that_cannot_be_reached_fails_naming_the_path(
    fake_credentials: None, closed_port: int
) -> None:
    unreachable = boto3.client(
        "ssm",
        endpoint_url=f"http://127.0.0.1:{closed_port}",
        config=Config(connect_timeout=1, read_timeout=1, retries={"max_attempts": 1}),
    )

    with pytest.raises(SettingsError, match="SSM_PARAMETER_PATH") as failed:
        Settings.from_environ(
            {"SSM_PARAMETER_PATH": PATH, "S3_BUCKET": "b"},
            parameters=lambda path: read_parameters(unreachable, path),
        )

    assert "EndpointConnectionError" in str(failed.value)


def test_settings_give_the_bucket_the_log_level_and_the_limits() -> None:
    config = Settings.from_environ({"S3_BUCKET": "bucket", "LOG_LEVEL": "debug"})

    assert (config.s3_bucket, config.log_level) == ("bucket", "DEBUG")
    assert config.limits.max_partition_count == 10_000


@pytest.mark.parametrize(
    "url",
    [
        "redis://cache.internal:6379/0",
        "rediss://default:pw@cache.internal:6380",
        "redis://user:pw@10.0.0.5",
        "rediss://cache.internal",
    ],
)
def test_the_redis_backend_takes_redis_and_rediss_urls(url: str) -> None:
    settings = Settings.from_environ({**BASE, "STATE_BACKEND": "redis", "REDIS_URL": url})

    assert settings.state_backend is BackendName.REDIS
    assert settings.redis_url == url
    assert settings.redis_max_chunk_bytes == 128 * 1024 * 1024


@pytest.mark.parametrize(("text", "budget"), [(None, 128 * 1024 * 1024), ("0", 0), ("1024", 1024)])
def test_redis_keeps_128_mib_of_chunks_unless_told_and_0_keeps_them_all_in_s3(
    text: str | None, budget: int
) -> None:
    extra = {} if text is None else {"REDIS_MAX_CHUNK_BYTES": text}

    assert Settings.from_environ({**BASE, **extra}).redis_max_chunk_bytes == budget


SECRET = "pa55-w0rd-never-shown"


@pytest.mark.parametrize(
    "url",
    [
        f"http://user:{SECRET}@cache.internal",
        f"redis://user:{SECRET}@cache.internal:port",
        f"redis://:{SECRET}@",
        f"redis://user:{SECRET}/with/slashes@cache.internal:port",
        f"redis://user:{SECRET}@with@at@cache.internal:port",
        f"redis://{SECRET}@cache.internal:port",
    ],
)
def test_a_refused_redis_url_is_named_without_its_password(url: str) -> None:
    with pytest.raises(SettingsError, match="REDIS_URL") as refused:
        Settings.from_environ({**BASE, "STATE_BACKEND": "redis", "REDIS_URL": url})

    assert SECRET not in str(refused.value)


def test_the_settings_repr_hides_the_redis_password() -> None:
    settings = Settings.from_environ(
        {**BASE, "STATE_BACKEND": "redis", "REDIS_URL": f"rediss://app:{SECRET}@cache:6380/1"}
    )

    assert SECRET not in repr(settings)
    assert "rediss://app:***@cache:6380/1" in repr(settings)
