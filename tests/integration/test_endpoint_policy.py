"""HostPolicy with an injected resolver: no test here ever asks a real DNS server."""

from __future__ import annotations

import socket
from collections.abc import Mapping, Sequence

import pytest

from adapters.endpoint_policy import HostPolicy, TransientResolutionError
from domain import EndpointRefused, RejectionReason, redact
from tests.factories import file_records
from tests.fakes import FakeArchive, FakeContainer, FakePolicy, FakeRemoteStore, FakeUploader
from tests.integration.builders import SECRET, SIGNED_QUERY, signed


class FakeResolver:
    """Answers from a table; an unknown host does not resolve. Counts the questions."""

    def __init__(self, table: Mapping[str, Sequence[str]]) -> None:
        self.table = dict(table)
        self.asked: list[str] = []

    def __call__(self, host: str) -> Sequence[str]:
        self.asked.append(host)
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return self.table[host]


PUBLIC = {
    "files.example.net": ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"],
    "cdn.example.org": ["151.101.1.69"],
}
INTERNAL = {
    "loopback.test": ["127.0.0.1"],
    "loopback-range.test": ["127.8.9.10"],
    "private-10.test": ["10.1.2.3"],
    "private-172.test": ["172.16.5.4"],
    "private-192.test": ["192.168.1.1"],
    "metadata.test": ["169.254.169.254"],
    "unspecified.test": ["0.0.0.0"],  # noqa: S104  # an answer to refuse, not an address to bind
    "cgnat.test": ["100.64.0.1"],
    "ipv6-loopback.test": ["::1"],
    "ipv6-link-local.test": ["fe80::1%eth0"],
    "ipv6-unique-local.test": ["fd00::1"],
    "mapped-loopback.test": ["::ffff:127.0.0.1"],
    "mapped-metadata.test": ["::ffff:169.254.169.254"],
    "multicast.test": ["224.0.0.1"],
    "mixed.test": ["93.184.216.34", "10.0.0.7"],
}


def policy(
    allowed: Sequence[str] | None = None, table: Mapping[str, Sequence[str]] | None = None
) -> HostPolicy:
    return HostPolicy(allowed, resolver=FakeResolver({**PUBLIC, **INTERNAL, **(table or {})}))


def refusal(checker: HostPolicy, endpoint: str) -> EndpointRefused:
    with pytest.raises(EndpointRefused) as refused:
        checker.check(endpoint)
    return refused.value


@pytest.mark.parametrize(
    "endpoint",
    [
        "https://uploads.example.com/a",
        "http://uploads.example.com/a",
        "https://UPLOADS.Example.COM/a",
        "https://uploads.example.com:8443/a",
        "https://a.example.com/a",
        "https://deep.sub.example.com/a",
        "http://127.0.0.1:9000/local-receiver",
    ],
)
def test_allow_listed_hosts_and_wildcard_subdomains_are_accepted(endpoint: str) -> None:
    checker = policy(["uploads.example.com", "*.example.com", "127.0.0.1"])

    checker.check(signed(endpoint))


@pytest.mark.parametrize(
    "endpoint",
    [
        "https://example.com/a",
        "https://evil-example.com/a",
        "https://example.com.evil.net/a",
        "https://uploads.example.com.evil.net/a",
        "https://example.org/a",
        "https://evil.net/uploads.example.com",
        "https://evil.net/?host=uploads.example.com",
    ],
)
def test_hosts_outside_the_allow_list_are_refused(endpoint: str) -> None:
    checker = policy(["uploads.example.com", "*.example.com.test", "*.sub.example.com"])

    assert "UPLOAD_ALLOWED_HOSTS" in refusal(checker, endpoint).detail


def test_a_wildcard_pattern_does_not_admit_its_bare_domain() -> None:
    checker = policy(["*.example.com"])

    refusal(checker, "https://example.com/a")
    checker.check("https://www.example.com/a")


