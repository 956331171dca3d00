"""The in-memory cache: lives as long as the warm container, and no longer."""

from __future__ import annotations

from application.pending import PendingFile
from domain import FileId


class InMemoryPartitionCache:
    def __init__(self) -> None:
        self._entries: dict[FileId, PendingFile] = {}

    def push(self, pending: PendingFile) -> None:
        self._entries[pending.file_id] = pending

    def get(self, file_id: FileId) -> PendingFile | None:
        return self._entries.get(file_id)

    def delete(self, file_id: FileId) -> bool:
        return self._entries.pop(file_id, None) is not None

    def all_keys(self) -> list[FileId]:
        return list(self._entries)
