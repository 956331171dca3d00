"""``sfb provision``: the bucket and the state table the settings name, created idempotently."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from adapters.dynamodb_state import KEY_ATTRIBUTE, TTL_ATTRIBUTE
from adapters.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client


def provision(
    settings: Settings,
    s3: S3Client,
    dynamodb: DynamoDBClient | None,
    say: Callable[[str], None] = print,
) -> None:
    """Create what is missing; leave what exists as it is."""
    _bucket(s3, settings.s3_bucket, say)
    if settings.state_table is not None and dynamodb is not None:
        _table(dynamodb, settings.state_table, say)


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
            KeySchema=[{"AttributeName": KEY_ATTRIBUTE, "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": KEY_ATTRIBUTE, "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        dynamodb.get_waiter("table_exists").wait(
            TableName=table, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
        )
        say(f"table {table}: created")
    except dynamodb.exceptions.ResourceInUseException:
        say(f"table {table}: already there")
    ttl = dynamodb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    if ttl.get("TimeToLiveStatus") in ("ENABLED", "ENABLING"):
        say(f"table {table}: TTL on {ttl.get('AttributeName')}")
        return
    dynamodb.update_time_to_live(
        TableName=table,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
    )
    say(f"table {table}: TTL enabled on {TTL_ATTRIBUTE}")