@pytest.mark.parametrize(
    "endpoint",
    [
        "ftp://uploads.example.com/a",
        "file:///etc/passwd",
        "gopher://uploads.example.com/a",
        "s3://uploads.example.com/a",
        "javascript:alert(1)",
        "uploads.example.com/a",
        "//uploads.example.com/a",
    ],
)
@pytest.mark.parametrize("allowed", [None, ["uploads.example.com"]])
def test_schemes_other_than_http_and_https_are_refused_as_invalid(
    endpoint: str, allowed: list[str] | None
) -> None:
    error = refusal(policy(allowed), endpoint)

    assert error.reason is RejectionReason.ENDPOINT_INVALID


def test_plain_http_is_refused_without_an_allow_list() -> None:
    assert "https" in refusal(policy(), "http://files.example.net/a").detail


def test_https_to_a_host_resolving_to_public_addresses_is_accepted() -> None:
    checker = policy()

    checker.check(signed("https://files.example.net/bucket/key"))
    checker.check("https://cdn.example.org:443/x")


@pytest.mark.parametrize("host", sorted(INTERNAL))
def test_hosts_resolving_to_a_non_public_address_are_refused(host: str) -> None:
    error = refusal(policy(), f"https://{host}/key")

    assert "non-public" in error.detail


def test_a_host_that_does_not_resolve_is_refused() -> None:
    assert "does not resolve" in refusal(policy(), "https://nowhere.invalid/key").detail


def test_a_host_resolving_to_no_address_is_refused() -> None:
    checker = policy(table={"empty.test": []})

    assert "does not resolve" in refusal(checker, "https://empty.test/key").detail


def test_a_resolver_that_cannot_answer_now_is_a_transient_error() -> None:
    def busy(host: str) -> Sequence[str]:
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    checker = HostPolicy(None, resolver=busy)

    with pytest.raises(TransientResolutionError):
        checker.check("https://files.example.net/key")


@pytest.mark.parametrize(
    "endpoint",
    [
        "https://127.0.0.1/a",
        "https://127.0.0.1:8443/a",
        "https://10.0.0.1/a",
        "https://169.254.169.254/latest/meta-data/",
        "https://0.0.0.0/a",
        "https://[::1]/a",
        "https://[::]/a",
        "https://[fe80::1]/a",
        "https://[fd12:3456::1]/a",
        "https://[::ffff:127.0.0.1]/a",
        "https://[::ffff:169.254.169.254]/a",
        "https://[::ffff:10.0.0.1]/a",
    ],
)
def test_ip_literal_hosts_that_are_not_public_are_refused(endpoint: str) -> None:
    refusal(policy(), endpoint)


@pytest.mark.parametrize(
    "endpoint",
    ["https://93.184.216.34/a", "https://[2606:4700::6810:84e5]/a", "https://[::ffff:8.8.8.8]/a"],
)
def test_public_ip_literal_hosts_are_accepted_without_resolving(endpoint: str) -> None:
    resolver = FakeResolver({})
    checker = HostPolicy(None, resolver=resolver)

    checker.check(endpoint)

    assert resolver.asked == []


def test_a_decision_is_kept_per_scheme_and_host() -> None:
    resolver = FakeResolver(PUBLIC)
    checker = HostPolicy(None, resolver=resolver)

    checker.check("https://files.example.net/one")
    checker.check("https://files.example.net/two?x=1")
    checker.check("https://cdn.example.org/three")

    assert resolver.asked == ["files.example.net", "cdn.example.org"]


REFUSED = [
    ("http://uploads.example.com/key", None),
    ("https://metadata.test/key", None),
    ("https://nowhere.invalid/key", None),
    ("https://169.254.169.254/key", None),
    ("https://[::1]/key", None),
    ("ftp://uploads.example.com/key", None),
    ("https://evil.net/key", ["uploads.example.com"]),
    ("https://user:hunter2@metadata.test/key", None),
    ("https://[::1/key", None),
]


@pytest.mark.parametrize(("endpoint", "allowed"), REFUSED)
def test_a_refusal_never_quotes_the_query_string_or_credentials(
    endpoint: str, allowed: list[str] | None
) -> None:
    error = refusal(policy(allowed), signed(endpoint) + "#fragment-secret")

    for text in (error.detail, str(error)):
        assert SECRET not in text
        assert SIGNED_QUERY not in text
        assert "?" not in text
        assert "hunter2" not in text
        assert "fragment-secret" not in text


