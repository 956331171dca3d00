"""The Lambda entrypoint: Kinesis batch in, ``batchItemFailures`` out."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, TypedDict

from adapters.json_logging import request_id
from entrypoints.container import Container, build_container


class BatchItemFailure(TypedDict):
    itemIdentifier: str


class BatchResponse(TypedDict):
    batchItemFailures: list[BatchItemFailure]


_container: Container | None = None


def handler(event: Mapping[str, Any], context: object) -> BatchResponse:
    """The container is built on the first invocation (the cold start), then reused."""
    global _container  # one composition root per Lambda container
    if _container is None:
        _container = build_container(os.environ)
    return handle(_container, event, context)


def handle(container: Container, event: Mapping[str, Any], context: object) -> BatchResponse:
    """Run one batch on a given container: how tests run two containers side by side."""
    token = request_id.set(getattr(context, "aws_request_id", None))
    try:
        records = container.decode_event()(event)
        failed = container.process_batch()(records)
        return {"batchItemFailures": [{"itemIdentifier": seq} for seq in failed]}
    finally:
        request_id.reset(token)
