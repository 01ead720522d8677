"""oracle.retry: the one retry policy, and the two callers that go through it (the HTTP
price source and the publisher's JSON-RPC calls), without a network: fake functions, an
httpx MockTransport and a scripted web3 provider."""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
from web3 import Web3
from web3.providers import BaseProvider

from oracle.log import AttestationLog
from oracle.publisher import Publisher, PublishError
from oracle.retry import (
    DEFAULT_JITTER,
    TRANSIENT_STATUSES,
    RetriesExhausted,
    RetryPolicy,
    TransientStatus,
    is_transient,
    retry_after,
)
from oracle.sources.errors import SourceError
from oracle.sources.http import FieldMap, HttpJsonSource
from tests.oracle import factories as f

LOGGER = logging.getLogger("tests.oracle.retry")


def failing(*errors: BaseException, result: Any = "ok") -> Callable[[], Any]:
    """A function that raises `errors` one per call, then returns `result`."""
    pending = list(errors)
    calls: list[int] = []

    def fn() -> Any:
        calls.append(1)
        if pending:
            raise pending.pop(0)
        return result

    fn.calls = calls  # type: ignore[attr-defined]
    return fn


def call(policy: RetryPolicy, fn: Callable[[], Any], sleeps: list[float],
         **kw: Any) -> Any:
    return policy.call(fn, what="fetching the thing", advice="check the thing",
                       logger=LOGGER, sleep=sleeps.append, **kw)


# ------------------------------------------------------------------ the policy


def test_retries_transient_errors_with_exponential_back_off(caplog) -> None:
    sleeps: list[float] = []
    fn = failing(ConnectionRefusedError("refused"), TransientStatus(503), TimeoutError())
    with caplog.at_level(logging.WARNING, logger=LOGGER.name):
        assert call(RetryPolicy(), fn, sleeps) == "ok"
    assert sleeps == [0.5, 1.0, 2.0]  # an injected sleep: the exact schedule, no jitter
    assert len(fn.calls) == 4  # type: ignore[attr-defined]
    # one WARNING per retry, written from structured fields that ride on the record
    fields = [r.retry for r in caplog.records]  # type: ignore[attr-defined]
    assert [(x["attempt"], x["attempts"], x["error_type"], x["error"], x["wait_s"])
            for x in fields] == [
        (1, 5, "ConnectionRefusedError", "ConnectionRefusedError: refused", 0.5),
        (2, 5, "TransientStatus", "HTTP 503", 1.0),
        (3, 5, "TimeoutError", "TimeoutError", 2.0),
    ]
    assert all(x["what"] == "fetching the thing" and x["elapsed_s"] >= 0 for x in fields)
    assert caplog.records[1].getMessage() == (
        "fetching the thing: attempt 2 of 5 failed (HTTP 503); retrying in 1.00s")
    assert all(r.levelno == logging.WARNING for r in caplog.records)


def test_gives_up_with_what_failed_and_what_to_do() -> None:
    sleeps: list[float] = []
    last = TransientStatus(502)
    fn = failing(*[TransientStatus(503)] * 3, last)
    with pytest.raises(RetriesExhausted) as exc:
        call(RetryPolicy(attempts=4), fn, sleeps)
    assert sleeps == [0.5, 1.0, 2.0]
    err = exc.value
    assert (err.attempts, err.errors) == (4, ["HTTP 503"] * 3 + ["HTTP 502"])
    assert err.__cause__ is last
    assert str(err).startswith("fetching the thing failed 4 attempt(s) over ")
    assert str(err).endswith("s (last: HTTP 502); check the thing")


@pytest.mark.parametrize("error", [ValueError("bad"), KeyError("k"), TransientStatus(503)])
def test_a_single_attempt_policy_never_sleeps(error: Exception) -> None:
    sleeps: list[float] = []
    with pytest.raises((RetriesExhausted, type(error))):
        call(RetryPolicy(attempts=1), failing(error), sleeps)
    assert sleeps == []


