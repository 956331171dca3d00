"""Work handed to a pool sees the caller's contextvars, and cannot change them."""

from __future__ import annotations

import contextvars
from concurrent.futures import ThreadPoolExecutor

from application.in_context import submit

marker: contextvars.ContextVar[str | None] = contextvars.ContextVar("marker", default=None)


def _seen_then_changed() -> str | None:
    seen = marker.get()
    marker.set("changed on the worker")
    return seen


def test_the_worker_sees_the_callers_value_and_its_own_change_stays_there() -> None:
    token = marker.set("caller")
    try:
        with ThreadPoolExecutor(1) as pool:
            plain = pool.submit(marker.get).result()
            seen = submit(pool, _seen_then_changed).result()
            after = submit(pool, marker.get).result()
        assert plain is None  # what a thread sees without it
        assert seen == "caller"
        assert after == "caller"
        assert marker.get() == "caller"
    finally:
        marker.reset(token)
