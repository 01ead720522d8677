"""Peer authentication: a node's requests to another node's peer endpoints are signed by
its signer key, which must be in the hub's current signer set.

Peer endpoints (`POST /v1/sign`, `GET /v1/votes/{position}`) change a node's durable
state or disclose its pending vote, so they answer only the quorum's members. Every
request a node sends there carries three headers:

    X-GPU-Oracle-Time       the sender's chain time (unix seconds, its latest block)
    X-GPU-Oracle-Nonce      16 random bytes, 32 lower-case hex digits
    X-GPU-Oracle-Signature  0x + 65 bytes (r, s, v): an EIP-191 personal signature by
                            the sender's signer key over `message()`:

    gpu-oracle peer request v1 \\n chainId \\n hub \\n receiver name \\n METHOD \\n
    path?query \\n time \\n nonce \\n sha256(body) hex

The receiver, before it parses anything (`Verifier.check_headers`, then `verify` once
the raw body has been read, size-limited): the headers are well formed; the nonce was
not seen; the signature recovers a key of the hub's current signer set (the receiver's
cached view, at most `HUB_VIEW_MAX_AGE_S` old); the time is within `window_s` of the
receiver's chain time; the signer is within its rate (a token bucket per signer). Only
then is the nonce remembered. A refused request writes nothing (no state, no log line)
and answers 401 (429 over the rate), before its body is parsed.

Replay. The message binds the chain, the hub, the receiver's name, the method, the path
and the body, so a captured request is good for nothing else. Its time binds it to a
window of chain time; inside that window its nonce is remembered (in memory, evicted
once the time has left the window, and at most `MAX_NONCES` of them: when a quiet chain
keeps the window open for long, the oldest nonces are forgotten first). What a replay
inside the window (or after that many newer requests) can do: ask again for a vote that
was already cast (idempotent: the same signature comes back) or for a node's pending
vote; it cannot make a node sign anything it would not sign for the original request.
Chain time, not this machine's calendar, dates a request: both nodes read the same
chain, so their clocks agree to within a few blocks; a receiver whose cached chain time
disagrees with an authenticated request re-reads the chain (at most every
`REFRESH_INTERVAL_S`) before refusing it.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import keccak, to_checksum_address

from oracle import attest

HEADER_TIME = "x-gpu-oracle-time"
HEADER_NONCE = "x-gpu-oracle-nonce"
HEADER_SIGNATURE = "x-gpu-oracle-signature"
PREFIX = "gpu-oracle peer request v1"
MAX_NONCES = 100_000
REFRESH_INTERVAL_S = 0.5
HUB_VIEW_MAX_AGE_S = 5.0
_NONCE = re.compile(r"[0-9a-f]{32}")
_TIME = re.compile(r"[0-9]{1,12}")
_SIGNATURE = re.compile(r"0x[0-9a-fA-F]{130}")


class PeerAuthError(Exception):
    """A peer request this node refuses; `status` 401 (or 429 over the rate limit, 503
    when the node cannot check signers at all). `code` is from a fixed set, so metrics
    labelled by it stay bounded whatever a client sends."""

    def __init__(self, code: str, message: str, status: int = 401,
                 retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.retry_after_s = retry_after_s


def eip191_digest(text: bytes) -> bytes:
    """keccak256 of the EIP-191 personal message `text` (what `personal_sign` signs)."""
    return keccak(b"\x19Ethereum Signed Message:\n" + str(len(text)).encode() + text)


def body_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def message(*, chain_id: int, hub: str, receiver: str, method: str, path: str, stamp: int,
            nonce: str, body: bytes) -> bytes:
    """The bytes a peer request's signature covers (see the module docstring)."""
    return "\n".join([PREFIX, str(chain_id), hub.lower(), receiver, method.upper(), path,
                      str(stamp), nonce, body_hash(body)]).encode()


def sign_headers(key: bytes, *, chain_id: int, hub: str, receiver: str, method: str,
                 path: str, stamp: int, body: bytes = b"",
                 nonce: str | None = None) -> dict[str, str]:
    """The headers of a request from the node holding `key` to the node `receiver`."""
    nonce = secrets.token_hex(16) if nonce is None else nonce
    text = message(chain_id=chain_id, hub=hub, receiver=receiver, method=method, path=path,
                   stamp=stamp, nonce=nonce, body=body)
    signed = Account.sign_message(encode_defunct(primitive=text), key)
    return {HEADER_TIME: str(stamp), HEADER_NONCE: nonce,
            HEADER_SIGNATURE: "0x" + bytes(signed.signature).hex()}


@dataclass
class _Bucket:
    tokens: float
    at: float


