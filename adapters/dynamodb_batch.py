"""DynamoDB batch requests on the state table: which of many files have an item (one
BatchGetItem per 100), and their tombstones written together (one BatchWriteItem per 25).

The tombstone has the attributes a file the per-file path closed keeps (``file_id``,
``status``, ``partition_count``, ``received_count``, ``byte_count``, ``created_at``,
``finished_at``, ``finished_by``, ``expires_at``), so every later request
reads it as a closed file. It leaves out the partitions' digests and the putEndpoint:
nothing reads them once a file is closed, and without them the item stays under 1 KB (one
write unit).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING, Any

from application.tombstones import Tombstone
from domain import FileId

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

KEY_ATTRIBUTE = "file_id"
TTL_ATTRIBUTE = "expires_at"
KEYS_PER_GET = 100
"""BatchGetItem's most keys a request."""
ITEMS_PER_WRITE = 25
"""BatchWriteItem's most items a request."""
ATTEMPTS = 4
"""Requests per group, the first included, while DynamoDB leaves some of it unprocessed."""
BACKOFF_SECONDS = 0.05
"""The first wait before a group's unprocessed part is sent again; it doubles each time
(0.05, 0.1, 0.2 s: under 0.4 s in all), as AWS asks for unprocessed keys and items."""


class DynamoDbFileStateBatches:
    def __init__(
        self,
        client: DynamoDBClient,
        table: str,
        ttl_seconds: float,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """``ttl_seconds``: how long a tombstone lives (STATE_TTL_SECONDS), as a closed file's
        item does."""
        self._db = client
        self._table = table
        self._ttl = ttl_seconds
        self._sleep = sleep

    def _wait(self, attempt: int) -> None:
        if attempt:
            self._sleep(BACKOFF_SECONDS * 2 ** (attempt - 1))

    def unknown(self, file_ids: Collection[FileId]) -> frozenset[FileId]:
        wanted = sorted({str(file_id) for file_id in file_ids})  # a request repeats no key
        answered: set[str] = set()
        found: set[str] = set()
        for start in range(0, len(wanted), KEYS_PER_GET):
            keys: list[Any] = [
                {KEY_ATTRIBUTE: {"S": value}} for value in wanted[start : start + KEYS_PER_GET]
            ]
            asked = {key[KEY_ATTRIBUTE]["S"] for key in keys}
            for attempt in range(ATTEMPTS):
                if not keys:
                    break
                self._wait(attempt)
                response = self._db.batch_get_item(
                    RequestItems={
                        self._table: {
                            "Keys": keys,
                            "ProjectionExpression": KEY_ATTRIBUTE,
                            "ConsistentRead": True,
                        }
                    }
                )
                for item in response.get("Responses", {}).get(self._table, []):
                    found.add(str(item[KEY_ATTRIBUTE]["S"]))
                left: Any = response.get("UnprocessedKeys", {}).get(self._table, {})
                keys = list(left.get("Keys", []))
            unanswered = {str(key[KEY_ATTRIBUTE]["S"]) for key in keys}
            answered |= asked - unanswered
        return frozenset(FileId(value) for value in answered - found)

    def close(self, tombstones: Sequence[Tombstone]) -> list[FileId]:
        items = {str(t.file_id): self._item(t) for t in tombstones}  # a request repeats no key
        values = list(items)
        unwritten: list[FileId] = []
        for start in range(0, len(values), ITEMS_PER_WRITE):
            requests: list[Any] = [
                {"PutRequest": {"Item": items[value]}}
                for value in values[start : start + ITEMS_PER_WRITE]
            ]
            for attempt in range(ATTEMPTS):
                if not requests:
                    break
                self._wait(attempt)
                response = self._db.batch_write_item(RequestItems={self._table: requests})
                requests = list(response.get("UnprocessedItems", {}).get(self._table, []))
            unwritten += [
                FileId(str(request["PutRequest"]["Item"][KEY_ATTRIBUTE]["S"]))
                for request in requests
            ]
        return unwritten

    def _item(self, tombstone: Tombstone) -> dict[str, Any]:
        at = {"N": _number(tombstone.finished_at)}
        return {
            KEY_ATTRIBUTE: {"S": str(tombstone.file_id)},
            "status": {"S": tombstone.status.value},
            "partition_count": {"N": str(tombstone.partition_count)},
            "received_count": {"N": str(tombstone.partition_count)},
            "byte_count": {"N": str(tombstone.size)},
            "created_at": at,
            "finished_at": at,
            "finished_by": {"S": tombstone.owner},
            TTL_ATTRIBUTE: {"N": str(int(tombstone.finished_at + self._ttl))},
        }


def _number(value: float) -> str:
    return f"{value:.3f}"
