"""Redis (or Valkey) as the shared file state: every change is one Lua script, run atomically
by the server.

Why Lua rather than MULTI/WATCH: each rule (admit only if the count agrees, the file is
collecting, the partition is new and the bytes leave room; claim only a complete file or an
expired claim) reads and writes in one step. A script does that in one round trip and can
never lose a race; WATCH would cost a round trip to read, another to write, and a retry loop
whenever another container touched the file in between, which is exactly when files are
busiest.

Keys, all of one file in one hash slot (``{<file-id>}``), so the scripts also run on a
cluster: ``sfb:{id}:s`` (a hash: partition_count, received, bytes, status, created_at,
updated_at, put_endpoint, claim_owner, claim_until, finished_by, finished_at) and
``sfb:{id}:p`` (a hash: partition -> digest prefix). Both expire as the dynamodb backend's
item does: a collecting file STATE_TTL_SECONDS + INCOMPLETE_FILE_TTL_SECONDS after its last
change, a closed file's tombstone STATE_TTL_SECONDS after it closed.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any, cast

from application.tombstones import Tombstone
from application.views import FileSummary
from domain import Claim, FileId, FileState, FileStatus, IncompleteFile, PartitionArrival

if TYPE_CHECKING:
    from redis import Redis

PREFIX = "sfb:"


def state_key(file_id: FileId) -> str:
    return f"{PREFIX}{{{file_id}}}:s"


def digests_key(file_id: FileId) -> str:
    return f"{PREFIX}{{{file_id}}}:p"


def chunks_key(file_id: FileId) -> str:
    """The bytes of the file's chunks kept in Redis (adapters/redis_chunks.py)."""
    return f"{PREFIX}{{{file_id}}}:c"


def meta_key(file_id: FileId) -> str:
    """Where each of the file's chunks is: in Redis, or spilled to S3."""
    return f"{PREFIX}{{{file_id}}}:m"


_REFUSED = """
local function refused(partition)
  local st = redis.call('HMGET', KEYS[1], 'partition_count', 'received', 'bytes', 'status')
  if not st[1] then return false end
  return {st[1], st[2], st[3], st[4], redis.call('HGET', KEYS[2], partition)}
end
"""
"""The state as a refusal found it, in the same script: judging it takes no second call."""

_ADD = (
    _REFUSED
    + """
local count = tonumber(ARGV[2])
local st = redis.call('HMGET', KEYS[1], 'partition_count', 'status', 'bytes')
if st[1] then
  if tonumber(st[1]) ~= count or st[2] ~= 'collecting'
      or tonumber(st[3]) > tonumber(ARGV[5]) then
    return refused(ARGV[1])
  end
end
if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[3]) == 0 then return refused(ARGV[1]) end
if not st[1] then
  redis.call('HSET', KEYS[1], 'partition_count', count, 'status', 'collecting',
    'created_at', ARGV[6], 'put_endpoint', ARGV[7], 'received', 0, 'bytes', 0)
end
local received = redis.call('HINCRBY', KEYS[1], 'received', 1)
redis.call('HINCRBY', KEYS[1], 'bytes', tonumber(ARGV[4]))
redis.call('HSET', KEYS[1], 'updated_at', ARGV[6])
redis.call('EXPIRE', KEYS[1], ARGV[8])
redis.call('EXPIRE', KEYS[2], ARGV[8])
return received
"""
)

_READ = (
    _REFUSED
    + """
return refused(ARGV[1])
"""
)

_CLAIM = (
    _REFUSED
    + """
local st = redis.call('HMGET', KEYS[1], 'partition_count', 'received', 'status', 'claim_until')
if not st[1] then return false end
if st[1] ~= st[2] then return refused(0) end
if st[3] == 'collecting' or (st[3] == 'assembling' and tonumber(st[4]) < tonumber(ARGV[2])) then
  redis.call('HSET', KEYS[1], 'status', 'assembling', 'claim_owner', ARGV[1],
    'claim_until', ARGV[3])
  redis.call('EXPIRE', KEYS[1], ARGV[4])
  redis.call('EXPIRE', KEYS[2], ARGV[4])
  return 1
end
return refused(0)
"""
)

_FINISH = """
local st = redis.call('HMGET', KEYS[1], 'claim_owner', 'finished_by', 'status')
if st[1] == ARGV[1] or (st[2] == ARGV[1] and st[3] == ARGV[2]) then
  redis.call('HSET', KEYS[1], 'status', ARGV[2], 'finished_at', ARGV[3], 'finished_by', ARGV[1])
  redis.call('HDEL', KEYS[1], 'claim_owner', 'claim_until')
  redis.call('EXPIRE', KEYS[1], ARGV[4])
  redis.call('EXPIRE', KEYS[2], ARGV[4])
  return 1
end
return 0
"""