@dataclass
class Verifier:
    """A node's check of incoming peer requests (one per node; thread-safe).

    `chain_time(max_age_s)` returns the chain's time, cached up to `max_age_s`;
    `signer_set()` the hub's current signers (cached by the node); `chain_id()` and `hub`
    the hub's domain. Times for windows and buckets are this process's monotonic clock
    (`clock`) except the request's own stamp, which is chain time."""

    receiver: str
    chain_id: Callable[[], int]
    hub: Callable[[], str]
    chain_time: Callable[[float], int]
    signer_set: Callable[[], list[str]]
    window_s: float = 300.0
    rate_per_s: float = 20.0
    burst: float = 40.0
    clock: Callable[[], float] = time.monotonic
    _nonces: OrderedDict[str, int] = field(default_factory=OrderedDict)
    _buckets: dict[str, _Bucket] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _refreshed_at: float = float("-inf")

    def check_headers(self, headers: Mapping[str, str]) -> tuple[int, str, bytes]:
        """(time, nonce, raw signature) from well-formed headers of an unseen nonce;
        raises PeerAuthError (401) otherwise. Cheap: call it before reading the body."""
        stamp, nonce, signature = (headers.get(HEADER_TIME), headers.get(HEADER_NONCE),
                                   headers.get(HEADER_SIGNATURE))
        if stamp is None or nonce is None or signature is None:
            raise PeerAuthError(
                "unauthenticated", "this endpoint answers only the quorum's nodes: sign the "
                "request with the node's signer key (headers X-GPU-Oracle-Time, "
                "X-GPU-Oracle-Nonce, X-GPU-Oracle-Signature; see docs/oracle.md, 'Peer "
                "authentication')")
        if not _TIME.fullmatch(stamp) or not _NONCE.fullmatch(nonce) or \
                not _SIGNATURE.fullmatch(signature):
            raise PeerAuthError(
                "bad_auth_headers", "X-GPU-Oracle-Time must be unix seconds, "
                "X-GPU-Oracle-Nonce 32 lower-case hex digits and X-GPU-Oracle-Signature 0x "
                "and 130 hex digits")
        with self._lock:
            if nonce in self._nonces:
                raise PeerAuthError("replayed", "this request's nonce was already used: "
                                                "send a fresh nonce with every request")
        try:
            raw = attest._checked(signature)
        except attest.AttestationError as exc:
            raise PeerAuthError("bad_signature", f"the request signature is unusable: {exc}") \
                from exc
        return int(stamp), nonce, raw

    def verify(self, *, method: str, path: str, headers: Mapping[str, str],
               body: bytes) -> str:
        """The signer address of an authenticated request (its nonce now remembered);
        raises PeerAuthError. `path` includes the query string as sent."""
        stamp, nonce, raw = self.check_headers(headers)
        text = message(chain_id=self.chain_id(), hub=self.hub(), receiver=self.receiver,
                       method=method, path=path, stamp=stamp, nonce=nonce, body=body)
        digest = eip191_digest(text)
        try:
            signer = to_checksum_address(attest._recover_address(digest, raw))
        except attest.AttestationError as exc:
            raise PeerAuthError("bad_signature", f"the request signature is unusable: {exc}") \
                from exc
        if signer not in self.signer_set():
            raise PeerAuthError(
                "not_a_signer", f"the request is signed by {signer}, which is not in the "
                "hub's current signer set (a peer's request is signed by its signer key, "
                "and the receiver's config names it as the receiver)")
        now = self._check_time(stamp)
        self._take_token(signer)
        with self._lock:
            if nonce in self._nonces:  # the same request twice at once
                raise PeerAuthError("replayed", "this request's nonce was already used: "
                                                "send a fresh nonce with every request")
            self._nonces[nonce] = stamp
            self._evict(max(stamp, now) - self.window_s)
        return signer

    def _check_time(self, stamp: int) -> int:
        now = self.chain_time(60.0)
        if abs(stamp - now) <= self.window_s:
            return now
        with self._lock:
            refresh = self.clock() - self._refreshed_at >= REFRESH_INTERVAL_S
            if refresh:
                self._refreshed_at = self.clock()
        if refresh:
            now = self.chain_time(0.0)
            if abs(stamp - now) <= self.window_s:
                return now
        raise PeerAuthError(
            "stale_request", f"the request is stamped {stamp}, this node's chain time is "
            f"{now}: more than {self.window_s:.0f} s apart. Stamp requests with the chain's "
            "time (both nodes must read the same chain); a replayed request is refused so")

    def _take_token(self, signer: str) -> None:
        now = self.clock()
        with self._lock:
            bucket = self._buckets.get(signer)
            if bucket is None:
                bucket = self._buckets[signer] = _Bucket(self.burst, now)
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.rate_per_s)
            bucket.at = now
            if bucket.tokens < 1:
                wait = (1 - bucket.tokens) / self.rate_per_s
                raise PeerAuthError(
                    "rate_limited", f"{signer} sent more than {self.rate_per_s:g} requests a "
                    f"second (burst {self.burst:g}); retry in {wait:.1f} s", 429,
                    retry_after_s=wait)
            bucket.tokens -= 1

    def _evict(self, floor: int) -> None:
        """Forget nonces stamped before `floor` (requests that old are refused by their
        time now), and the oldest beyond MAX_NONCES. Called with the lock held."""
        while self._nonces:
            nonce, stamp = next(iter(self._nonces.items()))
            if stamp >= floor and len(self._nonces) <= MAX_NONCES:
                break
            self._nonces.popitem(last=False)
