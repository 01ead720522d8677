"""`Chain` over any JSON-RPC node with web3.py: anvil in the tests, the benchmark and the
web app; a public node with a local key anywhere else.

A sender is either an address the node signs for (anvil's unlocked dev accounts:
`eth_sendTransaction`) or an `eth_account` LocalAccount (signed here, sent raw).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eth_abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.exceptions import ContractLogicError, Web3RPCError

from gpushares import abi as abis
from gpushares.client import artifacts
from gpushares.client.chain import (
    Chain,
    Head,
    Log,
    Receipt,
    Reverted,
    Tx,
    _abi_type,
    checksum,
    revert_reason,
)


def _reason_of(exc: Exception) -> str:
    """The revert message in a web3 error (its data, else its text)."""
    data = getattr(exc, "data", None)
    if isinstance(data, str) and data.startswith("0x"):
        return revert_reason(bytes.fromhex(data[2:]))
    text = str(getattr(exc, "message", None) or exc)
    return text.removeprefix("execution reverted: ").removeprefix("execution reverted")


class Web3Chain(Chain):
    """A chain behind a web3 provider."""

    def __init__(self, web3: Web3, *, timeout_s: float = 60.0) -> None:
        self.web3 = web3
        self.timeout_s = timeout_s
        self.chain_id = int(web3.eth.chain_id)

    @classmethod
    def at(cls, url: str) -> Web3Chain:
        return cls(Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 30})))

    # ------------------------------------------------------------------ reads

    def call(self, to: str, data: bytes, *, sender: str | None = None,
             block: int | None = None) -> bytes:
        params: dict[str, Any] = {"to": checksum(to), "data": "0x" + data.hex()}
        if sender is not None:
            params["from"] = checksum(sender)
        try:
            return bytes(self.web3.eth.call(params, "latest" if block is None else block))
        except (ContractLogicError, Web3RPCError) as exc:
            raise Reverted(_reason_of(exc)) from exc

    def head(self) -> Head:
        block = self.web3.eth.get_block("latest")
        return Head(int(block["number"]), int(block["timestamp"]))

    def code(self, address: str, block: int | None = None) -> bytes:
        return bytes(self.web3.eth.get_code(checksum(address),
                                            "latest" if block is None else block))

    def balance(self, address: str) -> int:
        return int(self.web3.eth.get_balance(checksum(address)))

    def logs(self, address: str | Sequence[str], topics: Sequence[Any], from_block: int,
             to_block: int | None = None) -> list[Log]:
        where = (checksum(address) if isinstance(address, str)
                 else [checksum(a) for a in address])
        raw = self.web3.eth.get_logs({
            "address": where, "topics": list(topics), "fromBlock": from_block,
            "toBlock": "latest" if to_block is None else to_block})
        return [_log(entry) for entry in raw]

    # ------------------------------------------------------------------ writes

    def address_of(self, sender: Any) -> str:
        if isinstance(sender, LocalAccount):
            return sender.address
        return checksum(str(sender))

    def send(self, tx: Tx, sender: Any) -> Receipt:
        fields: dict[str, Any] = {"from": self.address_of(sender), "data": "0x" + tx.data.hex(),
                                  "value": tx.value}
        if tx.to:
            fields["to"] = checksum(tx.to)
        return self._transact(fields, sender, tx.what)

    def deploy(self, name: str, args: Sequence[Any], sender: Any) -> Receipt:
        constructor = next((i for i in abis.load(name) if i.get("type") == "constructor"),
                           {"inputs": []})
        encoded = abi_encode([_abi_type(i) for i in constructor["inputs"]], list(args))
        fields = {"from": self.address_of(sender),
                  "data": "0x" + (artifacts.bytecode(name) + encoded).hex(), "value": 0}
        return self._transact(fields, sender, f"deploy {name}")

    def declare(self, name: str, sender: Any) -> Receipt:
        fields = {"from": self.address_of(sender),
                  "data": "0x" + artifacts.blueprint_initcode(name).hex(), "value": 0}
        return self._transact(fields, sender, f"declare the {name} blueprint")

    def _transact(self, fields: dict[str, Any], sender: Any, what: str) -> Receipt:
        eth = self.web3.eth
        try:
            fields["gas"] = int(eth.estimate_gas(fields) * 12 // 10) + 20_000
        except (ContractLogicError, Web3RPCError) as exc:
            raise Reverted(_reason_of(exc), what=what) from exc
        if isinstance(sender, LocalAccount):
            fields["nonce"] = eth.get_transaction_count(sender.address, "pending")
            fields["chainId"] = self.chain_id
            fields.setdefault("gasPrice", eth.gas_price)
            signed = sender.sign_transaction(fields)
            tx_hash = eth.send_raw_transaction(signed.raw_transaction)
        else:
            tx_hash = eth.send_transaction(fields)  # type: ignore[arg-type]
        receipt = eth.wait_for_transaction_receipt(tx_hash, timeout=self.timeout_s)
        if int(receipt["status"]) != 1:
            # Mined but reverted (the state moved since the estimate): replay it for why.
            call = {k: v for k, v in fields.items() if k in ("from", "to", "data", "value")}
            try:
                eth.call(call, receipt["blockNumber"] - 1)  # type: ignore[arg-type]
                reason = "reverted"
            except (ContractLogicError, Web3RPCError) as exc:
                reason = _reason_of(exc)
            raise Reverted(reason, what=what)
        address = receipt.get("contractAddress")
        return Receipt(
            tx_hash="0x" + bytes(receipt["transactionHash"]).hex(),
            block_number=int(receipt["blockNumber"]), gas_used=int(receipt["gasUsed"]),
            logs=tuple(_log(e) for e in receipt["logs"]), what=what,
            contract_address=checksum(address) if address else None)


def _log(entry: Any) -> Log:
    return Log(address=checksum(entry["address"]),
               topics=tuple(bytes(t) for t in entry["topics"]),
               data=bytes(entry["data"]), block_number=int(entry["blockNumber"]))
