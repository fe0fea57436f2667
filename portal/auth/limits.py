"""Sign-in attempt limits: counted before the password is checked, given back when it was right.

Two counters, each per window of SIGNIN_WINDOW_MINUTES:
- per e-mail *and* client address (SIGNIN_ATTEMPTS_PER_ACCOUNT): someone elsewhere who knows an e-mail
  cannot lock its owner out;
- per client address, whatever the e-mail (SIGNIN_ATTEMPTS_PER_ADDRESS): this one does the heavy lifting
  against an address guessing at many accounts. An IPv6 client counts by its /64, what one subscriber
  is usually given.

An attempt is counted first, atomically: one Redis script increments both counters, starts the window's
expiry on a new one and answers the counts and their time to live, in one round trip. Concurrent guesses
each get a count of their own, so whatever their number, at most the limit of them reach the password
check; the others are refused without it. An attempt whose password was right is given back (DECR), so
only failures use the allowance up.

With Redis unreachable, attempts are counted in this process's memory (same rules, thread-safe) and a
warning is logged; Redis is tried again REDIS_RETRY_SECONDS later. Sign-in never fails for want of Redis.
"""

from __future__ import annotations

import enum
import hashlib
import ipaddress
import logging
import math
import threading
import time
from dataclasses import dataclass

from flask import current_app
from redis.exceptions import RedisError

from ..queue import RedisNotConfigured, redis_connection
from .services import normalise_email

log = logging.getLogger(__name__)

# After Redis failed, count in memory this long before trying Redis again (a sign-in should not wait
# for a connection timeout each time).
REDIS_RETRY_SECONDS = 30

# KEYS: the counters; ARGV[1]: the window in ms. Answers count, ms to live, for each key in turn. A key
# found without an expiry (a DECR on a key that had just expired recreates it) is given the window.
_COUNT_SCRIPT = """
local answer = {}
for _, key in ipairs(KEYS) do
  local count = redis.call('INCR', key)
  local ttl = redis.call('PTTL', key)
  if count == 1 or ttl < 0 then
    redis.call('PEXPIRE', key, ARGV[1])
    ttl = tonumber(ARGV[1])
  end
  answer[#answer + 1] = count
  answer[#answer + 1] = ttl
end
return answer
"""

# Gives an attempt back: decrements each counter that still exists and is above 0 (never recreates one).
_REFUND_SCRIPT = """
for _, key in ipairs(KEYS) do
  if tonumber(redis.call('GET', key) or '0') > 0 then
    redis.call('DECR', key)
  end
end
return 0
"""


class CountedIn(str, enum.Enum):
    REDIS = "redis"
    MEMORY = "memory"


@dataclass(frozen=True)
class SigninAttempt:
    """One counted attempt: whether it may check a password, and if not, how long to wait."""

    keys: tuple[str, ...]
    allowed: bool
    wait_seconds: float
    counted_in: CountedIn

    @property
    def wait_minutes(self) -> int:
        return max(1, math.ceil(self.wait_seconds / 60))

    @property
    def refusal(self) -> str:
        minutes = self.wait_minutes
        return f"Too many attempts. Try again in {minutes} minute{'' if minutes == 1 else 's'}."


def signin_attempt_begin(email: str, remote_addr: str | None) -> SigninAttempt:
    """Count an attempt to check the password of `email` from `remote_addr`, before checking it."""
    config = current_app.config
    address = counted_address(remote_addr)
    account = hashlib.sha256(normalise_email(email).encode()).hexdigest()[:32]  # no e-mails in Redis keys
    prefix = f"{config['REDIS_KEY_PREFIX']}:signin"
    keys = (f"{prefix}:account:{account}:{address}", f"{prefix}:address:{address}")
    limits = (config["SIGNIN_ATTEMPTS_PER_ACCOUNT"], config["SIGNIN_ATTEMPTS_PER_ADDRESS"])
    counts, counted_in = _counters().count(keys, config["SIGNIN_WINDOW_MINUTES"] * 60)
    waits = [ttl for (count, ttl), limit in zip(counts, limits) if count > limit]
    return SigninAttempt(keys=keys, allowed=not waits, wait_seconds=max(waits, default=0.0), counted_in=counted_in)


