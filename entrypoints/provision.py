"""``sfb provision``: the bucket and the state table the settings name, created idempotently;
for the redis backend, a check that the server answers and runs what the backend needs."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from adapters.dynamodb_state import (
    KEY_ATTRIBUTE,
    OPEN_ATTRIBUTE,
    OPEN_CONDITION,
    OPEN_INDEX,
    OPEN_VALUES,
    TABLE_DEFINITION,
    TTL_ATTRIBUTE,
    open_key,
)
from adapters.redis_chunks import SCRIPTS as CHUNK_SCRIPTS
from adapters.redis_state import SCRIPTS as STATE_SCRIPTS
from adapters.settings import Settings
from domain import FileId

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from redis import Redis


def provision(
    settings: Settings,
    s3: S3Client,
    dynamodb: DynamoDBClient | None,
    say: Callable[[str], None] = print,
    redis: Redis | None = None,
) -> None:
    """Create what is missing; leave what exists as it is."""
    _bucket(s3, settings.s3_bucket, say)
    if settings.state_table is not None and dynamodb is not None:
        _table(dynamodb, settings.state_table, say)
    if redis is not None:
        check_redis(redis, settings.redis_max_chunk_bytes, say)


class RedisNotReady(RuntimeError):
    """The Redis server cannot serve the backend; the message says why."""


REDIS_COMMANDS = (
    "evalsha", "eval", "script", "hgetall", "hget", "hdel", "hsetnx", "hincrby", "expire",
    "scan", "info", "del", "exists",
)  # fmt: skip
"""What the backend sends besides its scripts (which use hash commands and EXPIRE)."""
SAFE_EVICTION = ("noeviction",)
"""Every key of the backend has a TTL, so any other policy may drop a file's state or chunks
when memory runs short: chunks lost, or a finished file taken for new."""


def check_redis(redis: Redis, budget: int, say: Callable[[str], None]) -> None:
    """Nothing is created (Redis needs no schema): the server must answer, run Lua, know every
    command the backend sends, and not evict keys; the scripts are loaded ahead of use."""
    try:
        redis.ping()
    except Exception as error:
        raise RedisNotReady(f"Redis did not answer PING: {type(error).__name__}") from error
    server = redis.info("server")
    say(f"redis {server.get('redis_version', '?')}: answers")
    known = redis.command()
    missing = [name for name in REDIS_COMMANDS if name not in known]
    if missing:
        raise RedisNotReady(f"Redis lacks commands the backend sends: {', '.join(missing)}")
    for name, script in {**STATE_SCRIPTS, **CHUNK_SCRIPTS}.items():
        try:
            redis.script_load(script)
        except Exception as error:
            raise RedisNotReady(f"Redis refused the {name!r} script: {error}") from error
    say(f"redis: {len(STATE_SCRIPTS) + len(CHUNK_SCRIPTS)} scripts loaded")
    memory = redis.info("memory")
    policy = str(memory.get("maxmemory_policy", "noeviction"))
    if policy not in SAFE_EVICTION:
        raise RedisNotReady(
            f"Redis evicts keys when full (maxmemory-policy {policy}): set it to noeviction, "
            "or a file's state and chunks may vanish"
        )
    limit = int(memory.get("maxmemory", 0))
    say(
        f"redis: maxmemory-policy {policy}, maxmemory {limit or 'unset'}, chunks kept while "
        f"used memory is under {budget} bytes"
    )
    if limit and budget > limit:
        say(
            f"redis: REDIS_MAX_CHUNK_BYTES {budget} is above maxmemory {limit}: writes would "
            "fail before chunks spill to S3; lower it"
        )


def _bucket(s3: S3Client, bucket: str, say: Callable[[str], None]) -> None:
    # In us-east-1, CreateBucket on one's own bucket answers 200 and resets its ACL: ask first.
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
            raise
    else:
        say(f"bucket {bucket}: already there")
        return
    region = s3.meta.region_name
    try:
        if region in (None, "us-east-1", "aws-global"):
            s3.create_bucket(Bucket=bucket)
        else:
            s3.create_bucket(
                Bucket=bucket,
                CreateBucketConfiguration={"LocationConstraint": region},  # type: ignore[typeddict-item]  # any region name is valid here
            )
        say(f"bucket {bucket}: created")
    except (s3.exceptions.BucketAlreadyOwnedByYou, s3.exceptions.BucketAlreadyExists):
        say(f"bucket {bucket}: already there")


def _table(dynamodb: DynamoDBClient, table: str, say: Callable[[str], None]) -> None:
    try:
        dynamodb.create_table(
            TableName=table,
            **TABLE_DEFINITION,
        )
        dynamodb.get_waiter("table_exists").wait(
            TableName=table, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
        )
        say(f"table {table}: created")
    except dynamodb.exceptions.ResourceInUseException:
        say(f"table {table}: already there")
        _open_index(dynamodb, table, say)
    ttl = dynamodb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    if ttl.get("TimeToLiveStatus") in ("ENABLED", "ENABLING"):
        say(f"table {table}: TTL on {ttl.get('AttributeName')}")
        return
    dynamodb.update_time_to_live(
        TableName=table,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
    )
    say(f"table {table}: TTL enabled on {TTL_ATTRIBUTE}")


def _open_index(dynamodb: DynamoDBClient, table: str, say: Callable[[str], None]) -> None:
    """A table made before the index of open files gets it, and (whoever added the index:
    this or a deploy of the template) the items of the files open that were written before
    it get its key; until then the expiry scans the whole table. One Scan of the table, at
    provisioning only. DynamoDB builds the index in the background."""
    described = dynamodb.describe_table(TableName=table)["Table"]
    if any(i["IndexName"] == OPEN_INDEX for i in described.get("GlobalSecondaryIndexes", [])):
        say(f"table {table}: index {OPEN_INDEX} there")
    else:
        (index,) = TABLE_DEFINITION["GlobalSecondaryIndexes"]
        dynamodb.update_table(
            TableName=table,
            AttributeDefinitions=TABLE_DEFINITION["AttributeDefinitions"],
            GlobalSecondaryIndexUpdates=[{"Create": index}],
        )
        say(f"table {table}: index {OPEN_INDEX} added (DynamoDB builds it in the background)")
    marked = 0
    for page in dynamodb.get_paginator("scan").paginate(
        TableName=table,
        FilterExpression=f"attribute_not_exists({OPEN_ATTRIBUTE}) AND {OPEN_CONDITION}",
        ProjectionExpression=KEY_ATTRIBUTE,
        ExpressionAttributeNames={"#status": "status"},
        ExpressionAttributeValues=OPEN_VALUES,
    ):
        for item in page.get("Items", []):
            try:
                dynamodb.update_item(
                    TableName=table,
                    Key={KEY_ATTRIBUTE: item[KEY_ATTRIBUTE]},
                    UpdateExpression=f"SET {OPEN_ATTRIBUTE} = :opened",
                    ConditionExpression=OPEN_CONDITION,
                    ExpressionAttributeNames={"#status": "status"},
                    ExpressionAttributeValues={
                        ":opened": {"S": open_key(FileId(item[KEY_ATTRIBUTE]["S"]))},
                        **OPEN_VALUES,
                    },
                )
                marked += 1
            except dynamodb.exceptions.ConditionalCheckFailedException:
                continue  # closed meanwhile: it stays out of the index
    if marked:
        say(f"table {table}: {marked} open files put in index {OPEN_INDEX}")
