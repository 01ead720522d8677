"""The app's forms: each action is a pydantic request and the client-layer plan it
becomes. `/api/plan/<name>` answers with the transactions the wallet signs, in order, or
with the chain's refusal in words (and the law behind it) so that the page explains it
before the wallet is ever asked; the notes say what the signer should know first (the
health factor after a borrow, the fill quoted for an order)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from gpushares import lending
from gpushares.client import kyc, perp, pool, spv, vault
from gpushares.client.chain import Plan, Refused, Reverted
from gpushares.client.context import Client
from gpushares.client.jurisdictions import Restricted
from gpushares.client.units import BadInput, address, fmt_units
from jurisdictions import eligibility

WAD = 10**18


class Ask(BaseModel):
    """Every action is asked for by the connected wallet (`account`), which signs it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    account: str = Field(description="the connected wallet: it signs the transactions")


class SpvAsk(Ask):
    spv: int = Field(ge=1, description="SPV id")


class TransferAsk(SpvAsk):
    to: str = Field(description="receiving wallet")
    shares: str = Field(description="shares to send, e.g. 100")


class SubmitAsk(Ask):
    attestation: eligibility.SignedEligibility


class VaultAmountAsk(SpvAsk):
    amount: str = Field(description="stablecoin to subscribe, or shares to redeem")


class VaultCancelAsk(SpvAsk):
    kind: Literal["deposit", "redeem"]


class PoolAsk(Ask):
    pool: int = Field(ge=1, description="lending market number")


class PoolAmountAsk(PoolAsk):
    amount: str | None = Field(default=None, description="amount; empty means all (withdraw, "
                                                         "repay)")


class PerpAsk(Ask):
    market: int = Field(ge=1, description="perp market number")


class PerpAmountAsk(PerpAsk):
    amount: str | None = Field(default=None, description="margin; empty means all (withdraw)")


class CloseAsk(PerpAsk):
    slippage: str = Field(default="1", description="worst fill accepted, percent from the quote")


class CommitAsk(CloseAsk):
    side: Literal["long", "short"]
    size: str = Field(description="GPU-hours")
    margin: str = Field(default="", description="margin to deposit with the order")


class TxOut(BaseModel):
    """One transaction as `eth_sendTransaction` takes it (the wallet fills gas and nonce)."""

    to: str
    data: str
    value: str
    what: str


class PlanOut(BaseModel):
    """What the page shows before the wallet is asked: the refusal (nothing to sign), or
    the notes and the transactions to sign in order."""

    action: str
    what: str
    refusal: str | None = None
    code: int | None = None
    law: list[str] = []
    notes: list[str] = []
    txs: list[TxOut] = []


@dataclass(frozen=True)
class Action:
    ask: type[Ask]
    plan: Callable[[Client, Any], Plan]
    title: str


