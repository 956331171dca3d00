"""DynamoDB as the shared file state: changed only by conditional updates, in items that do
not grow with the file.

The file's item (key ``file_id``): ``partition_count``, ``received_count``, ``byte_count``,
``status`` (collecting, assembling, uploaded, failed, expired), ``claim_owner``,
``claim_until``, ``finished_by`` (the owner that closed it), ``created_at``, ``finished_at``,
``opened`` (while open: the key of OPEN_INDEX), ``expires_at`` (the table's TTL attribute,
which also dates an open file's last change: no ``updated_at`` is billed in every write) and
``put_endpoint`` when it is short (a long one has an item of its own, ``e#<file_id>``:
ENDPOINT_INLINE_MOST).

Where the digests (the first 16 bytes of each partition's sha256) live depends on the file's
partitionCount, which its first chunk fixes:

- Up to INLINE_PARTITIONS, as ``p<n>`` in the file's item (the digest, then the 6-byte id
  of the object holding the chunk's bytes: adapters/chunk_objects.py), written by the one
  conditional update that counts the partition, or that counts all of a batch's new
  partitions of the file at once. DynamoDB bills a write by the whole item,
  which grows about 28 bytes a partition: a small file's chunks cost about one write unit
  each, less than the two a chunk below costs.
- Beyond, in segment items in the same table, keyed ``<file_id>#<gen>#<segment>``:
  SEGMENT_PARTITIONS partitions a segment, ``p<i>`` = digest, token and object id for
  partition ``segment * SEGMENT_PARTITIONS + i``, so a segment stays under 1 KB (one write
  unit). ``gen`` is drawn when the file's item is created: a file started again once its
  tombstone is gone never meets the segments of the one before. A chunk takes two
  conditional updates:

  1. reserve, in the file's item: ``r<n>`` = digest, a token drawn for this attempt, the
     size and the object id, counted in ``received_count`` and ``byte_count``, if no
     ``r<n>`` is there and the count, status and room allow (every rule of admission, in
     one request);
  2. commit, in the segment: ``p<i>`` = digest, token and object id, if absent.

  A reservation is the partition's claim to be counted: its chunk was made durable before it,
  so until it is committed the file's item holds its digest (``digests`` reads both). One
  whose commit finds the partition committed with another token belongs to a duplicate of a
  partition counted before: it is taken back (removed, uncounted) by a third update
  conditional on its own value. Whoever meets a reservation it did not make settles it the
  same way, committing it on its holder's behalf if it is not yet committed, so a crash
  between the two requests is repaired by the next request to meet it (the record's
  redelivery) and never counts a partition twice. A committed reservation is removed by its
  container's next reservation of the same file, so the file's item holds about one per
  container that sent it chunks, whatever the file's size.

  A batch's new chunks of one file are reserved by one update (all or none, as one chunk's),
  then committed by one update a segment they fall in. A commit that finds one of them
  counted before (its reservation swept since) commits the others alone and takes that one
  back; each chunk is then added alone, and one whose reservation, same digest and same
  object, stands committed answers as added: it was counted by the batch's own request.

Write units a chunk: ~1 for a file of up to INLINE_PARTITIONS partitions (its item), 2 beyond
(a file item without digests, and a segment under 1 KB) for a chunk counted alone, about
(1 + segments) / chunks for a batch's chunks of a file counted together, whatever the file's
size: linear in the chunks, with no cap of the backend's own on the partition count.
"""

from __future__ import annotations

import logging
import math
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from attrs import evolve, frozen
from botocore.exceptions import ClientError

