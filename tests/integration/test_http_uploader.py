"""RequestsUploader against real HTTP servers on 127.0.0.1."""

from __future__ import annotations

import io
import random
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
import requests
from botocore.exceptions import ClientError, ResponseStreamingError

from adapters.http_uploader import INLINE_BODY_BYTES, RequestsUploader, RetryPolicy
from application.body import AssembledBody, Part
from application.ports import ByteStream, PermanentUploadError, TransientUploadError
from tests.assertions import assert_uploaded_once
from tests.integration.builders import SECRET, SIGNED_QUERY, body_of, ref_of, signed
from tests.tools.receiver import LocalReceiver, LoopbackServer

PIECES = [bytes(range(256)) * 400, b"", b"\x00middle\r\n" * 1000, b"tail"]
CONTENT = b"".join(PIECES)


class CountingBody:
    """An AssembledBody that counts how often it is opened: one open per attempt."""

    def __init__(self, pieces: Sequence[bytes]) -> None:
        self._body: AssembledBody = body_of(pieces)
        self.opened = 0

    @property
    def size(self) -> int:
        return self._body.size

    def open(self) -> ByteStream:
        self.opened += 1
        return self._body.open()


class RecordingSleep:
    def __init__(self) -> None:
        self.pauses: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.pauses.append(seconds)


@pytest.fixture
def sleep() -> RecordingSleep:
    return RecordingSleep()


def uploader(
    session: requests.Session, sleep: RecordingSleep, attempts: int = 4
) -> RequestsUploader:
    return RequestsUploader(
        session,
        connect_timeout=2.0,
        read_timeout=10.0,
        retry=RetryPolicy(attempts=attempts, base_delay=0.2, max_delay=5.0),
        sleep=sleep,
        rng=random.Random(7),
    )


