"""Random redeliveries on the local backend: batches come again, whole or from a reported
record, to fresh or stale containers, with conflicting bytes mixed into the stream. Every
upload of a file carries the first bytes of each partition; nothing stays under pending/."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from application.records import StreamRecord
from tests.assertions import assert_uploaded_whole
from tests.factories import payload, record
from tests.fakes import FakeArchive, FakeContainer, FakeRemoteStore, FakeUploader


def _stream(rng: random.Random, files: int) -> tuple[dict[str, bytes], list[StreamRecord]]:
    """Each file's partitions in a random order, some sent again with other bytes after
    the first; the expected body is made of each partition's first bytes in the stream."""
    expected: dict[str, bytes] = {}
    records: list[StreamRecord] = []
    for i in range(files):
        endpoint = f"https://example.com/f{i}?sig=s{i}"
        count = rng.randint(1, 4)
        sends = [(p, rng.randbytes(rng.randint(1, 50))) for p in range(count)]
        sends += [
            (p, rng.randbytes(rng.randint(1, 50))) for p in range(count) if rng.random() < 0.4
        ]
        rng.shuffle(sends)
        first: dict[int, bytes] = {}
        for partition, content in sends:
            first.setdefault(partition, content)
            records.append(record(payload(endpoint, partition, count, content)))
        expected[endpoint] = b"".join(first[p] for p in range(count))
    return expected, records


@given(
    seed=st.integers(min_value=0, max_value=2**32),
    files=st.integers(min_value=1, max_value=3),
    batch_size=st.integers(min_value=1, max_value=8),
)
def test_redelivered_batches_never_upload_a_body_other_than_the_first_bytes(
    seed: int, files: int, batch_size: int
) -> None:
    rng = random.Random(seed)
    expected, records = _stream(rng, files)
    remote, uploader, archive = FakeRemoteStore(), FakeUploader(), FakeArchive()
    containers = [FakeContainer(remote, uploader, archive) for _ in range(2)]

    position = 0
    for _ in range(10 * len(records) + 10):
        if position >= len(records):
            break
        batch = records[position : position + batch_size]
        pick = rng.randrange(len(containers))
        if rng.random() < 0.2:
            containers[pick] = containers[pick].recycled()
        # A record refused now (its quarantine cannot be written) cuts the batch there.
        archive.quarantine_refused = rng.random() < 0.2
        failed = containers[pick].process(batch)
        archive.quarantine_refused = False
        done = min(
            (i for i, r in enumerate(batch) if r.sequence_number in failed), default=len(batch)
        )
        if rng.random() < 0.3:
            # The whole batch again (a timeout after the work was done), to the other container.
            containers[1 - pick].process(batch)
        position += done
    else:
        raise AssertionError("the shard never drained")

    for endpoint, body in expected.items():
        assert_uploaded_whole(uploader.bodies_for(endpoint), body, to=endpoint)
    assert remote.pending() == []
    assert remote.log_state().files == {}  # no snapshot keeps an endpoint
