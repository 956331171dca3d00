"""KinesisLineage on moto's Kinesis: a shard's parents as ListShards tells them."""

from __future__ import annotations

from typing import TYPE_CHECKING

import boto3
import pytest
from botocore.exceptions import ClientError

from adapters.kinesis_lineage import KinesisLineage

if TYPE_CHECKING:
    from mypy_boto3_kinesis import KinesisClient


@pytest.fixture
def kinesis(aws: None) -> KinesisClient:
    client = boto3.client("kinesis")
    client.create_stream(StreamName="files", ShardCount=2)
    return client


def _arn(client: KinesisClient) -> str:
    return client.describe_stream_summary(StreamName="files")["StreamDescriptionSummary"][
        "StreamARN"
    ]


def _ids(client: KinesisClient) -> list[str]:
    return [shard["ShardId"] for shard in client.list_shards(StreamName="files")["Shards"]]


def test_original_shards_have_no_parents_and_a_shard_the_stream_does_not_list_none_either(
    kinesis: KinesisClient,
) -> None:
    lineage = KinesisLineage(lambda: kinesis)
    first, second = _ids(kinesis)

    assert lineage.parents(_arn(kinesis), first) == ()
    assert lineage.parents(_arn(kinesis), second) == ()
    assert lineage.parents(_arn(kinesis), "shardId-000000000099") == ()


def test_a_split_gives_each_child_its_parent_and_a_merge_gives_the_child_both(
    kinesis: KinesisClient,
) -> None:
    lineage = KinesisLineage(lambda: kinesis)
    first, second = _ids(kinesis)
    kinesis.split_shard(StreamName="files", ShardToSplit=first, NewStartingHashKey=str(2**126))
    children = [s for s in _ids(kinesis) if s not in (first, second)]
    assert len(children) == 2
    for child in children:
        assert lineage.parents(_arn(kinesis), child) == (first,)

    kinesis.merge_shards(StreamName="files", ShardToMerge=children[1], AdjacentShardToMerge=second)
    merged = [s for s in _ids(kinesis) if s not in (first, second, *children)]
    assert [lineage.parents(_arn(kinesis), m) for m in merged] == [(children[1], second)]


def test_a_stream_that_does_not_exist_or_a_source_that_is_no_stream_has_no_parents(
    kinesis: KinesisClient,
) -> None:
    asked: list[str] = []

    def client() -> KinesisClient:
        asked.append("ListShards")
        return kinesis

    lineage = KinesisLineage(client)
    missing = _arn(kinesis).replace("stream/files", "stream/gone")

    assert lineage.parents(missing, "shardId-000000000000") == ()
    assert len(asked) == 1
    for source in ("", "not an arn", "arn:aws:sqs:us-east-1:123456789012:queue"):
        assert lineage.parents(source, "shardId-000000000000") == ()
    assert len(asked) == 1


def test_a_refused_listing_raises_for_the_caller_to_warn_and_ask_again(
    kinesis: KinesisClient,
) -> None:
    def refused(**_: object) -> None:
        raise ClientError(
            {"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "ListShards"
        )

    kinesis.meta.events.register("before-call.kinesis.ListShards", refused)
    lineage = KinesisLineage(lambda: kinesis)

    with pytest.raises(ClientError):
        lineage.parents(_arn(kinesis), "shardId-000000000000")


def test_the_client_is_made_only_when_a_shard_asks() -> None:
    made: list[str] = []

    def client() -> KinesisClient:
        made.append("kinesis")
        raise AssertionError("not to be made")

    KinesisLineage(client)
    assert made == []
