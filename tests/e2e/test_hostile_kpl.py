"""Every kind of malformed KPL aggregate through the real handler, on both backends: the
aggregate quarantined whole, or exactly its bad user records; the shard never stalls, the
file around it completes, and nothing (least of all a signature) is printed."""

from __future__ import annotations

import pytest

from entrypoints.events import encode_payload
from entrypoints.provision import provision
from tests.assertions import assert_uploaded_once
from tests.e2e.support import SECRET, LogLines, Stack, failures
from tests.e2e.test_expiry import backend_settings
from tests.integration.test_kinesis import HOSTILE


@pytest.mark.parametrize("backend", ["local", "dynamodb"])
@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_malformed_aggregate_is_quarantined_with_its_reason_and_the_shard_moves_on(
    stack: Stack, logs: LogLines, capfd: pytest.CaptureFixture[str], case: str, backend: str
) -> None:
    hostile = HOSTILE[case]
    source = stack.file(
        f"kpl-{backend}-{case.replace(' ', '-')}.bin", size=40_000, chunk_size=10_000
    )
    container = stack.container("a", **backend_settings(stack, backend))
    if backend == "dynamodb":
        provision(container.settings(), stack.s3, container.dynamodb_client(), say=lambda _: None)
    first = stack.seq.record(source.payload(0))
    packed = stack.seq.raw(hostile.build([encode_payload(source.payload(p)) for p in (1, 2)]))
    sequence = packed["kinesis"]["sequenceNumber"]
    last = stack.seq.record(source.payload(3))

    response = stack.invoke(container, [first, packed, last])

    assert failures(response) == []
    ids = [sequence] if hostile.bad is None else [f"{sequence}-{sub}" for sub in hostile.bad]
    keys = stack.keys("quarantine/")
    assert sorted(key.rsplit("/", 1)[1] for key in keys) == sorted(ids)
    for key in keys:
        metadata = stack.metadata(key)
        assert metadata["reason"] == (
            "kpl-aggregate-unreadable" if hostile.bad is None else "kpl-user-record-unusable"
        )
        assert hostile.detail in metadata["detail"]
        assert metadata["sequence-number"] == sequence
    warnings = [e for e in logs.at("WARNING") if e.get("sequence_number") == sequence]
    assert len(warnings) == len(ids)
    assert all(hostile.detail in w["detail"] for w in warnings)
    if hostile.bad is None:
        assert stack.read(keys[0]) == packed["kinesis"]["data"].encode("ascii")
        assert stack.uploads_of(source) == []
        # The producer sends the lost chunks again: the shard was never stuck.
        resent = stack.seq.records([source.payload(1), source.payload(2)])
        assert failures(stack.invoke(container, resent)) == []
    assert_uploaded_once(stack.uploads_of(source), source.data)
    out, err = capfd.readouterr()
    for text in (logs.text, out, err):
        assert SECRET not in text
    assert "Raw data" not in err
