"""Hostile putEndpoints through the real handler on moto's server, on both backends.

Each is quarantined with its reason and not reported, the handler never raises, nothing is
sent anywhere, and no signature, password or fragment reaches a log line, stdout or stderr.
Run with an allow-list that admits every host the endpoints name or pose as (where lax
parsing once let them through to connect time), and, for those that could be looked up or
reached without one, with no allow-list (https to public addresses only).
"""

from __future__ import annotations

import socket
from collections.abc import Sequence

import pytest
from dependency_injector import providers

from adapters.endpoint_policy import HostPolicy
from tests.e2e.support import SECRET, LogLines, Stack, failures
from tests.e2e.test_poison_table import assert_no_endpoint_in, container_on

SIG = f"X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature={SECRET}"
INVALID, REFUSED = "endpoint-invalid", "endpoint-refused"
ALLOWING = "127.0.0.1,*.example.com,evil.example,fe80::1"
"""Admits the receiver and every host below that a lax parser would have let through."""
LISTED, BOTH = ("allow-list",), ("allow-list", "no allow-list")

# name: (putEndpoint, {at} standing for the receiver's 127.0.0.1:port and {port} for its port;
#        reason; the allow-list modes it runs in)
HOSTILE: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "lone surrogate in the path": (f"https://{{at}}/uploads/a\ud800.bin?{SIG}", INVALID, BOTH),
    "lone surrogate in the host": (f"https://up\udc80.example.com/uploads/h?{SIG}", INVALID, BOTH),
    "host label over 63 characters": (
        f"https://{'a' * 64}.example.com/uploads/h?{SIG}",
        INVALID,
        BOTH,
    ),
    "IDN label over 63 characters once encoded": (
        f"https://{'ü' * 58}.example.com/uploads/h?{SIG}",
        INVALID,
        BOTH,
    ),
    "empty label": (f"https://up..example.com/uploads/h?{SIG}", INVALID, BOTH),
    "fullwidth name urllib3 cannot IDNA-encode": (
        f"https://\uff45xample.com/uploads/h?{SIG}",
        INVALID,
        BOTH,
    ),
    "invalid punycode label": (f"https://xn--zz.example.com/uploads/h?{SIG}", INVALID, BOTH),
    "port out of range": (f"https://127.0.0.1:99999/uploads/h?{SIG}", INVALID, BOTH),
    "port not a number": (f"https://127.0.0.1:https/uploads/h?{SIG}", INVALID, BOTH),
    "port zero": (f"https://127.0.0.1:0/uploads/h?{SIG}", INVALID, BOTH),
    "IPv4 as one number": (f"https://2130706433/uploads/h?{SIG}", INVALID, BOTH),
    "empty host": (f"https:///uploads/h?{SIG}", INVALID, BOTH),
    "not http(s)": (f"ftp://{{at}}/uploads/h?{SIG}", INVALID, BOTH),
    "credentials": (f"http://user:hunter2@{{at}}/uploads/h?{SIG}", INVALID, LISTED),
    "userinfo posing as the host": (
        f"http://up.example.com@{{at}}/uploads/h?{SIG}",
        INVALID,
        LISTED,
    ),
    "backslash: urlsplit reads one host, requests another": (
        f"http://evil.example\\@{{at}}/uploads/h?{SIG}",
        INVALID,
        LISTED,
    ),
    "tab in the host, which urlsplit drops and urllib3 refuses": (
        f"http://127.0.0.1\t:{{port}}/uploads/h?{SIG}",
        INVALID,
        LISTED,
    ),
    "CRLF in the path": (f"http://{{at}}/uploads/h\r\nX-Injected: 1?{SIG}", INVALID, LISTED),
    "NUL in the host": (f"http://127.0.0.1\x00.example.com/uploads/h?{SIG}", INVALID, LISTED),
    "space in the path": (f"http://{{at}}/uploads/a b?{SIG}", INVALID, LISTED),
    "leading space": (f" http://{{at}}/uploads/h?{SIG}", INVALID, LISTED),
    "zero-width space in the host": (
        f"http://127.0.0.1\u200b:{{port}}/uploads/h?{SIG}",
        INVALID,
        LISTED,
    ),
    "IPv6 zone id": (f"http://[fe80::1%25eth0]:{{port}}/uploads/h?{SIG}", INVALID, LISTED),
    "IPv6 outside brackets": (f"http://fe80::1/uploads/h?{SIG}", INVALID, LISTED),
    "IPv4 inside brackets": (f"http://[127.0.0.1]:{{port}}/uploads/h?{SIG}", INVALID, LISTED),
    "short IPv4 form": (f"http://127.1:{{port}}/uploads/h?{SIG}", INVALID, LISTED),
    "percent-encoded host": (f"http://%31%32%37.0.0.1:{{port}}/uploads/h?{SIG}", INVALID, LISTED),
    "fragment": (f"http://{{at}}/uploads/h?{SIG}#frag-secret", INVALID, LISTED),
    "scheme without slashes": (f"http:{{at}}/uploads/h?{SIG}", INVALID, LISTED),
    "over the maximum length": (f"http://{{at}}/uploads/{'h' * 9000}?{SIG}", INVALID, LISTED),
    "IPv6 loopback literal": (f"https://[::1]:{{port}}/uploads/h?{SIG}", REFUSED, BOTH),
    "IPv4-mapped loopback": (f"https://[::ffff:127.0.0.1]:{{port}}/uploads/h?{SIG}", REFUSED, BOTH),
    "localhost": (f"https://localhost:{{port}}/uploads/h?{SIG}", REFUSED, BOTH),
}
CASES = [(name, mode) for name, (_, _, modes) in sorted(HOSTILE.items()) for mode in modes]


