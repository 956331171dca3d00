"""JSON-lines logging: one object per line, with the fields a log search needs.

With the function's log format set to JSON, Lambda keeps a stdout line that is a JSON object
with a ``level`` key as it is, and its application log-level filter reads ``level`` and
``timestamp`` (RFC 3339; a line without a valid one counts as INFO). Hence ``timestamp``
(UTC, ``Z``) beside the older ``time``, and fields of a call's ``extra`` never replace the
entry's own.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
from datetime import UTC, datetime

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}
# Defence in depth: a URL's query string is cut from any text that reaches a log line.
_QUERY = re.compile(r"(https?://[^\s?#\"']*)\?[^\s\"']*", re.IGNORECASE)


def scrub(text: str) -> str:
    return _QUERY.sub(r"\1?<redacted>", text)


def _scrubbed(value: object) -> object:
    """Scrub before serialising, so escaping can never split a URL from its query."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, dict):
        return {str(k): _scrubbed(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_scrubbed(v) for v in value]
    return scrub(str(value))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        created = datetime.fromtimestamp(record.created, UTC)
        entry: dict[str, object] = {
            "level": record.levelname,
            "message": scrub(record.getMessage()),
            "time": created.isoformat(timespec="milliseconds"),
            "timestamp": created.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "logger": record.name,
        }
        rid = request_id.get()
        if rid is not None:
            entry["request_id"] = rid
        for key, value in record.__dict__.items():
            if (
                key not in _STANDARD
                and key not in entry
                and not key.startswith("_")
                and value is not None
            ):
                entry[key] = _scrubbed(value)
        if record.exc_info:
            entry["exception"] = scrub(self.formatException(record.exc_info))
        return json.dumps(entry)


LIBRARIES = ("botocore", "boto3", "s3transfer", "urllib3", "requests", "redis")
"""The libraries the service calls that log. Their lines go through the service's handler
(scrubbed, JSON), at WARNING at least, and never to the root logger, which Lambda's runtime
sets to the function's ApplicationLogLevel: at DEBUG, botocore writes each request's
canonical form with the role's session token, and urllib3 each request line with a
presigned URL's query string."""

LIBRARY_FLOOR = logging.WARNING


class Scrubbing(logging.Filter):
    """Cuts URL query strings from a record before any handler formats it: set on the root
    logger's handlers (Lambda's runtime's), for a line of a library not in LIBRARIES. A
    record's exception goes into its message, scrubbed: a formatter would print the
    exception's own text."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info:
            message = f"{message}\n{logging.Formatter().formatException(record.exc_info)}"
            record.exc_info = None
        record.msg = scrub(message)
        record.args = None
        record.exc_text = None
        return True


def configure_logging(level: str) -> None:
    """Route the service's logger to stdout as JSON lines at ``level``, and the libraries'
    (LIBRARIES) through the same handler at ``level`` or LIBRARY_FLOOR, the higher; scrub
    whatever else reaches the root logger."""
    logger = logging.getLogger("sfb")
    logger.setLevel(level)
    logger.propagate = False
    handler = next((h for h in logger.handlers if isinstance(h.formatter, JsonFormatter)), None)
    if handler is None:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(JsonFormatter())
        logger.addHandler(handler)
    floor = max(logging.getLevelNamesMapping()[level.upper()], LIBRARY_FLOOR)
    for name in LIBRARIES:
        library = logging.getLogger(name)
        library.setLevel(floor)
        library.propagate = False
        for stale in [h for h in library.handlers if isinstance(h.formatter, JsonFormatter)]:
            library.removeHandler(stale)
        library.addHandler(handler)
    for root_handler in logging.getLogger().handlers:
        if not any(isinstance(f, Scrubbing) for f in root_handler.filters):
            root_handler.addFilter(Scrubbing())