@pytest.mark.parametrize(
    "error",
    [ValueError("not a number"), PermissionError("denied"), Exception("plain"),
     SourceError("HTTP 404"), KeyboardInterrupt()],
    ids=["ValueError", "PermissionError", "Exception", "SourceError", "KeyboardInterrupt"],
)
def test_does_not_retry_non_transient_errors(error: BaseException, caplog) -> None:
    sleeps: list[float] = []
    fn = failing(error)
    with caplog.at_level(logging.WARNING, logger=LOGGER.name), \
            pytest.raises(type(error)) as exc:
        call(RetryPolicy(), fn, sleeps)
    assert exc.value is error  # raised as is, at once
    assert sleeps == [] and len(fn.calls) == 1  # type: ignore[attr-defined]
    assert caplog.records == []


def test_a_non_transient_error_after_transient_ones_is_raised_as_is() -> None:
    sleeps: list[float] = []
    refusal = ValueError("refused")
    with pytest.raises(ValueError) as exc:
        call(RetryPolicy(), failing(TransientStatus(503), refusal), sleeps)
    assert exc.value is refusal and sleeps == [0.5]


def _response(status: int, headers: dict[str, str] | None = None) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response.headers.update(headers or {})
    return response


def _wrapped(outer: BaseException, cause: BaseException) -> BaseException:
    outer.__cause__ = cause
    return outer


def _httpx_status(status: int) -> httpx.HTTPStatusError:
    request = httpx.Request("GET", "http://feed.test/")
    return httpx.HTTPStatusError("status", request=request,
                                 response=httpx.Response(status, request=request))


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (TransientStatus(429), True),
        (httpx.ConnectError("refused"), True),
        (httpx.ReadTimeout("slow"), True),
        (httpx.RemoteProtocolError("dropped"), True),
        (_httpx_status(503), True),
        (_httpx_status(404), False),
        (requests.ConnectionError("refused"), True),
        (requests.Timeout("slow"), True),
        (requests.HTTPError("503", response=_response(503)), True),
        (requests.HTTPError("429", response=_response(429)), True),
        (requests.HTTPError("408", response=_response(408)), True),
        (requests.HTTPError("501", response=_response(501)), False),
        (requests.HTTPError("400", response=_response(400)), False),
        (requests.HTTPError("no response"), False),
        (requests.exceptions.SSLError("certificate verify failed"), False),
        (_wrapped(httpx.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED]"),
                  ssl.SSLCertVerificationError("self-signed certificate")), False),
        (_wrapped(httpx.ConnectError("handshake"), ssl.SSLEOFError("eof")), True),
        (ConnectionResetError(), True),
        (TimeoutError(), True),
        (ValueError("execution reverted"), False),
        (OSError("disk full"), False),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
)
def test_which_errors_are_transient(error: BaseException, transient: bool) -> None:
    assert is_transient(error) is transient


def test_transient_statuses() -> None:
    assert TRANSIENT_STATUSES == {408, 429, 500, 502, 503, 504}


def test_equal_jitter_shortens_each_wait_by_at_most_the_fraction() -> None:
    sleeps: list[float] = []
    errors = [TransientStatus(503)] * 4
    call(RetryPolicy(jitter=0.5), failing(*errors), sleeps, rng=lambda: 0.999999)
    assert sleeps == pytest.approx([0.25, 0.5, 1.0, 2.0], rel=1e-5)
    sleeps.clear()
    call(RetryPolicy(jitter=0.5), failing(*errors), sleeps, rng=lambda: 0.0)
    assert sleeps == [0.5, 1.0, 2.0, 4.0]