_RELEASE = """
local st = redis.call('HMGET', KEYS[1], 'claim_owner', 'status')
if st[1] == ARGV[1] and st[2] == 'assembling' then
  redis.call('HSET', KEYS[1], 'status', 'collecting')
  redis.call('HDEL', KEYS[1], 'claim_owner', 'claim_until')
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  redis.call('EXPIRE', KEYS[2], ARGV[2])
end
return 0
"""

_GIVE_UP = """
local st = redis.call('HMGET', KEYS[1], 'status', 'received', 'partition_count', 'created_at')
if st[1] == 'collecting' and tonumber(st[2]) < tonumber(st[3])
    and tonumber(st[4]) < tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'status', 'expired', 'finished_at', ARGV[2])
  redis.call('HDEL', KEYS[1], 'claim_owner', 'claim_until')
  redis.call('EXPIRE', KEYS[1], ARGV[3])
  redis.call('EXPIRE', KEYS[2], ARGV[3])
  return 1
end
return 0
"""

_MARK_REDRIVEN = """
if redis.call('HGET', KEYS[1], 'status') == 'failed' then
  redis.call('HSET', KEYS[1], 'status', 'uploaded', 'finished_at', ARGV[1])
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

SCRIPTS = {
    "add": _ADD,
    "read": _READ,
    "claim": _CLAIM,
    "finish": _FINISH,
    "release": _RELEASE,
    "give_up": _GIVE_UP,
    "mark_redriven": _MARK_REDRIVEN,
}
"""What `sfb provision` loads (SCRIPT LOAD) to check the server runs Lua and has room."""


class RedisFileStateStore:
    def __init__(
        self, client: Redis, ttl_seconds: float, incomplete_ttl_seconds: float = 0.0
    ) -> None:
        """``ttl_seconds`` keeps a closed file's tombstone; a collecting file's keys live
        ``incomplete_ttl_seconds`` longer, so the expiry run always gives it up (and reports
        it) before the keys could expire unseen."""
        self._redis = client
        self._ttl = int(ttl_seconds)
        self._collecting_ttl = int(ttl_seconds + incomplete_ttl_seconds)
        self._scripts = {name: client.register_script(lua) for name, lua in SCRIPTS.items()}

    def _run(self, name: str, file_id: FileId, *args: object) -> Any:
        keys = [state_key(file_id), digests_key(file_id)]
        return self._scripts[name](keys=keys, args=[_arg(a) for a in args])

    def add_chunk(self, arrival: PartitionArrival) -> int | FileState:
        answer = self._run(
            "add",
            arrival.file_id,
            arrival.partition,
            arrival.partition_count,
            arrival.ref.digest_prefix,
            arrival.ref.size,
            arrival.room,
            arrival.now,
            arrival.put_endpoint,
            self._collecting_ttl,
        )
        if isinstance(answer, int):
            return answer
        if answer is None:
            raise RuntimeError("the file's state vanished while a chunk was being added")
        return _state(answer)

    def read(self, file_id: FileId, partition: int) -> FileState | None:
        found = self._run("read", file_id, partition)
        return None if found is None else _state(found)

    def digests(self, file_id: FileId) -> dict[int, str]:
        held = self._redis.hgetall(digests_key(file_id))
        return {int(_text(p)): _text(d) for p, d in held.items()}

    def claim(self, file_id: FileId, owner: str, now: float, until: float) -> Claim:
        """Also pushes the keys' expiry, as a chunk does: a complete file whose uploads keep
        failing stays visible to ``sfb status`` and ``sfb redrive`` while it is tried."""
        answer = self._run("claim", file_id, owner, now, until, self._collecting_ttl)
        if answer == 1:
            return Claim(won=True)
        return Claim(won=False, refused_by=None if answer is None else _state(answer))

    def finish(self, file_id: FileId, owner: str, status: FileStatus, now: float) -> bool:
        """Idempotent for its owner: a retried call after a lost answer finds its work done."""
        return bool(self._run("finish", file_id, owner, status.value, now, self._ttl))

    def release(self, file_id: FileId, owner: str, now: float) -> None:
        self._run("release", file_id, owner, self._collecting_ttl)

    def endpoint(self, file_id: FileId) -> str | None:
        value = self._redis.hget(state_key(file_id), "put_endpoint")
        return _text(value) if value is not None else None

    def unfinished(self) -> list[FileSummary]:
        summaries = [
            FileSummary(
                file_id,
                _text(fields[b"status"]),
                int(fields[b"received"]),
                int(fields[b"partition_count"]),
                int(fields[b"bytes"]),
                float(fields[b"created_at"]),
                _text(fields[b"put_endpoint"]) if b"put_endpoint" in fields else None,
            )
            for file_id, fields in self._states()
            if not FileStatus(_text(fields[b"status"])).is_closed
        ]
        return sorted(summaries, key=lambda summary: summary.since)

    def incomplete(self) -> list[IncompleteFile]:
        """The files still collecting with partitions missing, from a SCAN of the state keys
        (an operator's run, a few times an hour: never on the hot path)."""
        found = [
            IncompleteFile(
                file_id,
                int(fields[b"partition_count"]),
                int(fields[b"received"]),
                int(fields[b"bytes"]),
                float(fields[b"created_at"]),
                _text(fields[b"put_endpoint"]) if b"put_endpoint" in fields else None,
            )
            for file_id, fields in self._states()
            if fields.get(b"status") == FileStatus.COLLECTING.value.encode()
            and int(fields[b"received"]) < int(fields[b"partition_count"])
        ]
        return sorted(found, key=lambda file: file.first_seen)

    def give_up(self, file: IncompleteFile, cutoff: float, now: float) -> bool:
        """One script, so it can never race an assembler or a completing chunk: whichever the
        server runs first wins, and a chunk refused after it reads ``expired``."""
        return bool(self._run("give_up", file.file_id, cutoff, now, self._ttl))

    def mark_redriven(self, file_id: FileId, now: float) -> None:
        self._run("mark_redriven", file_id, now, self._ttl)

    def _states(self) -> list[tuple[FileId, dict[bytes, bytes]]]:
        found = []
        for key in self._redis.scan_iter(match=f"{PREFIX}{{*}}:s", count=500):
            name = _text(key)
            fields = cast("dict[bytes, bytes]", self._redis.hgetall(name))
            if b"partition_count" in fields:
                found.append((FileId(name[len(PREFIX) + 1 : -3]), fields))
        return found


class RedisFileStateBatches:
    """Many files' state in one round trip (pipelines): what whole files share instead of
    several requests a file, as DynamoDB's BatchGetItem and BatchWriteItem do."""

    def __init__(self, client: Redis, ttl_seconds: float) -> None:
        """``ttl_seconds``: how long a tombstone lives (STATE_TTL_SECONDS)."""
        self._redis = client
        self._ttl = int(ttl_seconds)

    def unknown(self, file_ids: Collection[FileId]) -> frozenset[FileId]:
        """The files with no state, in one round trip (a pipeline)."""
        wanted = sorted(set(file_ids), key=str)
        pipe = self._redis.pipeline(transaction=False)
        for file_id in wanted:
            pipe.exists(state_key(file_id))
        found = pipe.execute() if wanted else []
        return frozenset(f for f, exists in zip(wanted, found, strict=True) if not exists)

    def close(self, tombstones: Sequence[Tombstone]) -> list[FileId]:
        """Each file's state closed as a claim's close leaves it, all in one
        round trip. Unconditional, as a batch write is: a file another delivery counted in the
        meantime is closed all the same (the race the whole-file path accepts)."""
        pipe = self._redis.pipeline(transaction=False)
        for tombstone in tombstones:
            key = state_key(tombstone.file_id)
            at = _arg(tombstone.finished_at)
            pipe.hset(
                key,
                mapping={
                    "status": tombstone.status.value,
                    "partition_count": tombstone.partition_count,
                    "received": tombstone.partition_count,
                    "bytes": tombstone.size,
                    "created_at": at,
                    "updated_at": at,
                    "finished_at": at,
                    "finished_by": tombstone.owner,
                },
            )
            pipe.hdel(key, "claim_owner", "claim_until")
            pipe.expire(key, self._ttl)
            # Chunks a failed delivery stored and never got counted (Redis went down
            # between the two): the file is finished, so they go now, not with their TTL.
            # What such a delivery spilled to S3 is left to the pending/ lifecycle rule.
            pipe.delete(chunks_key(tombstone.file_id), meta_key(tombstone.file_id))
        if tombstones:
            pipe.execute()
        return []


def _state(found: list[bytes | None]) -> FileState:
    """A file's state as a script returns it: count, received, bytes, status, the digest
    held for the partition asked about (or nil)."""
    count, received, size, status, digest = found
    return FileState(
        partition_count=int(count or 0),
        received=int(received or 0),
        size=int(size or 0),
        status=FileStatus(_text(status or b"")),
        held_digest=_text(digest) if digest is not None else None,
    )


def _arg(value: object) -> str | int:
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, int):
        return value
    return str(value)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
