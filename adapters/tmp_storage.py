"""Local chunk storage under TMP_DIR, surviving between invocations of a warm container.

Names come from the FileId (a hex digest) and the partition number only, so no putEndpoint
can steer a path anywhere.
"""

from __future__ import annotations

import errno
import io
import logging
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import BinaryIO

from domain import FileId

log = logging.getLogger("sfb")

SWEEP_SECONDS = 1.0
"""The longest one call spends deleting what earlier containers left: at the start, then at
each batch end until it is gone, so a crowded disk never delays a batch by much."""

FREE_SPACE_SHARE = 0.5
"""The default budget's share of TMP_DIR's free space at the start. The other half stays for
the rest of /tmp's users (the runtime, libraries, what an earlier container left and is being
swept), and covers the filesystem's own overhead (a chunk file takes whole blocks)."""

_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


class TmpChunkStore:
    """Chunks of the batch at hand stay in memory; ``persist`` moves one to disk within the
    budget. A file that finishes inside its batch is read from memory and never touches disk.

    Each store writes under a directory of its own. Whatever else lies beside it was left by
    an earlier container on this disk (a crashed or recycled runtime), whose cache, the only
    thing that knew those chunks, died with it: ``tidy`` deletes it. The bytes on disk are
    counted as they are written and deleted (``usage``), so the budget costs no directory walk.
    """

    def __init__(
        self,
        root: Path,
        budget: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        name: str = "sfb-chunks",
    ) -> None:
        """``budget``: the most bytes on disk; by default a share of what is free once the
        earlier containers' chunks are swept (bounded by SWEEP_SECONDS). ``name``: the
        directory under ``root`` whose other children are earlier containers' leftovers, so
        two stores of one container each need their own."""
        base = root / name
        self._root = base / uuid.uuid4().hex
        self._held: dict[tuple[FileId, int], bytes] = {}
        self._on_disk: dict[tuple[FileId, int], int] = {}
        self._usage = 0
        self._counting = threading.Lock()
        self._clock = clock
        self._orphans = _children(base)
        self.tidy()
        self._budget = budget if budget is not None else _free_share(root)

    @property
    def usage(self) -> int:
        return self._usage

    @property
    def budget(self) -> int:
        return self._budget

    def _path(self, file_id: FileId, partition: int) -> Path:
        return self._root / file_id.value / f"{int(partition):05d}"

    def put(self, file_id: FileId, partition: int, content: bytes) -> None:
        self._held[(file_id, partition)] = content

    def persist(self, file_id: FileId, partition: int) -> bool:
        """Write a held chunk to disk if it fits the budget; a full disk lowers the budget to
        what is on disk now, so the caller's evictions make the room the disk lacks."""
        key = (file_id, partition)
        content = self._held.get(key)
        if content is None:
            return key in self._on_disk
        replaced = self._on_disk.get(key, 0)
        if self._usage - replaced + len(content) > self._budget:
            return False
        try:
            self._write(file_id, partition, content)
        except OSError as error:
            if error.errno in _DISK_FULL and self._budget > self._usage:
                log.warning(
                    "TMP_DIR is fuller than the local disk budget allowed for; the budget is "
                    "lowered to what this container has on disk",
                    extra={"budget": self._usage, "was": self._budget},
                )
                self._budget = self._usage
            raise
        del self._held[key]
        with self._counting:
            self._on_disk[key] = len(content)
            self._usage += len(content) - replaced
        return True

    def tidy(self) -> None:
        deadline = self._clock() + SWEEP_SECONDS
        while self._orphans:
            try:
                if not _remove_tree(self._orphans[0], deadline, self._clock):
                    return
            except OSError:
                pass  # left as it is, for the next container
            self._orphans.pop(0)

    def _write(self, file_id: FileId, partition: int, content: bytes) -> None:
        target = self._path(file_id, partition)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".part-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(content)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get(self, file_id: FileId, partition: int) -> bytes:
        held = self._held.get((file_id, partition))
        return held if held is not None else self._stored(file_id, partition).read_bytes()

    def open(self, file_id: FileId, partition: int) -> BinaryIO:
        held = self._held.get((file_id, partition))
        return io.BytesIO(held) if held is not None else self._stored(file_id, partition).open("rb")

    def _stored(self, file_id: FileId, partition: int) -> Path:
        """Only what this store wrote and still counts is read back, never a stale file."""
        if (file_id, partition) not in self._on_disk:
            raise FileNotFoundError(f"chunk {partition} of {file_id} is not stored here")
        return self._path(file_id, partition)

    def held(self, file_id: FileId, partition: int) -> bytes | None:
        return self._held.get((file_id, partition))

    def delete(self, file_id: FileId, partition: int) -> None:
        """Never raises: a disk that refuses to delete costs space, not records (the chunk is
        no longer counted, and the next container's sweep removes it)."""
        key = (file_id, partition)
        self._held.pop(key, None)
        with self._counting:  # files' lanes finish, and delete, at once
            size = self._on_disk.pop(key, None)
            if size is None:
                return
            self._usage -= size
        path = self._path(file_id, partition)
        try:
            path.unlink(missing_ok=True)
            path.parent.rmdir()
        except OSError as error:
            if error.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT):
                log.warning(
                    "a chunk could not be deleted from TMP_DIR",
                    extra={
                        "file_id": str(file_id),
                        "partition": partition,
                        "reason": os_reason(error),
                    },
                )


def os_reason(error: OSError) -> str:
    """The error without its path: errno's name and text."""
    name = errno.errorcode.get(error.errno or 0, "OSError")
    return f"{name}: {error.strerror or error}"


def _children(directory: Path) -> list[Path]:
    try:
        return sorted(directory.iterdir())
    except OSError:
        return []


def _remove_tree(path: Path, deadline: float, clock: Callable[[], float]) -> bool:
    """Delete ``path`` bottom-up; False when the deadline came first. Errors are skipped: what
    cannot be deleted now is left for the next container."""
    if not path.is_dir() or path.is_symlink():
        with suppress(OSError):
            path.unlink()
        return True
    for directory, subdirectories, files in os.walk(path, topdown=False):
        for name in files + [
            d for d in subdirectories if os.path.islink(os.path.join(directory, d))
        ]:
            if clock() >= deadline:
                return False
            with suppress(OSError):
                os.unlink(os.path.join(directory, name))
        with suppress(OSError):
            os.rmdir(directory)
    return True


def _free_share(root: Path) -> int:
    try:
        root.mkdir(parents=True, exist_ok=True)
        return int(shutil.disk_usage(root).free * FREE_SPACE_SHARE)
    except OSError as error:
        log.warning(
            "TMP_DIR cannot be used; chunks stay in memory until they are durable in S3",
            extra={"reason": os_reason(error)},
        )
        return 0
