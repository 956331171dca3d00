"""The HTTP uploader: one PUT of known length, no Content-Type, retried when worth retrying.

S3 presigned URLs refuse chunked transfer encoding and sign the content type, so the body is
sent with Content-Length (a reader with a length, which requests streams, or the bytes of a
small body read whole first) and no Content-Type header is ever set.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable

import requests
from attrs import frozen
from urllib3.exceptions import LocationValueError

from adapters.guarded_transport import URL_ERRORS, refused_by_guard
from application.metrics import Metric, NoMetrics
from application.ports import Body, ByteStream, Metrics, PermanentUploadError, TransientUploadError
from domain import redact

log = logging.getLogger("sfb")


@frozen
class RetryPolicy:
    attempts: int = 4
    base_delay: float = 0.2
    max_delay: float = 5.0
    max_total: float = 30.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Full jitter: a uniform draw below an exponentially growing cap."""
        cap: float = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        return rng.uniform(0, cap)


INLINE_BODY_BYTES = 256 * 1024
"""Bodies up to this size are read whole before the PUT (a bounded 8 MiB at 32 lanes)."""


class _SizedReader:
    """What requests needs to send Content-Length instead of chunked encoding."""

    def __init__(self, stream: ByteStream, size: int) -> None:
        self._stream = stream
        self._size = size
        self._position = 0

    def read(self, size: int = -1, /) -> bytes:
        data = self._stream.read(size)
        self._position += len(data)
        return data

    def __len__(self) -> int:
        return self._size

    def tell(self) -> int:
        return self._position

    def close(self) -> None:
        self._stream.close()


def _whole(reader: _SizedReader, size: int, put_endpoint: str) -> bytes:
    """The body's bytes, read part by part before anything is sent: a part that cannot be
    served, or a body that ends before its size, fails the attempt as a streamed one would,
    but without the receiver ever seeing a byte of it."""
    pieces: list[bytes] = []
    got = 0
    while got < size:
        try:
            piece = reader.read(size - got)
        except OSError as error:  # a part that cannot be served: read again next attempt
            raise TransientUploadError(
                f"the body for {redact(put_endpoint)} could not be read ({type(error).__name__})"
            ) from None
        if not piece:
            raise TransientUploadError(
                f"the body for {redact(put_endpoint)} ended at {got} of {size} bytes"
            )
        pieces.append(piece)
        got += len(piece)
    return b"".join(pieces)


S3_REQUEST_TIMEOUT = b"<Code>RequestTimeout</Code>"
"""S3's answer (as a 400) when the body arrived too slowly: the same PUT may pass later."""


def _is_transient(status: int, answer: bytes) -> bool:
    """5xx, 429, 408 and S3's RequestTimeout may pass on a later attempt; other 4xx never."""
    return status in (408, 429) or status >= 500 or (status == 400 and S3_REQUEST_TIMEOUT in answer)


class RequestsUploader:
    def __init__(
        self,
        session: requests.Session,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._session = session
        self._timeout = (connect_timeout, read_timeout)
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._metrics = metrics or NoMetrics()
        self._rng = rng or random.Random()  # jitter, not a secret

    def upload(self, put_endpoint: str, body: Body) -> None:
        started = time.monotonic()
        for attempt in range(1, self._retry.attempts + 1):
            try:
                self._put_once(put_endpoint, body)
                return
            except TransientUploadError as error:
                if attempt == self._retry.attempts:
                    raise
                pause = self._retry.delay(attempt, self._rng)
                if time.monotonic() - started + pause > self._retry.max_total:
                    raise
                log.info(
                    "upload attempt failed; retrying",
                    extra={
                        "endpoint": redact(put_endpoint),
                        "attempt": attempt,
                        "reason": str(error),
                    },
                )
                self._metrics.add(Metric.UPLOAD_RETRIES)
                self._sleep(pause)

    def _put_once(self, put_endpoint: str, body: Body) -> None:
        reader = _SizedReader(body.open(), body.size)
        try:
            # A small body goes whole, in the same send() as the headers: no streaming
            # machinery, one segment on the wire (the small-files case: images, documents).
            data = (
                _whole(reader, body.size, put_endpoint)
                if body.size <= INLINE_BODY_BYTES
                else reader
            )
            response = self._session.put(
                put_endpoint,
                data=data,
                timeout=self._timeout,
                allow_redirects=False,
            )
        except (requests.RequestException, LocationValueError) as error:
            where = redact(put_endpoint)
            # requests' messages quote the URL with its query string: never pass them on.
            if refused_by_guard(error):
                raise PermanentUploadError(f"the upload guard refused {where}") from None
            if isinstance(error, URL_ERRORS):
                raise PermanentUploadError(
                    f"{where} is not a URL that can be sent to ({type(error).__name__})"
                ) from None
            raise TransientUploadError(f"{type(error).__name__} talking to {where}") from None
        finally:
            reader.close()
        with response:
            status = response.status_code
            # Only a 400 needs its body read, and only its code is kept: never the text.
            answer = response.content if status == 400 else b""
        if 200 <= status < 300:
            return
        where = redact(put_endpoint)
        if _is_transient(status, answer):
            code = " RequestTimeout" if status == 400 else ""
            raise TransientUploadError(f"{where} answered HTTP {status}{code}")
        raise PermanentUploadError(f"{where} answered HTTP {status}")
