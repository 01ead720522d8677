"""The liquidation keeper: lending markets (repay unhealthy loans, receive collateral)
and perp markets (close positions below maintenance, earn the keeper fee).

    plan = keeper.plan_pass(client, me)                 # every lending and perp market
    for line in plan.lines(): print(line)               # what it sees and would do
    done = keeper.run(client, signer, plan, on_line=print)

Lending: a market whose price is stale is skipped (the pool pauses liquidations);
otherwise every loan above the liquidation LTV (valued with `gpushares.lending`, the
pool's rounding) is liquidated in full, or up to `max_repay` per loan. Before anything
is sent the plan checks that the keeper may hold each collateral (the share token's
ERC-1404 rules, which the pool checks first) and holds the loan asset the
liquidations pull: otherwise `KeeperPlan.refusal` says why, and no lending market is
touched.

Perps: a market whose index is stale is skipped; otherwise every position the
market's `can_liquidate` view flags is liquidated: the market closes it at the index,
pays the keeper `min_keeper_fee + notional * liquidation_fee` (the keeper needs no
funds) and its insurance fund takes what is left or pays the bad debt.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict

from gpushares import lending
from gpushares import perp as mirror
from gpushares.client import markets
from gpushares.client import perp as perp_client
from gpushares.client import pool as pool_client
from gpushares.client.chain import Receipt, Refused, Reverted, Tx
from gpushares.client.context import Client
from gpushares.client.markets import Token
from gpushares.client.units import address

MAX_UINT256 = 2**256 - 1
_MODEL = ConfigDict(frozen=True, arbitrary_types_allowed=True)


def predict(book: pool_client.LoanBook, loan: pool_client.Loan,
            max_repay: int) -> tuple[int, int, int]:
    """What liquidating `loan` (up to `max_repay`) would do at the book's price:
    (repaid, seized, bad debt), with the pool's own arithmetic (`lending.liquidation`)."""
    assert book.price.price is not None
    return lending.liquidation(book.params, book.liquidation_incentive, book.price.price,
                               loan.collateral, loan.debt, max_repay)


class LoanLiquidation(BaseModel):
    """One loan the keeper liquidates, with what the pool's arithmetic predicts."""

    model_config = _MODEL

    borrower: str
    debt: int
    ltv: str
    repaid: int
    seized: int
    bad_debt: int


class LendingPass(BaseModel):
    """One lending market as the keeper sees it."""

    model_config = _MODEL

    number: int
    address: str
    asset: Token
    collateral: Token
    price: pool_client.PriceView
    open_loans: int
    due: list[LoanLiquidation]
    max_repay: int
    txs: list[Tx]  # the approval (if one is missing), then one liquidation per loan

    def line(self, loan: LoanLiquidation, verb: str, repaid: int, seized: int,
             bad_debt: int) -> str:
        return (f"  {loan.borrower}: debt {self.asset.fmt(loan.debt)}, LTV {loan.ltv} -> {verb} "
                f"{self.asset.fmt(repaid)}, collateral seized {self.collateral.fmt(seized)}, bad "
                f"debt written off {self.asset.fmt(bad_debt)}")

    def lines(self, dry_run: bool) -> list[str]:
        if not self.price.fresh:
            return [f"market {self.number}: {self.price.refusal}: liquidations are paused until "
                    "a fresh price, skipped"]
        assert self.price.price is not None
        out = [f"market {self.number} ({self.collateral.symbol}/{self.asset.symbol}): "
               f"{self.open_loans} open loan(s), {len(self.due)} liquidatable at "
               f"{self.price.text(self.price.price)}"]
        if dry_run and self.due:
            out.append(f"market {self.number} (dry run):")
            out += [self.line(d, "would repay", d.repaid, d.seized, d.bad_debt) for d in self.due]
        return out


class PerpLiquidation(BaseModel):
    """One perp position the keeper liquidates, as the market's views value it."""

    model_config = _MODEL

    account: str
    size: int
    equity: int
    maintenance: int
    keeper_fee: int

    @property
    def bad_debt(self) -> int:
        return max(-self.equity, 0)