@pytest.mark.parametrize(
    "pieces",
    [PIECES, [bytes(range(256)) * (INLINE_BODY_BYTES // 256), *PIECES]],
    ids=["read-whole-first", "streamed"],
)
def test_the_body_arrives_byte_identical_with_content_length_and_no_content_type(
    receiver: LocalReceiver, session: requests.Session, sleep: RecordingSleep, pieces: list[bytes]
) -> None:
    content = b"".join(pieces)
    uploader(session, sleep).upload(signed(receiver.url("files/report.csv")), body_of(pieces))

    put = assert_uploaded_once(receiver.received, content)
    assert put.headers["content-length"] == str(len(content))
    assert "content-type" not in put.headers
    assert "transfer-encoding" not in put.headers
    assert receiver.refused == []
    assert sleep.pauses == []


class _ShortBody:
    """A body that ends before the size it declares."""

    size = 10

    def open(self) -> ByteStream:
        return io.BytesIO(b"12345")


def test_a_small_body_that_ends_before_its_size_is_never_sent(
    receiver: LocalReceiver, session: requests.Session, sleep: RecordingSleep
) -> None:
    with pytest.raises(TransientUploadError, match="ended at 5 of 10 bytes") as failed:
        uploader(session, sleep, attempts=2).upload(signed(receiver.url("f")), _ShortBody())

    assert SECRET not in str(failed.value)
    assert receiver.received == []


def test_the_query_string_reaches_the_endpoint_unchanged(
    receiver: LocalReceiver, session: requests.Session, sleep: RecordingSleep
) -> None:
    uploader(session, sleep).upload(signed(receiver.url("files/report.csv")), body_of([b"x"]))

    assert receiver.received[0].path == "/files/report.csv" + SIGNED_QUERY


def test_a_zero_byte_body_is_sent_with_content_length_zero(
    receiver: LocalReceiver, session: requests.Session, sleep: RecordingSleep
) -> None:
    uploader(session, sleep).upload(receiver.url("empty"), body_of([b""]))

    put = assert_uploaded_once(receiver.received, b"")
    assert put.headers["content-length"] == "0"
    assert "content-type" not in put.headers
    assert "transfer-encoding" not in put.headers


@pytest.mark.parametrize("status", [500, 503, 429])
def test_a_transient_answer_is_retried_with_the_same_bytes(
    receiver: LocalReceiver, session: requests.Session, sleep: RecordingSleep, status: int
) -> None:
    receiver.fail_next(status)
    body = CountingBody(PIECES)

    uploader(session, sleep).upload(receiver.url("retried"), body)

    assert body.opened == 2
    put = assert_uploaded_once(receiver.received, CONTENT)
    assert put.headers["content-length"] == str(len(CONTENT))
    assert len(sleep.pauses) == 1
    assert 0 <= sleep.pauses[0] <= 0.2


def test_backoff_pauses_stay_under_a_growing_cap(
    receiver: LocalReceiver, session: requests.Session, sleep: RecordingSleep
) -> None:
    receiver.fail_next(503, times=3)

    uploader(session, sleep, attempts=4).upload(receiver.url("retried"), body_of(PIECES))

    assert len(sleep.pauses) == 3
    for attempt, pause in enumerate(sleep.pauses, start=1):
        assert 0 <= pause <= 0.2 * 2 ** (attempt - 1)
    assert receiver.received[0].body == CONTENT


def test_attempts_are_bounded_by_the_retry_policy(
    receiver: LocalReceiver, session: requests.Session, sleep: RecordingSleep
) -> None:
    receiver.fail_next(503, times=10)
    body = CountingBody(PIECES)

    with pytest.raises(TransientUploadError, match="503"):
        uploader(session, sleep, attempts=3).upload(signed(receiver.url("down")), body)

    assert body.opened == 3
    assert len(sleep.pauses) == 2
    assert receiver.received == []


@pytest.mark.parametrize("status", [400, 403, 404])
def test_a_client_error_is_permanent_and_not_retried(
    receiver: LocalReceiver, session: requests.Session, sleep: RecordingSleep, status: int
) -> None:
    receiver.fail_next(status)
    body = CountingBody(PIECES)

    with pytest.raises(PermanentUploadError, match=str(status)) as failed:
        uploader(session, sleep).upload(signed(receiver.url("gone")), body)

    assert body.opened == 1
    assert sleep.pauses == []
    assert SECRET not in str(failed.value)


class _Redirecting(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    location = ""

    def do_PUT(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(302)
        self.send_header("Location", self.location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def redirecting(receiver: LocalReceiver) -> Iterator[str]:
    """An endpoint that answers every PUT with 302 to the receiver."""
    handler = type("Redirect", (_Redirecting,), {"location": receiver.url("redirected")})
    server = LoopbackServer(handler)
    server.start()
    try:
        yield f"http://127.0.0.1:{server.port}/moved"
    finally:
        server.stop()


def test_a_redirect_is_permanent_and_not_followed(
    redirecting: str, receiver: LocalReceiver, session: requests.Session, sleep: RecordingSleep
) -> None:
    body = CountingBody(PIECES)

    with pytest.raises(PermanentUploadError, match="302"):
        uploader(session, sleep).upload(signed(redirecting), body)

    assert body.opened == 1
    assert receiver.received == []
    assert sleep.pauses == []


def test_a_refused_connection_is_transient_and_its_message_has_no_query_string(
    closed_port: int, session: requests.Session, sleep: RecordingSleep
) -> None:
    endpoint = signed(f"http://127.0.0.1:{closed_port}/files/report.csv")
    body = CountingBody(PIECES)

    with pytest.raises(TransientUploadError) as failed:
        uploader(session, sleep, attempts=3).upload(endpoint, body)

    message = str(failed.value)
    assert f"127.0.0.1:{closed_port}/files/report.csv" in message
    assert "?" not in message
    assert SECRET not in message
    assert failed.value.__cause__ is None
    assert body.opened == 3
    assert len(sleep.pauses) == 2


def test_one_attempt_means_no_retry(
    receiver: LocalReceiver, session: requests.Session, sleep: RecordingSleep
) -> None:
    receiver.fail_next(503)

    with pytest.raises(TransientUploadError):
        uploader(session, sleep, attempts=1).upload(receiver.url("once"), body_of(PIECES))

    assert sleep.pauses == []
    uploader(session, sleep, attempts=1).upload(receiver.url("once"), body_of(PIECES))
    assert receiver.received[0].body == CONTENT


BOUND = 30.0
"""The longest a test waits for the endpoint to finish with a request: a bound, not a measure."""


class ScriptedEndpoint:
    """A PUT endpoint answering from a script (then 200), keeping only the bodies it got whole.

    ``handled`` is released once per request, after its body was read (whole or cut short),
    so a test can wait for the endpoint instead of racing it.
    """

    def __init__(self) -> None:
        self.answers: deque[tuple[int, bytes]] = deque()
        self.complete: list[bytes] = []
        self.handled = threading.Semaphore(0)
        self.url = ""

    def answer(self) -> tuple[int, bytes]:
        return self.answers.popleft() if self.answers else (200, b"")


class _Scripted(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    endpoint: ScriptedEndpoint

    def do_PUT(self) -> None:
        try:
            expected = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(expected)  # short when the client gave up midway
            if len(body) < expected:
                self.close_connection = True
                return
            status, answer = self.endpoint.answer()
            if status == 200:
                self.endpoint.complete.append(body)
            self.send_response(status)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)
        finally:
            self.endpoint.handled.release()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def scripted() -> Iterator[ScriptedEndpoint]:
    endpoint = ScriptedEndpoint()
    handler = type("Scripted", (_Scripted,), {"endpoint": endpoint})
    server = LoopbackServer(handler)
    server.start()
    endpoint.url = f"http://127.0.0.1:{server.port}/files/report.csv"
    try:
        yield endpoint
    finally:
        server.stop()


def s3_error(code: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
        f"<Message>...</Message><RequestId>4442587FB7D0A2F9</RequestId></Error>"
    ).encode()


def case(status: int, code: str | None, transient: bool) -> Any:
    body = s3_error(code) if code else b""
    return pytest.param(status, body, transient, id=f"{status}-{code or 'no-body'}")


@pytest.mark.parametrize(
    ("status", "answer", "transient"),
    [
        case(500, "InternalError", True),
        case(503, "SlowDown", True),
        case(504, None, True),
        case(429, None, True),
        case(408, None, True),
        case(400, "RequestTimeout", True),
        case(400, "BadDigest", False),
        case(400, None, False),
        case(403, "RequestTimeout", False),
        case(403, "SignatureDoesNotMatch", False),
        case(404, None, False),
        case(411, "MissingContentLength", False),
    ],
)
def test_an_answer_is_retried_exactly_when_the_same_put_may_pass_later(
    scripted: ScriptedEndpoint,
    session: requests.Session,
    sleep: RecordingSleep,
    status: int,
    answer: bytes,
    transient: bool,
) -> None:
    scripted.answers.append((status, answer))
    body = CountingBody(PIECES)
    put = uploader(session, sleep, attempts=2)

    if transient:
        put.upload(signed(scripted.url), body)
        assert (body.opened, scripted.complete) == (2, [CONTENT])
    else:
        with pytest.raises(PermanentUploadError, match=str(status)) as refused:
            put.upload(signed(scripted.url), body)
        assert SECRET not in str(refused.value)
        assert (body.opened, scripted.complete) == (1, [])


def _s3_refuses_to_open() -> ByteStream:
    raise ClientError(
        {"Error": {"Code": "InternalError", "Message": "We encountered an internal error"}},
        "GetObject",
    )


class _BreaksMidway:
    """An S3 object's stream that dies after a few bytes, as a reset connection does."""

    def __init__(self) -> None:
        self._stream = io.BytesIO(b"ta")

    def read(self, size: int = -1, /) -> bytes:
        data = self._stream.read(size)
        if not data:
            raise ResponseStreamingError(error="Connection broken: IncompleteRead")
        return data

    def close(self) -> None:
        self._stream.close()


@pytest.mark.parametrize(
    "last_part",
    [
        Part(ref_of(b"tail"), _s3_refuses_to_open),
        Part(ref_of(b"tail"), _BreaksMidway),
        Part(ref_of(b"tail"), lambda: io.BytesIO(b"TAIL")),
    ],
    ids=["s3-refuses-the-read", "s3-stream-breaks-midway", "stored-bytes-changed"],
)
@pytest.mark.parametrize(
    ("first", "sent"),
    [(PIECES[0], False), (bytes(range(256)) * (INLINE_BODY_BYTES // 256), True)],
    ids=["read-whole-first", "streamed"],
)
def test_a_last_part_that_cannot_be_served_is_a_transient_failure_and_never_a_whole_body(
    scripted: ScriptedEndpoint,
    session: requests.Session,
    sleep: RecordingSleep,
    last_part: Part,
    first: bytes,
    sent: bool,
) -> None:
    """A small body is read whole before its PUT, so the endpoint sees nothing of it; a
    large one is streamed and cut short. Either way each attempt reads it again."""
    body = AssembledBody((*body_of([first, *PIECES[1:-1]]).parts, last_part))
    attempts = 2

    with pytest.raises(TransientUploadError) as failed:
        uploader(session, sleep, attempts=attempts).upload(signed(scripted.url), body)

    assert SECRET not in str(failed.value)
    assert len(sleep.pauses) == attempts - 1
    for _ in range(attempts if sent else 0):
        assert scripted.handled.acquire(timeout=BOUND), "the endpoint never saw the attempt end"
    assert scripted.handled.acquire(blocking=False) is False
    assert scripted.complete == []