def signin_attempt_refund(attempt: SigninAttempt) -> None:
    """Give back an attempt whose password was right: successes never use the allowance up."""
    _counters().refund(attempt.keys, attempt.counted_in)


def counted_address(remote_addr: str | None) -> str:
    """The address attempts are counted by: an IPv4 address as it is, an IPv6 one by its /64."""
    try:
        ip = ipaddress.ip_address(remote_addr or "")
    except ValueError:
        return remote_addr or "unknown"
    if ip.version == 6:
        if ip.ipv4_mapped:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class MemoryCounters:
    """Counters that expire, in this process only: where attempts are counted while Redis is away."""

    SWEEP_ABOVE = 10_000

    def __init__(self, clock=time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._counts: dict[str, list[float]] = {}  # key -> [count, expires at]

    def count(self, keys: tuple[str, ...], window_seconds: float) -> list[tuple[int, float]]:
        with self._lock:
            now = self._clock()
            if len(self._counts) > self.SWEEP_ABOVE:
                self._counts = {key: entry for key, entry in self._counts.items() if entry[1] > now}
            answer = []
            for key in keys:
                entry = self._counts.get(key)
                if entry is None or entry[1] <= now:
                    entry = self._counts[key] = [0, now + window_seconds]
                entry[0] += 1
                answer.append((int(entry[0]), entry[1] - now))
            return answer

    def refund(self, keys: tuple[str, ...]) -> None:
        with self._lock:
            now = self._clock()
            for key in keys:
                entry = self._counts.get(key)
                if entry is not None and entry[1] > now and entry[0] > 0:
                    entry[0] -= 1


class SigninCounters:
    """The app's counters: in Redis, shared by every web process; in memory while Redis is unreachable."""

    def __init__(self) -> None:
        self.memory = MemoryCounters()
        self._lock = threading.Lock()
        self._redis_retry_at = 0.0
        self._scripts = None  # (client, count script, refund script), registered on first use

    def count(self, keys: tuple[str, ...], window_seconds: int) -> tuple[list[tuple[int, float]], CountedIn]:
        if time.monotonic() >= self._redis_retry_at:
            try:
                _, count_script, _ = self._redis_scripts()
                answer = count_script(keys=list(keys), args=[window_seconds * 1000])
                return [(int(answer[i]), int(answer[i + 1]) / 1000) for i in range(0, len(answer), 2)], CountedIn.REDIS
            except (RedisError, RedisNotConfigured) as error:
                self._redis_failed(error)
        return self.memory.count(keys, window_seconds), CountedIn.MEMORY

    def refund(self, keys: tuple[str, ...], counted_in: CountedIn) -> None:
        if counted_in is CountedIn.MEMORY:
            self.memory.refund(keys)
            return
        try:
            _, _, refund_script = self._redis_scripts()
            refund_script(keys=list(keys))
        except (RedisError, RedisNotConfigured) as error:
            log.warning("A successful sign-in's attempt could not be given back: Redis is unreachable (%s)", error)

    def _redis_failed(self, error: Exception) -> None:
        """Count in memory for a while; warn once for requests that found Redis gone at the same time."""
        with self._lock:
            now = time.monotonic()
            if now < self._redis_retry_at:
                return
            self._redis_retry_at = now + REDIS_RETRY_SECONDS
        log.warning(
            "Sign-in attempts are counted in this process's memory for the next %d s: Redis is unreachable (%s)",
            REDIS_RETRY_SECONDS, error,
        )

    def _redis_scripts(self):
        client = redis_connection()
        scripts = self._scripts
        if scripts is None or scripts[0] is not client:
            scripts = self._scripts = (client, client.register_script(_COUNT_SCRIPT), client.register_script(_REFUND_SCRIPT))
        return scripts


_CREATE_LOCK = threading.Lock()


def _counters() -> SigninCounters:
    extensions = current_app.extensions
    counters = extensions.get("signin_counters")
    if counters is None:
        with _CREATE_LOCK:
            counters = extensions.setdefault("signin_counters", SigninCounters())
    return counters
