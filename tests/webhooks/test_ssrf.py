"""SSRF refusals: schemes, loopback, private, link-local and their IPv6 forms, names that resolve to them
(through a stub resolver), redirects, and the capped read — checked at send time against real sockets."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import pytest

from tests.webhooks.conftest import Receiver
from workflow.webhooks.delivery import MAX_RESPONSE_BYTES, Sender
from workflow.webhooks.ssrf import UrlRefused, check_url, resolve_target

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

REFUSED_ADDRESSES = [
    "127.0.0.1",
    "127.1.2.3",
    "10.0.0.5",
    "172.16.3.4",
    "192.168.1.1",
    "169.254.169.254",  # cloud metadata
    "100.64.0.1",  # shared (CGNAT)
    "0.0.0.0",
    "224.0.0.1",
    "255.255.255.255",
    "[::1]",
    "[::]",
    "[fe80::1]",
    "[fc00::1]",
    "[fd12:3456::1]",
    "[::ffff:127.0.0.1]",  # IPv4-mapped
    "[::ffff:7f00:1]",  # the same, in hex
    "[::ffff:169.254.169.254]",
    "[::ffff:10.1.2.3]",
    "[::127.0.0.1]",  # IPv4-compatible
    "[2002:7f00:1::]",  # 6to4 of 127.0.0.1
    "[64:ff9b::a00:1]",  # NAT64 of 10.0.0.1
    "[ff02::1]",
]


@pytest.mark.parametrize("host", REFUSED_ADDRESSES)
async def test_internal_addresses_are_refused_as_written_and_at_send_time(host: str) -> None:
    url = f"http://{host}:8080/hook"
    with pytest.raises(UrlRefused, match="refused"):
        check_url(url, allow_private=False)
    with pytest.raises(UrlRefused, match="refused"):
        await resolve_target(url, allow_private=False)
    check_url(url, allow_private=True)  # BOOKBAG_WEBHOOK_ALLOW_PRIVATE=true


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/h",
        "file:///etc/passwd",
        "gopher://example.com/",
        "javascript:alert(1)",
        "http:///nohost",
        "https://user:secret@example.com/h",
        "http://example.com:0/h",
        "http://exa mple.com/h",
        "http://localhost:8000/h",
        "https://" + "a" * 2000 + ".com",
    ],
)
def test_other_schemes_and_malformed_urls_are_refused(url: str) -> None:
    with pytest.raises(UrlRefused):
        check_url(url, allow_private=False)


async def test_public_addresses_pass() -> None:
    for host in ["93.184.216.34", "[2606:2800:220:1:248:1893:25c8:1946]"]:
        target = await resolve_target(f"https://{host}/h?x=1", allow_private=False)
        assert target.port == 443 and target.path == "/h?x=1"


async def test_a_name_resolving_to_loopback_is_refused_and_never_connected(receiver: Receiver) -> None:
    async def rebinding(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    check_url(f"http://hooks.example.com:{receiver.port}/h", allow_private=False)  # nothing to see yet
    sender = Sender(timeout=2, allow_private=False, resolver=rebinding)
    result = await sender.send(f"http://hooks.example.com:{receiver.port}/h", [SECRET], "evt_1", "{}")
    await sender.close()
    assert not result.ok and result.status_code is None
    assert result.error == "hooks.example.com resolves to 127.0.0.1: refused: 127.0.0.1 is a loopback address"
    assert receiver.received == []


async def test_one_refused_answer_among_several_refuses_the_name() -> None:
    async def mixed(host: str, port: int) -> list[str]:
        return ["93.184.216.34", "::ffff:10.0.0.1"]

    with pytest.raises(UrlRefused, match=re.escape("resolves to ::ffff:10.0.0.1")):
        await resolve_target("https://mixed.example.com/h", allow_private=False, resolver=mixed)


async def test_the_sender_connects_to_the_checked_address_with_the_name_in_host(receiver: Receiver) -> None:
    """The name is resolved once, by the resolver that was checked: ``hooks.invalid`` exists in no DNS, so
    the request can only arrive if the connection went to the checked address."""
    asked: list[str] = []

    async def stub(host: str, port: int) -> list[str]:
        asked.append(host)
        return ["127.0.0.1"]

    sender = Sender(timeout=2, allow_private=True, resolver=stub)
    result = await sender.send(f"http://hooks.invalid:{receiver.port}/in?a=1", [SECRET], "evt_2", '{"a":1}')
    await sender.close()
    assert result.ok and result.status_code == 200
    assert asked == ["hooks.invalid"]
    [request] = receiver.received
    assert request.headers["host"] == f"hooks.invalid:{receiver.port}" and request.path == "/in?a=1"


async def test_redirects_are_not_followed(make_receiver: Callable[..., Receiver]) -> None:
    make = make_receiver
    target = make()
    redirecting = make(lambda _r: (302, {"location": target.url}, b""))
    sender = Sender(timeout=2, allow_private=True)
    result = await sender.send(redirecting.url, [SECRET], "evt_3", "{}")
    await sender.close()
    assert not result.ok and result.status_code == 302
    assert result.error is not None and "redirect" in result.error and "not followed" in result.error
    assert len(redirecting.received) == 1 and target.received == []


async def test_only_a_small_part_of_the_answer_is_read(make_receiver: Callable[..., Receiver]) -> None:
    make = make_receiver
    big = make(lambda _r: (200, {}, b"x" * 5_000_000))
    sender = Sender(timeout=5, allow_private=True)
    result = await sender.send(big.url, [SECRET], "evt_4", "{}")
    await sender.close()
    assert result.ok and result.response_excerpt is not None
    assert len(result.response_excerpt) == MAX_RESPONSE_BYTES


async def test_a_receiver_that_does_not_answer_in_time_fails_the_attempt(
    make_receiver: Callable[..., Receiver],
) -> None:
    make = make_receiver

    def slow(_r: object) -> tuple[int, dict[str, str], bytes]:
        time.sleep(1.5)
        return 200, {}, b""

    hanging = make(slow)
    sender = Sender(timeout=0.5, allow_private=True)
    result = await sender.send(hanging.url, [SECRET], "evt_5", "{}")
    await sender.close()
    assert not result.ok and result.error == "timed out after 0.5 s" and 400 <= result.latency_ms < 1400


@pytest.mark.parametrize("host", ["2130706433", "0x7f000001", "0177.0.0.1", "127.1"])
async def test_other_spellings_of_loopback_are_refused_once_resolved(host: str) -> None:
    """Not IP literals to Python, but the system resolver reads them as 127.0.0.1: the send-time check on
    the resolved address refuses them."""
    with pytest.raises(UrlRefused, match=re.escape("127.0.0.1 is a loopback address")):
        await resolve_target(f"http://{host}:8080/h", allow_private=False)
