"""Work handed to a pool's thread runs in the context of the thread that handed it over.

A thread does not inherit the caller's contextvars: a log line written on a file's lane, on
the log's prefetch or on a read ahead lost the invocation's request id
(adapters.json_logging), so it could not be told from the lines of another invocation.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


def submit(pool: Executor, work: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
    """``pool.submit(work, *args, **kwargs)``, run in a copy of the caller's context."""
    context = contextvars.copy_context()

    def run() -> T:
        return context.run(work, *args, **kwargs)

    return pool.submit(run)
