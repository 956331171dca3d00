"""FileLanes: the records of different files at once, each file's own in order.

Small files are the case that needs it: each costs an upload (and, on the dynamodb backend,
a few AWS requests) that mostly waits on the network, so a batch of a hundred of them one
after another spends its time waiting. A lane is one file's records, kept in batch order, so
the first bytes and the first count still stand within a file; lanes run on a bounded pool.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from application.in_context import submit

Item = TypeVar("Item")


class FileLanes:
    def __init__(self, concurrency: int = 1) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, not {concurrency}")
        self._concurrency = concurrency
        self._pool: ThreadPoolExecutor | None = None

    @property
    def concurrency(self) -> int:
        return self._concurrency

    def run(
        self,
        items: Sequence[Item],
        lane_of: Callable[[Item], Hashable],
        work: Callable[[Item], None],
    ) -> None:
        """Call ``work`` on every item: in ``items``' order within a lane, lanes at once.

        With one lane, or a concurrency of 1, everything runs in this thread in ``items``'
        order, as if there were no lanes. ``work`` must record its own failures: an
        exception it lets out is raised here once every lane has ended.
        """
        lanes: dict[Hashable, list[Item]] = {}
        for item in items:
            lanes.setdefault(lane_of(item), []).append(item)
        if self._concurrency == 1 or len(lanes) < 2:
            for item in items:
                work(item)
            return
        pool = self._pool or self._start()
        futures = [submit(pool, _run_lane, lane, work) for lane in lanes.values()]
        errors = [error for future in futures if (error := future.exception()) is not None]
        if errors:
            raise errors[0]

    def _start(self) -> ThreadPoolExecutor:
        """One pool for the container's life: its threads wait between batches."""
        self._pool = ThreadPoolExecutor(self._concurrency, thread_name_prefix="sfb-lane")
        return self._pool


def _run_lane(lane: list[Item], work: Callable[[Item], None]) -> None:
    for item in lane:
        work(item)
