"""What the market modules (pool, perp, hedge, keeper) share: ERC-20 amounts as people
read them, finding a contract's accounts in its events, a factory's markets, the share
token's ERC-1404 check, approvals, and plans that name their refusal."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict

from gpushares.client.chain import Chain, Contract, Plan, Refused, Tx
from gpushares.client.context import Client
from gpushares.client.units import BadInput, fmt_units, to_base_units

# Blocks per `eth_getLogs` query when scanning a contract's events (public nodes cap it).
LOG_PAGE = 10_000

_FROZEN = ConfigDict(frozen=True)

class Token(BaseModel):
    """An ERC-20 as people read it: amounts in and out of base units."""

    model_config = _FROZEN

    address: str
    symbol: str
    decimals: int

    def fmt(self, units: int) -> str:
        """Base units as `1,234.5 mUSDC`."""
        return f"{fmt_units(units, self.decimals)} {self.symbol}"

    def parse(self, amount: str | Decimal, what: str, *, allow_zero: bool = False) -> int:
        """What a person typed (`"1234.5"`) as base units; BadInput naming `what`."""
        return to_base_units(amount, self.decimals, what, allow_zero=allow_zero)


def token(client: Client, where: str) -> Token:
    """The ERC-20 at `where`."""
    contract = client.erc20(where)
    return Token(address=contract.address, symbol=str(contract.symbol()),
                 decimals=int(contract.decimals()))


def creation_block(chain: Chain, where: str) -> int:
    """The block a contract was deployed in (binary search on its code); 0 when the node
    cannot answer for old blocks (a pruned node: scan from genesis)."""
    low, high = 0, chain.head().number
    try:
        while low < high:
            mid = (low + high) // 2
            if chain.code(where, mid):
                high = mid
            else:
                low = mid + 1
    except Exception:  # noqa: BLE001 - any backend's "state not available"
        return 0
    return low


def accounts_in_events(contract: Contract, fields: dict[str, str]) -> list[str]:
    """Every address named in `fields[event]` of `contract`'s events since its
    creation, in order of first appearance (one log query per `LOG_PAGE` blocks)."""
    chain = contract.chain
    start, head = creation_block(chain, contract.address), chain.head().number
    topics = [[contract.event_topic(event) for event in fields]]
    seen: dict[str, None] = {}
    for first in range(start, head + 1, LOG_PAGE):
        for log in chain.logs(contract.address, topics, first, min(first + LOG_PAGE - 1, head)):
            for event, field in fields.items():
                decoded = contract.decode_event(event, log)
                if decoded is not None:
                    seen.setdefault(decoded[field], None)
    return list(seen)


def market_numbers(factory: Contract, number: int | None, *, label: str,
                   create: str) -> list[int]:
    """`[number]` after checking the factory has it (BadInput otherwise), or every
    market's number when None (`label` names the kind, `create` the script making one)."""
    count = int(factory.market_count())
    if number is None:
        return list(range(1, count + 1))
    if not 1 <= number <= count:
        listing = f"markets 1..{count}" if count else f"no market yet: `ape run {create} create`"
        raise BadInput(f"unknown {label} {number}: the factory has {listing}")
    return [number]


def event_sum(contract: Contract, event: str, field: str, logs: Sequence[Any]) -> int:
    """The sum of `field` over `contract`'s `event`s in `logs`."""
    return sum(int(e[field]) for e in contract.events(event, logs))


def headline(factory: Contract, label: str, create: str) -> list[str]:
    """A factory (`label`) and how many markets it has (`create`: the script making one)."""
    count = int(factory.market_count())
    return [f"{label} {factory.address}: {count} market(s)",
            *([f"  (none yet: `ape run {create} create ...`)"] if count == 0 else [])]


def restriction(share_token: Contract, sender: str, receiver: str, amount: int) -> tuple[int, str]:
    """The share token's ERC-1404 code and message for a movement (0, "" when allowed)."""
    code = int(share_token.detectTransferRestriction(sender, receiver, amount))
    return code, str(share_token.messageForTransferRestriction(code)) if code else ""


def approval(erc20: Contract, owner: str, spender: str, amount: int, what: str) -> list[Tx]:
    """`[approve]` when `owner`'s allowance to `spender` is below `amount`, else `[]`."""
    if int(erc20.allowance(owner, spender)) >= amount:
        return []
    return [erc20.approve.tx(spender, amount, what=what)]


def action(verb: str, txs: Sequence[Tx], problems: Sequence[str] = (),
           notes: Sequence[str] = ()) -> Plan:
    """A plan whose refusal (the problems, joined) reads "`verb` refused, nothing sent"."""
    refusal = Refused(verb, "; ".join(problems)) if problems else None
    return Plan(tuple(txs), refusal, tuple(notes))


def short_of(who: str, balance: Token | None, held: int, needed: int, what: str) -> str | None:
    """Why `who` cannot pay `needed` (it holds `held`), or None."""
    if balance is None or held >= needed:
        return None
    return (f"{who} holds {balance.fmt(held)}, less than the {balance.fmt(needed)} {what}: get "
            f"{balance.fmt(needed - held)} more first")
