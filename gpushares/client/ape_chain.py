"""`Chain` for the operator scripts: ape's connected provider for reads (its web3), ape
accounts (`--account ALIAS`, hardware wallets, TEST::N) to sign, and ape's compiled
project to deploy."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gpushares.client.chain import Log, Receipt, Reverted, Tx, checksum
from gpushares.client.web3_chain import Web3Chain


def _receipt(receipt: Any, what: str) -> Receipt:
    address = getattr(receipt, "contract_address", None)
    logs = tuple(
        Log(address=checksum(entry["address"]),
            topics=tuple(bytes(t) for t in entry["topics"]),
            data=bytes(entry["data"]), block_number=int(receipt.block_number))
        for entry in receipt.logs)
    return Receipt(tx_hash=str(receipt.txn_hash), block_number=int(receipt.block_number),
                   gas_used=int(receipt.gas_used), logs=logs, what=what,
                   contract_address=checksum(address) if address else None)


class ApeChain(Web3Chain):
    """The chain ape's `provider` is connected to; senders are ape accounts."""

    def __init__(self, provider: Any) -> None:
        super().__init__(provider.web3)
        self.provider = provider

    def address_of(self, sender: Any) -> str:
        return checksum(getattr(sender, "address", sender))

    def send(self, tx: Tx, sender: Any) -> Receipt:
        from ape.exceptions import ContractLogicError

        if not hasattr(sender, "call"):  # an address the node signs for
            return super().send(tx, sender)
        txn = self.provider.network.ecosystem.create_transaction(
            receiver=tx.to, data=tx.data, value=tx.value, sender=sender.address)
        try:
            receipt = sender.call(txn)
        except ContractLogicError as exc:
            raise Reverted(str(exc.message), what=tx.what) from exc
        return _receipt(receipt, tx.what)

    def deploy(self, name: str, args: Sequence[Any], sender: Any) -> Receipt:
        from ape import project
        from ape.exceptions import ContractLogicError

        try:
            contract = sender.deploy(getattr(project, name), *args)
        except ContractLogicError as exc:
            raise Reverted(str(exc.message), what=f"deploy {name}") from exc
        return _receipt(self.provider.get_receipt(contract.txn_hash), f"deploy {name}")

    def declare(self, name: str, sender: Any) -> Receipt:
        from ape import project

        return _receipt(sender.declare(getattr(project, name)), f"declare {name}")
