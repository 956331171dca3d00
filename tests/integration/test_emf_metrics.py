"""Metrics as CloudWatch Embedded Metric Format lines."""

from __future__ import annotations

import json
from typing import Any

from adapters.emf_metrics import MAX_VALUES_PER_METRIC, EmfMetrics
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
    assert not_json["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [
        ["Service"],
        ["Service", "Reason"],
    ]
    assert (not_json["Reason"], not_json["Rejections"]) == ("data-not-json", 2)
    assert (conflict["Reason"], conflict["Rejections"]) == ("content-conflict", 1)


def test_publishing_starts_again_from_zero_and_writes_nothing_when_nothing_happened() -> None:
    lines: list[str] = []
    metrics = EmfMetrics(write=lines.append)
    metrics.add(Metric.DUPLICATES)
    metrics.publish()
    metrics.publish()

    assert len(documents(lines)) == 1


def declared(document: dict[str, Any]) -> set[str]:
    [directive] = document["_aws"]["CloudWatchMetrics"]
    return {m["Name"] for m in directive["Metrics"]}


def values_of(document: dict[str, Any], name: str) -> list[float]:
    value = document.get(name)
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def test_each_rejection_counts_towards_its_reason_and_the_services_total() -> None:
    lines: list[str] = []
    metrics = EmfMetrics(service="my-stack", write=lines.append)
    metrics.add(Metric.REJECTIONS, reason="data-not-json")
    metrics.add(Metric.REJECTIONS, reason="count-conflict")

    metrics.publish()

    for document in documents(lines):
        [directive] = document["_aws"]["CloudWatchMetrics"]
        # [Service] alone makes CloudWatch sum the reasons into one alarmable total.
        assert ["Service"] in directive["Dimensions"]
        assert ["Service", "Reason"] in directive["Dimensions"]
        assert document["Service"] == "my-stack"


def test_a_batch_of_250_uploads_is_split_so_no_document_holds_over_100_values_of_a_metric() -> None:
    lines: list[str] = []
    metrics = EmfMetrics(write=lines.append)
    latencies = [float(n) for n in range(1, 251)]
    for latency in latencies:
        metrics.add(Metric.UPLOAD_LATENCY, latency)
        metrics.add(Metric.FILES_COMPLETED)
        metrics.add(Metric.BYTES_UPLOADED, 10)
    metrics.add(Metric.REJECTIONS, reason="data-not-json")

    metrics.publish()

    published = documents(lines)
    main = [d for d in published if "Reason" not in d]
    assert len(main) == 3
    for document in published:
        for name in declared(document):
            assert len(values_of(document, name)) <= MAX_VALUES_PER_METRIC
        assert declared(document) == {
            key for key in document if key not in ("_aws", "Service", "Reason")
        }
    published_latencies = [v for d in main for v in values_of(d, "UploadLatency")]
    assert sorted(published_latencies) == latencies
    assert [values_of(d, "FilesCompleted") for d in main if "FilesCompleted" in d] == [[250]]
    assert [values_of(d, "BytesUploaded") for d in main if "BytesUploaded" in d] == [[2500]]
    assert [d["Rejections"] for d in published if "Rejections" in d] == [1]


def test_exactly_100_values_of_a_metric_fit_in_one_document() -> None:
    lines: list[str] = []
    metrics = EmfMetrics(write=lines.append)
    for latency in range(MAX_VALUES_PER_METRIC):
        metrics.add(Metric.UPLOAD_LATENCY, float(latency))

    metrics.publish()

    [document] = documents(lines)
    assert len(document["UploadLatency"]) == MAX_VALUES_PER_METRIC
