"""JsonFormatter through a real logging handler: one JSON object per line, no secrets."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from adapters.json_logging import JsonFormatter, request_id
from tests.integration.builders import SECRET, signed

ENDPOINT = signed("https://uploads.example.com/files/report.csv")


class Captured:
    def __init__(self, logger: logging.Logger, stream: io.StringIO) -> None:
        self.logger = logger
        self._stream = stream

    def lines(self) -> list[str]:
        return self._stream.getvalue().splitlines()

    def entries(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines()]


@pytest.fixture
def captured(request: pytest.FixtureRequest) -> Iterator[Captured]:
    """A logger of its own per test, writing JSON lines to memory."""
    logger = logging.getLogger(f"sfb.integration.{request.node.name}")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield Captured(logger, stream)
    finally:
        logger.removeHandler(handler)


def test_each_log_call_is_one_json_object_on_one_line(captured: Captured) -> None:
    captured.logger.info("first\nwith a newline")
    captured.logger.warning("second %s", "with\r\nargs")

    lines = captured.lines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["message"] == "first\nwith a newline"
    assert second["message"] == "second with\r\nargs"


def test_an_entry_names_level_message_time_and_logger(captured: Captured) -> None:
    captured.logger.error("upload refused for good")

    (entry,) = captured.entries()
    assert entry["level"] == "ERROR"
    assert entry["message"] == "upload refused for good"
    assert entry["logger"] == captured.logger.name
    assert datetime.fromisoformat(entry["time"]).utcoffset() is not None


def test_an_entry_carries_an_rfc3339_utc_timestamp_for_lambdas_log_level_filter(
    captured: Captured,
) -> None:
    captured.logger.debug("a debug line Lambda may filter")

    (entry,) = captured.entries()
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z", entry["timestamp"])
    stamp = datetime.fromisoformat(entry["timestamp"])
    assert stamp.utcoffset() == timedelta(0)
    assert stamp == datetime.fromisoformat(entry["time"])
    assert entry["level"] == "DEBUG"


def test_an_extra_field_cannot_replace_the_level_or_the_timestamp(captured: Captured) -> None:
    captured.logger.info("odd extras", extra={"timestamp": "yesterday", "level": "TRACE"})

    (entry,) = captured.entries()
    assert entry["level"] == "INFO"
    assert entry["timestamp"].endswith("Z")
    assert entry["timestamp"] != "yesterday"


def test_extra_fields_become_fields_of_the_entry(captured: Captured) -> None:
    captured.logger.warning(
        "record rejected",
        extra={"file_id": "ab" * 16, "partition": 3, "sequence_number": "4959", "bytes": None},
    )

    (entry,) = captured.entries()
    assert entry["file_id"] == "ab" * 16
    assert entry["partition"] == 3
    assert entry["sequence_number"] == "4959"
    assert "bytes" not in entry
    assert "args" not in entry
    assert "msg" not in entry


def test_the_request_id_of_the_invocation_is_in_every_entry(captured: Captured) -> None:
    token = request_id.set("req-123")
    try:
        captured.logger.info("inside the invocation")
    finally:
        request_id.reset(token)
    captured.logger.info("outside")

    inside, outside = captured.entries()
    assert inside["request_id"] == "req-123"
    assert "request_id" not in outside


def test_a_query_string_in_a_message_is_scrubbed(captured: Captured) -> None:
    captured.logger.info("uploading to %s now", ENDPOINT)

    (line,) = captured.lines()
    assert SECRET not in line
    assert "X-Amz-Credential" not in line
    assert (
        "https://uploads.example.com/files/report.csv?<redacted> now" in json.loads(line)["message"]
    )


def test_a_query_string_in_an_extra_field_is_scrubbed(captured: Captured) -> None:
    captured.logger.warning(
        "upload failed", extra={"reason": f"ConnectionError: {ENDPOINT}", "endpoint": ENDPOINT}
    )

    (line,) = captured.lines()
    assert SECRET not in line
    assert json.loads(line)["endpoint"] == "https://uploads.example.com/files/report.csv?<redacted>"


def test_a_query_string_in_an_exception_is_scrubbed(captured: Captured) -> None:
    try:
        raise ConnectionError(f"Max retries exceeded with url: {ENDPOINT}")
    except ConnectionError:
        captured.logger.exception("upload failed")

    (entry,) = captured.entries()
    assert "Traceback" in entry["exception"]
    assert SECRET not in json.dumps(entry)


def test_a_query_string_after_an_upper_case_scheme_is_scrubbed(captured: Captured) -> None:
    captured.logger.info("uploading to %s", "HTTPS://uploads.example.com/a?" + SECRET)

    assert SECRET not in captured.lines()[0]


def test_a_query_string_in_a_non_text_extra_field_is_scrubbed(captured: Captured) -> None:
    captured.logger.warning(
        "upload failed",
        extra={"error": ConnectionError(ENDPOINT), "endpoints": [ENDPOINT]},
    )

    assert SECRET not in captured.lines()[0]
