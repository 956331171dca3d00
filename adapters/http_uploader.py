"""The HTTP uploader: one PUT of known length, no Content-Type, retried when worth retrying.

S3 presigned URLs refuse chunked transfer encoding and sign the content type, so the body is
a reader with a length (requests then sends Content-Length and streams it) and no
Content-Type header is ever set.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable

import requests
from attrs import frozen

from adapters.guarded_transport import refused_by_guard
from application.body import ByteStream
from application.metrics import Metric, NoMetrics
from application.ports import Body, Metrics, PermanentUploadError, TransientUploadError
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


def _is_transient(status: int) -> bool:
    return status == 429 or status >= 500


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
        where = redact(put_endpoint)
        for attempt in range(1, self._retry.attempts + 1):
            try:
                self._put_once(put_endpoint, body, where)
                return
            except TransientUploadError as error:
                if attempt == self._retry.attempts:
                    raise
                pause = self._retry.delay(attempt, self._rng)
                if time.monotonic() - started + pause > self._retry.max_total:
                    raise
                log.info(
                    "upload attempt failed; retrying",
                    extra={"endpoint": where, "attempt": attempt, "reason": str(error)},
                )
                self._metrics.add(Metric.UPLOAD_RETRIES)
                self._sleep(pause)

    def _put_once(self, put_endpoint: str, body: Body, where: str) -> None:
        reader = _SizedReader(body.open(), body.size)
        try:
            response = self._session.put(
                put_endpoint,
                data=reader if body.size else b"",
                timeout=self._timeout,
                allow_redirects=False,
            )
        except requests.RequestException as error:
            # requests' messages quote the URL with its query string: never pass them on.
            if refused_by_guard(error):
                raise PermanentUploadError(f"the upload guard refused {where}") from None
            raise TransientUploadError(f"{type(error).__name__} talking to {where}") from None
        finally:
            reader.close()
        with response:
            status = response.status_code
        if 200 <= status < 300:
            return
        if _is_transient(status):
            raise TransientUploadError(f"{where} answered HTTP {status}")
        raise PermanentUploadError(f"{where} answered HTTP {status}")
