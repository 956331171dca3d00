"""The upload connection vets the addresses it connects to, at connect time."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st
from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from adapters.endpoint_policy import HostPolicy
from adapters.guarded_transport import guarded_session
from adapters.http_uploader import RequestsUploader, RetryPolicy
from application.ports import PermanentUploadError, TransientUploadError
from domain import Endpoint, EndpointRefused, FileId, InvalidEndpoint, redact
from tests.assertions import assert_uploaded_once
from tests.integration.builders import body_of
from tests.tools.receiver import LocalReceiver, LoopbackServer


class ScriptedResolver:
    """Answers each lookup from a script, as a DNS server that rebinds would."""

    def __init__(self, *answers: Sequence[str]) -> None:
        self.answers = list(answers)
        self.asked: list[str] = []

    def __call__(self, host: str) -> Sequence[str]:
        self.asked.append(host)
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


def uploader_for(policy: HostPolicy) -> RequestsUploader:
    return RequestsUploader(
        guarded_session(policy), retry=RetryPolicy(attempts=1), sleep=lambda _: None
    )


def test_an_allow_listed_host_is_reached_through_the_guarded_connection(
    receiver: LocalReceiver,
) -> None:
    policy = HostPolicy(["localhost"], resolver=ScriptedResolver(["127.0.0.1"]))

    uploader_for(policy).upload(f"http://localhost:{receiver.port}/f?sig=x", body_of([b"ab"]))

    assert [put.body for put in receiver.received] == [b"ab"]


def test_a_name_rebound_to_loopback_after_the_ingest_check_is_refused_at_connect(
    receiver: LocalReceiver, network_guard: list[str]
) -> None:
    resolver = ScriptedResolver(["93.184.216.34"], ["127.0.0.1"])
    policy = HostPolicy(None, resolver=resolver)
    endpoint = f"https://rebind.example:{receiver.port}/f?sig=SECRET"
    policy.check(endpoint)  # first answer: a public address

    with pytest.raises(PermanentUploadError) as refused:
        uploader_for(policy).upload(endpoint, body_of([b"ab"]))

    assert "SECRET" not in str(refused.value)
    assert receiver.received == []
    assert network_guard == []  # nothing even tried to leave
    assert resolver.asked == ["rebind.example", "rebind.example"]


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.0.0.5", "172.16.0.1", "192.168.1.1", "169.254.169.254", "::1", "fd00::1"],
)
def test_without_an_allow_list_no_connection_goes_to_a_non_public_address(
    address: str, network_guard: list[str]
) -> None:
    policy = HostPolicy(None, resolver=ScriptedResolver([address]))

    with pytest.raises(PermanentUploadError):
        uploader_for(policy).upload("https://internal.example/f", body_of([b"x"]))

    assert network_guard == []


def test_a_public_address_would_be_contacted_and_the_test_guard_stops_it(
    network_guard: list[str],
) -> None:
    """Proves the safety net: had a public address been allowed, no packet leaves a test."""
    policy = HostPolicy(None, resolver=ScriptedResolver(["93.184.216.34"]))

    with pytest.raises(TransientUploadError):
        uploader_for(policy).upload("https://public.example/f", body_of([b"x"]))

    assert network_guard == ["connect ('93.184.216.34', 443)"]


def test_connect_addresses_vets_every_address_of_a_name() -> None:
    policy = HostPolicy(None, resolver=ScriptedResolver(["93.184.216.34", "10.1.2.3"]))

    with pytest.raises(EndpointRefused, match="non-public"):
        policy.connect_addresses("https", "mixed.example")


def test_an_allow_list_trusts_whatever_its_hosts_resolve_to() -> None:
    policy = HostPolicy(["*.internal.example"], resolver=ScriptedResolver(["10.1.2.3"]))

    assert policy.connect_addresses("http", "api.internal.example") == ["10.1.2.3"]
    with pytest.raises(EndpointRefused, match="UPLOAD_ALLOWED_HOSTS"):
        policy.connect_addresses("http", "other.example")


def test_proxies_from_the_environment_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://10.0.0.1:3128")
    policy = HostPolicy(None, resolver=ScriptedResolver(["93.184.216.34"]))

    assert guarded_session(policy).trust_env is False


def test_an_idn_endpoint_is_uploaded_to_its_a_label_host(receiver: LocalReceiver) -> None:
    resolver = ScriptedResolver(["127.0.0.1"])
    policy = HostPolicy(["bücher.example"], resolver=resolver)
    endpoint = f"http://BÜCHER.example:{receiver.port}/f?sig=x"
    policy.check(endpoint)

    uploader_for(policy).upload(endpoint, body_of([b"ab"]))

    put = assert_uploaded_once(receiver.received, b"ab")
    assert put.headers["host"] == f"xn--bcher-kva.example:{receiver.port}"
    assert resolver.asked == ["xn--bcher-kva.example"]


def test_a_fully_qualified_name_with_its_trailing_dot_is_uploaded(receiver: LocalReceiver) -> None:
    policy = HostPolicy(["files.example"], resolver=ScriptedResolver(["127.0.0.1"]))
    endpoint = f"http://files.example.:{receiver.port}/f?sig=x"
    policy.check(endpoint)

    uploader_for(policy).upload(endpoint, body_of([b"ab"]))

    assert [put.body for put in receiver.received] == [b"ab"]


def test_a_name_no_resolver_can_encode_is_refused_for_good_at_connect_never_raised_raw() -> None:
    def like_getaddrinfo(host: str) -> Sequence[str]:
        host.encode("idna")  # what socket.getaddrinfo does to a str: a label over 63 raises
        return ["127.0.0.1"]

    policy = HostPolicy(["*.example.com"], resolver=like_getaddrinfo)

    with pytest.raises(PermanentUploadError):
        uploader_for(policy).upload(f"http://{'a' * 64}.example.com/f?sig=x", body_of([b"x"]))


def test_an_unparseable_port_is_permanent_and_tried_once(receiver: LocalReceiver) -> None:
    """Finding 5: requests' InvalidURL used to be retried, and the record redelivered, forever."""
    policy = HostPolicy(["127.0.0.1"], resolver=ScriptedResolver(["127.0.0.1"]))
    session = CountingSession(guarded_session(policy))
    uploader = RequestsUploader(session, retry=RetryPolicy(attempts=4), sleep=lambda _: None)

    with pytest.raises(PermanentUploadError) as refused:
        uploader.upload("http://127.0.0.1:99999/f?sig=SECRET", body_of([b"x"]))

    assert session.puts == 1
    assert "SECRET" not in str(refused.value)
    assert receiver.received == []


