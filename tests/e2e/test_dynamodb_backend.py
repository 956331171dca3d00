"""The shared backends through the handler: chunks of a file on many shards, one upload.

STATE_BACKEND=dynamodb over moto's server; the scenarios every shared backend must hold also
run with STATE_BACKEND=redis on a real redis-server, chunks kept in Redis ("redis") or all
spilled to S3 ("redis-spilled", REDIS_MAX_CHUNK_BYTES=0)."""

from __future__ import annotations

import base64
import math
import random
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol, cast

import boto3
import pytest
import redis
from botocore.exceptions import ResponseStreamingError
from dependency_injector import providers

from adapters.chunk_objects import INDEX_RECORD_BYTES, OBJECTS, item_key
from adapters.redis_state import state_key
from application.ports import Body, Uploader
from application.shared_ingest import LEASE_MARGIN_SECONDS
from domain import FileId
from entrypoints.container import Container, build_container, load_settings
from entrypoints.events import kinesis_event
from entrypoints.lambda_handler import handle
from entrypoints.provision import provision
from tests.assertions import assert_uploaded_once
from tests.e2e.support import (
    SECRET,
    LogLines,
    Record,
    SourceFile,
    Stack,
    failures,
    sequence_numbers,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


@dataclass
class SharedStack:
    """One test's world with its own provisioned state table; containers share it."""

    stack: Stack
    table: str
    dynamodb: DynamoDBClient
    provisioned: list[str] = field(default_factory=list)

    def settings(self, name: str, **extra: str) -> dict[str, str]:
        return self.stack.settings(name, STATE_BACKEND="dynamodb", STATE_TABLE=self.table, **extra)

    def container(self, name: str, **extra: str) -> Container:
        return build_container(self.settings(name, **extra))

    def item(self, source: SourceFile) -> dict[str, Any]:
        """The file's state item as stored, or {} when there is none."""
        response = self.dynamodb.get_item(
            TableName=self.table,
            Key={"file_id": {"S": str(FileId.for_endpoint(source.endpoint))}},
            ConsistentRead=True,
        )
        return dict(response.get("Item", {}))

    def status(self, source: SourceFile) -> str | None:
        status = self.item(source).get("status")
        return None if status is None else str(status["S"])

    def state(self, source: SourceFile) -> FileRecord:
        item = self.item(source)
        return FileRecord(
            status=item["status"]["S"] if "status" in item else None,
            partition_count=int(item["partition_count"]["N"]) if "partition_count" in item else 0,
            received=int(item["received_count"]["N"]) if "received_count" in item else 0,
            claimed="claim_owner" in item,
            expires=int(item.get("expires_at", {}).get("N", "0")) > 0,
        )

    def stored_chunks(self) -> int:
        """Chunks in the chunk objects still stored, as their items' indexes count them."""
        held = 0
        for key in self.stack.keys(OBJECTS):
            index = self.dynamodb.get_item(
                TableName=self.table, Key=item_key(key[len(OBJECTS) :]), ConsistentRead=True
            )["Item"]["index"]["B"]
            held += len(index) // INDEX_RECORD_BYTES
        return held


@dataclass(frozen=True)
class FileRecord:
    """A file's shared state as any backend stores it, for the scenarios they share."""

    status: str | None
    partition_count: int
    received: int
    claimed: bool
    expires: bool


@dataclass
class RedisWorld:
    """One test's world whose shared state and chunks are on a real redis-server."""

    stack: Stack
    redis_url: str
    client: redis.Redis
    budget: str | None = None

    def settings(self, name: str, **extra: str) -> dict[str, str]:
        budget = {} if self.budget is None else {"REDIS_MAX_CHUNK_BYTES": self.budget}
        return self.stack.settings(
            name, STATE_BACKEND="redis", REDIS_URL=self.redis_url, **budget, **extra
        )

    def container(self, name: str, **extra: str) -> Container:
        return build_container(self.settings(name, **extra))

    def state(self, source: SourceFile) -> FileRecord:
        key = state_key(FileId.for_endpoint(source.endpoint))
        stored = cast("dict[bytes, bytes]", self.client.hgetall(key))
        fields = {k.decode(): v.decode() for k, v in stored.items()}
        return FileRecord(
            status=fields.get("status"),
            partition_count=int(fields.get("partition_count", 0)),
            received=int(fields.get("received", 0)),
            claimed="claim_owner" in fields,
            expires=self.client.ttl(key) > 0,
        )

    def status(self, source: SourceFile) -> str | None:
        return self.state(source).status

    def stored_chunks(self) -> int:
        in_redis = sum(
            self.client.hlen(key) for key in self.client.scan_iter(match="sfb:{*}:m", count=500)
        )
        spilled = [key for key in self.stack.keys("pending/") if not key.endswith(".json")]
        return in_redis if self.budget is None else len(spilled)


class SharedWorld(Protocol):
    """What the scenarios every shared backend must hold need of their world."""

    stack: Stack

    def container(self, name: str, **extra: str) -> Container: ...

    def state(self, source: SourceFile) -> FileRecord: ...

    def status(self, source: SourceFile) -> str | None: ...

    def stored_chunks(self) -> int:
        """Chunks held for unfinished files, wherever the backend keeps them."""
        ...


@pytest.fixture
def shared(stack: Stack) -> SharedStack:
    world = SharedStack(stack, f"sfb-state-{uuid.uuid4().hex[:16]}", boto3.client("dynamodb"))
    provision(
        load_settings(world.settings("provision")),
        stack.s3,
        world.dynamodb,
        say=world.provisioned.append,
    )
    return world


@pytest.fixture(params=["dynamodb", "redis", "redis-spilled"])
def any_shared(request: pytest.FixtureRequest, stack: Stack) -> Iterator[SharedWorld]:
    if request.param == "dynamodb":
        yield request.getfixturevalue("shared")
        return
    url: str = request.getfixturevalue("redis_url")
    with redis.Redis.from_url(url) as client:
        client.flushdb()
        yield RedisWorld(
            stack, url, client, budget="0" if request.param == "redis-spilled" else None
        )


def test_provision_makes_the_table_with_ttl_where_aws_endpoint_url_points(
    shared: SharedStack,
) -> None:
    assert f"table {shared.table}: created" in shared.provisioned
    ttl = shared.dynamodb.describe_time_to_live(TableName=shared.table)["TimeToLiveDescription"]
    assert (ttl.get("TimeToLiveStatus"), ttl.get("AttributeName")) == ("ENABLED", "expires_at")


@dataclass
class Shard:
    """One Kinesis shard: its records in order and the container its next batch goes to."""

    number: int
    records: list[Record]
    container: Container
    position: int = 0
    previous: list[Record] = field(default_factory=list)
    generation: int = 0


def test_files_over_four_shards_recycled_containers_and_redelivered_batches_are_each_put_once(
    any_shared: SharedWorld,
) -> None:
    shared = any_shared
    stack = shared.stack
    rng = random.Random(20240611)
    sources = [
        stack.file("four-shards-empty.bin", size=0, chunk_size=1_000),
        stack.file("four-shards-single.bin", size=7_000, chunk_size=7_000),
        stack.file("four-shards-3.bin", size=9_000, chunk_size=3_000),
        stack.file("four-shards-5.bin", size=20_000, chunk_size=4_096),
        stack.file("four-shards-9.bin", size=33_333, chunk_size=4_000),
        stack.file("four-shards-12.bin", size=60_000, chunk_size=5_000),
    ]
    lanes: list[list[dict[str, Any]]] = [[], [], [], []]
    for source in sources:
        for payload in source.payloads:
            lanes[rng.randrange(4)].append(payload)  # a random partition key picks the shard
    for lane in lanes:
        rng.shuffle(lane)
    shards = [
        Shard(n, stack.seq.records(lane), shared.container(f"shard-{n}-0"))
        for n, lane in enumerate(lanes)
    ]
    spread = max(sum(any(c in lane for c in s.payloads) for lane in lanes) for s in sources)
    assert spread >= 3, "the arrangement must put one file's chunks on at least 3 shards"
    batch_size, recycled, responses = 3, 0, []

    while any(shard.position < len(shard.records) or shard.previous for shard in shards):
        for shard in shards:
            batch = shard.records[shard.position : shard.position + batch_size]
            if batch:
                responses.append(failures(stack.invoke(shard.container, batch)))
            if shard.previous:  # the previous batch again, after other shards moved on
                responses.append(failures(stack.invoke(shard.container, shard.previous)))
            shard.position += len(batch)
            shard.previous = batch
            if batch and shard.position % (2 * batch_size) == 0:
                shard.generation += 1
                shard.container = shared.container(f"shard-{shard.number}-{shard.generation}")
                recycled += 1

    assert recycled >= 4
    assert len(responses) == 2 * sum(-(-len(lane) // batch_size) for lane in lanes)
    assert all(response == [] for response in responses)
    for source in sources:
        assert_uploaded_once(stack.uploads_of(source), source.data, to=source.endpoint)
        state = shared.state(source)
        assert state.status == "uploaded", source.endpoint
        assert state.expires
    assert len(stack.receiver.received) == len(sources)
    assert shared.stored_chunks() == 0
    assert stack.keys("pending/") == []
    assert stack.keys("quarantine/") == []


def test_a_late_duplicate_after_the_upload_is_ignored_and_leaves_nothing_behind(
    any_shared: SharedWorld,
) -> None:
    shared = any_shared
    stack = shared.stack
    source = stack.file("late-duplicate.bin", size=30_000, chunk_size=10_000)
    stack.invoke(shared.container("shard-0"), stack.seq.records([source.payload(0)]))
    stack.invoke(shared.container("shard-1"), stack.seq.records(source.payloads[1:]))
    tombstone = shared.state(source)
    assert tombstone.status == "uploaded"

    response = stack.invoke(
        shared.container("shard-2"), stack.seq.records([*source.payloads[::-1], source.payload(1)])
    )

    assert failures(response) == []
    assert_uploaded_once(stack.uploads_of(source), source.data)
    assert stack.keys("pending/") == []
    assert shared.stored_chunks() == 0
    assert shared.state(source) == tombstone


def _other_bytes(source: SourceFile, partition: int) -> str:
    original = base64.b64decode(source.payload(partition)["content"])
    return base64.b64encode(bytes(b ^ 0xFF for b in original)).decode("ascii")


@pytest.mark.parametrize("conflict", ["partition-count-conflict", "content-conflict"])
def test_a_conflicting_chunk_on_another_shard_is_quarantined_and_the_first_chunk_stands(
    any_shared: SharedWorld, logs: LogLines, conflict: str
) -> None:
    shared = any_shared
    stack = shared.stack
    source = stack.file(f"conflict-{conflict}.bin", size=30_000, chunk_size=10_000)
    first_shard, other_shard = shared.container("shard-0"), shared.container("shard-1")
    stack.invoke(first_shard, stack.seq.records([source.payload(1)]))
    if conflict == "partition-count-conflict":
        bad = stack.seq.record(source.payload(2, partitionCount=source.partition_count + 1))
    else:
        bad = stack.seq.record(source.payload(1, content=_other_bytes(source, 1)))

    response = stack.invoke(other_shard, [bad])

    assert failures(response) == []
    [key] = stack.keys("quarantine/")
    assert key.endswith(f"/{bad['kinesis']['sequenceNumber']}")
    assert stack.metadata(key)["reason"] == conflict
    [warning] = logs.at("WARNING")
    assert (warning["reason"], warning["quarantined_as"]) == (conflict, key)
    assert shared.stored_chunks() == 1, "the refused chunk's bytes are removed"
    state = shared.state(source)
    assert (state.partition_count, state.received) == (source.partition_count, 1)

    response = stack.invoke(other_shard, stack.seq.records([source.payload(0), source.payload(2)]))

    assert failures(response) == []
    assert_uploaded_once(stack.uploads_of(source), source.data)
    assert stack.keys("pending/") == []
    assert shared.stored_chunks() == 0


def test_a_transient_upload_failure_reports_the_completing_record_and_another_shard_finishes(
    any_shared: SharedWorld, logs: LogLines
) -> None:
    shared = any_shared
    stack = shared.stack
    source = stack.file("transient.bin", size=30_000, chunk_size=10_000)
    r = stack.seq.records(source.payloads)
    a = shared.container("shard-0", UPLOAD_MAX_ATTEMPTS="1")
    b = shared.container("shard-1", UPLOAD_MAX_ATTEMPTS="1")
    assert failures(stack.invoke(a, r[:1])) == []
    stack.receiver.fail_next(503, times=1)

    response = stack.invoke(b, r[1:])

    assert failures(response) == sequence_numbers(r[2:])
    assert stack.uploads_of(source) == []
    assert shared.stored_chunks() == source.partition_count
    state = shared.state(source)
    assert state.status == "collecting"
    assert not state.claimed
    [warning] = logs.at("WARNING")
    assert "503" in warning["reason"]

    response = stack.invoke(a, r[2:])

    assert failures(response) == []
    assert_uploaded_once(stack.uploads_of(source), source.data)
    assert stack.keys("pending/") == []
    assert shared.stored_chunks() == 0
    assert shared.status(source) == "uploaded"


BOUND = 60.0
"""The longest a test waits for another thread to reach a step: a bound, never a measure."""


class Clock:
    """A container's idea of the time, set by the test."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _nothing() -> None:
    return None


class GatedUploader:
    """The container's own uploader, with steps of the test run just before and after a PUT."""

    def __init__(
        self,
        real: Uploader,
        before: Callable[[], None] = _nothing,
        after: Callable[[], None] = _nothing,
    ) -> None:
        self._real = real
        self._before = before
        self._after = after

    def upload(self, put_endpoint: str, body: Body) -> None:
        self._before()
        self._real.upload(put_endpoint, body)
        self._after()


def container_at(
    shared: SharedWorld, name: str, clock: Clock, gate: Callable[[Uploader], Uploader]
) -> Container:
    """A container whose claims read ``clock`` and whose uploads pass through ``gate``."""
    container = shared.container(name, CLAIM_LEASE_SECONDS="10")
    container.uploader.override(providers.Object(gate(container.uploader())))
    container.clock.override(providers.Object(clock))
    container.process_batch()  # built here: boto3 does not promise thread-safe client creation
    return container


def test_a_holder_that_outlived_its_lease_leaves_the_chunks_to_the_one_that_took_over(
    any_shared: SharedWorld,
) -> None:
    shared = any_shared
    stack = shared.stack
    source = stack.file("outlived-lease.bin", size=30_000, chunk_size=10_000)
    r = stack.seq.records(source.payloads)
    assert failures(stack.invoke(shared.container("first-chunks"), r[:2])) == []
    slow_uploaded, successor_assembling, slow_done = (threading.Event() for _ in range(3))

    def slow_after_put() -> None:
        slow_uploaded.set()
        assert successor_assembling.wait(BOUND)

    def successor_before_put() -> None:
        successor_assembling.set()
        assert slow_done.wait(BOUND)

    slow = container_at(
        shared, "slow", Clock(1_000.0), lambda real: GatedUploader(real, after=slow_after_put)
    )
    successor = container_at(
        shared,
        "successor",
        Clock(1_011.0),  # the slow holder's 10 s lease has passed
        lambda real: GatedUploader(real, before=successor_before_put),
    )

    with ThreadPoolExecutor(max_workers=1) as pool:
        slow_batch = pool.submit(stack.invoke, slow, r[2:])
        slow_batch.add_done_callback(lambda _: slow_done.set())
        assert slow_uploaded.wait(BOUND)
        taken_over = stack.invoke(successor, r[2:])
        slow_response = slow_batch.result()

    assert failures(slow_response) == []
    assert failures(taken_over) == []
    puts = stack.uploads_of(source)
    assert [put.body == source.data for put in puts] == [True, True]
    assert shared.status(source) == "uploaded"
    assert stack.keys("pending/") == []
    assert shared.stored_chunks() == 0


class AwsRequests:
    """Counts the AWS API calls of a container's S3 and DynamoDB clients, once per call."""

    def __init__(self, container: Container) -> None:
        self.calls: list[str] = []
        container.s3_client().meta.events.register("before-call.s3", partial(self._count, "s3"))
        container.dynamodb_client().meta.events.register(
            "before-call.dynamodb", partial(self._count, "dynamodb")
        )

    def _count(self, service: str, model: Any, **_: Any) -> None:
        self.calls.append(f"{service}:{model.name}")

    def during(self, action: Callable[[], object]) -> Counter[str]:
        """The calls made while ``action()`` runs."""
        start = len(self.calls)
        action()
        return Counter(self.calls[start:])


@dataclass(frozen=True)
class RequestCosts:
    """What one file of ``chunks`` chunks cost, batch by batch, in AWS requests."""

    chunks: int
    ingest: Counter[str]
    """Batches holding every chunk but the last: ingest and nothing else."""
    redelivered: Counter[str]
    """One of those batches delivered again while the file is still collecting."""
    redelivered_chunks: int
    completing: Counter[str]
    """The batch holding only the last chunk: its ingest, then the file's assembly."""
    late_duplicate: Counter[str]
    """One chunk arriving again after the upload."""

    @property
    def ingest_per_chunk(self) -> float:
        return sum(self.ingest.values()) / (self.chunks - 1)

    @property
    def assembly(self) -> float:
        """The completing batch less one chunk's ingest."""
        return sum(self.completing.values()) - self.ingest_per_chunk

    def report(self) -> str:
        return (
            f"{self.chunks} chunks: {self.ingest_per_chunk:.2f} requests per chunk at ingest "
            f"{dict(self.ingest)}; {self.assembly:.0f} at assembly "
            f"(= {self.chunks} chunks + {self.assembly - self.chunks:.0f}; the completing batch "
            f"{dict(self.completing)}); "
            f"{sum(self.redelivered.values()) / self.redelivered_chunks:.2f} per redelivered "
            f"chunk {dict(self.redelivered)}; {sum(self.late_duplicate.values())} per late "
            f"duplicate {dict(self.late_duplicate)}"
        )


def measure_request_costs(
    shared: SharedStack, name: str, chunks: int, batch_size: int = 4, completer: bool = True
) -> RequestCosts:
    """Send one file's chunks to one container over several batches, counting requests;
    ``completer``: its last chunk goes to another container (on another shard), which has
    none of the others on its disk."""
    stack = shared.stack
    source = stack.file(name, size=chunks * 1_000, chunk_size=1_000)
    assert source.partition_count == chunks
    container = shared.container(f"{name}-counted")
    counted = AwsRequests(container)
    last_container = shared.container(f"{name}-completing") if completer else container
    last_counted = AwsRequests(last_container) if completer else counted
    records = stack.seq.records(source.payloads)
    first, last = records[:-1], records[-1:]
    batches = [first[i : i + batch_size] for i in range(0, len(first), batch_size)]

    def deliver(batch: list[Record], to: Container = container) -> None:
        assert failures(stack.invoke(to, batch)) == []

    def deliver_all() -> None:
        for batch in batches:
            deliver(batch)

    ingest = counted.during(deliver_all)
    redelivered = counted.during(lambda: deliver(batches[0]))
    completing = last_counted.during(lambda: deliver(last, last_container))
    late_duplicate = counted.during(lambda: deliver(stack.seq.records([source.payload(0)])))
    assert_uploaded_once(stack.uploads_of(source), source.data)
    return RequestCosts(chunks, ingest, redelivered, len(batches[0]), completing, late_duplicate)


def test_ingest_costs_at_most_two_requests_per_chunk_and_assembly_reads_each_object_once(
    shared: SharedStack,
) -> None:
    per_file_constant = 2
    small = measure_request_costs(shared, "cost-small.bin", chunks=5)
    large = measure_request_costs(shared, "cost-large.bin", chunks=21)
    for costs in (small, large):
        print(costs.report())

    for costs in (small, large):
        assert costs.redelivered["dynamodb:GetItem"] == 0, "a refusal says why (ALL_OLD)"
        assert costs.late_duplicate["dynamodb:GetItem"] == 0
        assert sum(costs.ingest.values()) <= 2 * (costs.chunks - 1) + per_file_constant
        batches = math.ceil((costs.chunks - 1) / 4)
        assert costs.ingest["s3:PutObject"] == batches, "one chunk object a batch"
        # One ranged read an object: its 4 chunks of the file follow each other in it. The
        # completing container's own chunk comes from its disk.
        assert costs.completing["s3:GetObject"] == batches
        assert costs.completing["s3:PutObject"] <= 1
        assert costs.assembly - batches <= 8
    growth = sum(large.ingest.values()) - sum(small.ingest.values())
    assert growth <= 2 * (large.chunks - small.chunks)
    assert large.assembly - small.assembly == math.ceil((large.chunks - 1) / 4) - math.ceil(
        (small.chunks - 1) / 4
    )


def test_a_container_that_stored_every_chunk_reads_none_back_from_s3(
    shared: SharedStack,
) -> None:
    costs = measure_request_costs(shared, "cost-own.bin", chunks=9, completer=False)

    assert costs.completing["s3:GetObject"] == 0
    assert costs.completing["s3:PutObject"] <= 1


def _archive(shared: SharedStack, key: str, container: Container) -> None:
    """Moved to an archive storage class: GetObject now answers InvalidObjectState."""
    bucket = shared.stack.bucket
    shared.stack.s3.copy_object(
        Bucket=bucket, Key=key, CopySource={"Bucket": bucket, "Key": key}, StorageClass="GLACIER"
    )


class BreaksMidway:
    """An object's body that dies after a few bytes, as a reset connection does."""

    def __init__(self, body: Any) -> None:
        self._body = body
        self._gave = False

    def read(self, size: int = -1, /) -> bytes:
        if self._gave:
            raise ResponseStreamingError(error="Connection broken: IncompleteRead")
        self._gave = True
        return bytes(self._body.read(3))

    def close(self) -> None:
        self._body.close()


class ResetMidRead:
    """The container's next GetObject of ``key`` returns a body whose connection breaks."""

    def __init__(self, container: Container, key: str) -> None:
        self._key = key
        self._aimed = self._done = False
        events = container.s3_client().meta.events
        events.register("before-parameter-build.s3.GetObject", self._aim)
        events.register("after-call.s3.GetObject", self._break)

    def _aim(self, params: dict[str, Any], **_: Any) -> None:
        self._aimed = not self._done and params.get("Key") == self._key

    def _break(self, parsed: dict[str, Any], **_: Any) -> None:
        if self._aimed:
            self._aimed, self._done = False, True
            parsed["Body"] = BreaksMidway(parsed["Body"])


def _reset_midway(shared: SharedStack, key: str, container: Container) -> None:
    ResetMidRead(container, key)


def _change_bytes(shared: SharedStack, key: str, container: Container) -> None:
    """Other bytes of the same length under the chunk's key: its digest no longer matches."""
    stored = shared.stack.read(key)
    shared.stack.s3.put_object(
        Bucket=shared.stack.bucket, Key=key, Body=bytes(b ^ 0xFF for b in stored)
    )


@pytest.mark.parametrize(
    "fault",
    [_archive, _reset_midway, _change_bytes],
    ids=["object-archived", "connection-reset-mid-read", "stored-bytes-changed"],
)
def test_a_chunk_unreadable_after_the_claim_gives_it_back_and_no_wrong_body_is_ever_complete(
    shared: SharedStack, logs: LogLines, fault: Callable[[SharedStack, str, Container], None]
) -> None:
    stack = shared.stack
    source = stack.file(f"unreadable-{fault.__name__}.bin", size=40_000, chunk_size=10_000)
    r = stack.seq.records(source.payloads)
    a = shared.container("shard-0", UPLOAD_MAX_ATTEMPTS="1")
    b = shared.container("shard-1", UPLOAD_MAX_ATTEMPTS="1")
    assert failures(stack.invoke(a, r[1:])) == []
    [key] = stack.keys("pending/")  # the batch's one chunk object
    original = stack.read(key)
    fault(shared, key, b)

    response = stack.invoke(b, r[:1])  # partition 0 completes the file; 3 is read last

    assert failures(response) == sequence_numbers(r[:1])
    assert stack.uploads_of(source) == []
    item = shared.item(source)
    assert item["status"] == {"S": "collecting"}
    assert "claim_owner" not in item
    [warning] = logs.at("WARNING")
    assert warning["message"].startswith("upload failed")
    assert SECRET not in logs.text

    stack.s3.put_object(Bucket=stack.bucket, Key=key, Body=original)
    assert failures(stack.invoke(a, r[:1])) == []  # at once: no lease to wait out
    assert_uploaded_once(stack.uploads_of(source), source.data)
    assert shared.status(source) == "uploaded"
    assert stack.keys("pending/") == []


class LambdaContextWithTime:
    """Lambda's context as the handler reads it, with ``seconds`` left in the invocation."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.aws_request_id = "lease-test"

    def get_remaining_time_in_millis(self) -> int:
        return int(self.seconds * 1000)


def test_a_claims_lease_ends_when_its_invocation_must_have_ended(shared: SharedStack) -> None:
    stack = shared.stack
    source = stack.file("lease-from-context.bin", size=20_000, chunk_size=10_000)
    r = stack.seq.records(source.payloads)
    leases: list[dict[str, Any]] = []
    assert failures(stack.invoke(shared.container("first"), r[:1])) == []
    holder = shared.container("holder")
    holder.clock.override(providers.Object(Clock(1_000.0)))
    holder.uploader.override(
        providers.Object(
            GatedUploader(holder.uploader(), before=lambda: leases.append(shared.item(source)))
        )
    )

    response = handle(holder, kinesis_event(r[1:]), LambdaContextWithTime(seconds=40.0))

    assert failures(response) == []
    [claimed] = leases
    assert claimed["status"] == {"S": "assembling"}
    assert float(claimed["claim_until"]["N"]) == 1_000.0 + 40.0 + LEASE_MARGIN_SECONDS
    assert_uploaded_once(stack.uploads_of(source), source.data)


def test_the_containers_aws_clients_time_out_and_retry_within_the_deadline_margin(
    shared: SharedStack,
) -> None:
    margin = 16.0
    container = shared.container("configured", DEADLINE_MARGIN_SECONDS=str(margin))
    backoff_bound = 1.0 + 2.0  # botocore's standard mode, before its 2nd and 3rd attempts

    for client in (container.s3_client(), container.dynamodb_client()):
        config = client.meta.config
        assert config.retries == {"mode": "standard", "total_max_attempts": 3}
        assert (config.connect_timeout, config.read_timeout) == (margin / 20, margin / 8)
        attempts = config.retries["total_max_attempts"]  # the first one included
        assert attempts * (config.connect_timeout + config.read_timeout) + backoff_bound < margin
