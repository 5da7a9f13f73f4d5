"""Sign-in rate limits: attempts per client address and per username over a sliding window.

On top of the per-account lock-out (`cldx.access.users.MAX_FAILED_SIGN_INS`, kept in the
store), which stops guessing at one account but not one address trying one or two passwords
against every username (password spraying), nor a flood of attempts each costing an argon2
verification. Three counts, each over the last `Settings.sign_in_window_seconds`:

- sign-in attempts (password form and one-time code form) per client address;
- sign-in attempts per username (normalised), from anywhere;
- failed API tokens per client address (a cheap look-up, but a flood is still a flood).

An attempt takes its slot before the password is checked, so a burst of simultaneous requests
cannot all slip past the count; an attempt that succeeds gives its slot back, so an office of
people signing in through one address is limited only by its mistakes. A refused attempt is
answered 429 with `Retry-After` before anything is read from or written to the store and
before any password is hashed: that is what makes a flood cheap to refuse.

The state lives in this process (one `Limits` per app, on `app.state.limits`), deliberately:
`cldx serve` runs one process, and a count kept in the store would turn every refused attempt
into a write that queues for SQLite's single write lock behind real uploads, which is what an
attacker would want. A deployment running several workers (uvicorn --workers, gunicorn) gets a
limit each, so an address may make up to workers x the limit; the lock-out, kept in the store,
is shared by all of them and still bounds guessing at any one account. Such a deployment
should also limit sign-in at its reverse proxy (nginx `limit_req` on /sign-in), or give
`AttemptLimiter` a shared backend (Redis, or a table) behind the same three methods. Behind a
proxy, set `CLDX_TRUSTED_PROXIES` so the client address is the caller's, not the proxy's
(otherwise everyone shares the proxy's allowance).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from starlette.requests import Request

from cldx.config import Settings

logger = logging.getLogger("cldx.web.throttle")

# Keys remembered at most (least recently used forgotten first): bounds memory whatever
# addresses and usernames a flood makes up. Forgetting a key forgives its attempts, so the
# bound is far above what one window of honest traffic needs.
MAX_KEYS = 100_000


@dataclass
class Decision:
    """Whether an attempt may go ahead; when not, how many seconds until it may."""

    allowed: bool
    retry_after: int = 0
    limited_by: str | None = None  # the rule that refused it ("address", "username")
    marks: list[tuple[tuple[str, str], float]] = field(default_factory=list)  # the slots taken (to give back)


class AttemptLimiter:
    """At most `limits[rule]` attempts per key of each rule in any `window_seconds` (a log of times, not fixed buckets).

    Thread-safe: sign-in steps run in the thread pool. `clock` is replaceable (tests move time).
    """

    def __init__(self, window_seconds: float, limits: dict[str, int], *, what: str = "attempts",
                 clock: Callable[[], float] = time.monotonic, max_keys: int = MAX_KEYS) -> None:
        self.what = what  # what is counted, for the log ("sign-in attempts")
        self.window = float(window_seconds)
        self.limits = dict(limits)
        self.clock = clock
        self.max_keys = max_keys
        self._times: OrderedDict[tuple[str, str], deque[float]] = OrderedDict()
        self._reported: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def _recent(self, key: tuple[str, str], now: float) -> deque[float]:
        times = self._times.get(key)
        if times is None:
            return deque()
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._times[key]
        return times

    def _refusal(self, keys: dict[str, str], now: float) -> Decision | None:
        for rule, value in keys.items():
            limit = self.limits.get(rule)
            if limit is None or not value:
                continue
            times = self._recent((rule, value), now)
            if len(times) >= limit:
                wait = max(1, math.ceil(times[len(times) - limit] + self.window - now))
                self._report(rule, value, now)
                return Decision(False, wait, rule)
        return None

    def _report(self, rule: str, value: str, now: float) -> None:
        # Once per key and window, so a flood does not become a flood of log lines. The key
        # itself is not logged: a username is personal data, and the access log has the address.
        last = self._reported.get((rule, value))
        if last is None or now - last >= self.window:
            self._reported[(rule, value)] = now
            if len(self._reported) > self.max_keys:
                self._reported.clear()
            logger.warning("Refusing %s (429): the limit per %s was reached", self.what, rule)

    def _mark(self, key: tuple[str, str], now: float) -> None:
        times = self._times.get(key)
        if times is None:
            times = self._times[key] = deque()
        times.append(now)
        self._times.move_to_end(key)
        while len(self._times) > self.max_keys:
            self._times.popitem(last=False)

    def take(self, **keys: str) -> Decision:
        """Take a slot under every rule named (`address=...`, `username=...`), or none when any rule is full."""
        with self._lock:
            now = self.clock()
            refused = self._refusal(keys, now)
            if refused is not None:
                return refused
            decision = Decision(True)
            for rule, value in keys.items():
                if rule in self.limits and value:
                    self._mark((rule, value), now)
                    decision.marks.append(((rule, value), now))
            return decision

    def give_back(self, decision: Decision) -> None:
        """Return the slots an attempt took (it succeeded: only failures and attempts in flight count)."""
        with self._lock:
            for key, at in decision.marks:
                times = self._times.get(key)
                if times is not None:
                    try:
                        times.remove(at)
                    except ValueError:
                        pass  # already past the window
            decision.marks.clear()

    def check(self, **keys: str) -> Decision:
        """Whether an attempt would be allowed now, taking nothing (for counts of failures only)."""
        with self._lock:
            return self._refusal(keys, self.clock()) or Decision(True)

    def note(self, **keys: str) -> None:
        """Count a failure under every rule named."""
        with self._lock:
            now = self.clock()
            for rule, value in keys.items():
                if rule in self.limits and value:
                    self._mark((rule, value), now)


@dataclass
class Limits:
    """The app's limiters (`app.state.limits`)."""

    sign_in: AttemptLimiter  # rules "address" and "username"
    tokens: AttemptLimiter   # rule "address": failed API tokens

    def set_clock(self, clock: Callable[[], float]) -> None:
        self.sign_in.clock = clock
        self.tokens.clock = clock


def limits_for(settings: Settings) -> Limits:
    window = settings.sign_in_window_seconds
    return Limits(
        sign_in=AttemptLimiter(window, {"address": settings.sign_in_attempts_per_address,
                                        "username": settings.sign_in_attempts_per_username}, what="sign-in attempts"),
        tokens=AttemptLimiter(window, {"address": settings.sign_in_attempts_per_address}, what="API tokens after failures"),
    )


def limits_of(request: Request) -> Limits:
    return request.app.state.limits


def client_address(request: Request) -> str:
    """The caller's address: the TCP peer, or the client a trusted proxy names (`CLDX_TRUSTED_PROXIES`)."""
    return request.client.host if request.client is not None and request.client.host else "unknown"


def wait_text(seconds: int) -> str:
    """How long to wait, in words: "30 seconds", "1 minute", "5 minutes"."""
    if seconds < 60:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = math.ceil(seconds / 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def too_many_message(seconds: int) -> str:
    return (f"Too many sign-in attempts from this network or for this username. Wait {wait_text(seconds)} and try again; "
            "if you have forgotten your password, ask an administrator to reset it.")


def retry_after_headers(decision: Decision) -> dict[str, str]:
    return {"Retry-After": str(decision.retry_after)}
