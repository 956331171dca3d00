"""The stream as AWS delivers it: what a GiB costs, how long a file waits, how fast small
files go.

Every request to S3 and DynamoDB goes through a delay proxy (a fixed round trip added to the
answer of moto, or of dynalite for DynamoDB); each runs in a process of its own
(bench/aws_apart.py), so the handler's seconds, which Lambda bills, hold none of the
emulators' CPU. Records carry ~700 KiB chunks (the largest a 1 MiB Kinesis record holds once
the content is base64 inside JSON) and invocations are cut where the event, its record data
base64 again, would pass Lambda's 6 MB payload: about four chunks each, whatever BatchSize
says. Three layouts run through the real handler:

- local backend, one shard: three producers' files interleaved record by record, a second
  warm container taking every 7th invocation (Lambda recycles and scales containers);
- dynamodb backend: the same files' chunks spread over 4 shards, one container per shard,
  the shards' invocations taken in turn;
- small files: invocations of 100 single-chunk files, each PUT answered after 30 ms.

Requests are counted by kind on the containers' clients; DynamoDB capacity units are
computed from the item's size as DynamoDB defines it, read by the bench beside each request
(an emulator's own figure is not DynamoDB's). Those reads go to the same dynalite as the
lanes' own requests and queue them, and lanes overlap, so no duration can leave them out: a
dynamodb layout runs twice, timed without them, then the same files again at new endpoints,
untimed, with them (``_capacity``). The floor for a file's latency is the same file read
back from S3 in chunk-sized ranges, 8 at a time through the same proxy, then one PUT of the
whole to the same receiver.
"""

from __future__ import annotations

import base64
import functools
import itertools
import math
import operator
import os
import random
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

from attrs import define, evolve, field, frozen

from adapters.dynamodb_state import KEY_ATTRIBUTE, OPEN_ATTRIBUTE
from adapters.settings import BackendName
from bench.baselines import plain_session, put_file
from bench.workload import KIB, MIB, Event, FileSpec, Record, Sequencer, size_label
from bench.world import BUCKET, SESSION_SIGNATURE, SIGNATURE, TABLE, BenchError, World
from entrypoints.container import Container
from entrypoints.events import INVOCATION_PAYLOAD_LIMIT, cut, encode_payload, kinesis_record
from entrypoints.lambda_handler import handle

# List prices, us-east-1, as of PRICES_AS_OF.
PRICES_AS_OF = "2026-11"
S3_PUT_COPY_POST_LIST = 0.005 / 1000
S3_GET_AND_OTHERS = 0.0004 / 1000
DYNAMODB_WRITE_UNIT = 0.625 / 1_000_000
"""On-demand, per write request unit: 1 KB of item, rounded up per item written."""
DYNAMODB_READ_UNIT = 0.125 / 1_000_000
"""On-demand, per read request unit: 4 KB strongly consistent (half for eventual)."""
LAMBDA_GB_SECOND = 0.0000166667
LAMBDA_REQUEST = 0.20 / 1_000_000
LAMBDA_MEMORY_MB = 512
"""The template's default MemorySize."""
EXPIRY_SECONDS = 300.0
"""The template's default ExpireSchedule (rate(5 minutes)): each run scans the index of open
files."""

S3_FREE = frozenset({"DeleteObject", "DeleteObjects"})
S3_GET_CLASS = frozenset({"GetObject", "HeadObject", "HeadBucket", "GetObjectTagging"})
"""Every other S3 request is billed at the PUT, COPY, POST, LIST rate."""

KINESIS_RECORD_LIMIT = MIB
"""A Kinesis record's data (the partition key aside) is at most 1 MiB."""
CHUNK_SIZE = 700 * KIB
SHARDS = 4
SECOND_CONTAINER_EVERY = 7
FLOOR_PARALLEL_GETS = 8
SMALL_FILES_PER_INVOCATION = 100
SMALL_FILE_SIZE = 20_000