def test_jitter_is_on_by_default_with_the_real_clock(caplog) -> None:
    fn = failing(*[TransientStatus(503)] * 6)
    policy = RetryPolicy(attempts=7, initial_s=0.001, max_wait_s=0.004)
    with caplog.at_level(logging.WARNING, logger=LOGGER.name):
        policy.call(fn, what="x", advice="y", logger=LOGGER, rng=lambda: 0.8)
    waits = [r.retry["wait_s"] for r in caplog.records]  # type: ignore[attr-defined]
    expected = [w * (1 - DEFAULT_JITTER * 0.8) for w in policy.schedule()[:6]]
    assert waits == pytest.approx(expected, abs=1e-3)


def test_waits_are_capped() -> None:
    policy = RetryPolicy(attempts=6, initial_s=10, max_wait_s=30)
    assert policy.schedule() == [10, 20, 30, 30, 30]
    sleeps: list[float] = []
    with pytest.raises(RetriesExhausted):
        call(policy, failing(*[TransientStatus(503)] * 6), sleeps)
    assert sleeps == [10, 20, 30, 30, 30]


def test_retry_after_lengthens_a_wait_up_to_the_cap() -> None:
    sleeps: list[float] = []
    call(RetryPolicy(max_wait_s=30),
         failing(TransientStatus(429, retry_after=7), TransientStatus(429, retry_after=0),
                 TransientStatus(429, retry_after=3600)), sleeps)
    assert sleeps == [7.0, 1.0, 30.0]  # asked 7, asked less than the back-off, capped
    assert retry_after(requests.HTTPError(response=_response(429, {"Retry-After": "5"}))) == 5
    assert retry_after(requests.HTTPError(response=_response(
        503, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}))) is None


def test_a_deadline_bounds_the_time_spent() -> None:
    fn = failing(*[TransientStatus(503)] * 50)
    policy = RetryPolicy(attempts=50, initial_s=0.02, max_wait_s=0.02, deadline_s=0.1)
    started = time.monotonic()
    with pytest.raises(RetriesExhausted) as exc:
        policy.call(fn, what="x", advice="y", logger=LOGGER, rng=lambda: 0.0)
    assert time.monotonic() - started < 0.5
    assert 2 <= exc.value.attempts < 10


@pytest.mark.parametrize("bad", [{"attempts": 0}, {"initial_s": -1}, {"jitter": 1.5},
                                 {"deadline_s": 0}])
def test_nonsense_policies_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**bad)


# ------------------------------------------------------------------ the HTTP source


def http_source(responses: list[httpx.Response | Exception], sleeps: list[float],
                **kw: Any) -> tuple[HttpJsonSource, list[int]]:
    hits: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        hits.append(1)
        item = responses[min(len(hits), len(responses)) - 1]
        if isinstance(item, Exception):
            raise item
        return item

    client = httpx.Client(transport=httpx.MockTransport(handler))
    fields = FieldMap(offer_id="id", gpu_name="gpu", price_per_gpu_hour="price",
                      provider_value="acme")
    return HttpJsonSource("acme", "https://feed.test/prices?token=s3cret", fields,
                          client=client, sleep=sleeps.append, clock=lambda: 1_772_000_000,
                          **kw), hits


ROWS = [{"id": "a", "gpu": "H100 SXM", "price": "2.5"}]


def test_http_source_retries_through_the_policy(caplog) -> None:
    sleeps: list[float] = []
    source, hits = http_source([httpx.Response(503), httpx.Response(408),
                                httpx.ConnectError("refused"),
                                httpx.Response(429, headers={"Retry-After": "9"}),
                                httpx.Response(200, json=ROWS)], sleeps, retries=4)
    with caplog.at_level(logging.WARNING, logger="oracle.sources.http"):
        assert source.fetch().rows_accepted == 1
    assert len(hits) == 5 and sleeps == [0.5, 1.0, 2.0, 9.0]
    assert [r.retry["error"] for r in caplog.records] == [  # type: ignore[attr-defined]
        "HTTP 503", "HTTP 408", "ConnectError: refused", "HTTP 429"]
    assert all("token=***" in r.getMessage() and "s3cret" not in r.getMessage()
               for r in caplog.records)


