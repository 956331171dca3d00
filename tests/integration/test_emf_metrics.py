"""Metrics as CloudWatch Embedded Metric Format lines."""

from __future__ import annotations

import json
from typing import Any

from adapters.emf_metrics import EmfMetrics
from application.metrics import Metric


def documents(lines: list[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in "".join(lines).splitlines()]


def test_a_batch_publishes_one_document_of_counters_and_one_per_rejection_reason() -> None:
    lines: list[str] = []
    metrics = EmfMetrics(write=lines.append, clock=lambda: 1_700_000_000.5)
    metrics.add(Metric.CHUNKS_ACCEPTED)
    metrics.add(Metric.CHUNKS_ACCEPTED)
    metrics.add(Metric.BYTES_UPLOADED, 1024)
    metrics.add(Metric.UPLOAD_LATENCY, 12.5)
    metrics.add(Metric.UPLOAD_LATENCY, 40.0)
    metrics.add(Metric.REJECTIONS, reason="data-not-json")
    metrics.add(Metric.REJECTIONS, reason="data-not-json")
    metrics.add(Metric.REJECTIONS, reason="content-conflict")

    metrics.publish()

    main, not_json, conflict = documents(lines)
    assert main["_aws"]["Timestamp"] == 1_700_000_000_500
    [directive] = main["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "StreamingFileBuilder"
    assert directive["Dimensions"] == [["Service"]]
    assert {m["Name"]: m["Unit"] for m in directive["Metrics"]} == {
        "ChunksAccepted": "Count",
        "BytesUploaded": "Bytes",
        "UploadLatency": "Milliseconds",
    }
    assert (main["ChunksAccepted"], main["BytesUploaded"]) == (2, 1024)
    assert main["UploadLatency"] == [12.5, 40.0]
    assert not_json["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["Service", "Reason"]]
    assert (not_json["Reason"], not_json["Rejections"]) == ("data-not-json", 2)
    assert (conflict["Reason"], conflict["Rejections"]) == ("content-conflict", 1)


def test_publishing_starts_again_from_zero_and_writes_nothing_when_nothing_happened() -> None:
    lines: list[str] = []
    metrics = EmfMetrics(write=lines.append)
    metrics.add(Metric.DUPLICATES)
    metrics.publish()
    metrics.publish()

    assert len(documents(lines)) == 1
