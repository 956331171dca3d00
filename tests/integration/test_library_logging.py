"""The libraries' log lines: never at DEBUG or INFO, never through the root logger (which
Lambda's runtime sets to the function's ApplicationLogLevel), and scrubbed like the
service's own; whatever else reaches the root logger is scrubbed too."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from adapters.json_logging import LIBRARIES, JsonFormatter, Scrubbing, configure_logging
from tests.integration.builders import SECRET, signed

ENDPOINT = signed("https://uploads.example.com/files/report.csv")
SESSION_TOKEN = "IQoJb3JpZ2luX2VjEXAMPLESESSIONTOKEN"


class Streams:
    """What the service's handler wrote, and what a handler on the root logger (Lambda's
    runtime's, formatting as it does) was given."""

    def __init__(self) -> None:
        self.service = io.StringIO()
        self.root = io.StringIO()

    def service_entries(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.service.getvalue().splitlines()]


@pytest.fixture
def streams() -> Iterator[Streams]:
    """The logging state configure_logging changes, put back afterwards."""
    names = ("sfb", *LIBRARIES, "some.other.library")
    saved = {
        name: (logger.level, logger.propagate, list(logger.handlers))
        for name in names
        for logger in [logging.getLogger(name)]
    }
    root = logging.getLogger()
    root_level = root.level
    captured = Streams()
    runtime_handler = logging.StreamHandler(captured.root)
    runtime_handler.setFormatter(logging.Formatter("%(name)s %(message)s %(exc_info)s"))
    root.addHandler(runtime_handler)
    root.setLevel(logging.DEBUG)  # as Lambda's runtime does for ApplicationLogLevel DEBUG
    service = logging.getLogger("sfb")
    for handler in service.handlers:
        if isinstance(handler.formatter, JsonFormatter):
            service.removeHandler(handler)
    try:
        configure_logging("DEBUG")
        [handler] = [h for h in service.handlers if isinstance(h.formatter, JsonFormatter)]
        assert isinstance(handler, logging.StreamHandler)
        handler.setStream(captured.service)
        yield captured
    finally:
        root.removeHandler(runtime_handler)
        root.setLevel(root_level)
        for name, (level, propagate, handlers) in saved.items():
            logger = logging.getLogger(name)
            logger.setLevel(level)
            logger.propagate = propagate
            logger.handlers[:] = handlers


# What each library writes at DEBUG: a request signed with the role's session token, a
# request line with a presigned query string.
DEBUG_LINES = {
    "botocore": f"CanonicalRequest:\nPUT\n/b/k\n\nx-amz-security-token:{SESSION_TOKEN}\n",
    "boto3": f"Calling s3:put_object with {{'SessionToken': '{SESSION_TOKEN}'}}",
    "s3transfer": f"Using token {SESSION_TOKEN}",
    "urllib3": f'https://uploads.example.com:443 "PUT /files/report.csv?{ENDPOINT.split("?")[1]}"',
    "requests": f"Starting new HTTPS connection: {ENDPOINT}",
    "redis": f"AUTH {SESSION_TOKEN}",
}


@pytest.mark.parametrize("library", LIBRARIES)
def test_a_librarys_debug_and_info_lines_are_dropped_even_at_log_level_debug(
    streams: Streams, library: str
) -> None:
    logger = logging.getLogger(f"{library}.inner")

    logger.debug(DEBUG_LINES[library])
    logger.info(DEBUG_LINES[library])

    assert streams.service.getvalue() == ""
    assert streams.root.getvalue() == ""


@pytest.mark.parametrize("library", LIBRARIES)
def test_a_librarys_warning_goes_through_the_services_handler_scrubbed_never_to_the_root(
    streams: Streams, library: str
) -> None:
    """urllib3 warns with the whole URL when an endpoint answers with headers it cannot
    parse: a hostile endpoint could have its own presigned query string logged."""
    logger = logging.getLogger(f"{library}.inner")

    try:
        raise ValueError(f"while talking to {ENDPOINT}")
    except ValueError:
        logger.warning("Failed to parse headers (url=%s): %s", ENDPOINT, "defects", exc_info=True)

    [entry] = streams.service_entries()
    assert (entry["logger"], entry["level"]) == (f"{library}.inner", "WARNING")
    assert entry["message"].startswith("Failed to parse headers (url=https://uploads.example")
    assert SECRET not in streams.service.getvalue()
    assert streams.root.getvalue() == ""


def test_the_services_own_debug_lines_still_go_out_at_log_level_debug(streams: Streams) -> None:
    logging.getLogger("sfb").debug("batch judged")

    assert [e["message"] for e in streams.service_entries()] == ["batch judged"]


def test_a_line_of_another_library_reaches_the_root_logger_scrubbed_with_its_exception(
    streams: Streams,
) -> None:
    logger = logging.getLogger("some.other.library")

    try:
        raise ConnectionError(f"reset by {ENDPOINT}")
    except ConnectionError:
        logger.error("upload to %s failed", ENDPOINT, exc_info=True)

    written = streams.root.getvalue()
    assert "upload to https://uploads.example.com/files/report.csv?<redacted> failed" in written
    assert "ConnectionError: reset by https://uploads.example.com" in written
    assert SECRET not in written


def test_configuring_twice_adds_no_second_handler_or_filter(streams: Streams) -> None:
    configure_logging("INFO")

    for name in ("sfb", *LIBRARIES):
        handlers = logging.getLogger(name).handlers
        assert len([h for h in handlers if isinstance(h.formatter, JsonFormatter)]) == 1
    for handler in logging.getLogger().handlers:
        assert len([f for f in handler.filters if isinstance(f, Scrubbing)]) == 1
    assert logging.getLogger("botocore").level == logging.WARNING
