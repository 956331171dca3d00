"""Local chunk storage under TMP_DIR, surviving between invocations of a warm container.

Names come from the FileId (a hex digest) and the partition number only, so no putEndpoint
can steer a path anywhere.
"""

from __future__ import annotations

import errno
import io
import os
import tempfile
from pathlib import Path
from typing import BinaryIO

from domain import FileId


class TmpChunkStore:
    """Chunks of the batch at hand stay in memory; ``settle`` writes the ones still held.

    A file that finishes inside its batch is read from memory and never touches the disk.
    """

    def __init__(self, root: Path) -> None:
        self._root = root / "sfb-chunks"
        self._held: dict[tuple[FileId, int], bytes] = {}

    def _path(self, file_id: FileId, partition: int) -> Path:
        return self._root / file_id.value / f"{int(partition):05d}"

    def put(self, file_id: FileId, partition: int, content: bytes) -> None:
        self._held[(file_id, partition)] = content

    def settle(self) -> None:
        for (file_id, partition), content in list(self._held.items()):
            self._write(file_id, partition, content)
            del self._held[(file_id, partition)]

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
        return held if held is not None else self._path(file_id, partition).read_bytes()

    def open(self, file_id: FileId, partition: int) -> BinaryIO:
        held = self._held.get((file_id, partition))
        return io.BytesIO(held) if held is not None else self._path(file_id, partition).open("rb")

    def delete(self, file_id: FileId, partition: int) -> None:
        self._held.pop((file_id, partition), None)
        path = self._path(file_id, partition)
        path.unlink(missing_ok=True)
        try:
            path.parent.rmdir()
        except OSError as error:
            if error.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT):
                raise
