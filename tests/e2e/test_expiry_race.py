"""The give-up of an incomplete file against its completing chunk, at the same moment, on
dynalite (which serialises conditional writes per item, as DynamoDB does; moto does not):
exactly one of the two wins, every time."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import boto3

from adapters.dynamodb_state import DynamoDbFileStateStore
from domain import ChunkRef, FileId, FileStatus, PartitionArrival
from tests.e2e.dynalite import create_state_table

FILES = 40
PARTITIONS = 3
NOW = 1_700_000_000.0
LATER = NOW + 100_000
CUTOFF = NOW + 1
TIMEOUT = 60.0
"""How long the barrier waits for both threads: a bound against a hang, not a measure."""


def ref(partition: int) -> ChunkRef:
    return ChunkRef(f"{partition:02x}" * 32, 10)


def test_a_give_up_racing_the_completing_chunk_leaves_exactly_one_winner(
    aws_env: str, dynalite_url: str
) -> None:
    client = boto3.client("dynamodb", endpoint_url=dynalite_url)
    table = f"sfb-expiry-race-{uuid.uuid4().hex[:12]}"
    create_state_table(client, table)
    store = DynamoDbFileStateStore(client, table, ttl_seconds=86_400.0)
    endpoints = [f"https://uploads.example.com/race-{n}.bin" for n in range(FILES)]
    for endpoint in endpoints:
        for partition in range(PARTITIONS - 1):
            store.add_chunk(
                PartitionArrival(endpoint, partition, PARTITIONS, ref(partition), 10**9, NOW)
            )
    candidates = {file.file_id: file for file in store.incomplete()}
    assert len(candidates) == FILES

    def complete(endpoint: str, barrier: threading.Barrier) -> bool:
        barrier.wait()
        last = PARTITIONS - 1
        received = store.add_chunk(
            PartitionArrival(endpoint, last, PARTITIONS, ref(last), 10**9, LATER)
        )
        return received == PARTITIONS

    def give_up(endpoint: str, barrier: threading.Barrier) -> bool:
        barrier.wait()
        return store.give_up(candidates[FileId.for_endpoint(endpoint)], CUTOFF, LATER)

    outcomes: dict[str, tuple[bool, bool]] = {}
    with ThreadPoolExecutor(max_workers=2) as pool:
        for endpoint in endpoints:
            barrier = threading.Barrier(2, timeout=TIMEOUT)
            completing = pool.submit(complete, endpoint, barrier)
            giving_up = pool.submit(give_up, endpoint, barrier)
            outcomes[endpoint] = (completing.result(), giving_up.result())

    for endpoint, (completed, gave_up) in outcomes.items():
        assert completed != gave_up, endpoint
        state = store.read(FileId.for_endpoint(endpoint), 0)
        assert state is not None
        if gave_up:
            assert (state.status, state.received) == (FileStatus.EXPIRED, PARTITIONS - 1)
        else:
            assert (state.status, state.received) == (FileStatus.COLLECTING, PARTITIONS)
    print(f"give-ups won {sum(g for _, g in outcomes.values())} of {FILES} races")
