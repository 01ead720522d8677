"""The app's JSON-RPC connection: a web3 HTTP provider that counts the calls each page
request makes (`X-RPC-Calls`), so the benchmark and the tests can hold every page to its
budget of reads."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass, field

from web3 import Web3
from web3.providers.rpc import HTTPProvider
from web3.types import RPCEndpoint

from gpushares.client.web3_chain import Web3Chain


@dataclass
class Tally:
    """The JSON-RPC methods one page request called, in order."""

    methods: list[str] = field(default_factory=list)

    @property
    def calls(self) -> int:
        return len(self.methods)


_current: contextvars.ContextVar[Tally | None] = contextvars.ContextVar("rpc_tally", default=None)


def start_tally() -> tuple[Tally, contextvars.Token[Tally | None]]:
    """Count the calls made from here on in this request's context (and the threads it
    runs sync handlers in: starlette copies the context into them)."""
    tally = Tally()
    return tally, _current.set(tally)


def stop_tally(token: contextvars.Token[Tally | None]) -> None:
    _current.reset(token)


class CountingProvider(HTTPProvider):
    """An HTTP provider that records each request's method in the current `Tally`."""

    def _make_request(self, method: RPCEndpoint, request_data: bytes) -> bytes:
        # Below web3's request cache: only what goes over the wire is counted.
        tally = _current.get()
        if tally is not None:
            tally.methods.append(str(method))
        return super()._make_request(method, request_data)


def connect(url: str) -> Web3Chain:
    """A `Web3Chain` over `url` whose calls are counted per page request."""
    # eth_chainId is cached: web3 asks for it around calls, and it never changes under a
    # running app (a restarted node with another id fails the deployments check).
    return Web3Chain(Web3(CountingProvider(url, request_kwargs={"timeout": 30},
                                           cache_allowed_requests=True)))