ALLOWING = ["uploads.example.com", "*.example.com", "127.0.0.1", "fe80::1", "evil.net"]
"""An allow-list that admits every host the malformed endpoints below name or pose as."""

MALFORMED: list[tuple[str, str]] = [
    ("label over 63 characters under an allowed wildcard", f"https://{'a' * 64}.example.com/k"),
    ("IDN label over 63 characters once encoded", f"https://{'ü' * 58}.example.com/k"),
    ("lone surrogate", "https://uploads.example.com/k\ud800"),
    ("port out of range on an allowed host", "https://uploads.example.com:99999/k"),
    ("port not a number", "https://uploads.example.com:x/k"),
    ("userinfo posing as an allowed host", "https://uploads.example.com@evil.net/a"),
    ("credentials", "https://user:hunter2@uploads.example.com/k"),
    ("backslash: urlsplit reads one host, requests another", "https://evil.net\\@127.0.0.1/k"),
    ("tab that urlsplit drops and urllib3 refuses", "https://uploads.example.com\t/k"),
    ("percent-encoded allowed host", "https://%75ploads.example.com/k"),
    ("zone id on an allowed IPv6 address", "https://[fe80::1%25eth0]/k"),
    ("short form of an allowed IPv4 address", "https://127.1/k"),
    ("IPv6 address outside brackets", "https://fe80::1/k"),
    ("fragment", "https://uploads.example.com/k#part"),
    ("over the maximum length", "https://uploads.example.com/" + "k" * 8192),
]


@pytest.mark.parametrize("allowed", [ALLOWING, None], ids=["allow-list", "no allow-list"])
@pytest.mark.parametrize("endpoint", [e for _, e in MALFORMED], ids=[name for name, _ in MALFORMED])
def test_a_malformed_endpoint_is_refused_as_invalid_before_any_lookup(
    endpoint: str, allowed: list[str] | None
) -> None:
    resolver = FakeResolver(PUBLIC)
    checker = HostPolicy(allowed, resolver=resolver)

    error = refusal(checker, signed(endpoint))

    assert error.reason is RejectionReason.ENDPOINT_INVALID
    assert resolver.asked == []


@pytest.mark.parametrize(
    ("allowed", "endpoint"),
    [
        (["bücher.example"], "https://BÜCHER.example/k"),
        (["bücher.example"], "https://xn--bcher-kva.example/k"),
        (["xn--bcher-kva.example"], "https://bücher.example/k"),
        (["*.bücher.example"], "https://files.bücher.example/k"),
        (["::1"], "http://[::1]:9000/k"),
        (["[::1]"], "http://[0:0:0:0:0:0:0:1]/k"),
        (["uploads.example.com"], "https://uploads.example.com./k"),
        (["uploads.example.com"], "https://uploads.example.com:443/k"),
        (["uploads.example.com"], "http://uploads.example.com:80/k"),
    ],
)
def test_valid_spellings_of_an_allowed_host_are_accepted(allowed: list[str], endpoint: str) -> None:
    HostPolicy(allowed, resolver=FakeResolver({})).check(signed(endpoint))


@pytest.mark.parametrize(
    ("allowed", "scheme", "host", "addresses"),
    [
        (["bücher.example"], "https", "xn--bcher-kva.example", ["93.184.216.34"]),
        (["::1"], "http", "0:0:0:0:0:0:0:1", ["::1"]),
        (["uploads.example.com"], "https", "uploads.example.com.", ["93.184.216.34"]),
    ],
)
def test_the_connection_guard_reads_allowed_hosts_in_the_spelling_urllib3_hands_it(
    allowed: list[str], scheme: str, host: str, addresses: list[str]
) -> None:
    checker = HostPolicy(allowed, resolver=lambda _: ["93.184.216.34"])

    assert checker.connect_addresses(scheme, host) == addresses


def test_an_idn_is_looked_up_by_its_a_labels() -> None:
    resolver = FakeResolver({"xn--bcher-kva.example": ["93.184.216.34"]})

    HostPolicy(None, resolver=resolver).check("https://Bücher.example/k")

    assert resolver.asked == ["xn--bcher-kva.example"]