class CountingSession(requests.Session):
    """Counts PUTs; raises ``error`` instead of sending when one is given."""

    def __init__(self, inner: requests.Session | None = None, error: Exception | None = None):
        super().__init__()
        self.inner = inner
        self.error = error
        self.puts = 0

    def put(self, url: str | bytes, data: Any = None, **kwargs: Any) -> requests.Response:
        self.puts += 1
        if self.error is not None:
            raise self.error
        assert self.inner is not None
        return self.inner.put(url, data=data, **kwargs)


URL_REFUSALS: list[Exception] = [
    requests.exceptions.InvalidURL("Failed to parse: http://h:99999/f?sig=SECRET"),
    requests.exceptions.InvalidSchema("No connection adapters were found for 'x://h/f'"),
    requests.exceptions.MissingSchema("Invalid URL 'h/f?sig=SECRET': No scheme supplied"),
    requests.exceptions.URLRequired("a URL is required"),
    LocationParseError("h:99999/f?sig=SECRET"),
]


@pytest.mark.parametrize("error", URL_REFUSALS, ids=[type(e).__name__ for e in URL_REFUSALS])
def test_a_url_requests_or_urllib3_refuses_is_a_permanent_failure_never_retried(
    error: Exception,
) -> None:
    session = CountingSession(error=error)
    uploader = RequestsUploader(session, retry=RetryPolicy(attempts=4), sleep=lambda _: None)

    with pytest.raises(PermanentUploadError) as refused:
        uploader.upload("https://files.example.com/f?sig=SECRET", body_of([b"x"]))

    assert session.puts == 1
    assert "SECRET" not in str(refused.value)


HOSTILE_CHARACTERS = "\\@%#? \t\n\r\x00\x7f\x85\u00a0\u200b\u202e\ud800\uff45\u3002[]:*~é"
LABELS = st.one_of(
    st.text(alphabet="abcxyz019-_", min_size=1, max_size=12),
    st.sampled_from(["bücher", "faß", "BÜCHER", "xn--bcher-kva", "a" * 63, "ü" * 57]),
    st.sampled_from(["xn--zz", "a" * 64, "ü" * 58, "127", "0x7f", "%41", "", "\uff45xample"]),
)
HOSTS = st.one_of(
    st.builds(
        lambda labels, dot: ".".join(labels) + dot,
        st.lists(LABELS, min_size=1, max_size=4),
        st.sampled_from(["", "", ".", ".."]),
    ),
    st.sampled_from(["93.184.216.34", "[::1]", "[2606:4700::6810:84E5]", "[::ffff:8.8.8.8]"]),
    st.sampled_from(["127.1", "[fe80::1%25eth0]", "[v1.x]", "[127.0.0.1]", "fe80::1", "[::1"]),
)


