"""``sfb provision`` on moto: the bucket and the state table the settings name, idempotently."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import boto3
import pytest
import redis

from adapters.dynamodb_state import TABLE_DEFINITION
from adapters.redis_chunks import SCRIPTS as CHUNK_SCRIPTS
from adapters.redis_client import redis_client
from adapters.redis_state import SCRIPTS as STATE_SCRIPTS
from adapters.settings import SETTING_NAMES, Settings
from domain import FileId
from entrypoints.cli import main
from entrypoints.provision import RedisNotReady, provision
from tests.integration.state_steps import make_table_before_the_index

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client


@dataclass(frozen=True)
class Names:
    bucket: str
    table: str


@pytest.fixture
def names() -> Names:
    unique = uuid.uuid4().hex[:12]
    return Names(bucket=f"sfb-provision-{unique}", table=f"sfb-state-{unique}")


@pytest.fixture
def clean_env(aws: None, monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No setting and no endpoint leaks in from the shell running the tests."""
    for name in (*SETTING_NAMES, "SSM_PARAMETER_PATH", "AWS_ENDPOINT_URL_DYNAMODB"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture
def s3(clean_env: pytest.MonkeyPatch) -> S3Client:
    return boto3.client("s3")


@pytest.fixture
def dynamodb(clean_env: pytest.MonkeyPatch) -> DynamoDBClient:
    return boto3.client("dynamodb")


def shared_settings(names: Names) -> Settings:
    return Settings.from_environ(
        {"S3_BUCKET": names.bucket, "STATE_BACKEND": "dynamodb", "STATE_TABLE": names.table}
    )


def assert_provisioned(s3: S3Client, dynamodb: DynamoDBClient, names: Names) -> None:
    s3.head_bucket(Bucket=names.bucket)
    table = dynamodb.describe_table(TableName=names.table)["Table"]
    assert table["KeySchema"] == [{"AttributeName": "file_id", "KeyType": "HASH"}]
    assert sorted(a["AttributeName"] for a in table["AttributeDefinitions"]) == [
        "file_id",
        "opened",
    ]
    (index,) = table["GlobalSecondaryIndexes"]
    assert index["IndexName"] == "open-files"
    assert index["KeySchema"] == [{"AttributeName": "opened", "KeyType": "HASH"}]
    assert index["Projection"] == {"ProjectionType": "KEYS_ONLY"}
    assert table.get("BillingModeSummary", {}).get("BillingMode") == "PAY_PER_REQUEST"
    assert table["TableStatus"] == "ACTIVE"
    ttl = dynamodb.describe_time_to_live(TableName=names.table)["TimeToLiveDescription"]
    assert ttl.get("TimeToLiveStatus") == "ENABLED"
    assert ttl.get("AttributeName") == "expires_at"


def test_provision_creates_the_bucket_and_a_table_keyed_by_file_id_with_ttl_on_expires_at(
    s3: S3Client, dynamodb: DynamoDBClient, names: Names
) -> None:
    said: list[str] = []

    provision(shared_settings(names), s3, dynamodb, say=said.append)

    assert_provisioned(s3, dynamodb, names)
    assert said == [
        f"bucket {names.bucket}: created",
        f"table {names.table}: created",
        f"table {names.table}: TTL enabled on expires_at",
    ]


@pytest.mark.parametrize(
    "region",
    ["eu-west-1", "us-east-1"],
)
def test_provisioning_again_changes_nothing_and_says_everything_is_already_there(
    clean_env: pytest.MonkeyPatch, names: Names, region: str
) -> None:
    s3 = boto3.client("s3", region_name=region)
    dynamodb = boto3.client("dynamodb", region_name=region)
    settings = shared_settings(names)
    provision(settings, s3, dynamodb, say=lambda _: None)
    said: list[str] = []

    provision(settings, s3, dynamodb, say=said.append)

    assert_provisioned(s3, dynamodb, names)
    assert dynamodb.list_tables()["TableNames"] == [names.table]
    assert said == [
        f"bucket {names.bucket}: already there",
        f"table {names.table}: already there",
        f"table {names.table}: index open-files there",
        f"table {names.table}: TTL on expires_at",
    ]


def test_a_table_made_by_hand_without_ttl_gets_its_ttl_enabled(
    s3: S3Client, dynamodb: DynamoDBClient, names: Names
) -> None:
    make_table_before_the_index(dynamodb, names.table)
    said: list[str] = []

    provision(shared_settings(names), s3, dynamodb, say=said.append)

    assert_provisioned(s3, dynamodb, names)
    assert f"table {names.table}: already there" in said
    assert f"table {names.table}: TTL enabled on expires_at" in said


def test_a_table_made_before_the_index_of_open_files_gets_it_and_its_open_files_in_it(
    s3: S3Client, dynamodb: DynamoDBClient, names: Names
) -> None:
    """An upgrade: the expiry finds the files that were open before the index came."""
    make_table_before_the_index(dynamodb, names.table)
    statuses = {
        str(FileId.for_endpoint(f"https://example.com/{status}")): status
        for status in ("collecting", "assembling", "uploaded", "expired")
    }
    for file_id, status in statuses.items():
        dynamodb.put_item(
            TableName=names.table, Item={"file_id": {"S": file_id}, "status": {"S": status}}
        )
    dynamodb.put_item(TableName=names.table, Item={"file_id": {"S": "o#object"}})
    said: list[str] = []

    provision(shared_settings(names), s3, dynamodb, say=said.append)

    assert_provisioned(s3, dynamodb, names)
    assert (
        f"table {names.table}: index open-files added (DynamoDB builds it in the background)"
        in said
    )
    assert f"table {names.table}: 2 open files put in index open-files" in said
    pages = dynamodb.get_paginator("scan").paginate(TableName=names.table, IndexName="open-files")
    assert sorted(item["file_id"]["S"] for page in pages for item in page["Items"]) == sorted(
        file_id for file_id, status in statuses.items() if status in ("collecting", "assembling")
    )

    again: list[str] = []
    provision(shared_settings(names), s3, dynamodb, say=again.append)
    assert f"table {names.table}: index open-files there" in again
    assert not [line for line in again if "put in index" in line]


def test_open_files_written_before_a_deploy_added_the_index_are_put_in_it(
    s3: S3Client, dynamodb: DynamoDBClient, names: Names
) -> None:
    """The template's update adds the index, not the key of the files then open."""
    dynamodb.create_table(TableName=names.table, **TABLE_DEFINITION)
    file_id = str(FileId.for_endpoint("https://example.com/old"))
    dynamodb.put_item(
        TableName=names.table, Item={"file_id": {"S": file_id}, "status": {"S": "collecting"}}
    )
    said: list[str] = []

    provision(shared_settings(names), s3, dynamodb, say=said.append)

    assert f"table {names.table}: 1 open files put in index open-files" in said
    pages = dynamodb.get_paginator("scan").paginate(TableName=names.table, IndexName="open-files")
    assert [item["file_id"]["S"] for page in pages for item in page["Items"]] == [file_id]


def test_the_local_backend_is_provisioned_with_its_bucket_only(
    s3: S3Client, dynamodb: DynamoDBClient, names: Names
) -> None:
    provision(Settings.from_environ({"S3_BUCKET": names.bucket}), s3, None, say=lambda _: None)

    s3.head_bucket(Bucket=names.bucket)
    assert dynamodb.list_tables()["TableNames"] == []


def test_a_bucket_outside_us_east_1_is_made_in_the_clients_region(
    clean_env: pytest.MonkeyPatch, names: Names
) -> None:
    s3 = boto3.client("s3", region_name="eu-west-1")

    provision(Settings.from_environ({"S3_BUCKET": names.bucket}), s3, None, say=lambda _: None)

    assert s3.get_bucket_location(Bucket=names.bucket)["LocationConstraint"] == "eu-west-1"


def test_sfb_provision_reads_its_settings_from_the_environment(
    clean_env: pytest.MonkeyPatch,
    s3: S3Client,
    dynamodb: DynamoDBClient,
    names: Names,
    capsys: pytest.CaptureFixture[str],
) -> None:
    clean_env.setenv("S3_BUCKET", names.bucket)
    clean_env.setenv("STATE_BACKEND", "dynamodb")
    clean_env.setenv("STATE_TABLE", names.table)

    assert main(["provision"]) == 0

    assert_provisioned(s3, dynamodb, names)
    out, err = capsys.readouterr()
    assert f"bucket {names.bucket}: created" in out.splitlines()
    assert f"table {names.table}: created" in out.splitlines()
    assert err == ""

    assert main(["provision"]) == 0
    assert f"table {names.table}: already there" in capsys.readouterr().out.splitlines()


def test_sfb_provision_without_s3_bucket_fails_with_one_line_naming_it(
    clean_env: pytest.MonkeyPatch,
    dynamodb: DynamoDBClient,
    names: Names,
    capsys: pytest.CaptureFixture[str],
) -> None:
    clean_env.setenv("STATE_BACKEND", "dynamodb")
    clean_env.setenv("STATE_TABLE", names.table)

    status = main(["provision"])

    out, err = capsys.readouterr()
    assert status != 0
    [line] = err.splitlines()
    assert "S3_BUCKET" in line
    assert out == ""
    assert dynamodb.list_tables()["TableNames"] == []


def test_sfb_provision_for_dynamodb_without_state_table_fails_with_one_line_naming_it(
    clean_env: pytest.MonkeyPatch, s3: S3Client, names: Names, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_env.setenv("S3_BUCKET", names.bucket)
    clean_env.setenv("STATE_BACKEND", "dynamodb")

    status = main(["provision"])

    assert status != 0
    [line] = capsys.readouterr().err.splitlines()
    assert "STATE_TABLE" in line
    assert s3.list_buckets()["Buckets"] == []


@pytest.fixture
def redis_server(
    redis_url: str, clean_env: pytest.MonkeyPatch, names: Names
) -> Iterator[redis.Redis]:
    """The session's server, named in the environment as `sfb provision` reads it, and put
    back as it was after: these tests change its eviction policy."""
    clean_env.setenv("S3_BUCKET", names.bucket)
    clean_env.setenv("STATE_BACKEND", "redis")
    clean_env.setenv("REDIS_URL", redis_url)
    client = redis.Redis.from_url(redis_url)
    client.script_flush()
    yield client
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", 0)
    client.close()


def test_sfb_provision_for_redis_checks_the_server_and_loads_every_script(
    s3: S3Client, names: Names, redis_server: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:

    assert main(["provision"]) == 0

    s3.head_bucket(Bucket=names.bucket)
    scripts = [*STATE_SCRIPTS.values(), *CHUNK_SCRIPTS.values()]
    shas = [hashlib.sha1(script.encode()).hexdigest() for script in scripts]  # noqa: S324
    assert redis_server.script_exists(*shas) == [True] * len(scripts)
    out, err = capsys.readouterr()
    assert "redis: 10 scripts loaded" in out.splitlines()
    assert err == ""


@pytest.mark.parametrize("policy", ["allkeys-lru", "volatile-ttl", "volatile-lru"])
def test_sfb_provision_refuses_a_redis_that_evicts_keys_naming_the_policy(
    s3: S3Client, redis_server: redis.Redis, capsys: pytest.CaptureFixture[str], policy: str
) -> None:
    redis_server.config_set("maxmemory-policy", policy)

    status = main(["provision"])

    assert status != 0
    [line] = capsys.readouterr().err.splitlines()
    assert policy in line
    assert "noeviction" in line


def test_provision_warns_when_the_chunk_budget_is_above_the_servers_maxmemory(
    s3: S3Client, names: Names, redis_url: str, redis_server: redis.Redis
) -> None:
    redis_server.config_set("maxmemory", 64 * 1024 * 1024)
    said: list[str] = []
    settings = Settings.from_environ(
        {"S3_BUCKET": names.bucket, "STATE_BACKEND": "redis", "REDIS_URL": redis_url}
    )

    provision(settings, s3, None, say=said.append, redis=redis_server)

    assert any("above maxmemory" in line and "lower it" in line for line in said)


def test_provision_fails_in_one_line_when_redis_does_not_answer(
    s3: S3Client, names: Names, closed_port: int
) -> None:
    settings = Settings.from_environ(
        {
            "S3_BUCKET": names.bucket,
            "STATE_BACKEND": "redis",
            "REDIS_URL": f"redis://app:pw@127.0.0.1:{closed_port}",
        }
    )
    client = redis_client(settings.redis_url or "", deadline_margin=2.0, connections=1)

    with pytest.raises(RedisNotReady, match="did not answer PING") as refused:
        provision(settings, s3, None, say=lambda _: None, redis=client)

    assert "pw" not in str(refused.value)