LOCAL_INTERLEAVED = "local: 1 shard, 3 producers, 2 containers"
"""Three producers' files interleaved record by record; every 7th invocation on a second warm
container."""
DYNAMODB_SPREAD = f"dynamodb: chunks over {SHARDS} shards"
REDIS_SPREAD = f"redis: chunks over {SHARDS} shards"
"""Its dollars leave out what the redis backend costs most: the node's hours."""
"""The same files, chunk n of the interleaved stream on shard n mod 4, a container per shard."""
GOAL_LAYOUTS = (LOCAL_INTERLEAVED, DYNAMODB_SPREAD)
"""The layouts issue 12's goals are set for; the others are reported."""
LARGE_FILE_SIZE = 100 * MIB
"""Over 100 partitions of 700 KiB: the dynamodb backend keeps its digests in segments."""
STREAM_FILES = 18
STREAM_FILE_SIZE = 3 * MIB
PRODUCERS = 3
LOCAL_STREAM = f"local: 1 shard, {PRODUCERS} producers of files back to back, 2 containers"
"""Files finishing all along, as a stream carries them (the issue's layout finishes its three
files at its end): what finishing a file costs the log, reported beside the issue's rows."""


# --- DynamoDB capacity, as DynamoDB counts it ------------------------------------------


def item_size(item: dict[str, Any]) -> int:
    """Bytes of an item as DynamoDB bills it: each attribute's name plus its value."""
    return sum(len(name.encode()) + _value_size(value) for name, value in item.items())


def _value_size(value: dict[str, Any]) -> int:
    ((kind, content),) = value.items()
    if kind == "S":
        return len(str(content).encode())
    if kind == "N":
        return _number_size(str(content))
    if kind == "B":
        return len(content)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(str(s).encode()) for s in content)
    if kind == "NS":
        return sum(_number_size(str(n)) for n in content)
    if kind == "BS":
        return sum(len(b) for b in content)
    if kind == "L":
        return 3 + sum(1 + _value_size(v) for v in content)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + _value_size(v) for k, v in content.items())
    raise ValueError(f"unknown DynamoDB type {kind}")


def _number_size(text: str) -> int:
    """1 byte per two significant digits, plus 1."""
    digits = format(abs(Decimal(text)), "f").replace(".", "").strip("0") or "0"
    return math.ceil(len(digits) / 2) + 1


_WRITES = frozenset({"UpdateItem", "PutItem", "DeleteItem"})
_KEYED_READS = frozenset({"GetItem"})
_LISTING_READS = frozenset({"Query", "Scan"})


