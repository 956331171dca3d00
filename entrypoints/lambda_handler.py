"""The Lambda entrypoints: Kinesis batch in, ``batchItemFailures`` out (``handler``); and the
scheduled give-up of incomplete files (``expire``)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any, TypedDict

from adapters.json_logging import request_id
from entrypoints.container import Container, build_container


class BatchItemFailure(TypedDict):
    itemIdentifier: str


class BatchResponse(TypedDict):
    batchItemFailures: list[BatchItemFailure]


class ExpirySummary(TypedDict):
    incompleteFiles: int
    expired: int
    oldestIncompleteFileAgeSeconds: float
    expiredFileIds: list[str]
    failedFileIds: list[str]


_container: Container | None = None


def _root() -> Container:
    """The container is built on the first invocation (the cold start), then reused."""
    global _container  # one composition root per Lambda container
    if _container is None:
        _container = build_container(os.environ)
    return _container


def handler(event: Mapping[str, Any], context: object) -> BatchResponse:
    return handle(_root(), event, context)


def expire(event: Mapping[str, Any], context: object) -> ExpirySummary:
    """EventBridge's schedule calls it every few minutes; its event carries nothing needed."""
    return run_expiry(_root(), context)


def run_expiry(container: Container, context: object) -> ExpirySummary:
    """One expiry run on a given container (tests move its clock)."""
    token = request_id.set(getattr(context, "aws_request_id", None))
    try:
        run = container.expire_incomplete()()
    finally:
        request_id.reset(token)
    return {
        "incompleteFiles": run.incomplete,
        "expired": len(run.expired),
        "oldestIncompleteFileAgeSeconds": round(run.oldest_age, 3),
        "expiredFileIds": [str(file.file_id) for file in run.expired],
        "failedFileIds": [str(file_id) for file_id in run.failed],
    }


def _remaining_seconds(context: object) -> Callable[[], float] | None:
    """Lambda's context says how long the invocation has left; other callers may not."""
    millis = getattr(context, "get_remaining_time_in_millis", None)
    if not callable(millis):
        return None
    return lambda: float(millis()) / 1000.0


def handle(container: Container, event: Mapping[str, Any], context: object) -> BatchResponse:
    """Run one batch on a given container: how tests run two containers side by side."""
    token = request_id.set(getattr(context, "aws_request_id", None))
    try:
        records = container.decode_event()(event)
        failed = container.process_batch()(records, _remaining_seconds(context))
        return {"batchItemFailures": [{"itemIdentifier": seq} for seq in failed]}
    finally:
        request_id.reset(token)
