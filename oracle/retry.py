"""The oracle's one retry policy, on tenacity: what is retried, how long to wait, when to
give up, and what is logged. Every network call the oracle retries goes through
`RetryPolicy.call` (the HTTP price sources, `oracle.sources.http`, and the publisher's
JSON-RPC calls, `oracle.publisher`).

- **Retried** (`is_transient`): connection errors and timeouts (httpx's, requests', the
  built-in `ConnectionError` / `TimeoutError`) and HTTP answers in `TRANSIENT_STATUSES`
  (408, 429, 500, 502, 503, 504), raised by httpx / requests or as `TransientStatus` by a
  caller that reads statuses itself. Anything else (a 4xx, a refusal, a failed TLS
  certificate check, a bug) is raised at once, unchanged: a retry would not fix it.
- **Waits**: exponential, `initial_s * 2**(n-1)` before attempt `n + 1`, at most
  `max_wait_s`, with "equal jitter": each wait is shortened by a random fraction of at
  most `jitter` (so with the default 0.5 it lies in `[w/2, w]`), which keeps many nodes
  that failed together from retrying together. A numeric `Retry-After` from the server
  lengthens a wait (up to `max_wait_s`), never shortens it.
- **Bounded**: at most `attempts` attempts in all, and with `deadline_s` no retry starts
  (nor is waited for) past that many seconds after the first attempt.
- **Logged**: each retry is one WARNING on the caller's logger, written from a dict of
  fields (`what`, `attempt`, `attempts`, `error_type`, `error`, `wait_s`, `elapsed_s`)
  that is also attached to the record as `record.retry`, for structured handlers.
- **Giving up** raises `RetriesExhausted` (from the last error): what failed, how many
  attempts over how long, the errors, and the caller's advice on what to do next.

A caller that injects its own `sleep` (a test or a simulation that controls time) gets
the exact exponential schedule unless it sets `jitter` itself: its waits can be asserted.
"""

from __future__ import annotations

import logging
import random
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import requests
import tenacity

__all__ = [
    "DEFAULT_JITTER",
    "TRANSIENT_STATUSES",
    "RetriesExhausted",
    "RetryPolicy",
    "TransientStatus",
    "describe",
    "is_transient",
    "retry_after",
]

T = TypeVar("T")

TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
"""HTTP statuses worth another attempt: the server is slow, rate-limiting, overloaded or
restarting. Every other status means the request itself is wrong and is not retried."""

DEFAULT_JITTER = 0.5
"""Each wait is shortened by a random fraction in [0, DEFAULT_JITTER)."""

_LOG_MESSAGE = ("%(what)s: attempt %(attempt)d of %(attempts)d failed (%(error)s); "
                "retrying in %(wait_s).2fs")


class TransientStatus(Exception):
    """An HTTP answer worth retrying (one of TRANSIENT_STATUSES), for a caller that reads
    the status itself; `retry_after` is the server's Retry-After in seconds, if numeric."""

    def __init__(self, status: int, retry_after: float | None = None) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.retry_after = retry_after


class RetriesExhausted(Exception):
    """Every attempt failed with a transient error. `errors` holds one description per
    attempt; the message names what failed and says what to do next (`advice`)."""

    def __init__(self, what: str, errors: Sequence[str], elapsed_s: float, advice: str) -> None:
        self.what = what
        self.errors = list(errors)
        self.attempts = len(self.errors)
        self.elapsed_s = elapsed_s
        self.advice = advice
        last = self.errors[-1] if self.errors else "no attempt made"
        super().__init__(f"{what} failed {self.attempts} attempt(s) over {elapsed_s:.1f}s "
                         f"(last: {last}); {advice}")


def is_transient(exc: BaseException) -> bool:
    """Whether another attempt could succeed where this one failed with `exc`."""
    if isinstance(exc, TransientStatus):
        return True
    if _certificate_error(exc):
        return False  # the same certificate next time
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code in TRANSIENT_STATUSES
    if isinstance(exc, httpx.TimeoutException | httpx.NetworkError | httpx.RemoteProtocolError):
        return True
    if isinstance(exc, requests.HTTPError):
        return exc.response is not None and exc.response.status_code in TRANSIENT_STATUSES
    if isinstance(exc, requests.ConnectionError | requests.Timeout):
        return True
    return isinstance(exc, ConnectionError | TimeoutError)


def _certificate_error(exc: BaseException) -> bool:
    """Whether `exc` is, or was raised from, a failed TLS certificate check (httpx wraps
    it in a ConnectError, requests in an SSLError that quotes it)."""
    current: BaseException | None = exc
    for _ in range(16):
        if current is None:
            break
        if isinstance(current, ssl.SSLCertVerificationError):
            return True
        if (isinstance(current, requests.exceptions.SSLError)
                and "certificate" in str(current).lower()):
            return True
        current = current.__cause__
    return False


