"""A batch through the real handler leaves Embedded Metric Format lines on stdout."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.e2e.support import SECRET, Stack


def emf_documents(text: str) -> list[dict[str, Any]]:
    found = []
    for line in text.splitlines():
        if line.startswith("{"):
            document = json.loads(line)
            if "_aws" in document:
                found.append(document)
    return found


def test_a_batch_publishes_its_counters_and_rejections_as_emf(
    stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    source = stack.file("metrics.bin", size=30_000, chunk_size=10_000)
    records = stack.seq.records(source.payloads)
    poison = stack.seq.raw(b"{not json")

    stack.invoke(stack.container("a"), [*records, records[0], poison])

    out = capsys.readouterr().out
    main, rejected = emf_documents(out)
    assert (main["ChunksAccepted"], main["Duplicates"]) == (3, 1)
    assert (main["FilesCompleted"], main["BytesUploaded"]) == (1, 30_000)
    assert len(main["UploadLatency"]) == 1
    assert (rejected["Reason"], rejected["Rejections"]) == ("data-not-json", 1)
    assert SECRET not in out
