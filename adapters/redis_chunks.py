"""Chunk bytes for the redis backend: in Redis while the server has room under
REDIS_MAX_CHUNK_BYTES, else in S3 the way the dynamodb backend keeps them.

A chunk in Redis costs no request to AWS while its file is collecting. Each chunk is one
field of the file's hash ``sfb:{id}:c`` named ``<partition>.<sha256>`` (two writers of the
same chunk write the same field; a conflicting chunk another field), and its partition count
and size are in ``sfb:{id}:m`` under the same name, with where its bytes are (``r`` Redis,
``s`` S3). A listing returns only the chunks the shared state admitted (their digest is the
state's for that partition), read in the same script, so an orphan left by a crash between
the bytes and the state, or a refused conflict, is never assembled.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from io import BytesIO
from typing import TYPE_CHECKING, Any, Protocol

from adapters.redis_state import PREFIX, chunks_key, digests_key, meta_key
from application.ports import ByteStream, RemoteChunkStore
from application.shared_reads import ReadsAlone
from application.views import PendingChunks
from domain import Chunk, ChunkRef, FileId, PartitionSet

if TYPE_CHECKING:
    from redis import Redis

log = logging.getLogger("sfb")

EPOCH_KEY = f"{PREFIX}epoch"
"""A random id set once per data set, without expiry: gone or changed, the server lost its
data (a restart or failover without persistence) since a container last looked."""
IN_REDIS = "r"
IN_S3 = "s"
WATCH_EVERY = 1.0
"""Seconds the server's used memory and data set, as last read, are trusted (plus what this
container added since): reading them for every chunk would double the round trips."""


def _field(partition: int, digest: str) -> str:
    return f"{partition}.{digest}"


_PUT = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[4])
return 1
"""

_MARK = """
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[3])
return 1
"""

_LIST = """
local meta = redis.call('HGETALL', KEYS[1])
local admitted = redis.call('HGETALL', KEYS[2])
local held = {}
for i = 1, #admitted, 2 do held[admitted[i]] = admitted[i + 1] end
local found = {}
for i = 1, #meta, 2 do
  local name = meta[i]
  local dot = string.find(name, '.', 1, true)
  local partition = string.sub(name, 1, dot - 1)
  local digest = string.sub(name, dot + 1)
  if held[partition] ~= nil and string.sub(digest, 1, #held[partition]) == held[partition] then
    table.insert(found, name)
    table.insert(found, meta[i + 1])
  end
end
return found
"""


SCRIPTS = {"put chunk": _PUT, "mark spilled": _MARK, "list admitted": _LIST}


class SpillStore(RemoteChunkStore, PendingChunks, Protocol):
    """Where chunks go past the budget: S3, as the dynamodb backend keeps them."""


