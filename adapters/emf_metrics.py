"""CloudWatch Embedded Metric Format: metrics as JSON lines on stdout, which CloudWatch Logs
turns into metrics with no API call on the hot path.

One document per batch for the service's counters and timings, and one per rejection
reason, so rejections can be graphed by reason.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any

from application.metrics import Metric

NAMESPACE = "StreamingFileBuilder"
SERVICE = "streaming-file-builder"
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

    def add(self, metric: Metric, value: float = 1.0, reason: str | None = None) -> None:
        values = self._values.setdefault((metric, reason), [])
        if metric in _TIMINGS or not values:
            values.append(value)
        else:
            values[0] += value

    def publish(self) -> None:
        if not self._values:
            return
        gathered, self._values = self._values, {}
        plain = {m: v for (m, reason), v in gathered.items() if reason is None}
        if plain:
            self._document(plain, {})
        for (metric, reason), values in gathered.items():
            if reason is not None:
                self._document({metric: values}, {"Reason": reason})

    def _document(self, metrics: dict[Metric, list[float]], dimensions: dict[str, str]) -> None:
        names = ["Service", *dimensions]
        document: dict[str, Any] = {
            "_aws": {
                "Timestamp": int(self._clock() * 1000),
                "CloudWatchMetrics": [
                    {
                        "Namespace": self._namespace,
                        "Dimensions": [names],
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
