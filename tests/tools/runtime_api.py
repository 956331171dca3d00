"""The Lambda Runtime API on 127.0.0.1, as far as a runtime interface client uses it: events
handed out on ``GET .../invocation/next``, each answer or error it posts back recorded.

A runtime (awslambdaric) run against it takes events exactly as in Lambda: the headers
carry the request id, the deadline and the function's ARN, and the answer is whatever the
handler returned, marshalled by the runtime client itself.
"""

from __future__ import annotations

import json
import queue
import time
import uuid
from http.server import BaseHTTPRequestHandler
from typing import Any

from attrs import frozen

from tests.tools.receiver import LoopbackServer, QuietHandler, Served

PREFIX = "/2018-06-01/runtime"
FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:streaming-file-builder"


@frozen
class Outcome:
    """What the runtime posted for one invocation: ``kind`` is "response" or "error"; or,
    with no request id, "init-error" when the handler could not be loaded."""

    request_id: str
    kind: str
    body: Any


class RuntimeApi(Served):
    """``with RuntimeApi() as api``: ``api.invoke(event)`` hands an event to the runtime and
    returns its outcome; ``api.address`` is what AWS_LAMBDA_RUNTIME_API names."""

    def __init__(self, timeout_seconds: float = 60.0, deadline_seconds: float = 300.0) -> None:
        self._events: queue.Queue[tuple[str, bytes] | None] = queue.Queue()
        self._outcomes: queue.Queue[Outcome] = queue.Queue()
        self._timeout = timeout_seconds
        self._deadline = deadline_seconds
        self._server = LoopbackServer(_handler_for(self))

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self._server.port}"

    def invoke(self, event: Any) -> Outcome:
        """Hand ``event`` to the runtime's next poll; its answer or error, in order."""
        request_id = str(uuid.uuid4())
        self._events.put((request_id, json.dumps(event).encode()))
        outcome = self._outcomes.get(timeout=self._timeout)
        assert outcome.kind != "init-error", f"the runtime did not start: {outcome.body}"
        assert outcome.request_id == request_id, (outcome, request_id)
        return outcome

    def stop(self) -> None:
        self._events.put(None)  # a poll still waiting ends, with no event
        super().stop()

    def _next(self) -> tuple[bytes, dict[str, str]] | None:
        """Blocks, as Lambda's does, until an event is handed out (the runtime polls again
        after each answer); None once the API stops."""
        handed = self._events.get()
        if handed is None:
            return None
        request_id, body = handed
        headers = {
            "Lambda-Runtime-Aws-Request-Id": request_id,
            "Lambda-Runtime-Deadline-Ms": str(int((time.time() + self._deadline) * 1000)),
            "Lambda-Runtime-Invoked-Function-Arn": FUNCTION_ARN,
            "Lambda-Runtime-Trace-Id": "Root=1-00000000-000000000000000000000000;Sampled=0",
            "Content-Type": "application/json",
        }
        return body, headers

    def _posted(self, path: str, body: bytes) -> None:
        rest = path.removeprefix(f"{PREFIX}/")
        parsed = json.loads(body) if body else None
        if rest == "init/error":
            self._outcomes.put(Outcome("", "init-error", parsed))
            return
        _, request_id, kind = rest.split("/")
        self._outcomes.put(Outcome(request_id, kind, parsed))


def _handler_for(api: RuntimeApi) -> type[BaseHTTPRequestHandler]:
    class Handler(QuietHandler):
        def do_GET(self) -> None:
            if self.path != f"{PREFIX}/invocation/next":
                self._answer(404, b"")
                return
            handed = api._next()
            if handed is None:
                self.close_connection = True
                return
            body, headers = handed
            self.send_response(200)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            # Answered before the outcome is handed to the test, which may then stop the
            # runtime: a 202 written to its closed socket would fail in this thread.
            self._answer(202, b"{}")
            api._posted(self.path, body)

    return Handler
