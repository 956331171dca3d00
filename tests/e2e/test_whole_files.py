"""Whole files through the handler on the dynamodb backend, over moto's server: a batch of small
files is uploaded with one BatchGetItem and a BatchWriteItem per 25 files, no chunk in S3; a
late duplicate in a later batch finds the tombstone and is not uploaded again."""

from __future__ import annotations

from collections import Counter

from tests.assertions import assert_uploaded_once
from tests.e2e.support import failures
from tests.e2e.test_dynamodb_backend import AwsRequests, SharedStack
from tests.e2e.test_dynamodb_backend import shared as shared  # the fixture

FILES = 30


def test_a_batch_of_small_files_is_uploaded_with_no_chunk_stored_and_two_kinds_of_request(
    shared: SharedStack,
) -> None:
    stack = shared.stack
    sources = [stack.file(f"small-{n}.jpg", size=2_000, chunk_size=2_000) for n in range(FILES)]
    container = shared.container("small-files")
    counted = AwsRequests(container)
    records = stack.seq.records([source.payloads[0] for source in sources])

    answers: list[list[str]] = []
    calls = counted.during(lambda: answers.append(failures(stack.invoke(container, records))))

    assert answers == [[]]

    for source in sources:
        assert_uploaded_once(stack.uploads_of(source), source.data)
        item = shared.item(source)
        assert item["status"] == {"S": "uploaded"}
        assert item["partition_count"] == item["received_count"] == {"N": "1"}
        assert item["byte_count"] == {"N": "2000"}
        assert int(item["expires_at"]["N"]) > int(float(item["finished_at"]["N"]))
    assert calls == Counter({"dynamodb:BatchGetItem": 1, "dynamodb:BatchWriteItem": 2})
    assert stack.keys("pending/") == []


def test_a_late_duplicate_of_a_whole_file_in_a_later_batch_is_not_uploaded_again(
    shared: SharedStack,
) -> None:
    stack = shared.stack
    source = stack.file("whole-then-late.bin", size=9_000, chunk_size=3_000)
    container, other = shared.container("first"), shared.container("second")

    assert failures(stack.invoke(container, stack.seq.records(source.payloads))) == []
    again = stack.seq.records([source.payloads[1], *source.payloads])
    assert failures(stack.invoke(other, again)) == []

    assert_uploaded_once(stack.uploads_of(source), source.data)
    assert shared.status(source) == "uploaded"
    assert stack.keys("pending/") == []
    assert stack.keys("quarantine/") == []
