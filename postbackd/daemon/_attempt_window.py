"""Delivery attempts of the last hour, per partner, for ``postbackd status``.

Attempts are counted in one-minute buckets by the time they finished, so
memory stays fixed whatever the rate: at most 61 buckets per partner, each
with a latency histogram of a few hundred bins. "The last hour" is therefore
the current minute and the 60 before it, and the latency percentiles are
estimates within about 2.5 % of the true value (the bins are 5 % wide).
"""

from __future__ import annotations

import math
from collections import deque

from postbackd.actors._snapshot import AttemptBucket

# Length of the window, in one-minute buckets before the current one.
WINDOW_MINUTES = 60

# Ratio between the bounds of neighbouring latency bins.
BIN_RATIO = 1.05
# Latencies below this many seconds share bin 0.
MIN_LATENCY = 1e-4
_LOG_RATIO = math.log(BIN_RATIO)


def latency_bin(seconds: float) -> int:
    if not seconds > MIN_LATENCY:
        return 0
    return int(math.log(seconds / MIN_LATENCY) / _LOG_RATIO)


def bin_latency(index: int) -> float:
    """Return the geometric middle of a latency bin, in seconds."""
    return MIN_LATENCY * BIN_RATIO ** (index + 0.5)


class _Bucket:
    __slots__ = ("minute", "delivered", "failed", "retried", "latencies")

    def __init__(self, minute: int) -> None:
        self.minute = minute
        self.delivered = 0
        self.failed = 0
        self.retried = 0
        self.latencies: dict[int, int] = {}


class AttemptWindow:
    """Outcomes and latencies of the attempts of each partner in the last hour."""

    def __init__(self) -> None:
        self._buckets: dict[tuple[str, str], deque[_Bucket]] = {}

    def add(self, app: str, network: str, finished: float, outcome: str, duration: float) -> None:
        """Count one attempt that finished at epoch seconds ``finished``."""
        minute = int(finished // 60)
        buckets = self._buckets.setdefault((app, network), deque())
        bucket = None
        for candidate in reversed(buckets):
            if candidate.minute == minute:
                bucket = candidate
                break
            if candidate.minute < minute:
                break
        if bucket is None:
            if buckets and minute < buckets[-1].minute - WINDOW_MINUTES:
                return
            bucket = _Bucket(minute)
            buckets.append(bucket)
            if len(buckets) > 1 and buckets[-2].minute > minute:
                # An attempt that finished before the newest bucket; rare, so sort.
                ordered = sorted(buckets, key=lambda b: b.minute)
                buckets.clear()
                buckets.extend(ordered)
            _prune(buckets, buckets[-1].minute)
        if outcome == "delivered":
            bucket.delivered += 1
        elif outcome == "failed":
            bucket.failed += 1
        else:
            bucket.retried += 1
        index = latency_bin(duration)
        bucket.latencies[index] = bucket.latencies.get(index, 0) + 1

    def summary(self, app: str, network: str, now: float) -> dict[str, float | int | None]:
        """Return the last hour's counts, success rate and latency percentiles of one partner.

        ``success_rate`` is delivered / (delivered + failed) over postbacks
        that finished, None when none did. Latencies are in seconds and cover
        every attempt, retried ones included; None when there were none.
        """
        buckets = self._buckets.get((app, network), deque())
        _prune(buckets, int(now // 60))
        delivered = sum(b.delivered for b in buckets)
        failed = sum(b.failed for b in buckets)
        retried = sum(b.retried for b in buckets)
        histogram: dict[int, int] = {}
        for bucket in buckets:
            for index, count in bucket.latencies.items():
                histogram[index] = histogram.get(index, 0) + count
        return {
            "delivered_last_hour": delivered,
            "failed_last_hour": failed,
            "retried_last_hour": retried,
            "success_rate": delivered / (delivered + failed) if delivered + failed else None,
            "latency_p50": _percentile(histogram, 0.50),
            "latency_p99": _percentile(histogram, 0.99),
        }

    def to_buckets(self) -> list[AttemptBucket]:
        return [
            AttemptBucket(app, network, b.minute, b.delivered, b.failed, b.retried, dict(b.latencies))
            for (app, network), buckets in sorted(self._buckets.items())
            for b in buckets
        ]

    @classmethod
    def from_buckets(cls, stored: list[AttemptBucket]) -> AttemptWindow:
        window = cls()
        for item in sorted(stored, key=lambda b: (b.app, b.network, b.minute)):
            bucket = _Bucket(item.minute)
            bucket.delivered, bucket.failed, bucket.retried = item.delivered, item.failed, item.retried
            bucket.latencies = dict(item.latencies)
            window._buckets.setdefault((item.app, item.network), deque()).append(bucket)
        return window


def _prune(buckets: deque[_Bucket], current_minute: int) -> None:
    while buckets and buckets[0].minute < current_minute - WINDOW_MINUTES:
        buckets.popleft()


def _percentile(histogram: dict[int, int], fraction: float) -> float | None:
    total = sum(histogram.values())
    if total == 0:
        return None
    rank = max(1, math.ceil(fraction * total))
    seen = 0
    for index in sorted(histogram):
        seen += histogram[index]
        if seen >= rank:
            return bin_latency(index)
    raise AssertionError("unreachable: the rank is at most the total")
