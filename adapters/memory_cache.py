"""The in-memory cache: lives as long as the warm container, and no longer."""

from __future__ import annotations

from application.pending import PendingFile
from domain import FileId


class InMemoryPartitionCache:
    def __init__(self) -> None:
        self._entries: dict[FileId, PendingFile] = {}
        self._open: dict[FileId, None] = {}
        """The collecting entries' ids (a dict keeps their order): a stream of small files
        leaves thousands of tombstones, which a batch's end need not walk."""

    def push(self, pending: PendingFile) -> None:
        self._entries[pending.file_id] = pending
        if pending.is_open:
            self._open.setdefault(pending.file_id)
        else:
            self._open.pop(pending.file_id, None)

    def get(self, file_id: FileId) -> PendingFile | None:
        return self._entries.get(file_id)

    def delete(self, file_id: FileId) -> bool:
        self._open.pop(file_id, None)
        return self._entries.pop(file_id, None) is not None

    def all_keys(self) -> list[FileId]:
        return list(self._entries)

    def open_keys(self) -> list[FileId]:
        return list(self._open)
