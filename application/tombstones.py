"""Tombstone: what the shared state keeps of a file finished without its per-file requests."""

from __future__ import annotations

from attrs import frozen

from domain import FileId, FileStatus


@frozen
class Tombstone:
    """A closed file's item, as a file the per-file path finished leaves it: later deliveries
    of any of its chunks read a closed file (late duplicates), whichever container gets them.

    ``status`` is UPLOADED, or FAILED for a file refused for good (kept under failed/).
    """

    file_id: FileId
    status: FileStatus
    partition_count: int
    size: int
    finished_at: float
    owner: str