class FlakyResolver:
    """Fails with each scripted error in turn, then answers with a public address."""

    def __init__(self, *failures: Exception) -> None:
        self.failures = list(failures)
        self.asked: list[str] = []

    def __call__(self, host: str) -> Sequence[str]:
        self.asked.append(host)
        if self.failures:
            raise self.failures.pop(0)
        return ["93.184.216.34"]


TRANSIENT_LOOKUP_FAILURES: list[tuple[str, Exception]] = [
    ("EAI_AGAIN", socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")),
    ("EAI_FAIL, as SERVFAIL", socket.gaierror(socket.EAI_FAIL, "Non-recoverable failure")),
    ("a timeout", TimeoutError("timed out")),
    ("the resolver unreachable", ConnectionRefusedError("Connection refused")),
]


@pytest.mark.parametrize(
    "failure",
    [f for _, f in TRANSIENT_LOOKUP_FAILURES],
    ids=[n for n, _ in TRANSIENT_LOOKUP_FAILURES],
)
def test_a_lookup_that_cannot_answer_now_is_transient_and_never_remembered(
    failure: Exception,
) -> None:
    resolver = FlakyResolver(failure)
    checker = HostPolicy(None, resolver=resolver)

    with pytest.raises(TransientResolutionError):
        checker.check("https://files.example.net/one")
    checker.check("https://files.example.net/two")

    assert resolver.asked == ["files.example.net", "files.example.net"]


NO_SUCH_NAME = [socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)]


@pytest.mark.parametrize("code", NO_SUCH_NAME)
def test_a_name_that_does_not_exist_is_refused_but_asked_again_for_the_next_record(
    code: int,
) -> None:
    resolver = FlakyResolver(socket.gaierror(code, "Name or service not known"))
    checker = HostPolicy(None, resolver=resolver)

    error = refusal(checker, "https://files.example.net/one")
    checker.check("https://files.example.net/two")

    assert error.reason is RejectionReason.ENDPOINT_REFUSED
    assert "does not resolve" in error.detail
    assert resolver.asked == ["files.example.net", "files.example.net"]


@pytest.mark.parametrize(("endpoint", "allowed"), REFUSED)
def test_a_refusal_detail_never_names_the_endpoint_it_goes_into_quarantine_metadata(
    endpoint: str, allowed: list[str] | None
) -> None:
    error = refusal(policy(allowed), signed(endpoint))

    host = endpoint.split("//", 1)[1].split("/", 1)[0].rsplit("@", 1)[-1]
    for part in (redact(endpoint), host, host.strip("[]"), "/key"):
        assert part not in error.detail


class _RealPolicy(FakePolicy):
    """The real HostPolicy where the fake container expects its policy."""

    def __init__(self, real: HostPolicy) -> None:
        super().__init__()
        self.real = real

    def check(self, put_endpoint: str) -> None:
        self.real.check(put_endpoint)


@pytest.mark.parametrize(
    "failure",
    [f for _, f in TRANSIENT_LOOKUP_FAILURES],
    ids=[n for n, _ in TRANSIENT_LOOKUP_FAILURES],
)
def test_a_lookup_failing_for_now_reports_the_record_and_its_redelivery_succeeds(
    failure: Exception,
) -> None:
    resolver = FlakyResolver(failure)
    archive, uploader = FakeArchive(), FakeUploader()
    container = FakeContainer(
        remote=FakeRemoteStore(),
        uploader=uploader,
        archive=archive,
        policy=_RealPolicy(HostPolicy(None, resolver=resolver)),
    )
    endpoint = signed("https://files.example.net/report.csv")
    records = file_records(endpoint, b"hello, world", 5)

    first = container.process(records)
    again = container.process(records)

    assert first == [r.sequence_number for r in records]  # the first record and all after it
    assert again == []
    assert archive.quarantined == []
    assert uploader.bodies_for(endpoint) == [b"hello, world"]
    assert resolver.asked == ["files.example.net", "files.example.net"]
