"""The local backend's files for operators (``sfb status``, ``sfb redrive``) and for the
scheduled expiry: every shard's log, listed once and folded."""

from __future__ import annotations

import logging

from application.batch_state import BatchState
from application.ports import ShardLedgerMoved
from application.shard_book import ShardBook
from application.views import FileSummary, ShardList
from domain import FileId, IncompleteFile, LoggedFile, ShardLedger

log = logging.getLogger("sfb")

_ATTEMPTS = 3


class LoggedFiles:
    """StoredFiles, IncompleteFiles and PendingChunks of the local backend."""

    def __init__(self, book: ShardBook, shards: ShardList) -> None:
        self._book = book
        self._shards = shards

    def _states(self) -> list[tuple[str, ShardLedger]]:
        return [(shard, self._book.state(shard)) for shard in self._shards.shards()]

    def files(self) -> list[FileSummary]:
        return [
            FileSummary(
                file_id,
                "complete" if file.is_complete else "collecting",
                len(file.parts),
                file.partition_count,
                file.size,
                file.first_seen,
                file.put_endpoint,
            )
            for _, state in self._states()
            for file_id, file in sorted(state.files.items())
        ]

    def endpoint(self, file_id: FileId) -> str | None:
        found = self.find(file_id)
        return found[1].put_endpoint if found is not None else None

    def find(self, file_id: FileId) -> tuple[BatchState, LoggedFile] | None:
        """The open file and a batch on its shard (as an operator's redrive runs one)."""
        for shard, state in self._states():
            file = state.files.get(file_id)
            if file is not None:
                batch = BatchState(0, shard=shard)
                batch.ledger = state
                return batch, file
        return None

    def note_finished(self, batch: BatchState) -> None:
        """Write the batch's finished files to its shard's log (after a redrive)."""
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                self._book.write(batch, [])
            except ShardLedgerMoved:
                if attempt == _ATTEMPTS:
                    raise
                continue
            return

    def incomplete(self) -> list[IncompleteFile]:
        return [
            IncompleteFile(
                file_id,
                file.partition_count,
                len(file.parts),
                file.size,
                file.first_seen,
                file.put_endpoint,
            )
            for _, state in self._states()
            for file_id, file in sorted(state.files.items())
            if not file.is_complete
        ]

    def give_up(self, file: IncompleteFile, cutoff: float, now: float) -> bool:
        """Read its shard's log again just before: a file that completed or was finished
        since is kept. Giving up is an entry in the log; the snapshot stored right after it
        lets the file's entries go (that deletes its chunks: ``drop_file`` has nothing left)."""
        for attempt in range(1, _ATTEMPTS + 1):
            found = self.find(file.file_id)
            if found is None:
                return False
            batch, current = found
            if current.is_complete or not current.first_seen < cutoff:
                return False
            try:
                self._book.give_up(batch.shard, file.file_id)
            except ShardLedgerMoved:
                if attempt == _ATTEMPTS:
                    raise
                continue
            return True
        return False

    def drop_file(self, file_id: FileId) -> None:
        """Nothing: the entries holding its chunks went with ``give_up``'s snapshot, or go
        with the next one once nothing else open has chunks in them."""
