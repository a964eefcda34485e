"""Delivery actors: one per partner, each with its own timer queue and HTTP client.

A delivery actor keeps its pending postbacks in a heap ordered by due time
and sleeps until the earliest is due, so 100,000 pending postbacks cost one
task and one heap, not one task each. Requests run in the actor's nursery,
at most ``concurrency`` at a time. A partner that hangs only fills its own
actor's slots; other partners' actors run on.

Networks match event postbacks to installs, so an event postback of a device
never starts while the same device's install postback is pending or in flight
in this actor. An event postback that becomes due then is parked by device
and goes back into the heap when the install postback is delivered or fails
for good. The check costs one dict lookup per due postback and the release
one heap push per parked postback, so no step scans the queue. A parked
postback stays in ``pending``, so counts, listings, snapshots and shutdown
see it as pending.

Due times are wall-clock epoch seconds from ``now`` (``time.time`` in the
daemon), because they are stored in the log and must mean the same after a
restart. Each wait converts the remaining seconds to trio's clock, so tests
drive the actor on trio's virtual clock by passing a ``now`` built on
``trio.current_time()``.

Error handling: every failure of a request is classified (see
``classify_status`` and ``classify_error``), recorded as an ``Attempted``
record and either retried after the next delay of the retry schedule or ends
the postback as failed. Errors while rendering a request and rejected
endpoint addresses fail the postback at once. Other exceptions, and failing
to record an attempt, propagate and stop the daemon.
"""

from __future__ import annotations

import datetime
import email.utils
import heapq
import itertools
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable, Hashable

import httpx
import trio

from postbackd.actors._endpoints import (
    NameResolutionError,
    PrivateEndpointError,
    PublicEndpointBackend,
    PublicEndpointTransport,
    make_client,
    resolve_host,
)
from postbackd.actors._replay import PendingPostback
from postbackd.eventlog import Attempted
from postbackd.integrations import mask_secrets

logger = logging.getLogger("postbackd.delivery")

# Bytes of a response body kept in the attempt record.
RESPONSE_HEAD_BYTES = 1024

# Relative jitter applied to each retry delay (0.2 is plus or minus 20 %).
RETRY_JITTER = 0.2

# Seconds before retry 1, 2, ... when the daemon settings give none; the last step repeats.
DEFAULT_RETRY_DELAYS = (30.0, 120.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 43200.0, 86400.0)

# A Retry-After value in delta seconds: ASCII digits only.
_DELTA_SECONDS = re.compile(r"[0-9]+")

# Failure classes that end a postback at once: retrying cannot help.
PERMANENT_FAILURES = frozenset({"rejected_by_partner", "render_error", "private_endpoint"})


class PreparedRequest:
    """A rendered request, its masked URL for records, its retry budget and the secrets to mask."""

    __slots__ = ("method", "url", "headers", "body", "masked_url", "retries", "secrets")

    def __init__(
        self,
        method: str,
        url: str,
        headers: list[tuple[str, str]],
        body: bytes | None,
        masked_url: str,
        retries: int,
        secrets: tuple[str, ...] = (),
    ) -> None:
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.masked_url = masked_url
        self.retries = retries
        self.secrets = secrets


class PermanentError(Exception):
    """The postback cannot be sent at all (for example its request does not render)."""

    def __init__(self, failure_class: str, message: str) -> None:
        super().__init__(message)
        self.failure_class = failure_class


# Renders the current request of a pending postback, or raises PermanentError.
Prepare = Callable[[PendingPostback], PreparedRequest]
# Appends an attempt record and waits for its commit.
RecordAttempt = Callable[[Attempted], Awaitable[None]]
# Rate limit of repeated log lines: (key, monotonic now) -> (log it?, lines suppressed since the last).
ShouldLog = Callable[[Hashable, float], tuple[bool, int]]


class AttemptResult:
    """The result of one attempt: status code, failure class, error text and the head of the body."""

    __slots__ = ("status_code", "failure_class", "error", "response_head", "retry_after", "duration")

    def __init__(self) -> None:
        self.status_code: int | None = None
        self.failure_class: str | None = None
        self.error: str | None = None
        self.response_head = ""
        self.retry_after: float | None = None
        self.duration = 0.0

    @property
    def delivered(self) -> bool:
        return self.failure_class is None

    @property
    def retryable(self) -> bool:
        return self.failure_class is not None and self.failure_class not in PERMANENT_FAILURES


def classify_status(status: int) -> str | None:
    """Return the failure class of an HTTP status, None for success."""
    if 200 <= status < 300:
        return None
    if 300 <= status < 400:
        return "redirect"
    if status == 408:
        return "timeout"
    if status == 429:
        return "throttled"
    if status >= 500:
        return "server_error"
    return "rejected_by_partner"


