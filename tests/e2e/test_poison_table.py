"""Every kind of poison record, each in the middle of valid ones: logged, quarantined, passed.

Both state backends: a poison record must never stall a shard, whichever backend runs it.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from domain import redact
from entrypoints.container import Container
from entrypoints.provision import provision
from tests.assertions import assert_uploaded_once
from tests.e2e.support import SECRET, LogLines, Record, SourceFile, Stack, failures

Poison = Callable[[Stack, SourceFile], Record]


def _without(field: str) -> Poison:
    def make(stack: Stack, source: SourceFile) -> Record:
        payload = source.payload(1)
        del payload[field]
        return stack.seq.record(payload)

    return make


def _changed(**changes: Any) -> Poison:
    return lambda stack, source: stack.seq.record(source.payload(1, **changes))


def _other_file(url: str) -> Poison:
    return lambda stack, source: stack.seq.record(source.payload(0, putEndpoint=url))


CASES: dict[str, tuple[Poison, str]] = {
    "data not base64": (lambda s, _: s.seq.not_base64("%%% not base64"), "data-not-base64"),
    "data not JSON": (lambda s, _: s.seq.raw(b"{not json"), "data-not-json"),
    "JSON not an object": (lambda s, _: s.seq.raw(b"[1, 2, 3]"), "schema-violation"),
    "partition a string": (_changed(partition="1"), "schema-violation"),
    "partition a float": (_changed(partition=1.5), "schema-violation"),
    "partitionCount a bool": (_changed(partitionCount=True), "schema-violation"),
    "content a number": (_changed(content=12), "schema-violation"),
    "putEndpoint missing": (_without("putEndpoint"), "schema-violation"),
    "partition missing": (_without("partition"), "schema-violation"),
    "content missing": (_without("content"), "schema-violation"),
    "negative partition": (_changed(partition=-1), "schema-violation"),
    "huge partition": (_changed(partition=2**70), "partition-out-of-range"),
    "partition equal to the count": (_changed(partition=4), "partition-out-of-range"),
    "partitionCount zero": (_changed(partitionCount=0, partition=0), "schema-violation"),
    "partitionCount above the maximum": (
        _changed(partitionCount=20_001),
        "partition-count-too-large",
    ),
    "content not base64": (_changed(content="***"), "content-not-base64"),
    "empty putEndpoint": (_changed(putEndpoint=""), "schema-violation"),
    "file scheme": (_other_file("file:///etc/passwd"), "endpoint-invalid"),
    "gopher scheme": (_other_file("gopher://127.0.0.1:70/x"), "endpoint-invalid"),
    "port out of range": (_other_file("http://127.0.0.1:99999/latest"), "endpoint-invalid"),
    "host not allowed": (_other_file("http://169.254.169.254/latest"), "endpoint-refused"),
    "partitionCount conflict": (_changed(partitionCount=5), "partition-count-conflict"),
    "other bytes for a partition": (
        lambda s, src: s.seq.record(
            src.payload(0, content=base64.b64encode(b"forged").decode("ascii"))
        ),
        "content-conflict",
    ),
    "file past MAX_FILE_BYTES": (
        _changed(content=base64.b64encode(b"x" * 75_000).decode("ascii")),
        "file-too-large",
    ),
}


def container_on(stack: Stack, backend: str, **extra: str) -> Container:
    """A container on the local or the dynamodb backend (its table provisioned on moto)."""
    if backend == "dynamodb":
        table = f"sfb-{stack.bucket}"[:200]
        extra = {"STATE_BACKEND": "dynamodb", "STATE_TABLE": table, **extra}
    container = stack.container("a", **extra)
    if backend == "dynamodb":
        provision(
            container.settings(),
            container.s3_client(),
            container.dynamodb_client(),
            say=lambda _: None,
        )
    return container


def endpoint_of(record: Record) -> str | None:
    """The putEndpoint a record carries, if its data is a JSON object that names one."""
    try:
        document = json.loads(base64.b64decode(record["kinesis"]["data"], validate=True))
    except (binascii.Error, ValueError):
        return None
    endpoint = document.get("putEndpoint") if isinstance(document, dict) else None
    return endpoint if isinstance(endpoint, str) else None


def assert_no_endpoint_in(metadata: Mapping[str, str], *endpoints: str) -> None:
    """Quarantine metadata never holds an endpoint: not whole, redacted, its host or its path."""
    for endpoint in endpoints:
        netloc, _, rest = endpoint.split("//", 1)[-1].partition("/")
        pieces = (endpoint, redact(endpoint), netloc.rsplit("@", 1)[-1], "/" + rest.split("?")[0])
        for piece in (p for p in pieces if len(p) >= 4):
            for name, value in metadata.items():
                assert piece not in value, f"quarantine metadata {name!r} holds {piece!r}"


@pytest.mark.parametrize("backend", ["local", "dynamodb"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_a_poison_record_is_quarantined_with_its_reason_and_the_file_around_it_completes(
    stack: Stack, logs: LogLines, case: str, backend: str
) -> None:
    make, reason = CASES[case]
    source = stack.file(
        f"table-{backend}-{case.replace(' ', '-')}.bin", size=40_000, chunk_size=10_000
    )
    container = container_on(stack, backend, MAX_FILE_BYTES="80000", MAX_PARTITION_COUNT="10000")
    first = stack.seq.record(source.payload(0))
    poison = make(stack, source)
    rest = stack.seq.records(source.payloads[1:])

    response = stack.invoke(container, [first, poison, *rest])

    assert failures(response) == []
    assert_uploaded_once(stack.uploads_of(source), source.data)
    seq = poison["kinesis"]["sequenceNumber"]
    [key] = stack.keys("quarantine/")
    assert key.endswith(f"/{seq}")
    assert stack.metadata(key)["reason"] == reason
    assert_no_endpoint_in(stack.metadata(key), source.endpoint, endpoint_of(poison) or "")
    assert stack.read(key) == poison["kinesis"]["data"].encode("ascii")
    [warning] = [e for e in logs.at("WARNING") if e.get("sequence_number") == seq]
    assert warning["reason"] == reason
    assert SECRET not in logs.text