class PerpPass(BaseModel):
    """One perp market as the keeper sees it."""

    model_config = _MODEL

    number: int
    address: str
    feed: str
    asset: Token
    index: perp_client.IndexView
    open_positions: int
    due: list[PerpLiquidation]
    txs: list[Tx]

    def lines(self, dry_run: bool) -> list[str]:
        refusal = self.index.refusal
        if refusal is not None:
            return [f"perp market {self.number}: {refusal}: liquidations wait for a fresh index, "
                    "skipped"]
        out = [f"perp market {self.number} ({self.feed} / {self.asset.symbol}): "
               f"{self.open_positions} open position(s), {len(self.due)} liquidatable at "
               f"{perp_client.fmt_price(self.index.price)}"]
        if dry_run and self.due:
            out.append(f"perp market {self.number} (dry run):")
            money = self.asset.fmt
            out += [f"  {d.account}: {perp_client.sized(d.size)}, equity {money(d.equity)} "
                    f"(maintenance {self.asset.fmt(d.maintenance)}) -> would liquidate: keeper "
                    f"fee {self.asset.fmt(d.keeper_fee)}, bad debt {self.asset.fmt(d.bad_debt)}"
                    for d in self.due]
        return out


class KeeperPlan(BaseModel):
    """What one keeper pass finds in the markets it covers, and would send."""

    model_config = _MODEL

    keeper: str
    lending: list[LendingPass]
    perps: list[PerpPass]
    refusal: Refused | None  # why no lending liquidation may be sent (the keeper's side)
    notes: list[str] = []
    covers_lending: bool = True
    covers_perps: bool = True

    @property
    def loans_due(self) -> int:
        return sum(len(p.due) for p in self.lending if p.price.fresh)

    @property
    def positions_due(self) -> int:
        return sum(len(p.due) for p in self.perps if p.index.refusal is None)

    def lines(self, dry_run: bool = False) -> list[str]:
        """What the keeper sees, market by market (and, in a dry run, what it would do)."""
        out = list(self.notes)
        if self.covers_lending:
            if not self.lending:
                out.append("no markets yet: no unhealthy loans")
            for market in self.lending:
                out += market.lines(dry_run)
            stale = sum(1 for p in self.lending if not p.price.fresh)
            if self.lending and not self.loans_due:
                note = f" ({stale} market(s) skipped: stale price)" if stale else ""
                out.append(f"no unhealthy loans{note}")
            elif dry_run and self.refusal is None:
                out.append(f"dry run: {self.loans_due} loan(s) would be liquidated; nothing sent")
        if self.covers_perps:
            if not self.perps:
                out.append("no perp markets yet: no liquidatable positions")
            for market in self.perps:
                out += market.lines(dry_run)
            stale = sum(1 for p in self.perps if p.index.refusal is not None)
            if self.perps and not self.positions_due:
                note = f" ({stale} perp market(s) skipped: stale index)" if stale else ""
                out.append(f"no liquidatable positions{note}")
            elif dry_run:
                out.append(f"dry run: {self.positions_due} position(s) would be liquidated; "
                           "nothing sent")
        return out


def _numbers(client: Client, wanted: Sequence[int] | None,
             listing: Callable[..., list[int]]) -> list[int]:
    """Every market (None) or the `wanted` ones, each checked to exist."""
    if wanted is None:
        return listing(client)
    return [n for number in wanted for n in listing(client, number)]


