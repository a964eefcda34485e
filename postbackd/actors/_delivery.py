"""Delivery actors: one per partner, each with its own timer queue and HTTP client.

A delivery actor keeps its pending postbacks in a heap ordered by due time
and sleeps until the earliest is due, so 100,000 pending postbacks cost one
task and one heap, not one task each. Requests run in the actor's nursery,
at most ``concurrency`` at a time. A partner that hangs only fills its own
actor's slots; other partners' actors run on.

Error handling: every failure of a request is classified, recorded as an
``Attempted`` record and either retried after the next delay of the retry
schedule or ends the postback as failed. Errors while rendering a request
fail the postback at once. Failing to record an attempt is a log failure and
propagates, which stops the daemon.
"""

from __future__ import annotations

import email.utils
import heapq
import itertools
import logging
import random
import time
from collections.abc import Awaitable, Callable

import httpx
import trio

from postbackd.actors._replay import PendingPostback
from postbackd.eventlog import Attempted

logger = logging.getLogger("postbackd.delivery")

# Bytes of a response body kept in the attempt record.
RESPONSE_HEAD_BYTES = 1024

# Relative jitter applied to each retry delay (0.2 is plus or minus 20 %).
RETRY_JITTER = 0.2

DEFAULT_RETRY_DELAYS = (30.0, 120.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 43200.0, 86400.0)


class PreparedRequest:
    """A rendered request, its masked URL for records and its retry budget."""

    __slots__ = ("method", "url", "headers", "body", "masked_url", "retries")

    def __init__(
        self, method: str, url: str, headers: list[tuple[str, str]], body: bytes | None, masked_url: str, retries: int
    ) -> None:
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.masked_url = masked_url
        self.retries = retries


class PermanentError(Exception):
    """The postback cannot be sent at all (for example its request does not render)."""

    def __init__(self, failure_class: str, message: str) -> None:
        super().__init__(message)
        self.failure_class = failure_class


# Renders the current request of a pending postback, or raises PermanentError.
Prepare = Callable[[PendingPostback], PreparedRequest]
# Appends an attempt record and waits for its commit.
RecordAttempt = Callable[[Attempted], Awaitable[None]]