def retry_after(exc: BaseException | None) -> float | None:
    """The wait in seconds a server asked for with a numeric Retry-After (the HTTP-date
    form is ignored), from a TransientStatus or an httpx / requests status error."""
    if isinstance(exc, TransientStatus):
        return exc.retry_after
    response: Any = None
    if isinstance(exc, httpx.HTTPStatusError | requests.HTTPError):
        response = exc.response
    if response is None:
        return None
    return parse_retry_after(response.headers.get("retry-after"))


def parse_retry_after(value: str | None) -> float | None:
    """A Retry-After header value in seconds, or None (absent, or an HTTP-date)."""
    if value is not None and value.strip().isdigit():
        return float(int(value.strip()))
    return None


def describe(exc: BaseException) -> str:
    """One line for an error: `HTTP 503` for a TransientStatus, else `Type: message`."""
    if isinstance(exc, TransientStatus):
        return str(exc)
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class _Backoff(tenacity.wait.wait_base):
    """Exponential back-off (tenacity's), shortened by equal jitter, lengthened by a
    server's Retry-After."""

    def __init__(self, initial_s: float, max_wait_s: float, jitter: float,
                 rng: Callable[[], float]) -> None:
        self.exponential = tenacity.wait_exponential(multiplier=initial_s, max=max_wait_s)
        self.max_wait_s = max_wait_s
        self.jitter = jitter
        self.rng = rng

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        wait = float(self.exponential(retry_state))
        if self.jitter:
            wait -= wait * self.jitter * self.rng()
        outcome = retry_state.outcome
        asked = retry_after(outcome.exception() if outcome is not None else None)
        if asked is not None:
            wait = max(wait, min(asked, self.max_wait_s))
        return wait


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry a transient failure (see the module doc).

    `attempts` counts every attempt, the first included; `initial_s` is the first wait,
    doubled each time up to `max_wait_s`; `jitter` is the largest fraction a wait is
    shortened by at random (None: DEFAULT_JITTER when sleeping on the real clock, 0 with
    an injected `sleep`); `deadline_s`, if set, bounds the time from the first attempt
    to the start of the last one.
    """

    attempts: int = 5
    initial_s: float = 0.5
    max_wait_s: float = 30.0
    jitter: float | None = None
    deadline_s: float | None = None

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be at least 1, got {self.attempts}")
        if self.initial_s < 0 or self.max_wait_s < 0:
            raise ValueError("initial_s and max_wait_s must be non-negative")
        if self.jitter is not None and not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter is a fraction in [0, 1], got {self.jitter}")
        if self.deadline_s is not None and self.deadline_s <= 0:
            raise ValueError(f"deadline_s must be positive, got {self.deadline_s}")

    def schedule(self) -> list[float]:
        """The waits between the attempts, before jitter and Retry-After."""
        return [min(self.initial_s * 2 ** n, self.max_wait_s) for n in range(self.attempts - 1)]

    def call(
        self,
        fn: Callable[[], T],
        *,
        what: str,
        advice: str,
        logger: logging.Logger,
        sleep: Callable[[float], None] = time.sleep,
        rng: Callable[[], float] = random.random,
        transient: Callable[[BaseException], bool] = is_transient,
    ) -> T:
        """`fn()`, retried on transient errors. A non-transient error is raised as is, at
        once; after the last attempt, RetriesExhausted (from the last error). `what`
        names the operation in log lines and errors, `advice` says what to do when it
        gives up."""
        jitter = self.jitter
        if jitter is None:
            jitter = DEFAULT_JITTER if sleep is time.sleep else 0.0
        stop: tenacity.stop.stop_base = tenacity.stop_after_attempt(self.attempts)
        if self.deadline_s is not None:
            stop = stop | tenacity.stop_before_delay(self.deadline_s)
        errors: list[str] = []
        started = time.monotonic()

        def attempt() -> T:
            try:
                return fn()
            except Exception as exc:
                if transient(exc):
                    errors.append(describe(exc))
                raise

        def log_retry(state: tenacity.RetryCallState) -> None:
            assert state.outcome is not None and state.next_action is not None
            exc = state.outcome.exception()
            fields = {
                "what": what,
                "attempt": state.attempt_number,
                "attempts": self.attempts,
                "error_type": type(exc).__name__,
                "error": describe(exc) if exc is not None else "",
                "wait_s": round(state.next_action.sleep, 3),
                "elapsed_s": round(time.monotonic() - started, 3),
            }
            logger.warning(_LOG_MESSAGE, fields, extra={"retry": fields})

        retrying = tenacity.Retrying(
            stop=stop,
            wait=_Backoff(self.initial_s, self.max_wait_s, jitter, rng),
            retry=tenacity.retry_if_exception(transient),
            before_sleep=log_retry,
            sleep=sleep,
            reraise=False,
        )
        try:
            return retrying(attempt)
        except tenacity.RetryError as exc:
            last = exc.last_attempt.exception()
            raise RetriesExhausted(what, errors, time.monotonic() - started, advice) from last