@st.composite
def endpoints(draw: st.DrawFn) -> str:
    """putEndpoints, about half well formed, the others odd in their start or with one
    hostile character somewhere."""
    scheme, separator, userinfo = "https", "://", ""
    odd = draw(st.booleans())
    if odd:
        scheme = draw(st.sampled_from(["http", "HTTPS", "ftp", ""]))
        separator = draw(st.sampled_from(["://", ":/", ":"]))
        userinfo = draw(st.sampled_from(["", "user@", "user:pw@"]))
    host = draw(HOSTS)
    port = draw(st.sampled_from(["", "", ":", ":443", ":8443", ":0", ":65535", ":99999", ":x"]))
    path = draw(st.text(alphabet="abc/.-_%~é+=!$&'()*,;:@", max_size=20))
    text = f"{scheme}{separator}{userinfo}{host}{port}/{path}?X-Amz-Signature=SECRET"
    if odd and draw(st.booleans()):
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.sampled_from(HOSTILE_CHARACTERS)) + text[at:]
    return text


@settings(max_examples=400)
@given(text=endpoints())
def test_every_endpoint_the_parser_accepts_is_read_alike_by_every_later_step(text: str) -> None:
    """The class behind finding 1: an accepted endpoint hashes, redacts, is prepared by
    requests without error, reaches the host the policy checked, carries no credentials, and
    its host is one the resolver's IDNA codec can encode."""
    try:
        endpoint = Endpoint.parse(text)
    except InvalidEndpoint:
        return  # rejected with its reason (what the reasons say is tested in test_domain)

    FileId.for_endpoint(text)
    assert redact(text).isprintable()
    assert "SECRET" not in redact(text)
    prepared = requests.Request("PUT", text).prepare()
    assert prepared.url is not None
    sent = parse_url(prepared.url)
    assert sent.auth is None
    assert sent.host is not None
    just_this_host = HostPolicy([endpoint.host], resolver=lambda _: ["127.0.0.1"])
    assert just_this_host.connect_addresses(endpoint.scheme, sent.host)  # the same host
    assert (sent.port or None) == endpoint.port
    endpoint.host.encode("idna")


def test_a_guard_that_cannot_encode_the_name_makes_a_permanent_failure_not_a_raw_error() -> None:
    class Unencodable:
        def connect_addresses(self, scheme: str, host: str) -> list[str]:
            raise UnicodeError("label empty or too long")

    uploader = RequestsUploader(
        guarded_session(Unencodable()), retry=RetryPolicy(attempts=3), sleep=lambda _: None
    )

    with pytest.raises(PermanentUploadError):
        uploader.upload("https://files.example.com/f?sig=SECRET", body_of([b"x"]))


class _CookieSetting(BaseHTTPRequestHandler):
    """Answers each PUT with a cookie, as a shared upload gateway keeping sessions would, and
    notes the Cookie header each PUT came with."""

    protocol_version = "HTTP/1.1"
    cookies_sent: ClassVar[list[str | None]] = []

    def do_PUT(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.cookies_sent.append(self.headers.get("Cookie"))
        self.send_response(200)
        self.send_header("Set-Cookie", f"gateway-session=of-{self.path.strip('/')}; Path=/")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def cookie_setting() -> Iterator[tuple[str, list[str | None]]]:
    sent: list[str | None] = []
    handler = type("CookieSetting", (_CookieSetting,), {"cookies_sent": sent})
    server = LoopbackServer(handler)
    server.start()
    try:
        yield f"http://127.0.0.1:{server.port}", sent
    finally:
        server.stop()


def test_a_cookie_one_upload_is_answered_with_never_goes_with_another_producers_upload(
    cookie_setting: tuple[str, list[str | None]],
) -> None:
    """One session uploads every producer's files: what an endpoint sets for one upload
    (a gateway's session, a tenant's token) must not be sent with the next."""
    base, cookies_sent = cookie_setting
    uploader = uploader_for(HostPolicy(["127.0.0.1"]))

    for tenant in ("tenant-a", "tenant-b", "tenant-a"):
        uploader.upload(f"{base}/{tenant}", body_of([b"bytes of " + tenant.encode()]))

    assert cookies_sent == [None, None, None]
