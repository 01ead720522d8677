"""Publish logged reports to the OracleHub with web3.py.

Guarantees:
- **Never twice.** Before a transaction is broadcast, its signed bytes, hash, nonce and
  sender are recorded in the log's publication table. After a restart a `pending`
  entry is resolved from its recorded transaction (receipt, or a re-broadcast of the
  very same bytes, which cannot be mined twice) before anything new is signed; a
  published or refused entry is never sent again. The hub refuses a replay anyway
  (observed-at must be newer).
- **Refusals are recorded, not retried.** A report the hub refuses (gas estimation
  reverts with the hub's reason, or the hub emits `PriceMoveRefused`) is marked
  `refused` with the reason.
- **Transient RPC errors are retried** by the oracle's one retry policy
  (`oracle.retry`: connection errors, timeouts, HTTP 408 / 429 / 500 / 502 / 503 / 504;
  exponential back-off with jitter, each retry logged); anything else stops the run with
  the error, and so does running out of attempts (`PublishError`, saying what to do).
- **Nonces** come from the node's pending count, never below the last one used here.
- Entries are published in log order, so the hub's checkpoint only moves forward.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from eth_account import Account
from pydantic import BaseModel, ConfigDict
from web3 import Web3
from web3.exceptions import (
    ContractLogicError,
    TimeExhausted,
    TransactionNotFound,
    Web3RPCError,
)
from web3.logs import DISCARD

from gpushares import abi
from oracle import attest
from oracle.entries import ReportEntry, parse_leaf
from oracle.log import AttestationLog
from oracle.retry import RetriesExhausted, RetryPolicy

log_ = logging.getLogger(__name__)
T = TypeVar("T")

REPORT_KINDS = ("price", "utilisation")


class PublishError(RuntimeError):
    """Publishing cannot continue; the message says why and what to do."""


RPC_ADVICE = (
    "the JSON-RPC node is down, overloaded or rate-limiting: check it (or point --rpc / "
    "the node's rpc_url at another), then publish again; nothing is sent twice: an entry "
    "whose transaction was recorded is settled from that transaction first"
)


class PublishOutcome(BaseModel):
    model_config = ConfigDict(frozen=True)

    index: int
    status: str
    tx_hash: str | None = None
    block_number: int | None = None
    detail: str | None = None
    gas_used: int | None = None


class Publisher:
    """Publishes one log's reports to one hub from one funded account."""

    def __init__(
        self,
        web3: Web3,
        hub_address: str,
        log: AttestationLog,
        private_key: bytes | str,
        *,
        attempts: int = 5,
        backoff_s: float = 0.5,
        receipt_timeout_s: float = 120.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.web3 = web3
        self.hub = web3.eth.contract(
            Web3.to_checksum_address(hub_address), abi=abi.load("OracleHub")
        )
        self.log = log
        self.account = Account.from_key(private_key)
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.retry_policy = RetryPolicy(attempts=attempts, initial_s=backoff_s)
        self.receipt_timeout_s = receipt_timeout_s
        self._sleep = sleep
        self._next_nonce: int | None = None
        self.chain_id = self._rpc(lambda: self.web3.eth.chain_id, "eth_chainId")
        self.domain = attest.Domain(chain_id=self.chain_id, hub=self.hub.address)

    # ------------------------------------------------------------ plumbing

    def _rpc(self, call: Callable[[], T], what: str = "JSON-RPC call") -> T:
        """`call()` under the retry policy (`oracle.retry`); PublishError once it gives up."""
        try:
            return self.retry_policy.call(call, what=what, advice=RPC_ADVICE, logger=log_,
                                          sleep=self._sleep)
        except RetriesExhausted as exc:
            raise PublishError(str(exc)) from exc

    def _nonce(self) -> int:
        pending = self._rpc(
            lambda: self.web3.eth.get_transaction_count(self.account.address, "pending"),
            "eth_getTransactionCount",
        )
        nonce = max(pending, self._next_nonce or 0)
        self._next_nonce = nonce + 1
        return nonce

    # ------------------------------------------------------------ publishing

    def publish_pending(self) -> list[PublishOutcome]:
        """Publish every report entry of the log not yet published, oldest first."""
        outcomes: list[PublishOutcome] = []
        for pub in self.log.publications():
            if pub.status == "pending":
                outcomes.append(self._resolve_pending(pub.index))
        for index in sorted(i for kind in REPORT_KINDS for i in self.log.unpublished(kind)):
            outcomes.append(self.publish(index))
        return outcomes

    def publish(self, index: int) -> PublishOutcome:
        """Publish entry `index` (idempotent: a published or refused entry is reported,
        not sent again; a pending one is resolved from its recorded transaction)."""
        pub = self.log.publication(index)
        if pub is not None and pub.status in ("published", "refused"):
            return PublishOutcome(index=index, status=pub.status, tx_hash=pub.tx_hash,
                                  block_number=pub.block_number, detail=pub.detail)
        if pub is not None and pub.status == "pending":
            return self._resolve_pending(index)
        entry = parse_leaf(self.log.entry(index).leaf)
        if not isinstance(entry, ReportEntry):
            raise PublishError(f"entry {index} is a {entry.kind} entry, not a report")
        signed = entry.signed
        if signed.domain != self.domain:
            raise PublishError(
                f"entry {index} was signed for hub {signed.domain.hub} on chain "
                f"{signed.domain.chain_id}, not {self.domain.hub} on {self.domain.chain_id}"
            )
        fn = (
            self.hub.functions.submit_price
            if signed.kind == "price"
            else self.hub.functions.submit_utilisation
        )(signed.report.as_tuple(), signed.signature_structs())
        try:
            gas = self._rpc(lambda: fn.estimate_gas({"from": self.account.address}),
                            f"eth_estimateGas for entry {index}")
        except ContractLogicError as exc:
            reason = _reason(exc)
            self.log.record_outcome(index, status="refused", tx_hash=None, block_number=None,
                                    detail=reason)
            return PublishOutcome(index=index, status="refused", detail=reason)
        tx = fn.build_transaction(
            {
                "from": self.account.address,
                "nonce": self._nonce(),
                "gas": gas + gas // 5,
                "chainId": self.chain_id,
            }
        )
        signed_tx = self.account.sign_transaction(tx)
        tx_hash = "0x" + bytes(signed_tx.hash).hex()
        # Durable before broadcast: after a crash from here on, the entry is resolved from
        # this transaction and never signed again.
        self.log.record_pending(index, tx_hash=tx_hash, raw_tx=bytes(signed_tx.raw_transaction),
                                nonce=tx["nonce"], sender=self.account.address)
        self._broadcast(bytes(signed_tx.raw_transaction))
        return self._await(index, tx_hash)

    def _broadcast(self, raw: bytes) -> None:
        try:
            self._rpc(lambda: self.web3.eth.send_raw_transaction(raw),
                      "eth_sendRawTransaction")
        except (ValueError, Web3RPCError) as exc:  # the node's JSON-RPC error
            text = str(exc).lower()
            if "already known" in text or "nonce too low" in text or "already imported" in text:
                return  # the same transaction (or its nonce) is already in; the receipt decides
            raise

    def _resolve_pending(self, index: int) -> PublishOutcome:
        pub = self.log.publication(index)
        assert pub is not None and pub.tx_hash is not None
        try:
            self._rpc(lambda: self.web3.eth.get_transaction_receipt(pub.tx_hash),
                      f"eth_getTransactionReceipt for entry {index}")
        except TransactionNotFound:
            if pub.raw_tx is None:
                raise PublishError(
                    f"entry {index} is pending without its signed transaction"
                ) from None
            log_.info("entry %d: re-broadcasting its recorded transaction %s", index, pub.tx_hash)
            self._broadcast(pub.raw_tx)
        return self._await(index, pub.tx_hash)

    def _await(self, index: int, tx_hash: str) -> PublishOutcome:
        try:
            receipt = self._rpc(lambda: self.web3.eth.wait_for_transaction_receipt(
                tx_hash, timeout=self.receipt_timeout_s), f"waiting for entry {index}'s receipt")
        except TimeExhausted as exc:
            raise PublishError(
                f"entry {index}: transaction {tx_hash} not mined within "
                f"{self.receipt_timeout_s:.0f}s; it stays pending and the next run resolves it"
            ) from exc
        block = int(receipt["blockNumber"])
        if receipt["status"] != 1:
            detail = "the transaction reverted on-chain (state changed after estimation)"
            self.log.record_outcome(index, status="failed", tx_hash=tx_hash, block_number=block,
                                    detail=detail)
            return PublishOutcome(index=index, status="failed", tx_hash=tx_hash,
                                  block_number=block, detail=detail)
        refused = self.hub.events.PriceMoveRefused().process_receipt(receipt, errors=DISCARD)
        if refused:
            args = refused[0]["args"]
            detail = (f"move of {args['move_bps']} bps exceeds the feed's limit of "
                      f"{args['max_move_bps']} bps (previous {args['previous_value']})")
            self.log.record_outcome(index, status="refused", tx_hash=tx_hash, block_number=block,
                                    detail=detail)
            return PublishOutcome(index=index, status="refused", tx_hash=tx_hash,
                                  block_number=block, detail=detail,
                                  gas_used=int(receipt["gasUsed"]))
        self.log.record_outcome(index, status="published", tx_hash=tx_hash, block_number=block)
        return PublishOutcome(index=index, status="published", tx_hash=tx_hash,
                              block_number=block, gas_used=int(receipt["gasUsed"]))


def _reason(exc: ContractLogicError) -> str:
    message = getattr(exc, "message", None) or str(exc)
    return message.removeprefix("execution reverted: ")
