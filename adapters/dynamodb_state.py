"""DynamoDB as the shared file state: one item per file, changed only by conditional updates.

Item: ``file_id`` (key), ``partition_count``, ``received_count``, ``byte_count``, ``status``
(collecting, assembling, uploaded, failed, expired), ``p<n>`` (the first 16 bytes of
partition n's sha256), ``claim_owner``, ``claim_until``, ``finished_by`` (the owner that
closed it), ``created_at``, ``updated_at``, ``finished_at`` and ``expires_at`` (the table's
TTL attribute). Sixteen bytes a partition
keep a 15,000-partition item under DynamoDB's 400 KB.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from application.views import FileSummary
from domain import FileId, FileState, FileStatus, IncompleteFile, PartitionArrival

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

TTL_ATTRIBUTE = "expires_at"
KEY_ATTRIBUTE = "file_id"
MAX_PARTITIONS = 15_000
_CONDITION_FAILED = "ConditionalCheckFailedException"


def _partition_attribute(partition: int) -> str:
    return f"p{partition}"


class DynamoDbFileStateStore:
    def __init__(
        self,
        client: DynamoDBClient,
        table: str,
        ttl_seconds: float,
        incomplete_ttl_seconds: float = 0.0,
    ) -> None:
        """``ttl_seconds`` keeps a closed file's tombstone; a collecting file's item lives
        ``incomplete_ttl_seconds`` longer, so the expiry run always gives it up (and reports
        it) before DynamoDB's TTL could delete it unseen."""
        self._db = client
        self._table = table
        self._ttl = ttl_seconds
        self._collecting_ttl = ttl_seconds + incomplete_ttl_seconds

    def _key(self, file_id: FileId) -> dict[str, Any]:
        return {KEY_ATTRIBUTE: {"S": str(file_id)}}

    def _conditional(self, **request: Any) -> dict[str, Any] | None:
        """Run an UpdateItem; None when its condition did not hold."""
        try:
            response: dict[str, Any] = dict(self._db.update_item(TableName=self._table, **request))
        except self._db.exceptions.ConditionalCheckFailedException:
            return None
        return response

    def add_chunk(self, arrival: PartitionArrival) -> int | None:
        now = arrival.now
        response = self._conditional(
            Key=self._key(arrival.file_id),
            UpdateExpression=(
                "SET #p = :digest, partition_count = if_not_exists(partition_count, :count), "
                "#status = if_not_exists(#status, :collecting), "
                "created_at = if_not_exists(created_at, :now), updated_at = :now, "
                "put_endpoint = if_not_exists(put_endpoint, :endpoint), "
                "#ttl = :expires ADD received_count :one, byte_count :size"
            ),
            ConditionExpression=(
                "attribute_not_exists(#p) "
                "AND (attribute_not_exists(partition_count) OR partition_count = :count) "
                "AND (attribute_not_exists(#status) OR #status = :collecting) "
                "AND (attribute_not_exists(byte_count) OR byte_count <= :room)"
            ),
            ExpressionAttributeNames={
                "#p": _partition_attribute(arrival.partition),
                "#status": "status",
                "#ttl": TTL_ATTRIBUTE,
            },
            ExpressionAttributeValues={
                ":digest": {"B": bytes.fromhex(arrival.ref.digest_prefix)},
                ":count": {"N": str(arrival.partition_count)},
                ":collecting": {"S": FileStatus.COLLECTING.value},
                ":now": {"N": _number(now)},
                ":expires": {"N": str(int(now + self._collecting_ttl))},
                ":one": {"N": "1"},
                ":size": {"N": str(arrival.ref.size)},
                ":room": {"N": str(arrival.room)},
                ":endpoint": {"S": arrival.put_endpoint},
            },
            ReturnValues="UPDATED_NEW",
        )
        if response is None:
            return None
        return int(response["Attributes"]["received_count"]["N"])

    def read(self, file_id: FileId, partition: int) -> FileState | None:
        response = self._db.get_item(
            TableName=self._table,
            Key=self._key(file_id),
            ProjectionExpression="partition_count, received_count, byte_count, #status, #p",
            ExpressionAttributeNames={"#status": "status", "#p": _partition_attribute(partition)},
            ConsistentRead=True,
        )
        item = response.get("Item")
        if not item or "partition_count" not in item:
            return None
        held = item.get(_partition_attribute(partition))
        return FileState(
            partition_count=int(item["partition_count"]["N"]),
            received=int(item["received_count"]["N"]),
            size=int(item["byte_count"]["N"]),
            status=FileStatus(item["status"]["S"]),
            held_digest=bytes(held["B"]).hex() if held is not None else None,
        )

    def digests(self, file_id: FileId) -> dict[int, str]:
        response = self._db.get_item(
            TableName=self._table, Key=self._key(file_id), ConsistentRead=True
        )
        item = response.get("Item", {})
        return {
            int(name[1:]): bytes(value["B"]).hex()
            for name, value in item.items()
            if name.startswith("p") and name[1:].isdigit() and "B" in value
        }

    def claim(self, file_id: FileId, owner: str, now: float, until: float) -> bool:
        """Also pushes the TTL as a chunk does: a complete file whose uploads keep failing
        keeps its item (``sfb status``, ``sfb redrive``) as long as it keeps being tried."""
        return (
            self._conditional(
                Key=self._key(file_id),
                UpdateExpression=(
                    "SET #status = :assembling, claim_owner = :owner, claim_until = :until, "
                    "#ttl = :expires"
                ),
                ConditionExpression=(
                    "received_count = partition_count AND (#status = :collecting "
                    "OR (#status = :assembling AND claim_until < :now))"
                ),
                ExpressionAttributeNames={"#status": "status", "#ttl": TTL_ATTRIBUTE},
                ExpressionAttributeValues={
                    ":assembling": {"S": FileStatus.ASSEMBLING.value},
                    ":collecting": {"S": FileStatus.COLLECTING.value},
                    ":owner": {"S": owner},
                    ":until": {"N": _number(until)},
                    ":now": {"N": _number(now)},
                    ":expires": {"N": str(int(now + self._collecting_ttl))},
                },
            )
            is not None
        )

    def finish(self, file_id: FileId, owner: str, status: FileStatus, now: float) -> bool:
        """The tombstone keeps its closer in ``finished_by``, so the same request retried by
        botocore after a lost answer finds its own work done and succeeds: the caller then
        deletes the chunks instead of taking the claim for lost."""
        return (
            self._conditional(
                Key=self._key(file_id),
                UpdateExpression=(
                    "SET #status = :status, finished_at = :now, finished_by = :owner, "
                    "#ttl = :expires REMOVE claim_owner, claim_until"
                ),
                ConditionExpression=(
                    "claim_owner = :owner OR (finished_by = :owner AND #status = :status)"
                ),
                ExpressionAttributeNames={"#status": "status", "#ttl": TTL_ATTRIBUTE},
                ExpressionAttributeValues={
                    ":status": {"S": status.value},
                    ":owner": {"S": owner},
                    ":now": {"N": _number(now)},
                    ":expires": {"N": str(int(now + self._ttl))},
                },
            )
            is not None
        )

    def release(self, file_id: FileId, owner: str, now: float) -> None:
        self._conditional(
            Key=self._key(file_id),
            UpdateExpression=(
                "SET #status = :collecting, #ttl = :expires REMOVE claim_owner, claim_until"
            ),
            ConditionExpression="claim_owner = :owner AND #status = :assembling",
            ExpressionAttributeNames={"#status": "status", "#ttl": TTL_ATTRIBUTE},
            ExpressionAttributeValues={
                ":collecting": {"S": FileStatus.COLLECTING.value},
                ":assembling": {"S": FileStatus.ASSEMBLING.value},
                ":owner": {"S": owner},
                ":expires": {"N": str(int(now + self._collecting_ttl))},
            },
        )

    def endpoint(self, file_id: FileId) -> str | None:
        response = self._db.get_item(
            TableName=self._table,
            Key=self._key(file_id),
            ProjectionExpression="put_endpoint",
            ConsistentRead=True,
        )
        value = response.get("Item", {}).get("put_endpoint")
        return value["S"] if value is not None else None

    def unfinished(self) -> list[FileSummary]:
        summaries = []
        paginator = self._db.get_paginator("scan")
        for page in paginator.paginate(
            TableName=self._table,
            FilterExpression="#status <> :uploaded",
            ProjectionExpression=(
                "file_id, #status, received_count, partition_count, byte_count, created_at, "
                "put_endpoint"
            ),
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={":uploaded": {"S": FileStatus.UPLOADED.value}},
        ):
            for item in page.get("Items", []):
                summaries.append(
                    FileSummary(
                        FileId(item[KEY_ATTRIBUTE]["S"]),
                        item["status"]["S"],
                        int(item["received_count"]["N"]),
                        int(item["partition_count"]["N"]),
                        int(item["byte_count"]["N"]),
                        float(item["created_at"]["N"]),
                        item.get("put_endpoint", {}).get("S"),
                    )
                )
        return sorted(summaries, key=lambda summary: summary.since)

    def incomplete(self) -> list[IncompleteFile]:
        """The files still collecting with partitions missing, from a Scan of the table.

        The table rather than a listing of pending/: the item is what the give-up's condition
        reads, so candidates and the decision share one truth (a listing would count a chunk
        object whose UpdateItem never ran as received, and would need a GetItem a file for
        its status and endpoint). The scan reads every item, tombstones included (billed by
        their size); at a few runs an hour that costs little against the table's writes.
        """
        found = []
        paginator = self._db.get_paginator("scan")
        for page in paginator.paginate(
            TableName=self._table,
            FilterExpression="#status = :collecting AND received_count < partition_count",
            ProjectionExpression=(
                "file_id, received_count, partition_count, byte_count, created_at, put_endpoint"
            ),
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={":collecting": {"S": FileStatus.COLLECTING.value}},
        ):
            for item in page.get("Items", []):
                found.append(
                    IncompleteFile(
                        FileId(item[KEY_ATTRIBUTE]["S"]),
                        int(item["partition_count"]["N"]),
                        int(item["received_count"]["N"]),
                        int(item["byte_count"]["N"]),
                        float(item["created_at"]["N"]),
                        item.get("put_endpoint", {}).get("S"),
                    )
                )
        return sorted(found, key=lambda file: file.first_seen)

    def give_up(self, file: IncompleteFile, cutoff: float, now: float) -> bool:
        """One conditional update, so it can never race an assembler or a completing chunk:
        whichever DynamoDB applies first wins, and a chunk refused after it reads ``expired``.

        The item stays a tombstone for STATE_TTL_SECONDS, so late chunks are recognised.
        """
        return (
            self._conditional(
                Key=self._key(file.file_id),
                UpdateExpression=(
                    "SET #status = :expired, finished_at = :now, #ttl = :expires "
                    "REMOVE claim_owner, claim_until"
                ),
                ConditionExpression=(
                    "#status = :collecting AND received_count < partition_count "
                    "AND created_at < :cutoff"
                ),
                ExpressionAttributeNames={"#status": "status", "#ttl": TTL_ATTRIBUTE},
                ExpressionAttributeValues={
                    ":expired": {"S": FileStatus.EXPIRED.value},
                    ":collecting": {"S": FileStatus.COLLECTING.value},
                    ":cutoff": {"N": _number(cutoff)},
                    ":now": {"N": _number(now)},
                    ":expires": {"N": str(int(now + self._ttl))},
                },
            )
            is not None
        )

    def mark_redriven(self, file_id: FileId, now: float) -> None:
        self._conditional(
            Key=self._key(file_id),
            UpdateExpression="SET #status = :uploaded, finished_at = :now, #ttl = :expires",
            ConditionExpression="#status = :failed",
            ExpressionAttributeNames={"#status": "status", "#ttl": TTL_ATTRIBUTE},
            ExpressionAttributeValues={
                ":uploaded": {"S": FileStatus.UPLOADED.value},
                ":failed": {"S": FileStatus.FAILED.value},
                ":now": {"N": _number(now)},
                ":expires": {"N": str(int(now + self._ttl))},
            },
        )


def _number(value: float) -> str:
    return f"{value:.3f}"