from application.chunk_objects import COUNTED_TOGETHER_MOST
from application.views import FileSummary
from domain import (
    DIGEST_PREFIX,
    Claim,
    FileId,
    FileState,
    FileStatus,
    IncompleteFile,
    PartitionArrival,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

log = logging.getLogger("sfb")

TTL_ATTRIBUTE = "expires_at"
KEY_ATTRIBUTE = "file_id"
OPEN_ATTRIBUTE = "opened"
"""Set on a file's item while it is collecting or assembling, removed when it closes: the
key of OPEN_INDEX, so only open files are in that index. Its value is the file id's first
OPEN_KEY_CHARS characters: it spreads the index's writes over 65,536 keys, and it is short
because every byte of it is billed in every write of the item."""
OPEN_KEY_CHARS = 4
OPEN_CONDITION = "#status IN (:collecting, :assembling)"
OPEN_VALUES: dict[str, Any] = {
    ":collecting": {"S": FileStatus.COLLECTING.value},
    ":assembling": {"S": FileStatus.ASSEMBLING.value},
}
"""An open file's item, as a condition on its status (``#status``) and the values it names."""
OPEN_INDEX = "open-files"
"""A sparse index of the open files (keys only): the expiry reads it instead of scanning
the whole table, whose tombstones and chunk objects' items outnumber the open files by far.
Its key is set once and removed once, so only a file's creation and its close write it."""
TABLE_DEFINITION: dict[str, Any] = {
    "KeySchema": [{"AttributeName": KEY_ATTRIBUTE, "KeyType": "HASH"}],
    "AttributeDefinitions": [
        {"AttributeName": KEY_ATTRIBUTE, "AttributeType": "S"},
        {"AttributeName": OPEN_ATTRIBUTE, "AttributeType": "S"},
    ],
    "GlobalSecondaryIndexes": [
        {
            "IndexName": OPEN_INDEX,
            "KeySchema": [{"AttributeName": OPEN_ATTRIBUTE, "KeyType": "HASH"}],
            "Projection": {"ProjectionType": "KEYS_ONLY"},
        }
    ],
    "BillingMode": "PAY_PER_REQUEST",
}
"""The state table's keys and index (``sfb provision``, the template, the tests)."""
ENDPOINT_INLINE_MOST = 256
"""Bytes of an endpoint kept in the file's item. DynamoDB bills every write of the item by its
whole size, so a longer one (a presigned URL is 0.5 to 2 KB with a role's session token)
would add a write unit or two to each chunk's add: it goes in an item of its own instead
(``e#<file id>``), written once by each container that adds a chunk of the file."""
ENDPOINT_PREFIX = "e#"
ENDPOINTS_KEPT = 4_096
"""Files whose long endpoint a container remembers having written; one it forgets is
written again (the same value)."""
INLINE_PARTITIONS = 100
"""Files of at most this many partitions keep their digests in their own item (about 2 KB
plus a short endpoint at most): one request a chunk, where more would cost more units."""
SEGMENT_PARTITIONS = 28
"""Partitions a segment item: 28 x 33 bytes (name, digest, token, object id) plus its key
keep it under 1 KB."""
SEGMENT_GRACE_SECONDS = 8 * 86_400.0
"""A segment outlives its last chunk by the file's own TTL plus the pending/ lifecycle rule's
8 days: a complete file whose uploads keep failing keeps its digests as long as its chunks."""
BATCH_GET_KEYS = 100
"""BatchGetItem's most keys a request."""
SWEEP_PER_REQUEST = 64
"""The most committed reservations one reservation removes along with it."""
SWEEP_FILES = 1_024
"""Files whose committed reservations a container remembers; one it forgets leaves them
in the file's item, where they do no harm."""
_DIGEST_BYTES = DIGEST_PREFIX // 2
_TOKEN_BYTES = 8
_SIZE_BYTES = 8
_UNPROCESSED_ATTEMPTS = 8
_DELETES_PER_REQUEST = 25
"""BatchWriteItem's most items a request."""


def _inline(arrival: PartitionArrival) -> bool:
    return len(arrival.put_endpoint.encode()) <= ENDPOINT_INLINE_MOST


def _first_seen(arrival: PartitionArrival) -> str:
    return _FIRST_SEEN + (_ENDPOINT_INLINE if _inline(arrival) else "")


def open_key(file_id: FileId) -> str:
    """The value of OPEN_ATTRIBUTE for a file."""
    return str(file_id)[:OPEN_KEY_CHARS]


def delete_items(db: DynamoDBClient, table: str, keys: Sequence[dict[str, Any]]) -> None:
    """Delete the items of ``keys`` with BatchWriteItem (25 a request), asking again for
    those DynamoDB leaves unprocessed after a growing pause; raises when some are still left."""
    for start in range(0, len(keys), _DELETES_PER_REQUEST):
        group: list[Any] = [
            {"DeleteRequest": {"Key": key}} for key in keys[start : start + _DELETES_PER_REQUEST]
        ]
        for attempt in range(_UNPROCESSED_ATTEMPTS):
            if attempt:
                time.sleep(min(0.05 * 2**attempt, 1.0))
            response = db.batch_write_item(RequestItems={table: group})
            group = list(response.get("UnprocessedItems", {}).get(table, []))
            if not group:
                break
        else:
            raise RuntimeError(f"DynamoDB left {len(group)} deletes unprocessed")


def read_items(
    db: DynamoDBClient,
    table: str,
    keys: Sequence[dict[str, Any]],
    consistent: bool = True,
    **read: Any,
) -> list[dict[str, Any]]:
    """The items of ``keys`` that exist, read with BatchGetItem (100 keys a request;
    ``read``: a projection and its names), consistently unless told (half the read units,
    for what never changes once written); keys DynamoDB leaves unprocessed (when throttled)
    are asked again after a growing pause, as AWS advises."""
    found: list[dict[str, Any]] = []
    for start in range(0, len(keys), BATCH_GET_KEYS):
        wanted = {"Keys": list(keys[start : start + BATCH_GET_KEYS]), "ConsistentRead": consistent}
        request: dict[str, Any] = {table: {**wanted, **read}}
        for attempt in range(_UNPROCESSED_ATTEMPTS):
            response = db.batch_get_item(RequestItems=request)
            found += [dict(item) for item in response.get("Responses", {}).get(table, [])]
            request = dict(response.get("UnprocessedKeys") or {})
            if not request:
                break
            time.sleep(min(0.05 * 2**attempt, 1.0))
        else:
            raise RuntimeError("DynamoDB left items unread after repeated BatchGetItem")
    return found


@frozen
class _Reservation:
    """A partition counted in the file's item, waiting to be committed in its segment."""

    digest: bytes
    token: bytes
    size: int
    where: bytes = b""
    """The object holding the chunk's bytes (empty: none recorded)."""

    @classmethod
    def of(cls, value: bytes) -> _Reservation:
        token_end = _DIGEST_BYTES + _TOKEN_BYTES
        size_end = token_end + _SIZE_BYTES
        return cls(
            value[:_DIGEST_BYTES],
            value[_DIGEST_BYTES:token_end],
            int.from_bytes(value[token_end:size_end]),
            value[size_end:],
        )

    @property
    def value(self) -> bytes:
        return self.digest + self.token + self.size.to_bytes(_SIZE_BYTES) + self.where

    @property
    def committed(self) -> bytes:
        """What its segment holds once it is committed: digest, token, object id."""
        return self.digest + self.token + self.where

    def made(self, committed: bytes) -> bool:
        """Whether ``committed`` (a segment's value) was committed from this reservation."""
        return committed[_DIGEST_BYTES : _DIGEST_BYTES + _TOKEN_BYTES] == self.token

    def same_chunk(self, other: _Reservation) -> bool:
        """The same bytes in the same chunk object: reserved by this very batch."""
        return bool(self.where) and (self.digest, self.where) == (other.digest, other.where)


def _split_committed(value: bytes) -> tuple[bytes, bytes]:
    """A segment's value as (digest, object id)."""
    return value[:_DIGEST_BYTES], value[_DIGEST_BYTES + _TOKEN_BYTES :]


def _inline_name(partition: int) -> str:
    return f"p{partition}"


def _reservation_name(partition: int) -> str:
    return f"r{partition}"


def _slot_name(partition: int) -> str:
    return f"p{partition % SEGMENT_PARTITIONS}"


def _numbered(item: dict[str, Any], prefix: str) -> Iterator[tuple[int, bytes]]:
    """The item's ``<prefix><n>`` binary attributes, as (n, value)."""
    for name, value in item.items():
        if name.startswith(prefix) and name[1:].isdigit() and "B" in value:
            yield int(name[1:]), bytes(value["B"])


def _inline_value(arrival: PartitionArrival, where: bytes) -> bytes:
    """A partition in the file's own item: its digest, then the object holding its bytes."""
    return bytes.fromhex(arrival.ref.digest_prefix) + where


def _one_file(arrivals: Sequence[PartitionArrival]) -> bool:
    """Two or more distinct partitions of one file, all of one partition count."""
    first = arrivals[0]
    return (
        len(arrivals) > 1
        and len({arrival.partition for arrival in arrivals}) == len(arrivals)
        and all(
            arrival.file_id == first.file_id and arrival.partition_count == first.partition_count
            for arrival in arrivals
        )
    )


def _known(item: dict[str, Any]) -> None:
    """A refusal found the file's item: only a missing one could not refuse a first chunk."""
    if "partition_count" not in item:
        raise RuntimeError("the file's state vanished while a chunk was being added")


def _state(item: dict[str, Any], held: bytes | None = None) -> FileState:
    return FileState(
        partition_count=int(item["partition_count"]["N"]),
        received=int(item["received_count"]["N"]),
        size=int(item["byte_count"]["N"]),
        status=FileStatus(item["status"]["S"]),
        held_digest=held[:_DIGEST_BYTES].hex() if held is not None else None,
    )


_FIRST_SEEN = (
    "partition_count = if_not_exists(partition_count, :count), "
    "#status = if_not_exists(#status, :collecting), "
    "created_at = if_not_exists(created_at, :now), "
    f"#ttl = :expires, {OPEN_ATTRIBUTE} = if_not_exists({OPEN_ATTRIBUTE}, :opened)"
)
"""What a chunk sets in the file's item: its first chunk leaves count and first-seen."""
_ENDPOINT_INLINE = ", put_endpoint = if_not_exists(put_endpoint, :endpoint)"
"""And a short endpoint (ENDPOINT_INLINE_MOST), the first chunk's, beside them."""
_ADMITS = (
    "(attribute_not_exists(partition_count) OR partition_count = :count) "
    "AND (attribute_not_exists(#status) OR #status = :collecting) "
    "AND (attribute_not_exists(byte_count) OR byte_count <= :room)"
)
"""The rules of admission the file's item holds: the first count, collecting, room."""


_CLAIMED_KEPT = 64
"""Claimed items kept for their assembly (one a lane at most)."""


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
        self._lock = threading.Lock()
        self._claimed: dict[FileId, dict[str, Any]] = {}
        """The item as this container's claim of the file left it (the claim returns it):
        read by the assembly that follows at once instead of a GetItem."""
        self._unswept: dict[FileId, list[str]] = {}
        """Reservations this container committed and has not removed yet, by file."""
        self._endpoints_kept: OrderedDict[FileId, None] = OrderedDict()
        """Files whose long endpoint this container wrote (``_keep_endpoint``)."""

    def _key(self, file_id: FileId) -> dict[str, Any]:
        return {KEY_ATTRIBUTE: {"S": str(file_id)}}

    def _segment_key(self, file_id: FileId, gen: str, partition: int) -> dict[str, Any]:
        return {KEY_ATTRIBUTE: {"S": f"{file_id}#{gen}#{partition // SEGMENT_PARTITIONS}"}}

    def _conditional(self, **request: Any) -> dict[str, Any] | None:
        """Run an UpdateItem; None when its condition did not hold."""
        try:
            response: dict[str, Any] = dict(self._db.update_item(TableName=self._table, **request))
        except self._db.exceptions.ConditionalCheckFailedException:
            return None
        return response

    def _update(self, key: dict[str, Any], **request: Any) -> tuple[bool, dict[str, Any]]:
        """Run a conditional UpdateItem: (True, the attributes it returned) when applied,
        (False, the item as the refusal found it) when not.

        DynamoDB returns that item with the refusal (ALL_OLD), so knowing why takes no second
        request; an emulator that predates the parameter (dynalite) returns none, and one
        consistent GetItem stands in for it.
        """
        try:
            response = self._db.update_item(
                TableName=self._table,
                Key=key,
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
                **request,
            )
        except self._db.exceptions.ConditionalCheckFailedException as error:
            refusal: dict[str, Any] = dict(error.response)
            found: dict[str, Any] | None = refusal.get("Item")
            if found is None:
                found = self._get(key)
            return False, found or {}
        return True, dict(response.get("Attributes", {}))

    def _get(self, key: dict[str, Any]) -> dict[str, Any] | None:
        item = self._db.get_item(TableName=self._table, Key=key, ConsistentRead=True).get("Item")
        return dict(item) if item else None

    def _arrival_values(self, arrival: PartitionArrival) -> dict[str, Any]:
        return {
            ":count": {"N": str(arrival.partition_count)},
            ":collecting": {"S": FileStatus.COLLECTING.value},
            ":now": {"N": _number(arrival.now)},
            ":expires": {"N": str(int(arrival.now + self._collecting_ttl))},
            ":one": {"N": "1"},
            ":size": {"N": str(arrival.ref.size)},
            ":room": {"N": str(arrival.room)},
            ":opened": {"S": open_key(arrival.file_id)},
        } | ({":endpoint": {"S": arrival.put_endpoint}} if _inline(arrival) else {})

    def _together_values(self, arrivals: Sequence[PartitionArrival]) -> dict[str, Any]:
        """What one chunk's add sets, counted for all of them at once: their number, their
        bytes, and room for them all under MAX_FILE_BYTES."""
        first = arrivals[0]
        size = sum(arrival.ref.size for arrival in arrivals)
        values = self._arrival_values(first)
        del values[":one"]
        return {
            **values,
            ":many": {"N": str(len(arrivals))},
            ":size": {"N": str(size)},
            ":room": {"N": str(first.max_file_bytes - size)},
        }

    def add_chunk(self, arrival: PartitionArrival) -> int | FileState:
        return self._add(arrival, b"")

    def add_stored(self, arrival: PartitionArrival, object_id: str) -> int | FileState:
        """The object id goes beside the digest: 6 bytes a partition in the item or segment."""
        return self._add(arrival, bytes.fromhex(object_id))

    def add_stored_together(
        self, arrivals: Sequence[PartitionArrival], object_id: str
    ) -> int | None:
        """One conditional update for all of them when the file keeps its digests in its
        own item; beyond, one reservation of them all, then one commit a segment. None when
        the condition fails (nothing counted, no second request) or a commit finds a
        partition counted before: each is then added alone, and one counted here answers as
        added (``_add_segmented``)."""
        first = arrivals[0]
        if not _one_file(arrivals) or len(arrivals) > COUNTED_TOGETHER_MOST:
            return None
        where = bytes.fromhex(object_id)
        self._keep_endpoint(first)
        if first.partition_count > INLINE_PARTITIONS:
            return self._add_segmented_together(arrivals, where)
        names = {f"#p{i}": _inline_name(a.partition) for i, a in enumerate(arrivals)}
        digests = {f":d{i}": {"B": _inline_value(a, where)} for i, a in enumerate(arrivals)}
        response = self._conditional(
            Key=self._key(first.file_id),
            UpdateExpression=(
                f"SET {', '.join(f'#p{i} = :d{i}' for i in range(len(arrivals)))}, "
                f"{_first_seen(first)} ADD received_count :many, byte_count :size"
            ),
            ConditionExpression=(
                " AND ".join(f"attribute_not_exists(#p{i})" for i in range(len(arrivals)))
                + f" AND {_ADMITS}"
            ),
            ExpressionAttributeNames={**names, "#status": "status", "#ttl": TTL_ATTRIBUTE},
            ExpressionAttributeValues={**self._together_values(arrivals), **digests},
            ReturnValues="UPDATED_NEW",
        )
        if response is None:
            return None
        return int(response["Attributes"]["received_count"]["N"])

    def _add_segmented_together(
        self, arrivals: Sequence[PartitionArrival], where: bytes
    ) -> int | None:
        """Reserve all in the file's item at once, then commit them a segment at a time."""
        first = arrivals[0]
        file_id = first.file_id
        mine = [
            _Reservation(
                bytes.fromhex(a.ref.digest_prefix),
                secrets.token_bytes(_TOKEN_BYTES),
                a.ref.size,
                where,
            )
            for a in arrivals
        ]
        names = {f"#r{i}": _reservation_name(a.partition) for i, a in enumerate(arrivals)}
        swept = self._take_sweep(file_id, besides=names.values())
        sweep = {f"#s{i}": swept_name for i, swept_name in enumerate(swept)}
        applied, item = self._update(
            self._key(file_id),
            UpdateExpression=(
                f"SET {', '.join(f'{n} = :r{n[2:]}' for n in names)}, "
                f"#gen = if_not_exists(#gen, :gen), {_first_seen(first)} "
                "ADD received_count :many, byte_count :size"
                + (f" REMOVE {', '.join(sweep)}" if sweep else "")
            ),
            ConditionExpression=(
                " AND ".join(f"attribute_not_exists({n})" for n in names) + f" AND {_ADMITS}"
            ),
            ExpressionAttributeNames={
                **names,
                "#gen": "gen",
                "#status": "status",
                "#ttl": TTL_ATTRIBUTE,
                **sweep,
            },
            ExpressionAttributeValues={
                **self._together_values(arrivals),
                **{f":r{i}": {"B": reservation.value} for i, reservation in enumerate(mine)},
                ":gen": {"S": secrets.token_hex(4)},
            },
            ReturnValues="ALL_NEW",
        )
        ours = all(
            name in item and bytes(item[name]["B"]) == reservation.value
            for name, reservation in zip(names.values(), mine, strict=True)
        )
        if not applied and not ours:  # ours: an earlier send of this request reserved them
            status = item.get("status", {}).get("S")
            if status is None or not FileStatus(status).is_closed:
                self._give_back(file_id, swept)
            return None
        stands = self._commit_together(file_id, item["gen"]["S"], arrivals, mine)
        taken_back = False
        for arrival, reservation in zip(arrivals, mine, strict=True):
            if not reservation.made(stands[arrival.partition]):
                # Counted before, its reservation swept since: a duplicate, taken back.
                self._take_back(file_id, arrival.partition, reservation)
                taken_back = True
        if taken_back:
            return None  # each alone now: those committed here answer as added
        for name in names.values():
            self._remember_sweep(file_id, name)
        return self._received(file_id, item, first)

    def _commit_together(
        self,
        file_id: FileId,
        gen: str,
        arrivals: Sequence[PartitionArrival],
        reservations: Sequence[_Reservation],
    ) -> dict[int, bytes]:
        """Commit each reservation, one request a segment (each partition alone in a segment
        that holds one of them already); what each partition's segment holds then."""
        now = arrivals[0].now
        segments: dict[int, list[tuple[int, _Reservation]]] = {}
        for arrival, reservation in zip(arrivals, reservations, strict=True):
            segment = arrival.partition // SEGMENT_PARTITIONS
            segments.setdefault(segment, []).append((arrival.partition, reservation))
        stands: dict[int, bytes] = {}
        for members in segments.values():
            if len(members) > 1 and self._conditional(
                Key=self._segment_key(file_id, gen, members[0][0]),
                UpdateExpression=(
                    f"SET {', '.join(f'#p{i} = :p{i}' for i in range(len(members)))}, "
                    "#ttl = :expires"
                ),
                ConditionExpression=" AND ".join(
                    f"attribute_not_exists(#p{i})" for i in range(len(members))
                ),
                ExpressionAttributeNames={
                    **{f"#p{i}": _slot_name(p) for i, (p, _) in enumerate(members)},
                    "#ttl": TTL_ATTRIBUTE,
                },
                ExpressionAttributeValues={
                    **{f":p{i}": {"B": r.committed} for i, (_, r) in enumerate(members)},
                    ":expires": {"N": self._segment_expiry(now)},
                },
            ):
                stands.update((p, r.committed) for p, r in members)
                continue
            for partition, reservation in members:
                stands[partition] = self._commit(file_id, gen, partition, reservation, now)
        return stands

    def _add(self, arrival: PartitionArrival, where: bytes) -> int | FileState:
        self._keep_endpoint(arrival)
        if arrival.partition_count <= INLINE_PARTITIONS:
            return self._add_inline(arrival, where)
        return self._add_segmented(arrival, where)

    def _keep_endpoint(self, arrival: PartitionArrival) -> None:
        """A long endpoint goes in its own item before the first add this container makes of
        the file: no item then counts a chunk whose endpoint could be missing, and the
        file's item stays small. An unconditional write: the same value each time."""
        if _inline(arrival):
            return
        with self._lock:
            if arrival.file_id in self._endpoints_kept:
                self._endpoints_kept.move_to_end(arrival.file_id)
                return
        self._db.update_item(
            TableName=self._table,
            Key=self._endpoint_key(arrival.file_id),
            UpdateExpression="SET put_endpoint = :endpoint, #ttl = :expires",
            ExpressionAttributeNames={"#ttl": TTL_ATTRIBUTE},
            ExpressionAttributeValues={
                ":endpoint": {"S": arrival.put_endpoint},
                ":expires": {"N": self._segment_expiry(arrival.now)},
            },
        )
        with self._lock:
            self._endpoints_kept[arrival.file_id] = None
            while len(self._endpoints_kept) > ENDPOINTS_KEPT:
                self._endpoints_kept.popitem(last=False)

    def _endpoint_key(self, file_id: FileId) -> dict[str, Any]:
        return {KEY_ATTRIBUTE: {"S": f"{ENDPOINT_PREFIX}{file_id}"}}

    def _add_inline(self, arrival: PartitionArrival, where: bytes) -> int | FileState:
        name = _inline_name(arrival.partition)
        value = _inline_value(arrival, where)
        applied, item = self._update(
            self._key(arrival.file_id),
            UpdateExpression=(
                f"SET #p = :digest, {_first_seen(arrival)} "
                "ADD received_count :one, byte_count :size"
            ),
            ConditionExpression=f"attribute_not_exists(#p) AND {_ADMITS}",
            ExpressionAttributeNames={"#p": name, "#status": "status", "#ttl": TTL_ATTRIBUTE},
            ExpressionAttributeValues={
                **self._arrival_values(arrival),
                ":digest": {"B": value},
            },
            ReturnValues="UPDATED_NEW",
        )
        if applied:
            return int(item["received_count"]["N"])
        _known(item)
        held = item.get(name)
        if where and held is not None and bytes(held["B"]) == value:
            # This chunk of this object: an earlier send of this request, its answer lost.
            return int(item["received_count"]["N"])
        return _state(item, bytes(held["B"]) if held is not None else None)

    def _add_segmented(self, arrival: PartitionArrival, where: bytes) -> int | FileState:
        """Reserve, then commit; see the module's docstring."""
        file_id, partition = arrival.file_id, arrival.partition
        name = _reservation_name(partition)
        mine = _Reservation(
            bytes.fromhex(arrival.ref.digest_prefix),
            secrets.token_bytes(_TOKEN_BYTES),
            arrival.ref.size,
            where,
        )
        for attempt in range(2):
            swept = self._take_sweep(file_id, besides=name)
            sweep = {f"#s{i}": swept_name for i, swept_name in enumerate(swept)}
            applied, item = self._update(
                self._key(file_id),
                UpdateExpression=(
                    "SET #r = :reservation, #gen = if_not_exists(#gen, :gen), "
                    f"{_first_seen(arrival)} "
                    "ADD received_count :one, byte_count :size"
                    + (f" REMOVE {', '.join(sweep)}" if sweep else "")
                ),
                ConditionExpression=f"attribute_not_exists(#r) AND {_ADMITS}",
                ExpressionAttributeNames={
                    "#r": name,
                    "#gen": "gen",
                    "#status": "status",
                    "#ttl": TTL_ATTRIBUTE,
                    **sweep,
                },
                ExpressionAttributeValues={
                    **self._arrival_values(arrival),
                    ":reservation": {"B": mine.value},
                    ":gen": {"S": secrets.token_hex(4)},
                },
                ReturnValues="ALL_NEW",
            )
            held = item.get(name)
            if applied or (held is not None and _Reservation.of(bytes(held["B"])) == mine):
                break  # reserved (by an earlier send of this request, if its answer was lost)
            _known(item)
            state = _state(item)
            if not state.status.is_closed:
                self._give_back(file_id, swept)
            if held is not None and not state.status.is_closed:
                theirs = _Reservation.of(held["B"])
                if theirs.same_chunk(mine):
                    # Reserved with the batch's other chunks of the file, then left for each
                    # to be added alone (add_stored_together): counted, once committed.
                    gen = item["gen"]["S"]
                    if theirs.made(self._commit(file_id, gen, partition, theirs, arrival.now)):
                        self._remember_sweep(file_id, name)
                        return int(item["received_count"]["N"])
                return self._against(file_id, item, partition, theirs, arrival.now)
            if (
                state.status is not FileStatus.COLLECTING
                or state.partition_count != arrival.partition_count
            ):
                return state
            # Refused for room: a duplicate's reservation may be counted in it; settled,
            # the partition is tried once more.
            if attempt == 0 and any(True for _ in _numbered(item, "r")):
                self._settle(file_id, item, arrival.now)
                continue
            return _state(item, self._committed_digest(file_id, item, partition))
        stands = self._commit(file_id, item["gen"]["S"], partition, mine, arrival.now)
        if not mine.made(stands):
            # The partition was committed before this reservation: a duplicate, taken back.
            after = self._take_back(file_id, partition, mine) or self._get(self._key(file_id))
            return _state(after or item, stands)
        self._remember_sweep(file_id, name)
        return self._received(file_id, item, arrival)

    def _received(self, file_id: FileId, item: dict[str, Any], arrival: PartitionArrival) -> int:
        """The count a reservation left: past the file's partitionCount, a duplicate's
        reservation left by a crash is counted in it, and is settled first."""
        received = int(item["received_count"]["N"])
        if received > arrival.partition_count:
            received = self._settle(file_id, item, arrival.now)
        return received

    def _commit(
        self, file_id: FileId, gen: str, partition: int, reservation: _Reservation, now: float
    ) -> bytes:
        """Commit ``reservation`` in its segment unless the partition is committed already;
        return what its segment holds for the partition then (digest and token)."""
        slot = _slot_name(partition)
        applied, segment = self._update(
            self._segment_key(file_id, gen, partition),
            UpdateExpression="SET #slot = :held, #ttl = :expires",
            ConditionExpression="attribute_not_exists(#slot)",
            ExpressionAttributeNames={"#slot": slot, "#ttl": TTL_ATTRIBUTE},
            ExpressionAttributeValues={
                ":held": {"B": reservation.committed},
                ":expires": {"N": self._segment_expiry(now)},
            },
        )
        if applied:
            return reservation.committed
        held = segment.get(slot)
        if held is None:
            raise RuntimeError("a segment refused a partition it does not hold")
        return bytes(held["B"])

    def _segment_expiry(self, now: float) -> str:
        return str(int(now + self._collecting_ttl + SEGMENT_GRACE_SECONDS))

    def _take_back(
        self, file_id: FileId, partition: int, reservation: _Reservation
    ) -> dict[str, Any] | None:
        """Remove a duplicate's reservation and uncount it, if it is still there: the file's
        item after, or None when another request took it back first."""
        applied, item = self._update(
            self._key(file_id),
            UpdateExpression="REMOVE #r ADD received_count :minus, byte_count :less",
            ConditionExpression="#r = :reservation",
            ExpressionAttributeNames={"#r": _reservation_name(partition)},
            ExpressionAttributeValues={
                ":reservation": {"B": reservation.value},
                ":minus": {"N": "-1"},
                ":less": {"N": str(-reservation.size)},
            },
            ReturnValues="ALL_NEW",
        )
        return item if applied else None

    def _settle_one(
        self, file_id: FileId, gen: str, partition: int, reservation: _Reservation, now: float
    ) -> tuple[bytes, dict[str, Any] | None]:
        """Settle a reservation another request made: commit it if the partition is not yet
        committed (its holder may have crashed between its two requests), take it back if the
        partition was committed from another. What stands, and the item if it changed."""
        stands = self._commit(file_id, gen, partition, reservation, now)
        if reservation.made(stands):
            return stands, None
        return stands, self._take_back(file_id, partition, reservation)

    def _against(
        self,
        file_id: FileId,
        item: dict[str, Any],
        partition: int,
        reservation: _Reservation,
        now: float,
    ) -> FileState:
        """A chunk refused because another request's reservation holds its partition: the
        reservation is settled, and the chunk is judged against what stands."""
        stands, after = self._settle_one(file_id, item["gen"]["S"], partition, reservation, now)
        return _state(after or item, stands)

    def _settle(self, file_id: FileId, item: dict[str, Any], now: float) -> int:
        """Settle every reservation in ``item``; the received count after."""
        latest = item
        for partition, value in _numbered(item, "r"):
            _, after = self._settle_one(
                file_id, item["gen"]["S"], partition, _Reservation.of(value), now
            )
            if after is not None:
                latest = after
        return int(latest["received_count"]["N"])

    def _committed_digest(
        self, file_id: FileId, item: dict[str, Any], partition: int
    ) -> bytes | None:
        gen = item.get("gen")
        if gen is None:
            return None
        segment = self._get(self._segment_key(file_id, gen["S"], partition))
        held = (segment or {}).get(_slot_name(partition))
        return bytes(held["B"]) if held is not None else None

    def _take_sweep(self, file_id: FileId, besides: str | Iterable[str]) -> list[str]:
        """Committed reservations of the file to remove along with the next ones (never those
        being made: an attribute is not set and removed in one request)."""
        made = {besides} if isinstance(besides, str) else set(besides)
        with self._lock:
            names = self._unswept.pop(file_id, [])
            others = [name for name in names if name not in made]
            taken, kept = others[:SWEEP_PER_REQUEST], others[SWEEP_PER_REQUEST:]
            kept += [name for name in names if name in made]
            if kept:
                self._unswept[file_id] = kept
        return taken

    def _give_back(self, file_id: FileId, names: list[str]) -> None:
        if names:
            with self._lock:
                self._unswept.setdefault(file_id, []).extend(names)

    def _remember_sweep(self, file_id: FileId, name: str) -> None:
        with self._lock:
            self._unswept.setdefault(file_id, []).append(name)
            while len(self._unswept) > SWEEP_FILES:
                del self._unswept[next(iter(self._unswept))]

    def read(self, file_id: FileId, partition: int) -> FileState | None:
        item = self._get(self._key(file_id))
        if not item or "partition_count" not in item:
            return None
        inline = item.get(_inline_name(partition))
        if inline is not None:
            return _state(item, bytes(inline["B"]))
        committed = self._committed_digest(file_id, item, partition)
        if committed is not None:
            return _state(item, committed)
        reserved = item.get(_reservation_name(partition))
        return _state(item, bytes(reserved["B"]) if reserved is not None else None)

    def digests(self, file_id: FileId) -> dict[int, str]:
        """Every counted partition's digest: the file's item's, then its segments' (one
        BatchGetItem a hundred segments: one for a file of up to 2,800 partitions).

        A reservation not committed yet counts with its digest: its chunk was stored before
        it. One whose partition was committed from another is a duplicate's, left by a crash:
        it is taken back here, so a file it made look complete can complete for real.
        """
        return {partition: digest for partition, (digest, _) in self.stored(file_id).items()}

    def stored(self, file_id: FileId) -> dict[int, tuple[str, str]]:
        """``digests``, each with the id of the object holding the chunk ("" for none).

        Right after this container's claim, from the item the claim returned: a complete
        file's partitions are not added to while it is claimed."""
        with self._lock:
            item = self._claimed.pop(file_id, None)
        if item is None:
            item = self._get(self._key(file_id))
        if not item:
            return {}
        held = {p: (v[:_DIGEST_BYTES], v[_DIGEST_BYTES:]) for p, v in _numbered(item, "p")}
        gen = item.get("gen")
        if gen is not None:
            committed = self._segments(file_id, gen["S"], int(item["partition_count"]["N"]))
            for partition, value in _numbered(item, "r"):
                reservation = _Reservation.of(value)
                stands = committed.get(partition)
                if stands is None:
                    committed[partition] = reservation.committed
                elif not reservation.made(stands):
                    self._take_back(file_id, partition, reservation)
            held.update((p, _split_committed(v)) for p, v in committed.items())
        return {p: (digest.hex(), where.hex()) for p, (digest, where) in held.items()}

    def _segments(self, file_id: FileId, gen: str, partition_count: int) -> dict[int, bytes]:
        """What the file's segments hold, by partition (digest and token)."""
        count = math.ceil(partition_count / SEGMENT_PARTITIONS)
        keys = [self._segment_key(file_id, gen, s * SEGMENT_PARTITIONS) for s in range(count)]
        held: dict[int, bytes] = {}
        for segment in read_items(self._db, self._table, keys):
            first = int(segment[KEY_ATTRIBUTE]["S"].rsplit("#", 1)[1]) * SEGMENT_PARTITIONS
            for slot, value in _numbered(segment, "p"):
                held[first + slot] = value
        return held

    def claim(self, file_id: FileId, owner: str, now: float, until: float) -> Claim:
        """Also pushes the TTL as a chunk does: a complete file whose uploads keep failing
        keeps its item (``sfb status``, ``sfb redrive``) as long as it keeps being tried."""
        applied, item = self._update(
            self._key(file_id),
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
            ReturnValues="ALL_NEW",
        )
        if applied:
            with self._lock:
                self._claimed[file_id] = item
                while len(self._claimed) > _CLAIMED_KEPT:
                    del self._claimed[next(iter(self._claimed))]
            return Claim(won=True)
        return Claim(won=False, refused_by=_state(item) if "partition_count" in item else None)

    def finish(self, file_id: FileId, owner: str, status: FileStatus, now: float) -> bool:
        """The tombstone keeps its closer in ``finished_by``, so the same request retried by
        botocore after a lost answer finds its own work done and succeeds: the caller then
        deletes the chunks instead of taking the claim for lost. A closed file's segments go
        with it (``_drop_segments``)."""
        response = self._conditional(
            Key=self._key(file_id),
            UpdateExpression=(
                "SET #status = :status, finished_at = :now, finished_by = :owner, "
                f"#ttl = :expires REMOVE claim_owner, claim_until, {OPEN_ATTRIBUTE}"
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
            ReturnValues="ALL_NEW",
        )
        if response is None:
            return False
        self._drop_segments(file_id, dict(response.get("Attributes", {})))
        return True

    def _drop_segments(self, file_id: FileId, item: dict[str, Any]) -> None:
        """Delete a closed file's segments: nothing judges a late chunk of a closed file by
        its digests, which would otherwise stay until their TTL (the collecting TTL plus 8
        days), for a write unit a 28 partitions. Never raises: what is left goes with its
        TTL."""
        gen = item.get("gen")
        if gen is None or "partition_count" not in item:
            return
        count = math.ceil(int(item["partition_count"]["N"]) / SEGMENT_PARTITIONS)
        keys = [self._segment_key(file_id, gen["S"], s * SEGMENT_PARTITIONS) for s in range(count)]
        try:
            delete_items(self._db, self._table, keys)
        except Exception as error:
            log.warning(
                "a closed file's segments could not be deleted; they go with their TTL",
                extra={"file_id": str(file_id), "reason": f"{type(error).__name__}: {error}"},
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
        """From the file's item (a short one) or the endpoint's own item (a long one)."""
        return self._endpoints([file_id]).get(file_id)

    def _endpoints(self, files: Iterable[FileId]) -> dict[FileId, str]:
        wanted = sorted(set(files), key=str)
        keys = [key for f in wanted for key in (self._key(f), self._endpoint_key(f))]
        found: dict[FileId, str] = {}
        for item in read_items(
            self._db, self._table, keys, ProjectionExpression=f"{KEY_ATTRIBUTE}, put_endpoint"
        ):
            if "put_endpoint" in item:
                key = str(item[KEY_ATTRIBUTE]["S"]).removeprefix(ENDPOINT_PREFIX)
                found[FileId(key)] = item["put_endpoint"]["S"]
        return found

    def unfinished(self) -> list[FileSummary]:
        """The open files, for ``sfb status``: from the index, as the expiry reads them."""
        summaries = [
            FileSummary(
                FileId(item[KEY_ATTRIBUTE]["S"]),
                item["status"]["S"],
                int(item["received_count"]["N"]),
                int(item["partition_count"]["N"]),
                int(item["byte_count"]["N"]),
                float(item["created_at"]["N"]),
                item.get("put_endpoint", {}).get("S"),
            )
            for item in self._open_items()
        ]
        apart = self._endpoints(s.file_id for s in summaries if s.put_endpoint is None)
        summaries = [
            evolve(s, put_endpoint=apart.get(s.file_id)) if s.put_endpoint is None else s
            for s in summaries
        ]
        return sorted(summaries, key=lambda summary: summary.since)

    def incomplete(self) -> list[IncompleteFile]:
        """The files still collecting with partitions missing, among the open ones.

        The table rather than a listing of pending/: the item is what the give-up's condition
        reads, so candidates and the decision share one truth."""
        found = [
            _incomplete(item)
            for item in self._open_items()
            if item["status"]["S"] == FileStatus.COLLECTING.value
            and int(item["received_count"]["N"]) < int(item["partition_count"]["N"])
        ]
        return sorted(found, key=lambda file: file.first_seen)

    def _open_items(self) -> list[dict[str, Any]]:
        """The open files' items: their keys from a Scan of OPEN_INDEX, then the items
        (BatchGetItem, eventually consistent: a give-up's own condition decides).

        The index rather than the table: a Scan is billed by what it reads, and the table
        holds a tombstone a closed file for a day (and a chunk object's item for ten), the
        index only the open files. A table without a usable index (not provisioned again
        since it came, or still being built) is scanned whole, with a WARNING a run.
        """
        read: dict[str, Any] = {
            "ProjectionExpression": f"{KEY_ATTRIBUTE}, {_OPEN_FIELDS}",
            "ExpressionAttributeNames": {"#status": "status"},
        }
        try:
            keys = self._open_keys()
        except ClientError as error:
            if not _index_unusable(error):
                raise
            log.warning(
                "the state table has no usable index of open files; the whole table is "
                "scanned (run sfb provision to add it)",
                extra={"index": OPEN_INDEX, "reason": _reason(error)},
            )
            items: list[dict[str, Any]] = []
            for page in self._db.get_paginator("scan").paginate(
                TableName=self._table,
                FilterExpression=OPEN_CONDITION,
                ExpressionAttributeValues=OPEN_VALUES,
                **read,
            ):
                items += [dict(item) for item in page.get("Items", [])]
            return items
        items = read_items(self._db, self._table, keys, consistent=False, **read)
        return [item for item in items if item.get("status", {}).get("S") in _OPEN_STATUSES]

    def _open_keys(self) -> list[dict[str, Any]]:
        paginator = self._db.get_paginator("scan")
        pages = paginator.paginate(
            TableName=self._table, IndexName=OPEN_INDEX, ProjectionExpression=KEY_ATTRIBUTE
        )
        return [
            self._key(FileId(item[KEY_ATTRIBUTE]["S"]))
            for page in pages
            for item in page.get("Items", [])
        ]

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
                    f"REMOVE claim_owner, claim_until, {OPEN_ATTRIBUTE}"
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


_OPEN_FIELDS = "#status, received_count, partition_count, byte_count, created_at, put_endpoint"
_OPEN_STATUSES = frozenset(value["S"] for value in OPEN_VALUES.values())


def _incomplete(item: dict[str, Any]) -> IncompleteFile:
    return IncompleteFile(
        FileId(item[KEY_ATTRIBUTE]["S"]),
        int(item["partition_count"]["N"]),
        int(item["received_count"]["N"]),
        int(item["byte_count"]["N"]),
        float(item["created_at"]["N"]),
        item.get("put_endpoint", {}).get("S"),
    )


def _index_unusable(error: ClientError) -> bool:
    """DynamoDB's answer to a Scan of an index the table lacks, or is still building."""
    details = error.response.get("Error", {})
    return (
        details.get("Code") == "ValidationException"
        and "index" in str(details.get("Message", "")).lower()
    )


def _reason(error: ClientError) -> str:
    details = error.response.get("Error", {})
    return f"{details.get('Code', type(error).__name__)}: {details.get('Message', '')}"


def _number(value: float) -> str:
    return f"{value:.3f}"