def _lending_pass(client: Client, keeper: str, number: int,
                  max_repay: str | Decimal | None) -> LendingPass:
    book = pool_client.loans(client, number)
    cap = MAX_UINT256 if max_repay is None else book.asset.parse(max_repay, "max_repay")
    due = []
    for loan in book.liquidatable:
        repaid, seized, bad = predict(book, loan, cap)
        assert loan.health is not None
        due.append(LoanLiquidation(borrower=loan.borrower, debt=loan.debt,
                                   ltv=loan.health.ltv_percent(), repaid=repaid, seized=seized,
                                   bad_debt=bad))
    txs: list[Tx] = []
    if due:
        pool = client.chain.contract("LendingPool", book.address)
        # Interest accrues until each transaction is mined: one basis point of room.
        allowance = sum(d.repaid + d.debt // 10_000 + 1 for d in due)
        txs += markets.approval(client.erc20(book.asset.address), keeper, book.address,
                                    allowance, f"approve {book.asset.fmt(allowance)}")
        txs += [pool.liquidate.tx(d.borrower, cap, what=f"liquidate {d.borrower}") for d in due]
    return LendingPass(number=number, address=book.address, asset=book.asset,
                       collateral=book.collateral, price=book.price, open_loans=len(book.loans),
                       due=due, max_repay=cap, txs=txs)


def _lending_problems(client: Client, keeper: str, passes: Sequence[LendingPass]) -> list[str]:
    """May the keeper hold each collateral, and does it hold the loan asset every
    liquidation pulls?"""
    problems = []
    needed: dict[str, int] = defaultdict(int)
    assets: dict[str, Token] = {}
    for p in passes:
        if not p.due:
            continue
        share = client.chain.contract("GPUShareToken", p.collateral.address)
        code, message = markets.restriction(share, p.address, keeper, 0)
        if code:
            problems.append(f"market {p.number}: {keeper} may not hold {p.collateral.symbol} "
                            f"collateral (ERC-1404 code {code}): {message}")
        needed[p.asset.address] += sum(d.repaid for d in p.due)
        assets[p.asset.address] = p.asset
    for where, total in needed.items():
        asset = assets[where]
        balance = int(client.erc20(where).balanceOf(keeper))
        if balance < total:
            problems.append(f"{keeper} holds {asset.fmt(balance)}, the liquidations need "
                            f"{asset.fmt(total)}: get {asset.fmt(total - balance)} more (or "
                            "repay less per loan)")
    return problems


def _perp_pass(client: Client, number: int) -> PerpPass:
    view = perp_client.market(client, number)
    due: list[PerpLiquidation] = []
    opened = 0
    if view.index.refusal is None:
        for pos in perp_client.positions(client, number):
            if pos.size == 0:
                continue
            opened += 1
            if pos.liquidatable:
                due.append(PerpLiquidation(
                    account=pos.account, size=pos.size, equity=pos.equity,
                    maintenance=mirror.maintenance_margin(pos.size, view.index.price, view.params,
                                                          view.scale),
                    keeper_fee=mirror.keeper_fee(pos.size, view.index.price, view.params,
                                                 view.scale)))
    market = client.chain.contract("PerpMarket", view.address)
    return PerpPass(number=number, address=view.address, feed=view.feed, asset=view.asset,
                    index=view.index, open_positions=opened, due=due,
                    txs=[market.liquidate.tx(d.account, what=f"liquidate {d.account}")
                         for d in due])


def plan_pass(client: Client, keeper: str, pools: Sequence[int] | None = None,
              perps: Sequence[int] | None = None, *,
              max_repay: str | Decimal | None = None) -> KeeperPlan:
    """One keeper pass over lending markets `pools` and perp markets `perps`: None is
    every market of that factory, `[]` none (BadInput for an unknown number).
    `max_repay` caps each loan's repayment, in units of the market's loan asset as a
    person types them (`"1000"`; default the whole debt)."""
    who = address(keeper, "keeper")
    deployed = client.deployed
    notes = []
    covers_lending, covers_perps = pools != [], perps != []
    if covers_lending and pools is None and deployed.lending_pool_factory is None:
        notes.append("no LendingPoolFactory in the deployments file: lending skipped")
        covers_lending = False
    if covers_perps and perps is None and deployed.perp_market_factory is None:
        notes.append("no PerpMarketFactory in the deployments file: perps skipped")
        covers_perps = False
    lending = ([_lending_pass(client, who, n, max_repay)
                for n in _numbers(client, pools, pool_client.numbers)] if covers_lending else [])
    perpetual = ([_perp_pass(client, n) for n in _numbers(client, perps, perp_client.numbers)]
                 if covers_perps else [])
    problems = _lending_problems(client, who, [p for p in lending if p.price.fresh])
    return KeeperPlan(keeper=who, lending=lending, perps=perpetual,
                      refusal=Refused("keeper", "; ".join(problems)) if problems else None,
                      notes=notes, covers_lending=covers_lending, covers_perps=covers_perps)


class KeeperOutcome(BaseModel):
    """What a keeper pass did: its summary lines and the errors (a refused keeper, a
    liquidation the contract refused)."""

    model_config = _MODEL

    loans: int = 0
    positions: int = 0
    errors: list[str] = []


def _send(client: Client, sender: Any, tx: Tx, on_receipt: Callable[[Receipt], None],
          on_line: Callable[[str], None], subject: str) -> Receipt | None:
    try:
        receipt = client.chain.send(tx, sender)
    except Reverted as exc:
        on_line(f"  {subject}: liquidation refused by the contract: {exc.reason}")
        return None
    on_receipt(receipt)
    return receipt


def run(client: Client, sender: Any, plan: KeeperPlan, *,
        on_receipt: Callable[[Receipt], None] = lambda _r: None,
        on_line: Callable[[str], None] = lambda _s: None) -> KeeperOutcome:
    """Send a pass's liquidations (signed by `sender`), one line each through
    `on_line`, then a summary per side. A refused keeper sends no lending liquidation
    (its perp liquidations still go, they need nothing from it); a liquidation the
    contract refuses is reported and the others go on."""
    errors = []
    loans = positions = 0
    if plan.covers_lending and plan.loans_due:
        if plan.refusal is not None:
            errors.append(f"lending markets: {plan.refusal}")
        else:
            loans, failed = _run_lending(client, sender, plan, on_receipt, on_line)
            if failed:
                errors.append(f"lending markets: {failed} liquidation(s) refused (see above)")
    if plan.covers_perps and plan.positions_due:
        positions, failed = _run_perps(client, sender, plan, on_receipt, on_line)
        if failed:
            errors.append(f"perp markets: {failed} liquidation(s) refused (see above)")
    return KeeperOutcome(loans=loans, positions=positions, errors=errors)


def _summary(done: str, parts: list[str], stale: int, skipped: str) -> str:
    text = f"liquidated {done}" + (f" ({'; '.join(parts)})" if parts else "")
    return text + (f"; {stale} {skipped}" if stale else "")


def _run_lending(client: Client, sender: Any, plan: KeeperPlan,
                 on_receipt: Callable[[Receipt], None],
                 on_line: Callable[[str], None]) -> tuple[int, int]:
    done = failed = 0
    parts = []
    for market in plan.lending:
        if not market.due or not market.price.fresh:
            continue
        on_line(f"market {market.number}:")
        pool = client.chain.contract("LendingPool", market.address)
        for tx in market.txs:
            if tx.function == "approve":
                on_receipt(client.chain.send(tx, sender))
        totals = [0, 0, 0]
        for loan, tx in zip(market.due, [t for t in market.txs if t.function == "liquidate"],
                            strict=True):
            receipt = _send(client, sender, tx, on_receipt, on_line, loan.borrower)
            if receipt is None:
                failed += 1
                continue
            event = pool.events("Liquidated", receipt)[0]
            result = (int(event["repaid"]), int(event["collateral_seized"]),
                      int(event["bad_debt"]))
            on_line(market.line(loan, "repaid", *result))
            done += 1
            totals = [x + y for x, y in zip(totals, result, strict=True)]
        if any(totals):
            parts.append(f"market {market.number}: repaid {market.asset.fmt(totals[0])}, seized "
                         f"{market.collateral.fmt(totals[1])}, bad debt "
                         f"{market.asset.fmt(totals[2])}")
    stale = sum(1 for p in plan.lending if not p.price.fresh)
    on_line(_summary(f"{done} loan(s)", parts, stale, "market(s) skipped: stale price"))
    return done, failed


def _run_perps(client: Client, sender: Any, plan: KeeperPlan,
               on_receipt: Callable[[Receipt], None],
               on_line: Callable[[str], None]) -> tuple[int, int]:
    done = failed = 0
    parts = []
    for market in plan.perps:
        if not market.due or market.index.refusal is not None:
            continue
        on_line(f"perp market {market.number}:")
        contract = client.chain.contract("PerpMarket", market.address)
        fees = bad = 0
        money = market.asset.fmt
        for pos, tx in zip(market.due, market.txs, strict=True):
            receipt = _send(client, sender, tx, on_receipt, on_line, pos.account)
            if receipt is None:
                failed += 1
                continue
            event = contract.events("PositionLiquidated", receipt)[0]
            fee = int(event["keeper_fee"])
            debt = sum(int(e["amount"]) for e in contract.events("BadDebt", receipt))
            on_line(f"  {pos.account}: {perp_client.sized(int(event['size']))} closed at "
                    f"{perp_client.fmt_price(int(event['index_price']))}, equity "
                    f"{money(int(event['equity']))}: keeper fee {money(fee)}, bad debt "
                    f"{money(debt)}")
            for exhausted in contract.events("InsuranceExhausted", receipt):
                on_line(f"  insurance fund exhausted: deficit {money(int(exhausted['deficit']))} "
                        "recorded, new risk paused until `ape run perp fund-insurance` covers it")
            done += 1
            fees += fee
            bad += debt
        on_line(f"  perp market {market.number}: insurance fund after "
                f"{money(int(contract.insurance_fund()))}, deficit "
                f"{money(int(contract.deficit()))}")
        if fees or bad:
            parts.append(f"perp market {market.number}: keeper fees {money(fees)}, bad debt "
                         f"{money(bad)}")
    stale = sum(1 for p in plan.perps if p.index.refusal is not None)
    on_line(_summary(f"{done} position(s)", parts, stale, "perp market(s) skipped: stale index"))
    return done, failed
