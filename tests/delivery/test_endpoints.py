"""Endpoint address checks: classification, the network backend and refusals on a real socket."""

from __future__ import annotations

import socket
import time

import httpcore
import pytest
import trio

from postbackd.actors._delivery import DeliveryActor, PreparedRequest
from postbackd.actors._endpoints import (
    NameResolutionError,
    PrivateEndpointError,
    PublicEndpointBackend,
    make_client,
    non_public_kind,
    resolve_host,
)
from tests.delivery.harness import Harness, make_pending, run_for
from tests.delivery.servers import ScriptedReceiver


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("8.8.8.8", None),
        ("93.184.216.34", None),
        ("2606:4700:4700::1111", None),
        ("::ffff:8.8.8.8", None),
        ("2002:808:808::", None),
        ("64:ff9b::808:808", None),
        ("127.0.0.1", "loopback"),
        ("127.255.255.254", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("2002:7f00:1::", "loopback"),
        ("64:ff9b::7f00:1", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("::ffff:10.0.0.1", "private"),
        ("fc00::1", "private"),
        ("192.0.2.1", "private"),
        ("2001:db8::1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("fe80::1%eth0", "link-local"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("fec0::1", "site-local"),
        ("100.64.0.1", "non-public"),
    ],
)
def test_address_classification(address, kind):
    assert non_public_kind(address) == kind


@pytest.mark.parametrize("text", ["localhost", "", "1.2.3", "::g"])
def test_classification_rejects_non_addresses(text):
    with pytest.raises(ValueError):
        non_public_kind(text)


class RecordingBackend(httpcore.AsyncNetworkBackend):
    """Records connection requests instead of connecting; ``refuse`` makes those addresses fail."""

    def __init__(self, refuse: tuple[str, ...] = ()) -> None:
        self.connects: list[tuple[str, int]] = []
        self.refuse = refuse

    async def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        self.connects.append((host, port))
        if host in self.refuse:
            raise httpcore.ConnectError(f"connection to {host} refused")
        return "stream"


def resolver(*addresses: str):
    async def resolve(host: str, port: int) -> list[str]:
        return list(addresses)

    return resolve


@pytest.mark.parametrize(
    "addresses",
    [("127.0.0.1",), ("10.1.2.3",), ("93.184.216.34", "10.1.2.3"), ("2606:4700::1", "::1")],
)
async def test_backend_rejects_before_connecting(addresses):
    inner = RecordingBackend()
    backend = PublicEndpointBackend(resolve=resolver(*addresses), inner=inner)

    with pytest.raises(PrivateEndpointError, match="--allow-private-endpoints") as caught:
        await backend.connect_tcp("partner.test", 443)

    assert inner.connects == []
    assert "'partner.test' resolves to" in str(caught.value)


async def test_backend_connects_to_the_checked_address():
    inner = RecordingBackend()
    backend = PublicEndpointBackend(resolve=resolver("93.184.216.34"), inner=inner)

    stream = await backend.connect_tcp("partner.test", 443)

    assert stream == "stream"
    assert inner.connects == [("93.184.216.34", 443)]


async def test_backend_tries_the_next_address():
    inner = RecordingBackend(refuse=("2606:4700::1",))
    backend = PublicEndpointBackend(resolve=resolver("2606:4700::1", "93.184.216.34"), inner=inner)

    await backend.connect_tcp("partner.test", 443)

    assert inner.connects == [("2606:4700::1", 443), ("93.184.216.34", 443)]


async def test_backend_reports_the_last_connect_error():
    inner = RecordingBackend(refuse=("93.184.216.34",))
    backend = PublicEndpointBackend(resolve=resolver("93.184.216.34"), inner=inner)

    with pytest.raises(httpcore.ConnectError, match="connection to 93.184.216.34 refused"):
        await backend.connect_tcp("partner.test", 443)


async def test_backend_allows_private_when_asked():
    inner = RecordingBackend()
    backend = PublicEndpointBackend(allow_private=True, resolve=resolver("10.1.2.3"), inner=inner)

    await backend.connect_tcp("partner.test", 80)

    assert inner.connects == [("10.1.2.3", 80)]


class FailingResolver(trio.abc.HostnameResolver):
    """A trio hostname resolver for which every name is unknown; no query leaves the process."""

    async def getaddrinfo(self, host, port, family=0, type=0, proto=0, flags=0):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    async def getnameinfo(self, sockaddr, flags):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


async def test_unknown_host_raises_name_resolution_error():
    trio.socket.set_custom_hostname_resolver(FailingResolver())

    with pytest.raises(NameResolutionError, match="'partner.test' did not resolve: Name or service not known"):
        await resolve_host("partner.test", 443)


async def test_dns_failure_is_retryable(autojump_clock):
    trio.socket.set_custom_hostname_resolver(FailingResolver())
    client = make_client(concurrency=2, attempt_timeout=10.0, allow_private=False)
    harness = Harness(client=client, retries=1, url="http://partner.test/pb")

    await run_for(harness, [make_pending()], 1000)

    assert harness.outcomes() == ["retry", "failed"]
    assert {record.failure_class for record in harness.records} == {"dns"}
    assert "did not resolve" in harness.records[-1].error


async def test_loopback_address_is_the_resolved_one():
    addresses = await resolve_host("localhost", 80)

    assert addresses
    assert all(non_public_kind(address) == "loopback" for address in addresses)


async def deliver_once(url: str, *, allow_private: bool) -> object:
    """Deliver one postback to ``url`` with a real client and return its attempt record."""
    records = []

    async def record(attempt) -> None:
        records.append(attempt)

    def prepare(pending) -> PreparedRequest:
        return PreparedRequest("GET", url, [], None, url, 0)

    actor = DeliveryActor("app1", "netA", prepare=prepare, record_attempt=record, attempt_timeout=5.0,
                          allow_private_endpoints=allow_private)
    async with trio.open_nursery() as nursery:
        await nursery.start(actor.run)
        actor.schedule(make_pending(due=time.time()))
        while not records:
            await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    return records[0]


@pytest.fixture
def receiver():
    server = ScriptedReceiver()
    yield server
    server.close()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_private_endpoint_is_refused(receiver, host):
    record = await deliver_once(f"http://{host}:{receiver.port}/pb", allow_private=False)

    assert record.outcome == "failed"
    assert record.failure_class == "private_endpoint"
    assert f"'{host}' resolves to " in record.error
    assert "a loopback address" in record.error
    assert receiver.requests == []


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_private_endpoint_is_allowed_with_the_flag(receiver, host):
    record = await deliver_once(f"http://{host}:{receiver.port}/pb?x=1", allow_private=True)

    assert record.outcome == "delivered"
    assert len(receiver.requests) == 1
    assert receiver.requests[0]["headers"]["Host"] == f"{host}:{receiver.port}"
    assert receiver.requests[0]["target"] == "/pb?x=1"