def test_http_source_gives_up_saying_what_to_do() -> None:
    sleeps: list[float] = []
    source, hits = http_source([httpx.Response(502)], sleeps, retries=2)
    with pytest.raises(SourceError) as exc:
        source.fetch()
    assert str(exc.value) == (
        "source acme: https://feed.test/prices?token=*** failed 3 attempt(s) (HTTP 502; "
        "HTTP 502; HTTP 502); the server is down, overloaded or too slow: try again later, "
        "or raise the timeout/retries if it is merely slow")
    assert isinstance(exc.value.__cause__, RetriesExhausted)
    assert len(hits) == 3 and sleeps == [0.5, 1.0]


@pytest.mark.parametrize("status", [400, 401, 404, 501, 505])
def test_http_source_does_not_retry_other_statuses(status: int) -> None:
    sleeps: list[float] = []
    source, hits = http_source([httpx.Response(status)], sleeps)
    with pytest.raises(SourceError, match=f"answered HTTP {status} .*not retried"):
        source.fetch()
    assert len(hits) == 1 and sleeps == []


# ------------------------------------------------------------------ the publisher


class ScriptedProvider(BaseProvider):
    """Answers eth_chainId after `failures` errors (`error()` makes each one)."""

    def __init__(self, failures: int, error: Callable[[], Exception]) -> None:
        super().__init__()
        self.failures = failures
        self.error = error
        self.calls: list[str] = []

    def make_request(self, method: Any, params: Any) -> Any:
        self.calls.append(method)
        if self.failures > 0:
            self.failures -= 1
            raise self.error()
        assert method == "eth_chainId"
        return {"jsonrpc": "2.0", "id": 1, "result": hex(f.CHAIN_ID)}


def http_503() -> requests.HTTPError:
    return requests.HTTPError("503 Server Error: Service Unavailable",
                              response=_response(503))


@pytest.fixture
def empty_log(tmp_path: Path) -> Iterator[AttestationLog]:
    with AttestationLog(tmp_path / "log.sqlite3") as log:
        yield log


def publisher(provider: ScriptedProvider, log: AttestationLog,
              sleeps: list[float]) -> Publisher:
    return Publisher(Web3(provider), f.HUB, log, f.quorum()[0], sleep=sleeps.append)


def test_publisher_retries_transient_rpc_errors(empty_log: AttestationLog) -> None:
    sleeps: list[float] = []
    provider = ScriptedProvider(2, http_503)
    assert publisher(provider, empty_log, sleeps).chain_id == f.CHAIN_ID
    assert sleeps == [0.5, 1.0] and provider.calls == ["eth_chainId"] * 3


def test_publisher_gives_up_with_a_publish_error(empty_log: AttestationLog) -> None:
    sleeps: list[float] = []
    provider = ScriptedProvider(99, http_503)
    with pytest.raises(PublishError) as exc:
        publisher(provider, empty_log, sleeps)
    message = str(exc.value)
    assert message.startswith("eth_chainId failed 5 attempt(s) over ")
    assert "(last: HTTPError: 503 Server Error: Service Unavailable)" in message
    assert "the JSON-RPC node is down, overloaded or rate-limiting" in message
    assert "then publish again; nothing is sent twice" in message
    assert sleeps == [0.5, 1.0, 2.0, 4.0] and len(provider.calls) == 5


@pytest.mark.parametrize("error", [lambda: ValueError("invalid params"),
                                   lambda: requests.HTTPError("401 Unauthorized",
                                                              response=_response(401))],
                         ids=["ValueError", "HTTP 401"])
def test_publisher_does_not_retry_other_rpc_errors(empty_log: AttestationLog, error) -> None:
    sleeps: list[float] = []
    provider = ScriptedProvider(1, error)
    with pytest.raises((ValueError, requests.HTTPError)):
        publisher(provider, empty_log, sleeps)
    assert sleeps == [] and len(provider.calls) == 1
