"""oracle.peerauth (a peer request signed by a hub signer's key: replay, time window, rate
limit, what the signature binds) and oracle.state's durable votes and bounded records."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from eth_account import Account

from gpushares.devnode import dev_key
from oracle import config, peerauth
from oracle.state import ROUNDS_KEPT_PER_FEED, NodeState, VoteConflict

KEY = dev_key(40)
SIGNER = Account.from_key(KEY).address
OTHER = dev_key(41)
HUB = "0x" + "ab" * 20


class Clock:
    def __init__(self) -> None:
        self.mono = 1_000.0
        self.chain = 1_800_000_000
        self.reads = 0

    def chain_time(self, max_age_s: float) -> int:
        self.reads += max_age_s == 0.0
        return self.chain


def verifier(clock: Clock, **kw) -> peerauth.Verifier:
    return peerauth.Verifier(receiver="node-2", chain_id=lambda: 31337, hub=lambda: HUB,
                             chain_time=clock.chain_time, signer_set=lambda: [SIGNER],
                             clock=lambda: clock.mono, **kw)


def headers(clock: Clock, body: bytes = b"{}", *, key: bytes = KEY, receiver: str = "node-2",
            path: str = "/v1/sign", stamp: int | None = None) -> dict[str, str]:
    return peerauth.sign_headers(key, chain_id=31337, hub=HUB, receiver=receiver,
                                 method="POST", path=path,
                                 stamp=clock.chain if stamp is None else stamp, body=body)


def code(v: peerauth.Verifier, h: dict[str, str], body: bytes = b"{}",
         path: str = "/v1/sign") -> str:
    try:
        v.verify(method="POST", path=path, headers=h, body=body)
    except peerauth.PeerAuthError as exc:
        return exc.code
    return "ok"


def test_a_signed_request_is_accepted_once() -> None:
    clock = Clock()
    v = verifier(clock)
    h = headers(clock)
    assert v.verify(method="POST", path="/v1/sign", headers=h, body=b"{}") == SIGNER
    assert code(v, h) == "replayed"


def test_the_signature_binds_body_path_receiver_and_signer_set() -> None:
    clock = Clock()
    v = verifier(clock)
    assert code(v, headers(clock), body=b'{"x":1}') == "not_a_signer"  # another body
    assert code(v, headers(clock), path="/v1/votes/3") == "not_a_signer"
    assert code(v, headers(clock, receiver="node-3")) == "not_a_signer"
    assert code(v, headers(clock, key=OTHER)) == "not_a_signer"
    assert code(v, {}) == "unauthenticated"
    bad = {**headers(clock), peerauth.HEADER_NONCE: "XYZ"}
    assert code(v, bad) == "bad_auth_headers"
    high_s = headers(clock)
    sig = bytes.fromhex(high_s[peerauth.HEADER_SIGNATURE][2:])
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    twin = sig[:32] + (n - int.from_bytes(sig[32:64], "big")).to_bytes(32, "big") + \
        bytes([55 - sig[64]])
    high_s[peerauth.HEADER_SIGNATURE] = "0x" + twin.hex()
    assert code(v, high_s) == "bad_signature"  # the malleable twin


def test_time_window_in_chain_time_with_one_reread() -> None:
    clock = Clock()
    v = verifier(clock, window_s=60)
    assert code(v, headers(clock, stamp=clock.chain - 61)) == "stale_request"
    assert clock.reads == 1  # re-read the chain once before refusing
    assert code(v, headers(clock, stamp=clock.chain + 61)) == "stale_request"
    assert clock.reads == 1  # ... at most every REFRESH_INTERVAL_S
    clock.mono += 1
    assert code(v, headers(clock, stamp=clock.chain + 59)) == "ok"


def test_rate_limit_per_signer() -> None:
    clock = Clock()
    v = verifier(clock, rate_per_s=2, burst=3)
    assert [code(v, headers(clock)) for _ in range(4)] == ["ok", "ok", "ok", "rate_limited"]
    clock.mono += 0.5
    assert code(v, headers(clock)) == "ok"


def test_nonces_are_forgotten_once_their_time_left_the_window() -> None:
    clock = Clock()
    v = verifier(clock, window_s=60, rate_per_s=1e9, burst=1e9)
    old = headers(clock)
    assert code(v, old) == "ok"
    clock.chain += 120
    assert code(v, headers(clock)) == "ok"
    assert len(v._nonces) == 1  # the old one is refused by its time now
    assert code(v, old) == "stale_request"


# ------------------------------------------------------------------ state


def test_a_vote_binds_for_good_and_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    state = NodeState(path)
    state.vote(7, "aa", "F", kind="price", report={"value": 1}, inputs=b"{}", at=1)
    state.vote(7, "aa", "F", at=2)  # the same report again: fine
    state.close()
    state = NodeState(path)
    with pytest.raises(VoteConflict, match="signs one report per position, for good"):
        state.vote(7, "bb", "F", at=10**12)
    vote = state.vote_at(7)
    assert vote is not None and vote.digest == "aa" and vote.report == {"value": 1}
    state.prune_votes(7 + 101)
    assert state.vote_at(7) is None
    state.close()


def test_an_old_state_file_gains_the_vote_columns(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE votes (position INTEGER PRIMARY KEY, digest TEXT NOT NULL, "
                   "feed TEXT NOT NULL, at REAL NOT NULL)")
        db.execute("INSERT INTO votes VALUES (3, 'cc', 'F', 1.0)")
    state = NodeState(path)
    assert state.vote_at(3).digest == "cc" and state.vote_at(3).report is None
    with pytest.raises(VoteConflict):
        state.vote(3, "dd", "F", at=5)
    state.close()


def test_round_records_are_bounded(tmp_path: Path) -> None:
    state = NodeState(tmp_path / "state.sqlite")
    for i in range(ROUNDS_KEPT_PER_FEED + 50):
        state.record_round("F", "cosigner", "refused:x", str(i))
    state.record_round("G", "leader", "published")
    counts = state.round_counts()
    assert counts[("cosigner", "refused:x")] == ROUNDS_KEPT_PER_FEED
    latest = {(r.feed, r.role): r.detail for r in state.latest_rounds()}
    assert latest[("F", "cosigner")] == str(ROUNDS_KEPT_PER_FEED + 49)
    state.close()


def test_retired_round_settings_say_what_to_do() -> None:
    for name in ("vote_ttl_s", "deadline_s"):
        with pytest.raises(config.ConfigError, match=f"{name} is no longer a setting"):
            config.parse_config(f'name = "n"\nkey_file = "k"\nlog = "l"\nstate = "s"\n'
                                f"[rounds]\n{name} = 30\n", "node.toml")