@define
class Accounting:
    """Requests by kind on the containers' clients, and DynamoDB's capacity units.

    ``reader`` reads the item beside each keyed DynamoDB request, straight from the emulator
    and uncounted; the time it takes is kept in ``pauses``, which only a caller sending one
    request at a time may take out of its duration (bench/write_units.py): where lanes send
    at once, another lane's request is in flight during a pause.
    """

    reader: Any
    requests: Counter[str] = field(factory=Counter)
    write_units: float = 0.0
    read_units: float = 0.0
    pauses: list[tuple[float, float]] = field(factory=list)
    _lock: threading.Lock = field(factory=threading.Lock)
    """Files' lanes send requests at once: counts are added under it."""

    def attach(self, container: Container, capacity: bool = False) -> None:
        """Count the container's requests; with ``capacity``, also the write and read units
        (an uncounted read of the item beside each keyed DynamoDB request)."""
        s3 = container.s3_client()
        s3.meta.events.register("before-call", self._count("s3"))
        self.attach_dynamodb(container.dynamodb_client(), capacity)

    def attach_dynamodb(self, db: Any, capacity: bool = True) -> None:
        """Count a DynamoDB client's requests (and, with ``capacity``, its units)."""
        db.meta.events.register("before-call.dynamodb", self._count("dynamodb"))
        if capacity:
            db.meta.events.register("before-parameter-build.dynamodb", self._remember)
            db.meta.events.register("before-call.dynamodb", self._before)
            db.meta.events.register("after-call.dynamodb", self._after)

    @property
    def paused(self) -> float:
        return sum(b - a for a, b in self.pauses)

    def _count(self, service: str) -> Any:
        def before_call(model: Any, **_: Any) -> None:
            with self._lock:
                self.requests[f"{service}.{model.name}"] += 1

        return before_call

    def _remember(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        if "Key" in params:
            context["bench_item"] = (params["TableName"], params["Key"])
        if "RequestItems" in params and any(
            "PutRequest" in r or "DeleteRequest" in r
            for requests in params["RequestItems"].values()
            for r in requests
        ):
            context["bench_writes"] = [
                (table, r) for table, requests in params["RequestItems"].items() for r in requests
            ]
        consistent = params.get("ConsistentRead")
        if "RequestItems" in params and all(
            isinstance(read, dict) for read in params["RequestItems"].values()
        ):
            consistent = all(k.get("ConsistentRead") for k in params["RequestItems"].values())
        context["bench_consistent"] = bool(consistent)

    def _before(self, model: Any, context: dict[str, Any], **_: Any) -> None:
        if model.name in _WRITES and "bench_item" in context:
            context["bench_before"] = self._item(*context["bench_item"])
        if model.name == "BatchWriteItem" and "bench_writes" in context:
            # Each item is billed on its own, by the larger of before and after.
            units = 0
            for table, r in context["bench_writes"]:
                key = r["PutRequest"]["Item"] if "PutRequest" in r else r["DeleteRequest"]["Key"]
                before = self._item(table, {KEY_ATTRIBUTE: key[KEY_ATTRIBUTE]})
                after = r["PutRequest"]["Item"] if "PutRequest" in r else None
                units += _units(before, after)
            context["bench_batch_units"] = units

    def _after(self, model: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        factor = 1.0 if context.get("bench_consistent") else 0.5
        if "bench_batch_units" in context:
            with self._lock:
                self.write_units += context["bench_batch_units"]
        if model.name in _WRITES and "bench_item" in context:
            after = self._item(*context["bench_item"])
            with self._lock:
                self.write_units += _units(context.get("bench_before"), after)
        elif model.name in _KEYED_READS and "bench_item" in context:
            # A read is billed for the whole item, whatever the projection.
            units = factor * max(
                1, math.ceil(item_size(self._item(*context["bench_item"]) or {}) / 4096)
            )
            with self._lock:
                self.read_units += units
        elif model.name == "BatchGetItem":
            # Each item is rounded up to 4 KB on its own.
            items = [i for found in parsed.get("Responses", {}).values() for i in found]
            units = sum(factor * max(1, math.ceil(item_size(i) / 4096)) for i in items)
            with self._lock:
                self.read_units += units
        elif model.name in _LISTING_READS:
            total = sum(item_size(item) for item in parsed.get("Items", []))
            with self._lock:
                self.read_units += factor * max(1, math.ceil(total / 4096))

    def _item(self, table: str, key: dict[str, Any]) -> dict[str, Any] | None:
        started = time.perf_counter()
        item = self.reader.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")
        self.pauses.append((started, time.perf_counter()))
        return dict(item) if item else None


def _units(before: dict[str, Any] | None, after: dict[str, Any] | None) -> int:
    """A write's units: the table's, by the larger of the item before and after (1 KB a
    unit), and the index of open files', one a write that puts its key in or takes it out
    (its entries are under 1 KB), two to change it; none when the key stays as it was."""
    largest = max(item_size(before or {}), item_size(after or {}))
    units = max(1, math.ceil(largest / 1024))
    was, now = ((i or {}).get(OPEN_ATTRIBUTE) for i in (before, after))
    if was != now:
        units += (was is not None) + (now is not None)
    return units


# --- Records and invocations as AWS makes them -----------------------------------------


@functools.cache
def _block(seed: int, chunk_size: int) -> bytes:
    """The random block ``FileSpec.contents`` cuts every partition from."""
    return random.Random(seed).randbytes(chunk_size)


def chunk(spec: FileSpec, partition: int) -> bytes:
    """Partition ``partition`` of ``spec``, the same bytes ``spec.contents()`` makes."""
    length = min(spec.chunk_size, spec.size - partition * spec.chunk_size)
    return (partition.to_bytes(8, "big") + _block(spec.seed, spec.chunk_size)[8:length])[:length]


def shard_id(shard: int) -> str:
    return f"shardId-{shard:012d}"


@frozen
class Piece:
    """One chunk on its way: which file, which partition."""

    file: int
    partition: int


def interleaved(specs: Sequence[FileSpec], producers: int | None = None) -> list[Piece]:
    """The producers' chunks, record by record in turn, each file in partition order: by
    default a producer a file; else producer k sends files k, k + producers, ... one after
    another."""
    count = producers or len(specs)
    sent = (
        [Piece(f, p) for f in range(k, len(specs), count) for p in range(specs[f].partition_count)]
        for k in range(count)
    )
    rounds = itertools.zip_longest(*sent)
    return [piece for round_ in rounds for piece in round_ if piece is not None]


def record(spec: FileSpec, partition: int, shard: int, sequence: Sequencer) -> Record:
    payload = encode_payload(
        {
            "putEndpoint": spec.endpoint,
            "partition": partition,
            "partitionCount": spec.partition_count,
            "content": base64.b64encode(chunk(spec, partition)).decode("ascii"),
        }
    )
    if len(payload) > KINESIS_RECORD_LIMIT:
        raise ValueError(f"a {len(payload)}-byte record is over Kinesis's 1 MiB")
    return kinesis_record(
        payload, sequence(), partition_key=spec.path.split("?")[0], shard_id=shard_id(shard)
    )


@frozen
class Invocation:
    event: Event
    pieces: tuple[Piece, ...]
    payload_bytes: int


def invocations(
    specs: Sequence[FileSpec],
    pieces: Iterable[Piece],
    shard: int,
    max_records: int = 10_000,
    limit: int = INVOCATION_PAYLOAD_LIMIT,
) -> Iterator[Invocation]:
    """The shard's records in order, cut as Lambda cuts them: no event over ``limit`` bytes
    of JSON, no more than ``max_records`` (BatchSize) records. Made one at a time."""
    sequence = Sequencer()
    made = (
        (piece, record(specs[piece.file], piece.partition, shard, sequence)) for piece in pieces
    )
    for batch, size in cut(made, operator.itemgetter(1), max_records, limit):
        if size > limit:
            raise ValueError("one record is over the invocation payload limit")
        yield Invocation({"Records": [r for _, r in batch]}, tuple(p for p, _ in batch), size)


# --- The layouts ------------------------------------------------------------------------


@frozen
class LayoutRow:
    layout: str
    backend: str
    shards: int
    containers: int
    files: int
    file_bytes: int
    chunk_size: int
    chunks: int
    invocations: int
    records_per_invocation: float
    largest_payload_bytes: int
    handler_seconds: float
    """Sum over invocations, in the pass without the bench's own DynamoDB reads."""
    requests: dict[str, int]
    write_units: float
    read_units: float
    completing_seconds: tuple[float, ...]
    """Per file: start of the invocation holding its last chunk -> receiver has the body."""
    floor_seconds: tuple[float, ...]
    """Per file: 8-way ranged GETs of a stored copy through the proxy, then one PUT."""
    expiry_read_units: float = 0.0
    """What the items the layout left cost the expiry's runs until their TTL."""
    durable_invocations: int = 0
    """Invocations after which some file had only part of its chunks: each must make what it
    took durable before it answers, in one request at least (S3 is the only store the local
    backend has; the dynamodb backend keeps chunk bytes in S3 too)."""

    @property
    def requests_per_chunk(self) -> float:
        return sum(self.requests.values()) / self.chunks

    @property
    def dollars(self) -> dict[str, float]:
        s3_tier1 = sum(
            n
            for kind, n in self.requests.items()
            if kind.startswith("s3.") and kind[3:] not in S3_FREE and kind[3:] not in S3_GET_CLASS
        )
        s3_tier2 = sum(n for kind, n in self.requests.items() if kind[3:] in S3_GET_CLASS)
        return {
            "s3": s3_tier1 * S3_PUT_COPY_POST_LIST + s3_tier2 * S3_GET_AND_OTHERS,
            "dynamodb": self.write_units * DYNAMODB_WRITE_UNIT
            + self.read_units * DYNAMODB_READ_UNIT,
            "lambda": self.handler_seconds * LAMBDA_MEMORY_MB / 1024 * LAMBDA_GB_SECOND
            + self.invocations * LAMBDA_REQUEST,
            "expiry": self.expiry_read_units * DYNAMODB_READ_UNIT,
        }

    @property
    def dollars_per_gib(self) -> float:
        return sum(self.dollars.values()) * (1024 * MIB) / self.file_bytes

    @property
    def durable_floor(self) -> list[tuple[str, float]]:
        """What no design of the layout avoids, term by term ($): Lambda's charge per
        request; for a backend keeping chunk bytes in S3, one PUT an invocation that leaves a
        file open; for the dynamodb backend, one write unit an invocation to count what it
        took. Nothing for reads, waits or CPU."""
        terms = [(f"{self.invocations} Lambda requests", self.invocations * LAMBDA_REQUEST)]
        if self.backend != BackendName.REDIS.value:
            terms.append(
                (
                    f"a PUT each for the {self.durable_invocations} leaving a file open",
                    self.durable_invocations * S3_PUT_COPY_POST_LIST,
                )
            )
        if self.backend == BackendName.DYNAMODB.value:
            terms.append(("a write unit an invocation", self.invocations * DYNAMODB_WRITE_UNIT))
        return terms

    @property
    def durable_floor_per_gib(self) -> float:
        return sum(dollars for _, dollars in self.durable_floor) * (1024 * MIB) / self.file_bytes

    @property
    def completing_median(self) -> float:
        return statistics.median(self.completing_seconds)

    @property
    def floor_median(self) -> float:
        return statistics.median(self.floor_seconds)

    @property
    def over_floor(self) -> float:
        return self.completing_median / self.floor_median

    @property
    def mb_s(self) -> float:
        return self.file_bytes / self.handler_seconds / 1e6


@frozen
class SmallFilesRow:
    backend: str
    invocations: int
    files_per_invocation: int
    file_size: int
    payload_bytes: int
    seconds: tuple[float, ...]
    requests: dict[str, int]
    first_seconds: float
    """The container's first invocation, apart from ``seconds``: its clients' first
    connections, its pools' threads, the shard's first reads (and, on a new shard, the
    lookup of its parents). A container that runs on pays it once."""

    @property
    def files_per_second(self) -> float:
        return self.invocations * self.files_per_invocation / sum(self.seconds)

    @property
    def requests_per_file(self) -> float:
        return sum(self.requests.values()) / (self.invocations * self.files_per_invocation)


@frozen
class RealisticResults:
    aws_delay_seconds: float
    put_answer_seconds: float
    layouts: tuple[LayoutRow, ...]
    small_files: tuple[SmallFilesRow, ...]


@frozen
class Shape:
    """The sizes of one run: the defaults are the issue's; the smoke test shrinks them."""

    file_size: int = 20 * MIB
    chunk_size: int = CHUNK_SIZE
    large_file_size: int | None = LARGE_FILE_SIZE
    """One file spread over the shards on the dynamodb backend, reported beside the issue's
    layouts (None: no such row)."""
    stream_file_size: int | None = STREAM_FILE_SIZE
    """The files of the local stream's row (None: no such row)."""
    stream_files: int = STREAM_FILES
    small_files: int = SMALL_FILES_PER_INVOCATION
    small_invocations: int = 5
    small_seconds: float = 10.0
    """Stop adding small-file invocations once this much handler time is spent (one at least):
    today's slow backend then takes one, a faster one several."""


def run(world: World, shape: Shape) -> RealisticResults:
    return RealisticResults(
        aws_delay_seconds=world.aws.delay_seconds,
        put_answer_seconds=world.aws.answer_seconds,
        layouts=(
            local_interleaved(world, shape),
            *([] if shape.stream_file_size is None else [local_stream(world, shape)]),
            shared_spread(world, shape, BackendName.DYNAMODB),
            shared_spread(world, shape, BackendName.REDIS),
            *([] if shape.large_file_size is None else [large_spread(world, shape)]),
            session_spread(world, shape),
        ),
        small_files=tuple(small_files(world, backend, shape) for backend in BackendName),
    )


def _files(
    world: World,
    name: str,
    size: int,
    chunk_size: int,
    seeds: Iterable[int] = range(3),
    signature: str = SIGNATURE,
) -> list[FileSpec]:
    """A file a seed, each with its own endpoint on the receiver behind the proxy."""
    return [
        FileSpec(
            world.endpoint("realistic", name, receiver=world.aws.receiver, signature=signature),
            size,
            chunk_size,
            seed,
        )
        for seed in seeds
    ]


def _accounting(world: World) -> Accounting:
    return Accounting(world.apart_dynamodb())


def local_interleaved(world: World, shape: Shape) -> LayoutRow:
    specs = _files(world, "local", shape.file_size, shape.chunk_size)
    return _alternating(world, LOCAL_INTERLEAVED, specs, interleaved(specs))


def local_stream(world: World, shape: Shape) -> LayoutRow:
    assert shape.stream_file_size is not None
    specs = _files(
        world, "stream", shape.stream_file_size, shape.chunk_size, range(shape.stream_files)
    )
    return _alternating(world, LOCAL_STREAM, specs, interleaved(specs, PRODUCERS))


def _alternating(
    world: World, layout: str, specs: Sequence[FileSpec], order: Sequence[Piece]
) -> LayoutRow:
    """The local backend on one shard, every 7th invocation on a second warm container."""
    accounting = _accounting(world)
    containers = [world.delayed_container(BackendName.LOCAL) for _ in range(2)]
    for container in containers:
        accounting.attach(container)
    schedule = (
        (containers[1 if n % SECOND_CONTAINER_EVERY == SECOND_CONTAINER_EVERY - 1 else 0], inv)
        for n, inv in enumerate(invocations(specs, order, shard=0))
    )
    return _run_layout(world, layout, BackendName.LOCAL, 1, 2, specs, schedule, accounting)


def session_spread(world: World, shape: Shape) -> LayoutRow:
    """The dynamodb backend's layout with the endpoints a role's presigned URLs are."""
    files = functools.partial(
        _files, world, "session", shape.file_size, shape.chunk_size, signature=SESSION_SIGNATURE
    )
    length = len(files()[0].endpoint)
    return shared_spread(
        world,
        shape,
        BackendName.DYNAMODB,
        files,
        f"dynamodb: the same, {length}-byte presigned URLs (a session token)",
    )


def large_spread(world: World, shape: Shape) -> LayoutRow:
    """The dynamodb backend: one large file's chunks spread over the shards."""
    assert shape.large_file_size is not None
    files = functools.partial(
        _files, world, "large", shape.large_file_size, shape.chunk_size, seeds=[3]
    )
    (spec,) = files()
    return shared_spread(
        world,
        shape,
        BackendName.DYNAMODB,
        files,
        f"dynamodb: one {size_label(spec.size)} file ({spec.partition_count} partitions), "
        f"{SHARDS} shards",
    )


def shared_spread(
    world: World,
    shape: Shape,
    backend: BackendName,
    files: Callable[[], list[FileSpec]] | None = None,
    layout: str | None = None,
) -> LayoutRow:
    """A shared backend: the files' chunks (by default the three of the issue's layouts)
    spread over the shards. ``files`` makes the same files at new endpoints each call."""
    files = files or functools.partial(
        _files, world, backend.value, shape.file_size, shape.chunk_size
    )
    specs = files()
    accounting = _accounting(world)
    layout = layout or (REDIS_SPREAD if backend is BackendName.REDIS else DYNAMODB_SPREAD)
    schedule = _spread(world, backend, specs, accounting)
    row = _run_layout(world, layout, backend, SHARDS, SHARDS, specs, schedule, accounting)
    if backend is not BackendName.DYNAMODB:
        return row
    return _capacity(
        world,
        row,
        files(),
        lambda twins, capacity: _spread(world, backend, twins, capacity, capacity=True),
    )


def _spread(
    world: World,
    backend: BackendName,
    specs: Sequence[FileSpec],
    accounting: Accounting,
    capacity: bool = False,
) -> Iterator[tuple[Container, Invocation]]:
    """The files' chunks, chunk n of the interleaved stream on shard n mod SHARDS, a fresh
    container a shard; the shards' invocations taken in turn."""
    containers = [world.delayed_container(backend) for _ in range(SHARDS)]
    for container in containers:
        accounting.attach(container, capacity)
    order = interleaved(specs)
    # zip binds each shard's own container now: a generator expression would look the
    # shard up only when it runs, and every shard would get the last one's.
    per_shard = [
        zip(itertools.repeat(containers[shard]), invocations(specs, order[shard::SHARDS], shard))
        for shard in range(SHARDS)
    ]
    return (step for turn in itertools.zip_longest(*per_shard) for step in turn if step is not None)


def _capacity(
    world: World,
    timed: LayoutRow,
    twins: Sequence[FileSpec],
    schedule: Callable[[Sequence[FileSpec], Accounting], Iterable[tuple[Container, Invocation]]],
) -> LayoutRow:
    """``timed`` with the write and read units of the same layout run again on ``twins`` (the
    same files at new endpoints of the same length) with the capacity reader, untimed."""
    capacity = _accounting(world)
    for container, invocation in schedule(twins, capacity):
        _handled(container, invocation)
    for spec in twins:
        world.check_upload(spec, spec.sha256(), world.aws.receiver)
    _nothing_pending(world)
    sent = {kind: n for kind, n in capacity.requests.items() if kind.startswith("dynamodb.")}
    timed_sent = {kind: n for kind, n in timed.requests.items() if kind.startswith("dynamodb.")}
    if sent != timed_sent:
        # S3's deletions may differ (two lanes closing at once delete once or twice); what
        # DynamoDB is sent may not, or the units would not be the timed pass's.
        raise BenchError(
            f"{timed.layout}: the pass that counts capacity sent DynamoDB other requests than "
            f"the timed pass ({sent} vs {timed_sent})"
        )
    return evolve(timed, write_units=capacity.write_units, read_units=capacity.read_units)


def _handled(container: Container, invocation: Invocation) -> None:
    response = handle(container, invocation.event, None)
    if response["batchItemFailures"]:
        raise BenchError(f"the handler asked for redelivery: {response}")


def _run_layout(
    world: World,
    layout: str,
    backend: BackendName,
    shards: int,
    container_count: int,
    specs: Sequence[FileSpec],
    schedule: Iterable[tuple[Container, Invocation]],
    accounting: Accounting,
) -> LayoutRow:
    before = _table_keys(world) if backend is BackendName.DYNAMODB else None
    arrived = [0] * len(specs)
    completing_start: dict[int, float] = {}
    handler_seconds = 0.0
    count = records = largest = durable = 0
    for container, invocation in schedule:
        started = time.perf_counter()
        _handled(container, invocation)
        handler_seconds += time.perf_counter() - started
        if accounting.pauses:
            raise BenchError(f"{layout}: a timed pass must not read capacity beside its requests")
        count += 1
        records += len(invocation.pieces)
        largest = max(largest, invocation.payload_bytes)
        for piece in invocation.pieces:
            arrived[piece.file] += 1
            if arrived[piece.file] == specs[piece.file].partition_count:
                completing_start[piece.file] = started
        durable += any(0 < n < spec.partition_count for n, spec in zip(arrived, specs, strict=True))
    completing = []
    for index, spec in enumerate(specs):
        world.check_upload(spec, spec.sha256(), world.aws.receiver)
        finished = world.aws.receiver.finished_at(spec.path)
        started = completing_start[index]
        completing.append(finished - started)
    _nothing_pending(world)
    return LayoutRow(
        layout=layout,
        backend=backend.value,
        shards=shards,
        containers=container_count,
        files=len(specs),
        file_bytes=sum(spec.size for spec in specs),
        chunk_size=specs[0].chunk_size,
        chunks=sum(spec.partition_count for spec in specs),
        invocations=count,
        records_per_invocation=records / count,
        largest_payload_bytes=largest,
        handler_seconds=handler_seconds,
        requests=dict(sorted(accounting.requests.items())),
        write_units=accounting.write_units,
        read_units=accounting.read_units,
        completing_seconds=tuple(completing),
        floor_seconds=tuple(floor(world, spec) for spec in specs),
        expiry_read_units=0.0 if before is None else expiry_read_units(world, before),
        durable_invocations=durable,
    )


def _table_keys(world: World) -> set[str]:
    scan = world.apart_dynamodb().get_paginator("scan")
    pages = scan.paginate(TableName=TABLE, ProjectionExpression="file_id")
    return {item["file_id"]["S"] for page in pages for item in page["Items"]}


INDEX_ENTRY_OVERHEAD = 100
"""Bytes DynamoDB adds to each index entry when it sizes one."""


def expiry_read_units(world: World, before: set[str]) -> float:
    """What the items a layout left in the state table cost the expiry until their TTL. Each
    run, every EXPIRY_SECONDS, scans the index of open files and reads their items
    (eventually consistent: half a unit a 4 KB, each item rounded up on its own); an item
    out of the index (a tombstone, a chunk object's, a segment) costs it nothing. DynamoDB
    deletes an expired item within days, not at once, so this is the least they cost."""
    now = time.time()
    units = 0.0
    for page in world.apart_dynamodb().get_paginator("scan").paginate(TableName=TABLE):
        for item in page["Items"]:
            if item["file_id"]["S"] in before or OPEN_ATTRIBUTE not in item:
                continue
            lifetime = max(0.0, float(item["expires_at"]["N"]) - now)
            entry = item_size({k: item[k] for k in (KEY_ATTRIBUTE, OPEN_ATTRIBUTE)})
            read = (entry + INDEX_ENTRY_OVERHEAD) / 4096 + math.ceil(item_size(item) / 4096)
            units += 0.5 * read * lifetime / EXPIRY_SECONDS
    return units


def _nothing_pending(world: World) -> None:
    listing = world.apart_s3().list_objects_v2(Bucket=BUCKET, Prefix="pending/")
    if listing.get("KeyCount", 0):
        keys = [item["Key"] for item in listing.get("Contents", [])][:3]
        raise BenchError(f"chunks left under pending/ after every file was uploaded: {keys}")


def floor(world: World, spec: FileSpec) -> float:
    """Read the file back from S3 in chunk-sized pieces, 8 at a time through the proxy, into a
    local file; then PUT the whole to the receiver. Seconds to the last byte there.

    The pieces are stored as chunk-sized objects, not as ranges of one object: moto reads a
    whole object to serve any range of it, which S3 does not; the requests and bytes are the
    same either way.
    """
    prefix = f"bench-floor/{spec.path.split('?')[0].strip('/')}"
    direct = world.apart_s3()
    for partition in range(spec.partition_count):
        direct.put_object(
            Bucket=BUCKET, Key=f"{prefix}/{partition:05d}", Body=chunk(spec, partition)
        )
    s3 = world.delayed_s3()
    receiver = world.aws.receiver
    target = FileSpec(
        world.endpoint("realistic-floor", receiver=receiver), spec.size, spec.chunk_size, spec.seed
    )
    path = world.scratch("floor") / "file.bin"
    with path.open("wb") as out:
        out.truncate(spec.size)
    descriptor = os.open(path, os.O_WRONLY)

    def fetch(partition: int) -> None:
        key = f"{prefix}/{partition:05d}"
        body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        os.pwrite(descriptor, body, partition * spec.chunk_size)

    try:
        with plain_session() as session:
            started = time.perf_counter()
            with ThreadPoolExecutor(FLOOR_PARALLEL_GETS) as pool:
                list(pool.map(fetch, range(spec.partition_count)))
            with path.open("rb") as body:
                put_file(session, target.endpoint, body)
            seconds = receiver.finished_at(target.path) - started
    finally:
        os.close(descriptor)
    world.check_upload(target, spec.sha256(), receiver)
    path.unlink()
    return seconds


def small_files(world: World, backend: BackendName, shape: Shape) -> SmallFilesRow:
    """Invocations of ``shape.small_files`` single-chunk files on one warm container, up to
    ``shape.small_invocations`` of them or ``shape.small_seconds`` of handler time, after the
    container's first (timed apart: what a container sustains is its rate once it runs)."""
    container = world.delayed_container(backend)
    receiver = world.slow_receiver
    payload = 0

    def invoke(n: int) -> float:
        nonlocal payload
        specs = [
            FileSpec(
                world.endpoint("small", backend.value, receiver=receiver),
                SMALL_FILE_SIZE,
                SMALL_FILE_SIZE,
                seed=n * shape.small_files + i,
            )
            for i in range(shape.small_files)
        ]
        pieces = [Piece(i, 0) for i in range(len(specs))]
        (invocation,) = invocations(specs, pieces, shard=0, max_records=len(specs))
        payload = invocation.payload_bytes
        started = time.perf_counter()
        _handled(container, invocation)
        took = time.perf_counter() - started
        for spec in specs:
            world.check_upload(spec, spec.sha256(), receiver=receiver)
        return took

    first = invoke(0)
    accounting = _accounting(world)
    accounting.attach(container)
    seconds: list[float] = []
    for n in range(1, shape.small_invocations + 1):
        if sum(seconds) >= shape.small_seconds:
            break
        seconds.append(invoke(n))
    return SmallFilesRow(
        backend=backend.value,
        invocations=len(seconds),
        files_per_invocation=shape.small_files,
        file_size=SMALL_FILE_SIZE,
        payload_bytes=payload,
        seconds=tuple(seconds),
        requests=dict(sorted(accounting.requests.items())),
        first_seconds=first,
    )
