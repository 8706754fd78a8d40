"""Which callback URLs a submission may give (domain/callbacks.py, decision 23)."""

from __future__ import annotations

import ipaddress

import pytest

from taskflow.domain.callbacks import CALLBACK_URL_MAX_LENGTH, CallbackHosts

NONE = CallbackHosts()


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/taskflow",
        "http://example.com:8080/a?b=c",
        "https://93.184.216.34/hook",
        "https://[2606:4700:4700::1111]/hook",
        "https://Example.COM./x",
    ],
)
def test_a_public_http_url_is_accepted(url: str) -> None:
    assert NONE.url_problem(url) is None


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "127.255.0.9",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",  # the cloud metadata service
        "100.64.0.1",  # shared address space (CGNAT)
        "0.0.0.0",
        "224.0.0.1",
        "255.255.255.255",
        "[::1]",
        "[::]",
        "[fe80::1]",
        "[fc00::1]",
        "[fd12:3456::1]",
        "[::ffff:127.0.0.1]",  # IPv4-mapped loopback
        "[::ffff:10.0.0.1]",
        "[ff02::1]",
    ],
)
def test_a_non_public_address_is_refused_naming_the_field(host: str) -> None:
    problem = NONE.url_problem(f"http://{host}:9000/hook")
    assert problem is not None
    assert problem.startswith("callback_url")
    assert "TASKFLOW_CALLBACK_ALLOWED_HOSTS" in problem


@pytest.mark.parametrize(
    "host",
    [
        "localhost",
        "LOCALHOST.",
        "api.localhost",
        "printer.local",
        "db.internal",
        "nas.home.arpa",
        "redis",  # one label: resolved through the local search domains
        "127.1",  # IPv4 in other spellings, which resolvers accept
        "0x7f000001",
        "2130706433",
        "0177.0.0.1",
    ],
)
def test_a_name_that_can_only_be_local_or_an_address_in_disguise_is_refused(host: str) -> None:
    assert NONE.url_problem(f"http://{host}/hook") is not None


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/x",
        "example.com/hook",
        "/hook",
        "https://",
        "http://:80/",
        "https://user:secret@example.com/",
        "https://example.com:99999/",
        "https://exa mple.com/",
        # Once made the host pattern backtrack for ever (a regular expression denial of service).
        "https://" + "a" * 40 + "!/",
        "https://" + "a-" * 120 + "!/",
        "https://" + "a" * CALLBACK_URL_MAX_LENGTH + ".com/",
    ],
)
def test_a_url_that_is_not_an_absolute_http_url_is_refused(url: str) -> None:
    problem = NONE.url_problem(url)
    assert problem is not None
    assert problem.startswith("callback_url")


def test_listed_hosts_addresses_and_networks_are_allowed() -> None:
    hosts = CallbackHosts.parse(["127.0.0.1", " Hooks.Internal ", "10.0.0.0/8", "[::1]", ""])
    for url in (
        "http://127.0.0.1:8080/",
        "http://hooks.internal/x",
        "http://10.20.30.40/",
        "http://[::1]:9/",
        "http://[::ffff:10.0.0.7]/",
    ):
        assert hosts.url_problem(url) is None, url
    assert hosts.url_problem("http://127.0.0.2/") is not None
    assert hosts.url_problem("http://other.internal/") is not None


@pytest.mark.parametrize("entry", ["example.com:8080", "10.0.0.0/33", "http://x.com", "a b"])
def test_an_entry_that_is_no_host_address_or_network_is_refused(entry: str) -> None:
    with pytest.raises(ValueError, match="not a host name, an IP address or a CIDR network"):
        CallbackHosts.parse([entry])


def test_at_delivery_every_resolved_address_must_be_allowed() -> None:
    hosts = CallbackHosts.parse(["192.168.0.0/16", "hooks.internal"])
    public, private, listed = (
        ipaddress.ip_address(a) for a in ("93.184.216.34", "10.0.0.1", "192.168.3.4")
    )
    assert hosts.delivery_problem("example.com", [public, listed]) is None
    problem = hosts.delivery_problem("example.com", [public, private])
    assert problem is not None
    assert "10.0.0.1" in problem
    # A listed name is trusted whatever it resolves to.
    assert hosts.delivery_problem("hooks.internal", [private]) is None
