"""The upload connection vets the addresses it connects to, at connect time."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from adapters.endpoint_policy import HostPolicy
from adapters.guarded_transport import guarded_session
from adapters.http_uploader import RequestsUploader, RetryPolicy
from application.ports import PermanentUploadError, TransientUploadError
from domain import EndpointRefused
from entrypoints.local_receiver import LocalReceiver
from tests.integration.builders import body_of


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