class AttemptResult:
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
        return self.failure_class not in (None, "rejected_by_partner")


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


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header: delta seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
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
    """Delivers the postbacks of one partner (one app and network)."""

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
        client: httpx.AsyncClient | None = None,
        now: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.app = app
        self.network = network
        self._prepare = prepare
        self._record_attempt = record_attempt
        self.attempt_timeout = attempt_timeout
        self.retry_delays = retry_delays
        self._now = now
        self._rng = rng or random.Random()
        self._heap: list[tuple[float, int, PendingPostback]] = []
        self._counter = itertools.count()
        self._wakeup = trio.Event()
        self._limiter = trio.CapacityLimiter(concurrency)
        self._own_client = client is None
        self.client = client or httpx.AsyncClient(
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
            follow_redirects=False,
            timeout=httpx.Timeout(attempt_timeout),
        )
        # Postbacks handed to this actor that have not finished: queued or in flight.
        self.pending: dict[str, PendingPostback] = {}
        self.in_flight = 0
        self.idle = trio.Event()
        self.idle.set()
        self._stopping = False

    def stop_starting(self) -> None:
        """Start no new attempts; attempts in flight go on. Pending postbacks stay in the log."""
        self._stopping = True
        self._wakeup.set()

    def schedule(self, pending: PendingPostback) -> None:
        """Queue a postback for delivery at ``pending.due``."""
        self.pending[pending.postback_id] = pending
        heapq.heappush(self._heap, (pending.due, next(self._counter), pending))
        self._wakeup.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            async with trio.open_nursery() as nursery:
                task_status.started()
                while not self._stopping:
                    if not self._heap:
                        await self._wait_for_work()
                        continue
                    wait = self._heap[0][0] - self._now()
                    if wait > 0:
                        with trio.move_on_after(wait):
                            await self._wait_for_work()
                        continue
                    _, _, pending = heapq.heappop(self._heap)
                    if self.pending.get(pending.postback_id) is not pending:
                        continue
                    await self._limiter.acquire_on_behalf_of(pending)
                    self.in_flight += 1
                    self.idle = trio.Event()
                    nursery.start_soon(self._deliver, pending)
        finally:
            if self._own_client:
                with trio.CancelScope(shield=True):
                    await self.client.aclose()

    async def _wait_for_work(self) -> None:
        await self._wakeup.wait()
        self._wakeup = trio.Event()

    async def _deliver(self, pending: PendingPostback) -> None:
        try:
            await self._attempt(pending)
        finally:
            self.in_flight -= 1
            self._limiter.release_on_behalf_of(pending)
            if self.in_flight == 0:
                self.idle.set()

    async def _attempt(self, pending: PendingPostback) -> None:
        attempt = pending.attempt + 1
        started = self._now()
        result = AttemptResult()
        method, masked_url = "GET", ""
        retries = 0
        try:
            request = self._prepare(pending)
        except PermanentError as exc:
            result.failure_class = exc.failure_class
            result.error = str(exc)
        else:
            method, masked_url, retries = request.method, request.masked_url, request.retries
            await self._send(request, result)

        retry_number = attempt - pending.round_start
        next_due = None
        if result.delivered:
            outcome = "delivered"
        elif result.retryable and result.failure_class not in ("render_error", "private_endpoint") and retry_number <= retries:
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
        if outcome == "retry" and next_due is not None:
            pending.due = next_due
            heapq.heappush(self._heap, (next_due, next(self._counter), pending))
            self._wakeup.set()
        else:
            self.pending.pop(pending.postback_id, None)

    async def _send(self, request: PreparedRequest, result: AttemptResult) -> None:
        """Send one request under one total deadline and fill in ``result``.

        httpx's own timeouts apply per read or write, so a server that trickles
        bytes could hold a request forever; the cancel scope bounds the whole
        attempt.
        """
        clock = trio.current_time()
        with trio.move_on_after(self.attempt_timeout) as scope:
            try:
                http_request = self.client.build_request(
                    request.method, request.url, headers=request.headers, content=request.body
                )
                response = await self.client.send(http_request, stream=True)
                try:
                    head = bytearray()
                    async for chunk in response.aiter_raw():
                        head += chunk
                        if len(head) >= RESPONSE_HEAD_BYTES:
                            break
                finally:
                    await response.aclose()
                result.status_code = response.status_code
                result.response_head = head[:RESPONSE_HEAD_BYTES].decode("utf-8", "replace")
                result.failure_class = classify_status(response.status_code)
                if result.failure_class is not None:
                    result.error = f"HTTP {response.status_code} {response.reason_phrase}".strip()
                if response.status_code in (429, 503):
                    result.retry_after = parse_retry_after(response.headers.get("retry-after"), self._now())
            except httpx.TimeoutException as exc:
                result.failure_class = "timeout"
                result.error = f"timed out: {exc!r}"
            except httpx.ConnectError as exc:
                result.failure_class = "dns" if "name" in str(exc).lower() and "resol" in str(exc).lower() else "connection"
                result.error = f"connection failed: {exc}"
            except (httpx.TransportError, httpx.InvalidURL) as exc:
                result.failure_class = "connection"
                result.error = f"{type(exc).__name__}: {exc}"
        if scope.cancelled_caught:
            result.failure_class = "timeout"
            result.status_code = None
            result.error = f"no complete response within the attempt timeout of {self.attempt_timeout:g} s"
        result.duration = trio.current_time() - clock

    def _log_outcome(self, pending: PendingPostback, record: Attempted) -> None:
        if record.outcome == "delivered":
            logger.debug(
                "delivered postback %s event %s to %s attempt %d status %s",
                pending.postback_id, pending.event.id, self.network, record.attempt, record.status_code,
            )
            return
        level = logging.WARNING
        logger.log(
            level,
            "postback %s event %s partner %s/%s attempt %d %s: %s",
            pending.postback_id, pending.event.id, self.app, self.network, record.attempt,
            "will retry" if record.outcome == "retry" else "failed", record.error,
        )