def classify_error(exc: Exception) -> tuple[str, str]:
    """Return the failure class and error text of an exception raised while sending a request.

    Raises ``TypeError`` for an exception that is not a request failure.
    """
    if isinstance(exc, PrivateEndpointError):
        return "private_endpoint", str(exc)
    if isinstance(exc, httpx.TimeoutException):
        return "timeout", f"Timed out: {exc or type(exc).__name__}."
    if isinstance(exc, httpx.ConnectError):
        if isinstance(exc.__cause__, NameResolutionError):
            return "dns", str(exc)
        return "connection", f"Connection failed: {exc}."
    if isinstance(exc, httpx.LocalProtocolError):
        # h11 rejected the request itself, for example a control character in a header value.
        return "render_error", f"The request is invalid: {exc}."
    if isinstance(exc, httpx.TransportError):
        return "connection", f"Connection failed: {type(exc).__name__}: {exc}."
    if isinstance(exc, httpx.InvalidURL):
        return "render_error", f"The rendered URL is invalid: {exc}."
    raise TypeError(f"{type(exc).__name__} is not a request failure") from exc


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header: delta seconds or an HTTP date; None when absent or invalid."""
    if not value:
        return None
    value = value.strip()
    # str.isdigit() accepts digits such as '²' that float() rejects.
    if _DELTA_SECONDS.fullmatch(value):
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError):
        return None
    if when.tzinfo is None:
        # An HTTP date is always in GMT; "-0000" parses without a time zone.
        when = when.replace(tzinfo=datetime.timezone.utc)
    return max(0.0, when.timestamp() - now)


def retry_delay(
    delays: tuple[float, ...], retry_number: int, retry_after: float | None, rng: random.Random
) -> float:
    """Delay before retry ``retry_number`` (1-based), with jitter and Retry-After applied.

    The schedule's last step repeats when there are more retries than steps.
    A Retry-After value raises the delay, up to twice the scheduled step.
    """
    step = delays[min(retry_number, len(delays)) - 1]
    delay = step * rng.uniform(1 - RETRY_JITTER, 1 + RETRY_JITTER)
    if retry_after is not None:
        delay = max(delay, min(retry_after, 2 * step))
    return delay


class DeliveryActor:
    """Delivers the postbacks of one partner (one app and network).

    ``client`` replaces the HTTP client built from ``concurrency``,
    ``attempt_timeout`` and ``allow_private_endpoints``, for tests.
    """

    def __init__(
        self,
        app: str,
        network: str,
        *,
        prepare: Prepare,
        record_attempt: RecordAttempt,
        concurrency: int = 8,
        attempt_timeout: float = 10.0,
        retry_delays: tuple[float, ...] = DEFAULT_RETRY_DELAYS,
        allow_private_endpoints: bool = False,
        client: httpx.AsyncClient | None = None,
        now: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        should_log: ShouldLog | None = None,
    ) -> None:
        self.app = app
        self.network = network
        self._prepare = prepare
        self._record_attempt = record_attempt
        self.attempt_timeout = attempt_timeout
        self.retry_delays = retry_delays
        self._now = now
        self._rng = rng or random.Random()
        self._should_log = should_log
        self._heap: list[tuple[float, int, PendingPostback]] = []
        self._counter = itertools.count()
        self._wakeup = trio.Event()
        self._limiter = trio.CapacityLimiter(concurrency)
        self._own_client = client is None
        # The actor's own client is used through its transport: the client's
        # send adds auth, redirect and cookie handling that postbacks never
        # use, at about 0.1 ms per request in the delivery benchmark. A client
        # passed in (tests pass MockTransport clients) is used as it is.
        self._transport: httpx.AsyncBaseTransport | None = None
        if client is None:
            self._transport = PublicEndpointTransport(
                max_connections=concurrency,
                backend=PublicEndpointBackend(allow_private=allow_private_endpoints, resolve=resolve_host),
            )
            client = make_client(
                concurrency=concurrency,
                attempt_timeout=attempt_timeout,
                allow_private=allow_private_endpoints,
                transport=self._transport,
            )
        self.client = client
        # Postbacks handed to this actor that have not finished: queued or in flight.
        self.pending: dict[str, PendingPostback] = {}
        # Ids of the postbacks whose attempt is running now.
        self.in_flight_ids: set[str] = set()
        # Postback id of the install postback pending here, by device id. The
        # actor serves one app, so a device id names one device.
        self._installs: dict[str, str] = {}
        # Event postbacks that became due while their device's install postback
        # was pending, by device id, then by postback id in the order they were parked.
        self._parked: dict[str, dict[str, PendingPostback]] = {}
        self.idle = trio.Event()
        self.idle.set()
        self._stopping = False

    @property
    def in_flight(self) -> int:
        return len(self.in_flight_ids)

    def stop_starting(self) -> None:
        """Start no new attempts; attempts in flight go on. Pending postbacks stay in the log."""
        self._stopping = True
        self._wakeup.set()

    def schedule(self, pending: PendingPostback) -> None:
        """Queue a postback for delivery at ``pending.due``.

        An install postback holds back the event postbacks of its device
        until it is delivered or fails for good.
        """
        self.pending[pending.postback_id] = pending
        if pending.event.type == "install":
            self._installs[pending.event.device] = pending.postback_id
        heapq.heappush(self._heap, (pending.due, next(self._counter), pending))
        self._wakeup.set()

    def resend(self, postback_id: str, due: float) -> bool:
        """Start a new, manual round of attempts at ``due`` for a postback of this actor.

        Returns False when the postback is not pending here. When an attempt
        of it is in flight, that attempt's outcome decides what happens next,
        as it does when the log is replayed. A resent event postback still
        waits for its device's install postback.
        """
        pending = self.pending.get(postback_id)
        if pending is None:
            return False
        pending.round_start = pending.attempt
        pending.manual = True
        pending.due = due
        self.schedule(pending)
        return True

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Start each postback's attempt when it is due, until ``stop_starting`` or cancellation."""
        try:
            async with trio.open_nursery() as nursery:
                task_status.started()
                while not self._stopping:
                    if not self._heap:
                        await self._wait_for_work()
                        continue
                    due, _, pending = self._heap[0]
                    wait = due - self._now()
                    if wait > 0:
                        with trio.move_on_at(trio.current_time() + wait):
                            await self._wait_for_work()
                        continue
                    heapq.heappop(self._heap)
                    if not self._is_current(due, pending):
                        continue
                    if self._waits_for_install(pending):
                        self._park(pending)
                        continue
                    await self._limiter.acquire_on_behalf_of(pending.postback_id)
                    self.in_flight_ids.add(pending.postback_id)
                    self.idle = trio.Event()
                    nursery.start_soon(self._deliver, pending)
        finally:
            if self._own_client:
                with trio.CancelScope(shield=True):
                    await self.client.aclose()

    def _is_current(self, due: float, pending: PendingPostback) -> bool:
        """Return whether a heap entry is still the postback's next attempt.

        A resend or a retry pushes a new entry and leaves the old one in the
        heap. An attempt in flight always pushes an entry of its own when it
        retries, so entries popped meanwhile are dropped.
        """
        return (
            self.pending.get(pending.postback_id) is pending
            and pending.due == due
            and pending.postback_id not in self.in_flight_ids
        )

    def _waits_for_install(self, pending: PendingPostback) -> bool:
        return pending.event.type != "install" and pending.event.device in self._installs

    def _park(self, pending: PendingPostback) -> None:
        """Hold a due event postback until its device's install postback finishes.

        Parking a postback twice (a resend pushes a second heap entry) keeps one entry.
        """
        device = pending.event.device
        self._parked.setdefault(device, {})[pending.postback_id] = pending
        logger.debug(
            "postback %s event %s to %s/%s waits for install postback %s of device %s",
            pending.postback_id, pending.event.id, self.app, self.network, self._installs[device], device,
        )

    def _release(self, install: PendingPostback) -> None:
        """Return the event postbacks parked behind a finished install postback to the heap.

        They keep their due times, which have passed, so they start at once,
        in due order, as slots free up.
        """
        device = install.event.device
        if self._installs.get(device) != install.postback_id:
            return
        del self._installs[device]
        parked = self._parked.pop(device, None)
        if not parked:
            return
        for pending in parked.values():
            heapq.heappush(self._heap, (pending.due, next(self._counter), pending))
        self._wakeup.set()

    async def _wait_for_work(self) -> None:
        await self._wakeup.wait()
        self._wakeup = trio.Event()

    async def _deliver(self, pending: PendingPostback) -> None:
        try:
            await self._attempt(pending)
        finally:
            self.in_flight_ids.discard(pending.postback_id)
            self._limiter.release_on_behalf_of(pending.postback_id)
            if not self.in_flight_ids:
                self.idle.set()

    async def _attempt(self, pending: PendingPostback) -> None:
        attempt = pending.attempt + 1
        started = self._now()
        result = AttemptResult()
        method, masked_url, retries = "GET", "", 0
        try:
            request = self._prepare(pending)
        except PermanentError as exc:
            result.failure_class = exc.failure_class
            result.error = str(exc)
        else:
            method, masked_url, retries = request.method, request.masked_url, request.retries
            await self._send(request, result)
            # A partner may echo a secret back, and some errors quote the request.
            if result.error is not None:
                result.error = mask_secrets(result.error, request.secrets)
            result.response_head = mask_secrets(result.response_head, request.secrets)

        retry_number = attempt - pending.round_start
        next_due = None
        if result.delivered:
            outcome = "delivered"
        elif result.retryable and retry_number <= retries:
            outcome = "retry"
            next_due = self._now() + retry_delay(self.retry_delays, retry_number, result.retry_after, self._rng)
        else:
            outcome = "failed"

        record = Attempted(
            postback_id=pending.postback_id,
            app=self.app,
            event_seq=pending.event_seq,
            network=self.network,
            attempt=attempt,
            started=started,
            duration=result.duration,
            outcome=outcome,
            failure_class=result.failure_class,
            status_code=result.status_code,
            error=result.error,
            method=method,
            url=masked_url,
            response_head=result.response_head,
            manual=pending.manual,
            next_due=next_due,
        )
        await self._record_attempt(record)
        pending.attempt = attempt
        self._log_outcome(pending, record)
        if next_due is not None:
            pending.due = next_due
            heapq.heappush(self._heap, (next_due, next(self._counter), pending))
            self._wakeup.set()
        else:
            self.pending.pop(pending.postback_id, None)
            if pending.event.type == "install":
                self._release(pending)

    async def _send(self, request: PreparedRequest, result: AttemptResult) -> None:
        """Send one request under one total deadline and fill in ``result``.

        httpx's own timeouts apply per read or write, so a server that trickles
        bytes could hold a request for ever. The cancel scope bounds the whole
        attempt. When the deadline passes after the status line arrived, the
        status decides the outcome and the body read so far is kept, because the
        partner has responded and a retry would send the postback twice.
        """
        clock = trio.current_time()
        with trio.move_on_after(self.attempt_timeout) as scope:
            try:
                # httpx encodes str header values as ASCII and raises for anything
                # else, so values are passed as UTF-8 bytes.
                headers = [(name, value.encode()) for name, value in request.headers]
                http_request = self.client.build_request(
                    request.method, request.url, headers=headers, content=request.body
                )
                if self._transport is not None:
                    response = await self._transport.handle_async_request(http_request)
                else:
                    response = await self.client.send(http_request, stream=True)
                result.status_code = response.status_code
                result.failure_class = classify_status(response.status_code)
                if result.failure_class is not None:
                    result.error = f"HTTP {response.status_code} {response.reason_phrase}".strip()
                if response.status_code in (429, 503):
                    result.retry_after = parse_retry_after(response.headers.get("retry-after"), self._now())
                head = bytearray()
                try:
                    async for chunk in response.aiter_raw():
                        head += chunk
                        if len(head) >= RESPONSE_HEAD_BYTES:
                            break
                finally:
                    result.response_head = head[:RESPONSE_HEAD_BYTES].decode("utf-8", "replace")
                    await response.aclose()
            except (httpx.TransportError, httpx.InvalidURL, PrivateEndpointError) as exc:
                if result.status_code is None:
                    result.failure_class, result.error = classify_error(exc)
        if scope.cancelled_caught and result.status_code is None:
            result.failure_class = "timeout"
            result.error = f"No response within the attempt timeout of {self.attempt_timeout:g} s."
        result.duration = trio.current_time() - clock

    def _log_outcome(self, pending: PendingPostback, record: Attempted) -> None:
        if record.outcome == "delivered":
            logger.debug(
                "delivered postback %s event %s to %s/%s attempt %d status %s",
                pending.postback_id, pending.event.id, self.app, self.network, record.attempt, record.status_code,
            )
            return
        suppressed = 0
        if self._should_log is not None:
            log_now, suppressed = self._should_log((record.outcome, record.failure_class), trio.current_time())
            if not log_now:
                return
        if record.outcome == "retry":
            assert record.next_due is not None
            what = f"will retry in {record.next_due - self._now():.0f} s"
        else:
            what = "failed"
        logger.warning(
            "postback %s event %s partner %s/%s attempt %d %s: %s%s",
            pending.postback_id, pending.event.id, self.app, self.network, record.attempt, what, record.error,
            f" ({suppressed} similar lines suppressed)" if suppressed else "",
        )
