"""The state table's batch requests on moto: which files have an item (BatchGetItem, 100 keys a
request), tombstones (BatchWriteItem, 25 items a request) that the per-file store reads as
closed files, and DynamoDB's unprocessed keys and items sent again with a backoff.

``lookup_contract`` and ``tombstone_contract`` run against dynalite too
(tests/e2e/test_dynamodb_batch_dynalite.py): a real server's limits and semantics.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import pytest

from adapters.dynamodb_batch import ATTEMPTS, DynamoDbFileStateBatches
from adapters.dynamodb_state import DynamoDbFileStateStore
from application.tombstones import Tombstone
from domain import FileId, FileState, FileStatus, PartitionArrival
from tests.integration.builders import ref_of, signed

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

TTL = 86_400.0
NOW = 1_700_000_000.0
OWNER = "owner-of-the-batch"
CLOSED_ITEM = {
    "file_id",
    "status",
    "partition_count",
    "received_count",
    "byte_count",
    "created_at",
    "finished_at",
    "finished_by",
    "expires_at",
}
"""A tombstone's attributes: a closed file's, less the digests and the putEndpoint."""


def endpoint(n: int) -> str:
    return signed(f"https://uploads.example.com/file-{n}.bin")


def file_id(n: int) -> FileId:
    return FileId.for_endpoint(endpoint(n))


def tombstone(n: int, status: FileStatus = FileStatus.UPLOADED) -> Tombstone:
    return Tombstone(file_id(n), status, 3, 3000 + n, NOW, OWNER)


def counting(client: DynamoDBClient) -> list[str]:
    """The names of the client's calls from now on, once a call."""
    calls: list[str] = []
    client.meta.events.register(
        "before-call.dynamodb", lambda model, **_: calls.append(str(model.name))
    )
    return calls


def lookup_contract(client: DynamoDBClient, table: str) -> None:
    """Of 130 files, the 40 the per-file store knows are not unknown: two requests."""
    store = DynamoDbFileStateStore(client, table, ttl_seconds=TTL)
    known = set(range(0, 130, 13)) | set(range(1, 30))
    for n in known:
        arrival = PartitionArrival(endpoint(n), 0, 3, ref_of(b"abc"), max_file_bytes=10**9, now=NOW)
        assert store.add_chunk(arrival) == 1
    batches = DynamoDbFileStateBatches(client, table, ttl_seconds=TTL)
    calls = counting(client)

    unknown = batches.unknown([file_id(n) for n in range(130)] + [file_id(0), file_id(200)])

    assert unknown == {file_id(n) for n in [*range(130), 200] if n not in known}
    assert calls == ["BatchGetItem", "BatchGetItem"]


def tombstone_contract(client: DynamoDBClient, table: str) -> None:
    """60 tombstones in three requests; the per-file store reads each as a closed file."""
    batches = DynamoDbFileStateBatches(client, table, ttl_seconds=TTL)
    store = DynamoDbFileStateStore(client, table, ttl_seconds=TTL)
    calls = counting(client)

    unwritten = batches.close(
        [tombstone(n) for n in range(59)] + [tombstone(59, FileStatus.FAILED)]
    )

    assert unwritten == []
    assert calls == ["BatchWriteItem"] * 3
    item = client.get_item(TableName=table, Key={"file_id": {"S": str(file_id(7))}})["Item"]
    assert set(item) == CLOSED_ITEM
    assert (item["status"], item["finished_by"]) == ({"S": "uploaded"}, {"S": OWNER})
    assert item["partition_count"] == item["received_count"] == {"N": "3"}
    assert item["byte_count"] == {"N": "3007"}
    assert item["expires_at"] == {"N": str(int(NOW + TTL))}
    late = PartitionArrival(endpoint(7), 1, 3, ref_of(b"late"), max_file_bytes=10**9, now=NOW)
    state = store.add_chunk(late)
    assert isinstance(state, FileState), "a late chunk of a tombstoned file is refused"
    assert (state.status, state.received, state.partition_count, state.size) == (
        FileStatus.UPLOADED,
        3,
        3,
        3007,
    )
    failed = store.read(file_id(59), 0)
    assert failed is not None
    assert (failed.status, failed.received, failed.partition_count) == (FileStatus.FAILED, 3, 3)
    assert store.unfinished() == [], "closed: sfb status lists a failed file from failed/"
    assert store.incomplete() == []
    assert batches.unknown([file_id(n) for n in range(60)]) == frozenset()