class RedisChunkStore(ReadsAlone):
    def __init__(
        self,
        client: Redis,
        spill: SpillStore,
        budget: int,
        ttl_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``spill`` keeps what does not fit (S3, as the dynamodb backend does); ``budget``
        is REDIS_MAX_CHUNK_BYTES; keys live ``ttl_seconds`` after their last chunk, as the
        state of a collecting file does."""
        self._redis = client
        self._spill = spill
        self._budget = budget
        self._ttl = int(ttl_seconds)
        self._clock = clock
        self._put_script = client.register_script(_PUT)
        self._mark_script = client.register_script(_MARK)
        self._list_script = client.register_script(_LIST)
        self._lock = threading.Lock()
        self._watched_at = float("-inf")
        self._used = 0
        self._epoch: bytes | None = None

    def put(self, chunks: Iterable[Chunk]) -> None:
        """Bytes first, then the field that names them: a listing never names bytes that
        are not there."""
        self._watch()
        for chunk in chunks:
            field = _field(chunk.partition, chunk.ref.digest)
            keys = [chunks_key(chunk.file_id), meta_key(chunk.file_id)]
            if self._has_room(chunk.ref.size):
                meta = f"{chunk.partition_count}.{chunk.ref.size}.{IN_REDIS}"
                self._put_script(keys=keys, args=[field, chunk.content, meta, self._ttl])
            else:
                self._spill.put([chunk])
                meta = f"{chunk.partition_count}.{chunk.ref.size}.{IN_S3}"
                self._mark_script(keys=keys, args=[field, meta, self._ttl])

    def get(self, file_id: FileId) -> PartitionSet | None:
        """The chunks the shared state admitted; None when it admitted none."""
        found = self._list_script(keys=[meta_key(file_id), digests_key(file_id)], args=[])
        if not found:
            return None
        parts: dict[int, ChunkRef] = {}
        counts: set[int] = set()
        for name, value in zip(found[::2], found[1::2], strict=True):
            partition, digest = _text(name).split(".", 1)
            count, size, _ = _text(value).split(".")
            counts.add(int(count))
            parts[int(partition)] = ChunkRef(digest, int(size))
        return PartitionSet(min(counts), parts)

    def open(
        self, file_id: FileId, partition: int, partition_count: int, ref: ChunkRef
    ) -> ByteStream:
        content = self._redis.hget(chunks_key(file_id), _field(partition, ref.digest))
        if content is not None:
            return BytesIO(content if isinstance(content, bytes) else content.encode())
        return self._spill.open(file_id, partition, partition_count, ref)

    def delete(self, file_id: FileId, partitions: PartitionSet) -> None:
        """A finished file: every chunk held for it goes, refused ones too."""
        spilled = self._spilled(file_id)
        self._redis.delete(chunks_key(file_id), meta_key(file_id))
        if spilled.parts:
            self._spill.delete(file_id, spilled)

    def discard(self, chunk: Chunk) -> None:
        field = _field(chunk.partition, chunk.ref.digest)
        where = self._redis.hget(meta_key(chunk.file_id), field)
        self._redis.hdel(chunks_key(chunk.file_id), field)
        self._redis.hdel(meta_key(chunk.file_id), field)
        if where is not None and _text(where).endswith(IN_S3):
            self._spill.discard(chunk)

    def drop_file(self, file_id: FileId) -> None:
        """A file given up: its chunks go, wherever they are; in S3, by listing its prefix,
        so chunks spilled before Redis lost its data go too."""
        self._redis.delete(chunks_key(file_id), meta_key(file_id))
        self._spill.drop_file(file_id)

    def _spilled(self, file_id: FileId) -> PartitionSet:
        parts: dict[int, ChunkRef] = {}
        count = 0
        for name, value in self._redis.hgetall(meta_key(file_id)).items():
            partition, digest = _text(name).split(".", 1)
            partition_count, size, where = _text(value).split(".")
            if where == IN_S3:
                count = int(partition_count)
                parts[int(partition)] = ChunkRef(digest, int(size))
        return PartitionSet(max(count, 1), parts)

    def _watch(self) -> None:
        """Read the server's used memory and data set id, at most once a WATCH_EVERY, in one
        round trip; say once, as an ERROR, when the data set was lost since the last look."""
        with self._lock:
            now = self._clock()
            if now - self._watched_at < WATCH_EVERY:
                return
            self._watched_at = now
            fresh = uuid.uuid4().hex.encode()
            pipe = self._redis.pipeline(transaction=False)
            pipe.info("memory")
            pipe.set(EPOCH_KEY, fresh, nx=True)
            pipe.get(EPOCH_KEY)
            info, _, epoch = pipe.execute()
            memory: dict[str, Any] = info
            self._used = int(memory["used_memory"])
            if self._epoch is not None and epoch != self._epoch:
                log.error(
                    "Redis lost its data since this container last used it (a restart or "
                    "failover without persistence): files collecting before then cannot "
                    "complete; the expiry gives each up with an ERROR and a record",
                    extra={"reason": "redis data set replaced"},
                )
            self._epoch = epoch

    def _has_room(self, size: int) -> bool:
        """Whether the server's used memory, with this chunk, stays under the budget."""
        with self._lock:
            if self._used + size > self._budget:
                return False
            self._used += size
            return True


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
