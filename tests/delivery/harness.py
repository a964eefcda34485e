"""A delivery actor on trio's virtual clock, with an in-memory attempt log and a scripted partner."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable

import httpx
import trio

from postbackd.actors._delivery import DeliveryActor, PermanentError, PreparedRequest
from postbackd.actors._replay import PendingPostback
from postbackd.eventlog import Attempted, Decision, Event

# Epoch seconds at virtual time 0: 2027-01-15 08:00:00 UTC.
EPOCH = 1_800_000_000.0
APP = "app1"
NETWORK = "netA"


def virtual_now() -> float:
    """Wall-clock seconds that advance with trio's clock, as the actor reads them."""
    return EPOCH + trio.current_time()


def make_pending(number: int = 1, due: float = EPOCH, postback: str = "install") -> PendingPostback:
    event = Event(app=APP, id=f"e{number}", type="install", device=f"d{number}", time=EPOCH)
    decision = Decision(
        network=NETWORK, postback=postback, outcome="scheduled", reason="scheduled",
        postback_id=f"pb_{number:04d}", due=due,
    )
    return PendingPostback(number, event, decision, due)


Handler = Callable[[httpx.Request], Awaitable[httpx.Response]]


class Harness:
    """Runs one DeliveryActor against ``handler`` and keeps the attempt records and request times.

    ``client`` replaces the MockTransport client, for tests of the real transport.
    """

    def __init__(
        self,
        handler: Handler | None = None,
        *,
        retries: int = 3,
        retry_delays: tuple[float, ...] = (10.0, 20.0, 40.0),
        attempt_timeout: float = 10.0,
        concurrency: int = 8,
        seed: int = 1,
        secrets: tuple[str, ...] = (),
        url: str = "https://partner.example/pb",
        client: httpx.AsyncClient | None = None,
        render_error: str | None = None,
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        self.handler = handler
        self.headers = headers or []
        self.retries = retries
        self.secrets = secrets
        self.url = url
        self.render_error = render_error
        self.records: list[Attempted] = []
        # (virtual time, request) of every request the partner got.
        self.requests: list[tuple[float, httpx.Request]] = []
        self.client = client or httpx.AsyncClient(transport=httpx.MockTransport(self._handle))
        self.actor = DeliveryActor(
            APP, NETWORK,
            prepare=self._prepare,
            record_attempt=self._record,
            concurrency=concurrency,
            attempt_timeout=attempt_timeout,
            retry_delays=retry_delays,
            client=self.client,
            now=virtual_now,
            rng=random.Random(seed),
        )

    async def _handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append((trio.current_time(), request))
        assert self.handler is not None
        return await self.handler(request)

    def _prepare(self, pending: PendingPostback) -> PreparedRequest:
        if self.render_error is not None:
            raise PermanentError("render_error", self.render_error)
        url = f"{self.url}?id={pending.postback_id}"
        return PreparedRequest("GET", url, self.headers, None, url, self.retries, self.secrets)

    async def _record(self, record: Attempted) -> None:
        self.records.append(record)

    def times(self) -> list[float]:
        return [when for when, _ in self.requests]

    def outcomes(self) -> list[str]:
        return [record.outcome for record in self.records]


class BodyStream(httpx.AsyncByteStream):
    """A response body streamed in chunks, as a real transport delivers it.

    ``httpx.Response(content=...)`` reads its body at once, so a client
    that streams the response would find nothing left to read.
    """

    def __init__(self, body: bytes, chunk_size: int = 256) -> None:
        self.body = body
        self.chunk_size = chunk_size

    async def __aiter__(self):
        for start in range(0, len(self.body), self.chunk_size):
            yield self.body[start : start + self.chunk_size]


def response(status: int, headers: dict[str, str] | None = None, body: bytes = b"ok") -> httpx.Response:
    return httpx.Response(status, headers=headers, stream=BodyStream(body))


def respond(status: int, headers: dict[str, str] | None = None, body: bytes = b"ok") -> Handler:
    async def handler(request: httpx.Request) -> httpx.Response:
        return response(status, headers, body)

    return handler


def respond_in_turn(*statuses: int) -> Handler:
    """Respond with each status in turn, then repeat the last."""
    remaining = list(statuses)

    async def handler(request: httpx.Request) -> httpx.Response:
        status = remaining.pop(0) if len(remaining) > 1 else remaining[0]
        return response(status, body=f"status {status}".encode())

    return handler


def raise_error(error: Exception) -> Handler:
    async def handler(request: httpx.Request) -> httpx.Response:
        raise error

    return handler


async def run_for(harness: Harness, pendings: list[PendingPostback], seconds: float) -> None:
    """Run the actor for ``seconds`` of virtual time with ``pendings`` scheduled at the start."""
    async with trio.open_nursery() as nursery:
        await nursery.start(harness.actor.run)
        for pending in pendings:
            harness.actor.schedule(pending)
        await trio.sleep(seconds)
        nursery.cancel_scope.cancel()