def test_the_lookup_says_which_files_have_no_item_100_keys_a_request(
    dynamodb: DynamoDBClient, table: str
) -> None:
    lookup_contract(dynamodb, table)


def test_tombstones_go_25_a_request_and_read_as_closed_files(
    dynamodb: DynamoDBClient, table: str
) -> None:
    tombstone_contract(dynamodb, table)


def test_an_empty_lookup_or_close_sends_nothing(dynamodb: DynamoDBClient, table: str) -> None:
    batches = DynamoDbFileStateBatches(dynamodb, table, ttl_seconds=TTL)
    calls = counting(dynamodb)

    assert (batches.unknown([]), batches.close([])) == (frozenset(), [])
    assert calls == []


class UnderLoad:
    """DynamoDB under load: each of the next ``times`` batch requests processes its first
    ``keep`` keys or items only and returns the rest unprocessed, as DynamoDB may."""

    def __init__(self, client: DynamoDBClient, keep: int, times: int) -> None:
        self.client = client
        self.keep = keep
        self.times = times
        self.sizes: list[int] = []

    def _split(self, work: list[Any]) -> tuple[list[Any], list[Any]]:
        self.sizes.append(len(work))
        if not self.times:
            return work, []
        self.times -= 1
        return work[: self.keep], work[self.keep :]

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        [(name, request)] = RequestItems.items()
        sent, left = self._split(request["Keys"])
        response: dict[str, Any] = {"Responses": {name: []}, "UnprocessedKeys": {}}
        if sent:
            asked: Any = {name: {**request, "Keys": sent}}
            response = dict(self.client.batch_get_item(RequestItems=asked))
        if left:
            response["UnprocessedKeys"] = {name: {**request, "Keys": left}}
        return response

    def batch_write_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        [(name, requests)] = RequestItems.items()
        sent, left = self._split(requests)
        if sent:
            self.client.batch_write_item(RequestItems={name: sent})
        return {"UnprocessedItems": {name: left} if left else {}}


def _lookup(batches: DynamoDbFileStateBatches) -> object:
    return batches.unknown([file_id(n) for n in range(100)])


def _close(batches: DynamoDbFileStateBatches) -> object:
    return batches.close([tombstone(n) for n in range(25)])


@pytest.mark.parametrize(
    ("call", "keep", "times", "sizes", "answer"),
    [
        (_lookup, 30, 1, [100, 70], {file_id(n) for n in range(100)}),
        (_lookup, 0, ATTEMPTS, [100] * ATTEMPTS, frozenset()),
        (_close, 10, 1, [25, 15], []),
        (_close, 0, ATTEMPTS, [25] * ATTEMPTS, [file_id(n) for n in range(25)]),
    ],
    ids=[
        "keys-left-once-are-sent-again",
        "keys-never-answered-are-not-called-unknown",
        "items-left-once-are-sent-again",
        "items-never-written-are-returned",
    ],
)
def test_what_dynamodb_leaves_unprocessed_is_sent_again_with_a_backoff_three_times_at_most(
    dynamodb: DynamoDBClient,
    table: str,
    call: Callable[[DynamoDbFileStateBatches], object],
    keep: int,
    times: int,
    sizes: list[int],
    answer: object,
) -> None:
    loaded = UnderLoad(dynamodb, keep, times)
    waits: list[float] = []
    batches = DynamoDbFileStateBatches(
        cast("DynamoDBClient", loaded), table, ttl_seconds=TTL, sleep=waits.append
    )

    assert call(batches) == answer
    assert loaded.sizes == sizes
    assert waits == [0.05, 0.1, 0.2][: len(sizes) - 1]
