"""A record that can never be processed is quarantined and logged; it never stalls the shard."""

from __future__ import annotations

import base64

import pytest

from tests.assertions import assert_uploaded_once
from tests.e2e.support import LogLines, Record, Sequencer, SourceFile, Stack, failures

REASONS = (
    "data-not-base64",
    "data-not-json",
    "schema-violation",
    "partition-out-of-range",
    "content-not-base64",
    "partition-count-conflict",
    "content-conflict",
)


def _poison(seq: Sequencer, source: SourceFile) -> dict[str, Record]:
    """One record per reason, each about ``source`` where a reason allows it."""
    other_bytes = base64.b64encode(b"not the first bytes of partition 0").decode("ascii")
    return {
        "data-not-base64": seq.not_base64("this is %% not base64 !"),
        "data-not-json": seq.raw(b"{'putEndpoint': not json"),
        "schema-violation": seq.record(source.payload(1, partition="one")),
        "partition-out-of-range": seq.record(source.payload(1, partition=source.partition_count)),
        "content-not-base64": seq.record(source.payload(1, content="***not base64***")),
        "partition-count-conflict": seq.record(
            source.payload(1, partitionCount=source.partition_count + 1)
        ),
        "content-conflict": seq.record(source.payload(0, content=other_bytes)),
    }


def test_poison_records_in_the_middle_of_a_batch_are_quarantined_and_the_file_completes(
    stack: Stack, logs: LogLines
) -> None:
    source = stack.file("around-poison.bin", size=40_000, chunk_size=10_000)
    first = stack.seq.record(source.payload(0))
    poison = _poison(stack.seq, source)
    rest = stack.seq.records(source.payloads[1:])
    container = stack.container("a")

    response = stack.invoke(container, [first, *poison.values(), *rest])

    assert response == {"batchItemFailures": []}
    assert_uploaded_once(stack.uploads_of(source), source.data)
    quarantined = stack.keys("quarantine/")
    assert len(quarantined) == len(REASONS)
    for reason, record in poison.items():
        seq = record["kinesis"]["sequenceNumber"]
        [key] = [k for k in quarantined if k.endswith(f"/{seq}")]
        assert stack.metadata(key)["reason"] == reason
        assert stack.read(key) == record["kinesis"]["data"].encode("ascii")
    warnings = {e["sequence_number"]: e for e in logs.at("WARNING")}
    for reason, record in poison.items():
        line = warnings[record["kinesis"]["sequenceNumber"]]
        assert line["reason"] == reason
        assert line["quarantined_as"] in quarantined


@pytest.mark.parametrize("reason", REASONS)
def test_each_kind_of_poison_record_is_quarantined_with_its_reason(
    stack: Stack, logs: LogLines, reason: str
) -> None:
    source = stack.file(f"poison-{reason}.bin", size=20_000, chunk_size=10_000)
    first = stack.seq.record(source.payload(0))
    record = _poison(stack.seq, source)[reason]
    container = stack.container("a")

    response = stack.invoke(container, [first, record])

    assert failures(response) == []
    seq = record["kinesis"]["sequenceNumber"]
    [key] = stack.keys("quarantine/")
    assert key.endswith(f"/{seq}")
    assert stack.metadata(key)["reason"] == reason
    [warning] = logs.at("WARNING")
    assert (warning["reason"], warning["sequence_number"]) == (reason, seq)


def test_a_chunk_contradicting_one_another_container_stored_is_quarantined_at_batch_end(
    stack: Stack, logs: LogLines
) -> None:
    source = stack.file("late-conflict.bin", size=30_000, chunk_size=10_000)
    other_bytes = base64.b64encode(b"other bytes").decode("ascii")
    a, b, c = stack.container("a"), stack.container("b"), stack.container("c")
    stack.invoke(a, stack.seq.records([source.payload(0)]))
    count_conflict = stack.seq.record(source.payload(1, partitionCount=4))
    content_conflict = stack.seq.record(source.payload(0, content=other_bytes))

    responses = [stack.invoke(b, [count_conflict]), stack.invoke(c, [content_conflict])]

    assert [failures(response) for response in responses] == [[], []]
    reasons = {e["sequence_number"]: e["reason"] for e in logs.at("WARNING") if "reason" in e}
    assert reasons == {
        count_conflict["kinesis"]["sequenceNumber"]: "partition-count-conflict",
        content_conflict["kinesis"]["sequenceNumber"]: "content-conflict",
    }
    assert len(stack.keys("quarantine/")) == 2

    stack.invoke(b, stack.seq.records(source.payloads[1:]))

    assert_uploaded_once(stack.uploads_of(source), source.data)
    assert stack.keys("pending/") == []


def test_a_put_endpoint_outside_the_allowed_hosts_is_quarantined_and_never_contacted(
    stack: Stack, logs: LogLines
) -> None:
    source = stack.file("elsewhere.bin", size=100, chunk_size=100)
    record = stack.seq.record(
        source.payload(0, putEndpoint="http://localhost:1/uploads/elsewhere.bin?sig=x")
    )
    container = stack.container("a")

    response = stack.invoke(container, [record])

    assert failures(response) == []
    assert stack.receiver.received == []
    [key] = stack.keys("quarantine/")
    assert stack.metadata(key)["reason"] == "endpoint-refused"
    [warning] = logs.at("WARNING")
    assert warning["reason"] == "endpoint-refused"


def test_a_file_larger_than_max_file_bytes_is_rejected(stack: Stack, logs: LogLines) -> None:
    source = stack.file("too-large.bin", size=3_000, chunk_size=1_000)
    container = stack.container("a", MAX_FILE_BYTES="2500")

    response = stack.invoke(container, stack.seq.records(source.payloads))

    assert failures(response) == []
    assert stack.uploads_of(source) == []
    assert [stack.metadata(k)["reason"] for k in stack.keys("quarantine/")] == ["file-too-large"]


def test_a_partition_count_above_max_partition_count_is_rejected(
    stack: Stack, logs: LogLines
) -> None:
    source = stack.file("too-many-parts.bin", size=5_000, chunk_size=1_000)
    container = stack.container("a", MAX_PARTITION_COUNT="4")

    response = stack.invoke(container, stack.seq.records(source.payloads))

    assert failures(response) == []
    assert stack.uploads_of(source) == []
    assert {w["reason"] for w in logs.at("WARNING")} == {"partition-count-too-large"}
    assert len(stack.keys("quarantine/")) == source.partition_count
