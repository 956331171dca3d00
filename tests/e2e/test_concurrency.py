"""Eight containers handle the same files' chunks at the same moment: each file is PUT once.

Each shared backend races against a real server: DynamoDB is dynalite here, not moto (moto
does not serialise conditional writes, so its races pass or fail by thread-switch luck), and
Redis is redis-server running the backend's scripts. S3 stays on moto's server. Threads share
the GIL, but boto3, redis-py and the uploader release it on every request, so the races between
them are real.
"""

from __future__ import annotations

import random
import threading
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import boto3
import pytest
import redis

from adapters import dynamodb_state
from adapters.redis_state import state_key
from domain import FileId
from entrypoints.container import Container, build_container
from entrypoints.lambda_handler import handle
from tests.e2e.dynalite import create_state_table
from tests.e2e.support import LambdaContext, Record, SourceFile, Stack
from tests.tools.shard_driver import DriveReport, drive_shard

THREADS = 8
FILES = 4
CHUNKS = 5
BATCH_SIZE = 4
ROUNDS = 4
MAX_INVOCATIONS = 500
"""A thread whose shard makes no progress in this many batches fails the test."""
START_TIMEOUT = 60.0
"""How long the barrier waits for every thread: a bound against a hang, not a measure."""


class RacingStack(Protocol):
    """A test's world whose shared state lives on a real server and whose bucket on moto."""

    stack: Stack

    def container(self, name: str) -> Container: ...

    def status(self, source: SourceFile) -> str | None: ...


@dataclass
class DynaliteStack:
    stack: Stack
    table: str
    dynalite_url: str

    def container(self, name: str) -> Container:
        container = build_container(
            self.stack.settings(name, STATE_BACKEND="dynamodb", STATE_TABLE=self.table)
        )
        assert container.dynamodb_client().meta.endpoint_url == self.dynalite_url
        assert container.s3_client().meta.endpoint_url == self.stack.aws_endpoint
        # Everything is built here: boto3 does not promise thread safety while making clients.
        container.process_batch()
        return container

    def status(self, source: SourceFile) -> str | None:
        item = (
            boto3.client("dynamodb")
            .get_item(
                TableName=self.table,
                Key={"file_id": {"S": str(FileId.for_endpoint(source.endpoint))}},
                ConsistentRead=True,
            )
            .get("Item", {})
        )
        return str(item["status"]["S"]) if "status" in item else None


@dataclass
class RedisStack:
    stack: Stack
    redis_url: str

    def container(self, name: str) -> Container:
        container = build_container(
            self.stack.settings(name, STATE_BACKEND="redis", REDIS_URL=self.redis_url)
        )
        container.process_batch()
        return container

    def status(self, source: SourceFile) -> str | None:
        with redis.Redis.from_url(self.redis_url) as client:
            status = client.hget(state_key(FileId.for_endpoint(source.endpoint)), "status")
        return status.decode() if status is not None else None


@pytest.fixture(params=["dynamodb-inline", "dynamodb-segmented", "redis"])
def racing(
    request: pytest.FixtureRequest, stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> RacingStack:
    """Each shared backend on its real server: DynamoDB (dynalite) with the files' digests in
    their items or, as a large file's, in segment items; Redis."""
    if request.param == "redis":
        url: str = request.getfixturevalue("redis_url")
        with redis.Redis.from_url(url) as client:
            client.flushdb()
        return RedisStack(stack, url)
    if request.param == "dynamodb-segmented":
        monkeypatch.setattr(dynamodb_state, "INLINE_PARTITIONS", 0)
    dynalite_url: str = request.getfixturevalue("dynalite_url")
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", dynalite_url)
    table = f"sfb-race-{uuid.uuid4().hex[:16]}"
    create_state_table(boto3.client("dynamodb"), table)
    return DynaliteStack(stack, table, dynalite_url)


def race(
    containers: list[Container], shards: list[list[Record]], barrier: threading.Barrier
) -> list[DriveReport]:
    """Each thread drives its own shard through its own container.

    The threads start each of their first batches together (every shard has at least that
    many), so that they reach the same files' completions at the same moment.
    """
    in_step = min(-(-len(records) // BATCH_SIZE) for records in shards)

    def drive(number: int) -> DriveReport:
        def invoke(invocation: int, event: Mapping[str, Any]) -> Mapping[str, Any]:
            if invocation < in_step:
                barrier.wait()
            return handle(containers[number], event, LambdaContext())

        try:
            return drive_shard(shards[number], invoke, BATCH_SIZE, MAX_INVOCATIONS)
        except BaseException:
            barrier.abort()  # the others stop waiting for a thread that will never come
            raise

    with ThreadPoolExecutor(max_workers=len(containers)) as pool:
        return list(pool.map(drive, range(len(containers))))


@pytest.mark.parametrize("round_number", range(1, ROUNDS + 1))
def test_eight_containers_racing_over_the_same_chunks_put_each_file_once_and_whole(
    racing: RacingStack, round_number: int
) -> None:
    stack = racing.stack
    rng = random.Random(f"race-{round_number}")
    sources = [
        stack.file(
            f"race-{round_number}-{n}.bin",
            size=CHUNKS * 2_000 - rng.randrange(1_000),
            chunk_size=2_000,
            seed=round_number,
        )
        for n in range(FILES)
    ]
    assert [source.partition_count for source in sources] == [CHUNKS] * FILES
    # One chunk of each file is the last of every shard, so that no file completes before the
    # final batches, which all eight threads start together: every completion is an 8-way race.
    last = [rng.choice(source.payloads) for source in sources]
    rest = [payload for source in sources for payload in source.payloads if payload not in last]
    shards = [
        stack.seq.records([*rng.sample(rest, k=len(rest)), *rng.sample(last, k=len(last))])
        for _ in range(THREADS)
    ]
    assert len(rest) % BATCH_SIZE == 0, "the chunks before the last fill whole batches"
    assert len(last) <= BATCH_SIZE, "the last chunks fit in one batch"
    containers = [racing.container(f"racer-{n}") for n in range(THREADS)]

    reports = race(containers, shards, threading.Barrier(THREADS, timeout=START_TIMEOUT))

    puts = {source.endpoint: stack.uploads_of(source) for source in sources}
    print(
        f"round {round_number}: PUTs per file {[len(p) for p in puts.values()]}, "
        f"records redelivered {sum(r.redelivered for r in reports)} over "
        f"{sum(r.invocations for r in reports)} batches"
    )
    for source in sources:
        bodies = {put.sha256 for put in puts[source.endpoint]}
        assert len(bodies) <= 1, "one file was PUT with two different bodies"
        assert bodies <= {source.sha256}, "a file was PUT with a body other than its own"
    for source in sources:
        assert len(puts[source.endpoint]) == 1, source.endpoint
        assert puts[source.endpoint][0].body == source.data
        assert racing.status(source) == "uploaded"
    assert len(stack.receiver.received) == FILES
    assert stack.keys("pending/") == []
    assert stack.keys("quarantine/") == []
    assert stack.keys("failed/") == []