def _health_note(client: Client, number: int, who: str, debt_delta: int,
                 collateral_delta: int) -> str | None:
    """The health factor the position would have after the action, at the pool's price."""
    p = pool.position(client, number, who)
    if p.price is None:
        return None
    debt, collateral = max(p.debt + debt_delta, 0), max(p.collateral + collateral_delta, 0)
    if debt == 0:
        return "Health factor after: no debt, nothing can be liquidated."
    value = lending.collateral_value(p.params, collateral, p.price)
    factor = Decimal(value * p.params.lltv // debt) / WAD
    liquidation = lending.price_for_ltv(p.params, collateral, debt, p.params.lltv) \
        if collateral else None
    tail = "" if liquidation is None else \
        f"; liquidatable if the NAV falls to {fmt_units(liquidation, p.params.feed_decimals)} USD"
    return (f"Health factor after: {factor:.2f} (liquidatable below 1.00){tail}.")


def _with_note(plan: Plan, note: str | None) -> Plan:
    if note is None:
        return plan
    return Plan(plan.txs, plan.refusal, (*plan.notes, note))


def _borrow(client: Client, a: PoolAmountAsk) -> Plan:
    m = pool.market(client, a.pool)
    amount = m.asset.parse(_required(a.amount, "amount"), "amount")
    plan = pool.plan_borrow(client, a.account, a.pool, amount)
    return _with_note(plan, _health_note(client, a.pool, address(a.account, "account"),
                                         amount, 0))


def _repay(client: Client, a: PoolAmountAsk) -> Plan:
    m = pool.market(client, a.pool)
    amount = m.asset.parse(a.amount, "amount") if a.amount else None
    plan = pool.plan_repay(client, a.account, a.pool, amount)
    who = address(a.account, "account")
    if amount is None:
        return _with_note(plan, "Health factor after: no debt, nothing can be liquidated.")
    return _with_note(plan, _health_note(client, a.pool, who, -amount, 0))


def _deposit_collateral(client: Client, a: PoolAmountAsk) -> Plan:
    m = pool.market(client, a.pool)
    shares = m.collateral.parse(_required(a.amount, "shares"), "shares")
    plan = pool.plan_deposit_collateral(client, a.account, a.pool, shares)
    return _with_note(plan, _health_note(client, a.pool, address(a.account, "account"), 0,
                                         shares))


def _withdraw_collateral(client: Client, a: PoolAmountAsk) -> Plan:
    m = pool.market(client, a.pool)
    shares = m.collateral.parse(a.amount, "shares") if a.amount else None
    plan = pool.plan_withdraw_collateral(client, a.account, a.pool, shares)
    who = address(a.account, "account")
    if shares is None:
        return plan
    return _with_note(plan, _health_note(client, a.pool, who, 0, -shares))


def _supply(client: Client, a: PoolAmountAsk) -> Plan:
    m = pool.market(client, a.pool)
    return pool.plan_supply(client, a.account, a.pool,
                            m.asset.parse(_required(a.amount, "amount"), "amount"))


def _withdraw(client: Client, a: PoolAmountAsk) -> Plan:
    m = pool.market(client, a.pool)
    return pool.plan_withdraw(client, a.account, a.pool,
                              m.asset.parse(a.amount, "amount") if a.amount else None)


def _perp_deposit(client: Client, a: PerpAmountAsk) -> Plan:
    asset = perp.market(client, a.market).asset
    return perp.plan_deposit(client, a.account, a.market,
                             asset.parse(_required(a.amount, "amount"), "amount"))


def _perp_withdraw(client: Client, a: PerpAmountAsk) -> Plan:
    asset = perp.market(client, a.market).asset
    return perp.plan_withdraw(client, a.account, a.market,
                              asset.parse(a.amount, "amount") if a.amount else None)


def _commit(client: Client, a: CommitAsk) -> Plan:
    asset = perp.market(client, a.market).asset
    size = perp.parse_size(a.size, "size")
    margin = asset.parse(a.margin, "margin") if a.margin.strip() else 0
    return perp.plan_commit(client, a.account, a.market, size if a.side == "long" else -size,
                            margin=margin, slippage=a.slippage)


def _required(value: str | None, what: str) -> str:
    if value is None or not value.strip():
        raise BadInput(f"{what}: enter an amount")
    return value


ACTIONS: dict[str, Action] = {
    "spv.claim": Action(SpvAsk, lambda c, a: spv.plan_claim(c, a.account, a.spv),
                        "Claim rental income"),
    "spv.transfer": Action(TransferAsk, lambda c, a: spv.plan_transfer(
        c, a.account, a.spv, a.to, a.shares), "Send shares"),
    "kyc.submit": Action(SubmitAsk, lambda c, a: kyc.plan_submit(c, a.attestation),
                         "Submit your eligibility attestation"),
    "vault.request_deposit": Action(VaultAmountAsk, lambda c, a: vault.plan_request_deposit(
        c, a.account, a.spv, a.amount), "Subscribe"),
    "vault.request_redeem": Action(VaultAmountAsk, lambda c, a: vault.plan_request_redeem(
        c, a.account, a.spv, a.amount), "Redeem"),
    "vault.cancel": Action(VaultCancelAsk, lambda c, a: vault.plan_cancel(
        c, a.account, a.spv, a.kind), "Cancel a request"),
    "vault.claim": Action(SpvAsk, lambda c, a: vault.plan_claim(c, a.account, a.spv),
                          "Claim what the vault holds for you"),
    "vault.claim_income": Action(SpvAsk, lambda c, a: vault.plan_claim_income(
        c, a.account, a.spv), "Claim the income of your vault shares"),
    "pool.supply": Action(PoolAmountAsk, _supply, "Supply"),
    "pool.withdraw": Action(PoolAmountAsk, _withdraw, "Withdraw"),
    "pool.deposit_collateral": Action(PoolAmountAsk, _deposit_collateral, "Post collateral"),
    "pool.withdraw_collateral": Action(PoolAmountAsk, _withdraw_collateral,
                                       "Take collateral back"),
    "pool.borrow": Action(PoolAmountAsk, _borrow, "Borrow"),
    "pool.repay": Action(PoolAmountAsk, _repay, "Repay"),
    "pool.claim_income": Action(PoolAsk, lambda c, a: pool.plan_claim_income(
        c, a.account, a.pool), "Claim your collateral's income"),
    "perp.deposit": Action(PerpAmountAsk, _perp_deposit, "Deposit margin"),
    "perp.withdraw": Action(PerpAmountAsk, _perp_withdraw, "Withdraw margin"),
    "perp.commit": Action(CommitAsk, _commit, "Commit an order"),
    "perp.close": Action(CloseAsk, lambda c, a: perp.plan_close(
        c, a.account, a.market, slippage=a.slippage), "Close the position"),
    "perp.cancel": Action(PerpAsk, lambda c, a: perp.plan_cancel(
        c, a.account, a.market, a.account), "Cancel the expired order"),
}


def run(client: Client, name: str, ask: Ask) -> PlanOut:
    """The plan of action `name` for `ask`, as the page shows it. A refusal the client
    raises outright (an attestation for another chain) is a refusal like any other."""
    action = ACTIONS[name]
    address(ask.account, "account")
    try:
        plan = action.plan(client, ask)
    except Refused as exc:
        return _refused(name, action.title, exc)
    except Reverted as exc:  # a read the plan needed was refused by a contract
        return _refused(name, action.title, Refused(action.title, exc.reason or str(exc)))
    out = PlanOut(action=name, what=plan.what or action.title, notes=list(plan.notes),
                  txs=[TxOut(to=tx.to, data="0x" + tx.data.hex(), value=hex(tx.value),
                                 what=tx.what) for tx in plan.txs])
    if plan.refusal is not None:
        refused = _refused(name, out.what, plan.refusal)
        return refused.model_copy(update={"notes": out.notes})
    return out


def _refused(name: str, what: str, exc: Refused) -> PlanOut:
    law: list[str] = []
    code = None
    if isinstance(exc, Restricted):
        code = exc.code
        law = [line for finding in exc.findings for line in finding.lines()]
    return PlanOut(action=name, what=what, refusal=exc.reason, code=code, law=law)
