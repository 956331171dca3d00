"""Eight containers adding every partition of one large file at the same moment, on dynalite
(which serialises conditional writes per item, as DynamoDB does; moto does not): each
partition is admitted once, the count and bytes come out exact, one claim wins."""

from __future__ import annotations

import random
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import boto3

from adapters.dynamodb_state import INLINE_PARTITIONS, DynamoDbFileStateStore
from domain import ChunkRef, FileId, FileState, PartitionArrival
from tests.e2e.dynalite import create_state_table

THREADS = 8
PARTITIONS = INLINE_PARTITIONS + 60
"""Past the inline limit: the file's digests go to segments."""
NOW = 1_700_000_000.0
ENDPOINT = "https://uploads.example.com/large.bin"
TIMEOUT = 60.0
"""How long the barrier waits for every thread: a bound against a hang, not a measure."""


def ref(partition: int) -> ChunkRef:
    return ChunkRef(f"{partition:04x}" * 16, 10 + partition % 7)


def test_racing_containers_admit_each_partition_of_a_large_file_once(
    aws_env: str, dynalite_url: str
) -> None:
    client = boto3.client("dynamodb", endpoint_url=dynalite_url)
    table = f"sfb-segment-race-{uuid.uuid4().hex[:12]}"
    create_state_table(client, table)
    stores = [DynamoDbFileStateStore(client, table, ttl_seconds=86_400.0) for _ in range(THREADS)]
    barrier = threading.Barrier(THREADS, timeout=TIMEOUT)

    def send_all(number: int) -> list[int | FileState]:
        order = random.Random(number).sample(range(PARTITIONS), k=PARTITIONS)
        barrier.wait()
        return [
            stores[number].add_chunk(
                PartitionArrival(ENDPOINT, p, PARTITIONS, ref(p), 10**9, NOW + number)
            )
            for p in order
        ]

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        answers = [a for answers in pool.map(send_all, range(THREADS)) for a in answers]

    admitted = [a for a in answers if isinstance(a, int)]
    assert len(admitted) == PARTITIONS, "each partition admitted once, by one container"
    completions = [a for a in answers if (a == PARTITIONS if isinstance(a, int) else a.is_complete)]
    assert completions, "the request that completed the file said so (and its caller claims)"
    file_id = FileId.for_endpoint(ENDPOINT)
    state = stores[0].read(file_id, 0)
    assert state is not None
    assert (state.received, state.size) == (
        PARTITIONS,
        sum(ref(p).size for p in range(PARTITIONS)),
    )
    assert stores[0].digests(file_id) == {p: ref(p).digest_prefix for p in range(PARTITIONS)}
    claims = [
        store.claim(file_id, f"owner-{n}", NOW + 10, NOW + 70).won for n, store in enumerate(stores)
    ]
    assert claims.count(True) == 1
