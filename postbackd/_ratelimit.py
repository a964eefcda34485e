"""A per-key rate limiter for repeated log lines.

It lives outside the daemon package because the delivery actors use it, and importing
postbackd.daemon loads the whole daemon, which imports the actors.
"""

from __future__ import annotations

from collections.abc import Hashable


class RateLimitedLog:
    """Decide when a repeated message for one key (such as a partner) is logged.

    At most one line per key per `interval` seconds is logged. The ones in between are counted so
    the next logged line can report how many were left out. `now` is any monotonic clock in seconds,
    for example `trio.current_time()`.
    """

    def __init__(self, interval: float = 60.0) -> None:
        if not interval > 0:
            raise ValueError(f"Invalid rate limit interval {interval!r}: expected seconds > 0.")
        self.interval = interval
        self._last_logged: dict[Hashable, float] = {}
        self._suppressed: dict[Hashable, int] = {}

    def should_log(self, key: Hashable, now: float) -> tuple[bool, int]:
        """Return whether to log now, and how many lines for `key` were suppressed since its last
        logged line (counting this one when it is suppressed too)."""
        last = self._last_logged.get(key)
        if last is not None and now - last < self.interval:
            suppressed = self._suppressed.get(key, 0) + 1
            self._suppressed[key] = suppressed
            return False, suppressed
        self._last_logged[key] = now
        return True, self._suppressed.pop(key, 0)

    def forget(self, key: Hashable) -> int:
        """Reset `key`, for example when its partner recovers, and return the number of lines
        suppressed since its last logged line so the caller can report them."""
        self._last_logged.pop(key, None)
        return self._suppressed.pop(key, 0)
