"""The dynamodb backend counts a batch's new chunks of one file in one request; whenever the
state would not take them all, each is judged alone, exactly as without the grouping."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from application.chunk_objects import COUNTED_TOGETHER_MOST
from application.metrics import Metric
from application.records import StreamRecord
from domain import FileId, Limits, PartitionArrival, RejectionReason
from tests.factories import file_records, payload, record
from tests.fakes import (
    FakeArchive,
    FakeClock,
    FakeRemoteStore,
    FakeStateStore,
    FakeUploader,
    SharedFakeContainer,
)

URL = "https://bucket.example.com/exports/table.parquet?X-Amz-Signature=SECRET"
CONTENT = bytes(range(256)) * 20
CHUNK = 1024
PARTS = -(-len(CONTENT) // CHUNK)


class OneByOne(FakeStateStore):
    """The state as it was before grouping: never more than one chunk a request."""

    def add_stored_together(
        self, arrivals: Sequence[PartitionArrival], object_id: str
    ) -> int | None:
        return None


def _parts() -> list[StreamRecord]:
    return file_records(URL, CONTENT, CHUNK)


def _forged(partition: int, count: int = PARTS) -> StreamRecord:
    return record(payload(URL, partition, count, b"X" * CHUNK))


Batches = Callable[[list[StreamRecord]], list[list[StreamRecord]]]

CASES: dict[str, Batches] = {
    "new chunks of one file": lambda r: [r[0:3], r[3:6], r[6:]],
    "a partition held already among them": lambda r: [r[0:2], r[1:5], r[5:]],
    "other bytes for a held partition among them": lambda r: [
        r[0:2],
        [_forged(1), *r[2:5]],
        r[5:],
    ],
    "one partition twice with other bytes": lambda r: [[r[0], _forged(0), r[1]], r[2:]],
    "the same record twice": lambda r: [[r[0], r[0], r[1], r[2]], r[3:]],
    "another partition count among them": lambda r: [[r[0], _forged(1, PARTS + 1), r[2]], r[1:]],
    "another partition count before the file's last chunks": lambda r: [
        r[:1],
        [r[1], _forged(2, PARTS + 1), *r[2:]],
    ],
    "late duplicates of a finished file": lambda r: [r[:-1], r[-1:], r[2:6]],
    "over MAX_FILE_BYTES together": lambda r: [r[0:2], r[2:6], r[6:]],
}
"""Each case's batches, from the file's records in order; every batch leaves out at least
one partition, so the per-file path (not the whole-file one) takes it."""

TIMINGS = frozenset({Metric.UPLOAD_LATENCY})
"""What varies with the machine, not with the outcome."""

LIMITS = {"over MAX_FILE_BYTES together": Limits(max_file_bytes=3 * CHUNK + 512)}


Outcome = tuple[
    list[list[int]], list[RejectionReason], list[bytes], dict[int, str], int, list[object]
]


def _run(state: FakeStateStore, batches: list[list[StreamRecord]], limits: Limits) -> Outcome:
    """The records each batch reported (by their place in it), the rejections, the uploads,
    the digests counted, the objects left and the metrics published."""
    remote, uploader, archive = FakeRemoteStore(), FakeUploader(), FakeArchive()
    container = SharedFakeContainer(remote, state, uploader, archive, FakeClock(), limits=limits)
    reported = []
    for batch in batches:
        places = {r.sequence_number: n for n, r in enumerate(batch)}
        reported.append([places[sequence] for sequence in container.process(batch)])
    item = state.items.get(FileId.for_endpoint(URL))
    return (
        reported,
        archive.reasons(),
        uploader.bodies_for(URL),
        dict(item.digests) if item else {},
        len(remote.pending()),
        [
            sorted(
                ((key, value) for key, value in published.items() if key[0] not in TIMINGS),
                key=str,
            )
            for published in container.metrics.published
        ],
    )


@pytest.mark.parametrize("case", CASES)
def test_the_outcome_is_the_same_as_with_one_request_a_chunk(case: str) -> None:
    limits = LIMITS.get(case, Limits())
    batches = CASES[case](_parts())

    assert _run(FakeStateStore(), batches, limits) == _run(OneByOne(), batches, limits)


def test_a_files_new_chunks_of_a_batch_cost_one_request_together() -> None:
    records = _parts()
    state, alone = FakeStateStore(), OneByOne()

    for store in (state, alone):
        _run(store, [records[: PARTS - 1]], Limits())

    assert alone.requests == 1 + (PARTS - 1), "an object, then one add a chunk"
    assert state.requests == 2, "an object, then one add for the file's chunks"


def test_a_run_longer_than_one_request_takes_is_counted_in_several() -> None:
    records = file_records(URL, bytes(range(256)) * (COUNTED_TOGETHER_MOST + 20), 256)
    batches = [records[:-1]]
    state = FakeStateStore()

    assert _run(state, batches, Limits()) == _run(OneByOne(), batches, Limits())
    runs = -(-(len(records) - 1) // COUNTED_TOGETHER_MOST)
    assert state.requests == 1 + runs, "an object, then one add a run of at most the most"
