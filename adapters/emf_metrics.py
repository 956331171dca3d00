"""CloudWatch Embedded Metric Format: metrics as JSON lines on stdout, which CloudWatch Logs
turns into metrics with no API call on the hot path.

One document per batch for the service's counters and timings, and one per rejection
reason. A reason's document declares two dimension sets, ``[Service]`` and
``[Service, Reason]``, so CloudWatch keeps both the count per reason and the total across
reasons (the one an alarm can watch).

CloudWatch drops the values past 100 of one metric in one document, and a timing collects
one value per event (``UploadLatency``: one per upload). A batch's values are therefore
split over as many documents as needed, 100 values of a metric at most in each: the first
document carries the counters (one summed value each) and the first 100 values of every
timing, each further document only the next 100 values of the timings that have more.
Splitting, rather than folding the values into ``Values``/``Counts`` arrays, keeps every
value exact (percentiles are computed from the values themselves, with no rounding into
buckets to make repeats) and keeps the documents in the plain form the EMF specification
defines; a batch of uploads costs one extra log line per 100 uploads.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from application.metrics import Metric

NAMESPACE = "StreamingFileBuilder"
SERVICE = "streaming-file-builder"
# CloudWatch keeps at most this many values of one metric from one EMF document.
MAX_VALUES_PER_METRIC = 100
_TIMINGS = {Metric.UPLOAD_LATENCY}


class EmfMetrics:
    def __init__(
        self,
        namespace: str = NAMESPACE,
        service: str = SERVICE,
        write: Callable[[str], object] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._namespace = namespace
        self._service = service
        self._write = write or (lambda text: sys.stdout.write(text))
        self._clock = clock
        self._values: dict[tuple[Metric, str | None], list[float]] = {}
        self._lock = threading.Lock()  # files' lanes add at once

    def add(self, metric: Metric, value: float = 1.0, reason: str | None = None) -> None:
        with self._lock:
            values = self._values.setdefault((metric, reason), [])
            if metric in _TIMINGS or not values:
                values.append(value)
            else:
                values[0] += value

    def publish(self) -> None:
        with self._lock:
            gathered, self._values = self._values, {}
        if not gathered:
            return
        plain = {m: v for (m, reason), v in gathered.items() if reason is None}
        if plain:
            self._documents(plain, {}, [["Service"]])
        for (metric, reason), values in gathered.items():
            if reason is not None:
                self._documents(
                    {metric: values}, {"Reason": reason}, [["Service"], ["Service", "Reason"]]
                )

    def _documents(
        self,
        metrics: dict[Metric, list[float]],
        dimensions: dict[str, str],
        dimension_sets: list[list[str]],
    ) -> None:
        for part in _split(metrics):
            self._document(part, dimensions, dimension_sets)

    def _document(
        self,
        metrics: dict[Metric, list[float]],
        dimensions: dict[str, str],
        dimension_sets: list[list[str]],
    ) -> None:
        document: dict[str, Any] = {
            "_aws": {
                "Timestamp": int(self._clock() * 1000),
                "CloudWatchMetrics": [
                    {
                        "Namespace": self._namespace,
                        "Dimensions": dimension_sets,
                        "Metrics": [{"Name": m.metric_name, "Unit": m.unit} for m in metrics],
                    }
                ],
            },
            "Service": self._service,
            **dimensions,
        }
        for metric, values in metrics.items():
            document[metric.metric_name] = values if metric in _TIMINGS else values[0]
        self._write(json.dumps(document) + "\n")


def _split(metrics: dict[Metric, list[float]]) -> list[dict[Metric, list[float]]]:
    """The n-th document gets the n-th run of 100 values of each metric: a counter holds one
    value, so it is only ever in the first."""
    parts: list[dict[Metric, list[float]]] = []
    for metric, values in metrics.items():
        for index, start in enumerate(range(0, len(values), MAX_VALUES_PER_METRIC)):
            if index == len(parts):
                parts.append({})
            parts[index][metric] = values[start : start + MAX_VALUES_PER_METRIC]
    return parts