@pytest.mark.parametrize("backend", ["local", "dynamodb"])
@pytest.mark.parametrize(("case", "mode"), CASES, ids=[f"{c}, {m}" for c, m in CASES])
def test_a_hostile_endpoint_is_quarantined_with_its_reason_and_nothing_is_sent(
    stack: Stack,
    logs: LogLines,
    capfd: pytest.CaptureFixture[str],
    case: str,
    mode: str,
    backend: str,
) -> None:
    template, reason, _ = HOSTILE[case]
    port = str(stack.receiver.port)
    endpoint = template.replace("{at}", f"127.0.0.1:{port}").replace("{port}", port)
    listed = mode == "allow-list"
    container = container_on(stack, backend, UPLOAD_ALLOWED_HOSTS=ALLOWING if listed else "")
    source = stack.file(f"around-{backend}-{len(case)}.bin", size=3_000, chunk_size=1_000)
    # A whole file in one chunk: accepted, it would be uploaded at once.
    hostile = stack.seq.record(source.payload(0, putEndpoint=endpoint, partitionCount=1))
    around = stack.seq.records(source.payloads) if listed else []  # needs 127.0.0.1 allowed

    response = stack.invoke(container, [*around[:1], hostile, *around[1:]])

    assert failures(response) == []
    seq = hostile["kinesis"]["sequenceNumber"]
    [key] = stack.keys("quarantine/")
    assert key.endswith(f"/{seq}")
    assert stack.metadata(key)["reason"] == reason
    assert_no_endpoint_in(stack.metadata(key), endpoint)
    [warning] = [e for e in logs.at("WARNING") if e.get("sequence_number") == seq]
    assert warning["reason"] == reason
    assert warning["endpoint"]  # shown redacted: scheme://host/path, or that it is unparseable
    assert "?" not in warning["endpoint"]
    assert [put.path for put in stack.receiver.received] == ([source.path] if listed else [])
    out, err = capfd.readouterr()
    for text in (logs.text, out, err):
        for secret in (SECRET, "hunter2", "frag-secret"):
            assert secret not in text


class FlakyResolver:
    """Cannot answer the first lookup, then answers with a public address."""

    def __init__(self, code: int) -> None:
        self.code = code
        self.asked: list[str] = []

    def __call__(self, host: str) -> Sequence[str]:
        self.asked.append(host)
        if len(self.asked) == 1:
            raise socket.gaierror(self.code, "the resolver could not answer now")
        return ["93.184.216.34"]


@pytest.mark.parametrize(
    "code", [socket.EAI_AGAIN, socket.EAI_FAIL], ids=["EAI_AGAIN", "EAI_FAIL (SERVFAIL)"]
)
@pytest.mark.parametrize("backend", ["local", "dynamodb"])
def test_a_chunk_whose_host_cannot_be_looked_up_now_is_reported_then_accepted_on_redelivery(
    stack: Stack, logs: LogLines, backend: str, code: int
) -> None:
    resolver = FlakyResolver(code)
    container = container_on(stack, backend, UPLOAD_ALLOWED_HOSTS="")
    container.policy.override(providers.Object(HostPolicy(None, resolver=resolver)))
    record = stack.seq.record(
        {
            "putEndpoint": f"https://files.example.net/uploads/report.csv?{SIG}",
            "partition": 0,
            "partitionCount": 2,  # never completes: nothing is uploaded to the public address
            "content": "aGVsbG8=",
        }
    )

    first = stack.invoke(container, [record])
    again = stack.invoke(container, [record])

    assert failures(first) == [record["kinesis"]["sequenceNumber"]]
    assert failures(again) == []
    assert stack.keys("quarantine/") == []
    assert len(stack.keys("pending/")) >= 1  # the chunk is durable
    assert resolver.asked == ["files.example.net", "files.example.net"]
    assert SECRET not in logs.text
