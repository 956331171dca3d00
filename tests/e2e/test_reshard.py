"""A file sent across a reshard, through the real handler and Kinesis' own lineage (moto's
ListShards after SplitShard and MergeShards): uploaded once, whole, nothing left pending."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import boto3

from entrypoints.events import encode_payload, kinesis_record
from tests.assertions import assert_uploaded_once
from tests.e2e.support import Record, Stack, failures

if TYPE_CHECKING:
    from mypy_boto3_kinesis import KinesisClient


def _shards(kinesis: KinesisClient, name: str) -> list[str]:
    return [s["ShardId"] for s in kinesis.list_shards(StreamName=name)["Shards"]]


def test_files_sent_across_a_split_then_a_merge_are_each_uploaded_once_from_every_log(
    stack: Stack,
) -> None:
    kinesis: KinesisClient = boto3.client("kinesis")
    name = f"reshard-{stack.bucket}"
    kinesis.create_stream(StreamName=name, ShardCount=1)
    arn = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]["StreamARN"]

    def on(shard: str, payloads: Sequence[dict[str, Any]]) -> list[Record]:
        return [
            kinesis_record(encode_payload(p), stack.seq(), shard_id=shard, stream_arn=arn)
            for p in payloads
        ]

    split = stack.file("across-a-split.bin", size=40_000, chunk_size=10_000)
    merged = stack.file("across-a-merge.bin", size=30_000, chunk_size=10_000, seed=1)
    (parent,) = _shards(kinesis, name)
    a, b = stack.container("a"), stack.container("b")
    responses = [stack.invoke(a, on(parent, split.payloads[:2]))]
    kinesis.split_shard(StreamName=name, ShardToSplit=parent, NewStartingHashKey=str(2**127))
    low, high = _shards(kinesis, name)[1:]
    responses += [
        stack.invoke(b, on(low, split.payloads[2:3])),
        stack.invoke(a, on(high, merged.payloads[:1])),
        stack.invoke(b, on(low, split.payloads[3:])),
    ]
    kinesis.merge_shards(StreamName=name, ShardToMerge=low, AdjacentShardToMerge=high)
    child = _shards(kinesis, name)[-1]
    responses.append(stack.invoke(stack.container("c"), on(child, merged.payloads[1:])))

    assert [failures(response) for response in responses] == [[]] * 5
    assert_uploaded_once(stack.uploads_of(split), split.data)
    assert_uploaded_once(stack.uploads_of(merged), merged.data)
    assert stack.keys("pending/") == []
