"""Lending pools: markets and accounts as pydantic views, and what lenders, borrowers,
risk admins and guardians do as `Plan`s.

    view = pool.market(client, 1)                      # parameters, price, rates, totals
    me = pool.position(client, 1, who)                 # collateral, debt, LTV, max borrow
    plan = pool.plan_borrow(client, who, 1, view.asset.parse("5000", "amount"))
    book = pool.loans(client, 1)                       # every open loan, valued

Amounts are base units (`MarketView.asset.parse` / `.collateral.parse` turn what a
person typed into them); percentages are WAD fractions in the views. Health (LTV,
liquidatable, headroom) comes from `gpushares.lending`, the pool's own rounding: the
pool has no health view. Every plan checks what the pool would refuse, in the pool's
order of checks, and names the refusal with the pool's message.

What the perp, hedge and keeper modules share with this one (`Token`, reading accounts
from a contract's events, the ERC-1404 check, approvals) is in `markets`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from eth_utils import keccak
from pydantic import BaseModel, ConfigDict

from gpushares import lending, reasons
from gpushares.client.chain import Contract, Plan, Receipt, Refused, Reverted
from gpushares.client.context import Client
from gpushares.client.markets import (
    Token,
    accounts_in_events,
    action,
    approval,
    event_sum,
    headline,
    market_numbers,
    restriction,
    short_of,
    token,
)
from gpushares.client.units import (
    SHARE_DECIMALS,
    WAD,
    BadInput,
    address,
    fmt_units,
    parse_percent,
    percent,
    percent_to_bps,
    percent_to_wad,
)

MAX_UINT256 = 2**256 - 1
MAX_LLTV_PERCENT = Decimal(95)
MAX_RESERVE_FACTOR_PERCENT = Decimal(50)
MAX_RATE_PERCENT = Decimal(1_000)  # KinkedRateModel.MAX_RATE_PER_YEAR
YEAR = 365 * 86_400
POOL_ELIGIBILITY_YEARS = 100  # a pool is a contract: its registry record runs a century
KYC_MAX_VALID_DAYS = 3_650  # what `ape run kyc register --valid-days` accepts
MARKET_CREATOR_ROLE = keccak(text="MARKET_CREATOR_ROLE")
RISK_ADMIN_ROLE = keccak(text="RISK_ADMIN_ROLE")
GUARDIAN_ROLE = keccak(text="GUARDIAN_ROLE")
KYC_PROVIDER_ROLE = keccak(text="KYC_PROVIDER_ROLE")
STALE_NOTE = "STALE: borrowing, collateral withdrawals and liquidations paused"

_FROZEN = ConfigDict(frozen=True)


# ---------------------------------------------------------------------------------
# Views
# ---------------------------------------------------------------------------------


class PriceView(BaseModel):
    """The collateral price as the pool sees it: the feed's last answer, its age at the
    chain's time, and the checked price (None with the pool's reason for refusing it)."""

    model_config = _FROZEN

    answer: int
    age: int  # seconds; -1 before the feed has any data
    heartbeat: int
    decimals: int
    price: int | None
    refusal: str | None

    @property
    def fresh(self) -> bool:
        return self.price is not None

    @property
    def shown(self) -> int | None:
        """The price health is shown at: the checked one, else the last answer."""
        return self.price if self.price is not None else (self.answer if self.answer > 0 else None)

    def text(self, value: int) -> str:
        return f"{fmt_units(value, self.decimals)} USD per share"

    def line(self) -> str:
        if self.price is not None:
            return (f"price {self.text(self.price)}, updated {self.age}s ago "
                    f"(heartbeat {self.heartbeat}s)")
        if self.age < 0:
            return f"price: none published yet; {STALE_NOTE}"
        return (f"price {STALE_NOTE} ({self.refusal}); last {self.text(self.answer)} updated "
                f"{self.age}s ago, heartbeat {self.heartbeat}s")


class MarketView(BaseModel):
    """One lending market: what it lends against what, its risk parameters, price,
    rates and totals."""

    model_config = _FROZEN

    number: int
    address: str
    name: str
    symbol: str
    vault_decimals: int
    asset: Token
    collateral: Token
    income: Token
    spv_id: int
    feed: str
    feed_adapter: str
    rate_model: str
    lltv: int
    max_ltv: int
    liquidation_incentive: int
    reserve_factor_bps: int
    treasury: str
    paused: bool
    price: PriceView
    total_supplied: int
    reserves: int
    total_borrowed: int
    idle: int
    total_collateral: int
    utilisation: int
    borrow_apr: int
    supply_apr: int

    @property
    def params(self) -> lending.Market:
        return lending.Market(asset_decimals=self.asset.decimals,
                              feed_decimals=self.price.decimals, lltv=self.lltv,
                              max_ltv=self.max_ltv)

    def risk_line(self) -> str:
        state = "PAUSED (borrowing and collateral withdrawals stopped)" if self.paused else "open"
        return (f"market {self.number}: max LTV {percent(self.max_ltv)}, reserve factor "
                f"{self.reserve_factor_bps / 100:.2f}%, treasury {self.treasury}, {state}")

    def lines(self) -> list[str]:
        """The market as `ape run pool status` shows it (without its loans)."""
        incentive = Decimal(self.liquidation_incentive) / Decimal(WAD)
        paused = "YES (borrowing and collateral withdrawals stopped)" if self.paused else "no"
        a, c = self.asset, self.collateral
        return [
            f"market {self.number}: {self.name} ({self.symbol}) at {self.address}",
            f"  loan asset    {a.symbol} {a.address} ({a.decimals} decimals)",
            f"  collateral    {c.symbol} {c.address} (SPV {self.spv_id})",
            f"  price feed    {self.feed} adapter {self.feed_adapter}",
            f"  rate model    {self.rate_model}",
            f"  LLTV {percent(self.lltv)}, max LTV {percent(self.max_ltv)}, liquidation "
            f"incentive {incentive:.4f}, reserve factor {self.reserve_factor_bps / 100:.2f}%, "
            f"treasury {self.treasury}, paused: {paused}",
            f"  {self.price.line()}",
            f"  utilisation {percent(self.utilisation)}, borrow APR {percent(self.borrow_apr)}, "
            f"supply APR {percent(self.supply_apr)}",
            f"  total supplied {a.fmt(self.total_supplied)}, total borrowed "
            f"{a.fmt(self.total_borrowed)}, reserves {a.fmt(self.reserves)}, idle liquidity "
            f"{a.fmt(self.idle)}",
            f"  total collateral {c.fmt(self.total_collateral)}",
        ]


class Loan(BaseModel):
    """One open loan of a market, valued at its book's price."""

    model_config = _FROZEN

    borrower: str
    collateral: int
    debt: int
    scaled: int
    health: lending.Health | None


class LoanBook(BaseModel):
    """Every open loan of a market (from its events), valued at the checked price, or
    at the feed's last answer when that is stale (`price.fresh` False)."""

    model_config = _FROZEN

    number: int
    address: str
    asset: Token
    collateral: Token
    params: lending.Market
    liquidation_incentive: int
    price: PriceView
    loans: list[Loan]

    @property
    def liquidatable(self) -> list[Loan]:
        """The loans above the liquidation LTV at a fresh price (none when stale)."""
        if not self.price.fresh:
            return []
        return [loan for loan in self.loans if loan.health is not None and loan.health.liquidatable]

    def lines(self, near: int = 5 * WAD // 100) -> list[str]:
        """One line per loan; `near` (WAD) flags loans that close under the LLTV."""
        if not self.loans:
            return ["  loans: none"]
        stale = "" if self.price.fresh else " at the stale price"
        out = [f"  loans ({len(self.loans)}){stale}:"]
        for loan in self.loans:
            flag = ""
            if loan.health is not None and loan.health.ltv is not None:
                if loan.health.liquidatable:
                    flag = "  LIQUIDATABLE"
                elif loan.health.ltv >= self.params.lltv - near:
                    flag = "  near liquidation"
            ltv = loan.health.ltv_percent() if loan.health is not None else "?"
            out.append(f"    {loan.borrower}: collateral {self.collateral.fmt(loan.collateral)}, "
                       f"debt {self.asset.fmt(loan.debt)}, LTV {ltv}{flag}")
        return out


class PositionView(BaseModel):
    """One account in one market, both sides: what it borrows against (collateral,
    debt, health at the price, the most it can still borrow, the price that makes it
    liquidatable) and what it lends (vault shares, their value, what it can withdraw
    now), with its wallet."""

    model_config = _FROZEN

    market: int
    account: str
    asset: Token
    collateral_token: Token
    params: lending.Market
    collateral: int
    debt: int
    scaled: int
    price: int | None
    price_fresh: bool
    health: lending.Health | None
    health_factor: int | None  # WAD: value x LLTV / debt; below 1 the loan is liquidatable
    max_borrow: int | None  # None: no fresh price (borrowing waits for one)
    liquidation_price: int | None  # the price at or below which the loan is liquidatable
    vault_shares: int
    supplied_value: int
    withdrawable: int
    wallet_assets: int
    wallet_shares: int
    wallet_income: int  # the income token (the loan asset, usually)
    income_owed: int

    def describe(self) -> str:
        line = (f"{self.account}: collateral {self.collateral_token.fmt(self.collateral)}, debt "
                f"{self.asset.fmt(self.debt)}")
        if self.debt and self.health is not None:
            line += (f", LTV {self.health.ltv_percent()} (max {percent(self.params.max_ltv)}, "
                     f"liquidation above {percent(self.params.lltv)})")
        return line

    def lines(self) -> list[str]:
        """`describe()`, then headroom and the lending side when there is any."""
        out = [self.describe()]
        if self.collateral and self.health is not None and self.price is not None:
            fresh = "" if self.price_fresh else " (stale)"
            price = f"{fmt_units(self.price, self.params.feed_decimals)} USD per share"
            room = (f"borrow up to {self.asset.fmt(self.max_borrow)} more"
                    if self.max_borrow is not None else "borrowing waits for a fresh price")
            out.append(f"  collateral worth {self.asset.fmt(self.health.value)} at {price}"
                       f"{fresh}: {room}")
        if self.vault_shares:
            out.append(f"  supplied: vault shares worth {self.asset.fmt(self.supplied_value)} "
                       f"(withdrawable now {self.asset.fmt(self.withdrawable)})")
        return out


class Outcome(BaseModel):
    """What a market's events in some receipts did (the ones of one action)."""

    model_config = _FROZEN

    deposited: int = 0
    minted: int = 0
    withdrawn: int = 0
    collateral_in: int = 0
    collateral_out: int = 0
    borrowed: int = 0
    repaid: int = 0
    income_claimed: int = 0
    liquidations: list[tuple[str, int, int, int]] = []  # (borrower, repaid, seized, bad debt)


# ---------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Pool:
    """A market's contracts and fixed parameters, as the plans need them."""

    number: int
    pool: Contract
    asset_contract: Contract
    asset: Token
    share_token: Contract
    collateral: Token
    feed: Contract
    params: lending.Market

    def price(self) -> PriceView:
        try:
            _round, answer, _started, updated, _answered = self.feed.latestRoundData()
            latest: tuple[int, int] | Reverted = (int(answer), int(updated))
        except Reverted as exc:  # no data yet: the pool refuses with the hub's message
            latest = exc
        return price_view_from(int(self.feed.heartbeat()), self.params.feed_decimals, latest,
                               lambda: int(self.pool.price()), self.pool.chain.now())

    def position(self, who: str) -> tuple[int, int, int]:
        collateral, debt, scaled = self.pool.position(who)
        return int(collateral), int(debt), int(scaled)

    def borrowers(self) -> list[str]:
        return accounts_in_events(self.pool, {"CollateralSupplied": "borrower",
                                              "Borrowed": "borrower"})


def price_view_from(heartbeat: int, decimals: int, latest: tuple[int, int] | Reverted,
                    checked: Callable[[], int], now: int) -> PriceView:
    """The price as the pool sees it at chain time `now`, from the feed's latest
    (answer, updatedAt) or its revert, and `checked`, the pool's `price()` (called only
    when the answer passes the pool's checks; it raises `Reverted` with the pool's
    message). Shared by the readers here and the app's lens."""
    if isinstance(latest, Reverted):
        return PriceView(answer=0, age=-1, heartbeat=heartbeat, decimals=decimals,
                         price=None, refusal=latest.reason or "no collateral price yet")
    answer, updated = latest
    age = now - updated
    refusal = None
    if answer <= 0:
        refusal = reasons.POOL_COLLATERAL_PRICE_NOT_POSITIVE
    elif age > heartbeat or age < 0:
        refusal = reasons.POOL_COLLATERAL_PRICE_STALE_OLDER
    price = None
    if refusal is None:
        try:
            price = checked()
        except Reverted as exc:  # stale in the block the call ran in
            refusal = exc.reason
    return PriceView(answer=max(answer, 0), age=age, heartbeat=heartbeat,
                     decimals=decimals, price=price, refusal=refusal)


def _load(client: Client, number: int) -> _Pool:
    factory = client.lending_factory()
    market_numbers(factory, number, label="market", create="pool")
    chain = client.chain
    pool = chain.contract("LendingPool", factory.market_at(number))
    asset_contract = client.erc20(pool.asset())
    asset = Token(address=asset_contract.address, symbol=str(asset_contract.symbol()),
                  decimals=int(asset_contract.decimals()))
    share_token = chain.contract("GPUShareToken", pool.collateral_token())
    collateral = Token(address=share_token.address, symbol=str(share_token.symbol()),
                       decimals=SHARE_DECIMALS)
    feed = chain.contract("FeedAdapter", pool.price_feed())
    params = lending.Market(asset_decimals=asset.decimals, feed_decimals=int(feed.decimals()),
                            lltv=int(pool.lltv()), max_ltv=int(pool.max_ltv()))
    return _Pool(number, pool, asset_contract, asset, share_token, collateral, feed, params)


def factory_lines(client: Client) -> list[str]:
    """The lending factory and how many markets it has."""
    return headline(client.lending_factory(), "LendingPoolFactory", "pool")


def numbers(client: Client, number: int | None = None) -> list[int]:
    """`[number]` if the lending factory has that market (BadInput otherwise), or every
    market's number."""
    return market_numbers(client.lending_factory(), number, label="market", create="pool")


def _feed_name(feed: Contract) -> str:
    from oracle.reports import feed_name

    try:
        return feed_name("0x" + bytes(feed.FEED_ID()).hex())
    except (Reverted, ValueError):
        return "?"


def market(client: Client, number: int) -> MarketView:
    """Lending market `number` (1, 2, ... in creation order)."""
    m = _load(client, number)
    pool = m.pool
    model = client.chain.contract("KinkedRateModel", pool.rate_model())
    supplied, reserves, debt, idle = (int(x) for x in pool.market())
    return market_from(
        number=number, address=pool.address, name=str(pool.name()),
        symbol=str(pool.symbol()),
        vault_decimals=int(pool.decimals()), asset=m.asset, collateral=m.collateral,
        income=token(client, pool.income_token()),
        spv_id=int(client.spv_factory().spv_id_of_token(m.share_token.address)),
        feed=_feed_name(m.feed), feed_adapter=m.feed.address, rate_model=model.address,
        lltv=m.params.lltv, max_ltv=m.params.max_ltv,
        liquidation_incentive=int(pool.liquidation_incentive()),
        reserve_factor_bps=int(pool.reserve_factor_bps()),
        treasury=str(pool.treasury()), paused=bool(pool.paused()), price=m.price(),
        total_supplied=int(pool.totalAssets()), reserves=reserves, total_borrowed=debt,
        idle=idle, total_collateral=int(pool.total_collateral()),
        utilisation=int(model.utilisation(supplied, debt)),
        borrow_apr=int(model.borrow_rate_per_year(supplied, debt)))


def market_from(**fields: Any) -> MarketView:
    """A market's model from its raw fields (every `MarketView` field but `supply_apr`,
    derived here); shared by `market` and the app's lens."""
    util, apr, bps = fields["utilisation"], fields["borrow_apr"], fields["reserve_factor_bps"]
    return MarketView(**fields, supply_apr=apr * util // WAD * (10_000 - bps) // 10_000)


def _book(m: _Pool) -> LoanBook:
    price = m.price()
    shown = price.shown
    loans = []
    for who in m.borrowers():
        collateral, debt, scaled = m.position(who)
        if collateral == 0 and debt == 0:
            continue
        health = lending.health(m.params, collateral, debt, shown) if shown is not None else None
        loans.append(Loan(borrower=who, collateral=collateral, debt=debt, scaled=scaled,
                          health=health))
    return LoanBook(number=m.number, address=m.pool.address, asset=m.asset,
                    collateral=m.collateral, params=m.params,
                    liquidation_incentive=int(m.pool.liquidation_incentive()), price=price,
                    loans=loans)


def loans(client: Client, number: int) -> LoanBook:
    """Every open loan of market `number`: whoever ever posted collateral or borrowed
    (its events since its creation) and still has collateral or debt."""
    return _book(_load(client, number))


def _max_borrow(m: _Pool, collateral: int, debt: int, scaled: int, price: int) -> int:
    return lending.max_borrow(m.params, collateral, debt, scaled, price,
                              int(m.pool.borrow_index()))


def position(client: Client, number: int, who: str) -> PositionView:
    """`who`'s position in market `number` (both sides, and the wallet)."""
    account = address(who, "account")
    m = _load(client, number)
    return _position(m, account)


def _position(m: _Pool, account: str) -> PositionView:
    pool = m.pool
    collateral, debt, scaled = m.position(account)
    price = m.price()
    vault = int(pool.balanceOf(account))
    return position_from(
        market=m.number, account=account, asset=m.asset, collateral_token=m.collateral,
        params=m.params, collateral=collateral, debt=debt, scaled=scaled, price=price,
        borrow_index=int(pool.borrow_index()) if price.price is not None else 0,
        vault_shares=vault,
        supplied_value=int(pool.convertToAssets(vault)) if vault else 0,
        withdrawable=int(pool.maxWithdraw(account)) if vault else 0,
        wallet_assets=int(m.asset_contract.balanceOf(account)),
        wallet_shares=int(m.share_token.balanceOf(account)),
        wallet_income=int(m.pool.chain.contract("MockStablecoin", pool.income_token())
                          .balanceOf(account)),
        income_owed=int(pool.income_owed(account)),
    )


def position_from(*, market: int, account: str, asset: Token, collateral_token: Token,
                  params: lending.Market, collateral: int, debt: int, scaled: int,
                  price: PriceView, borrow_index: int, **rest: Any) -> PositionView:
    """An account's model from its raw position, the market's price and borrow index,
    and the lending side and wallet (`rest`: the remaining `PositionView` fields); health,
    health factor, max borrow and liquidation price derived here (shared by `position`
    and the app's lens)."""
    shown = price.shown
    health = lending.health(params, collateral, debt, shown) if shown is not None else None
    factor = liquidation = room = None
    if health is not None and debt:
        factor = health.value * params.lltv // debt
    if shown is not None and debt and collateral:
        liquidation = lending.price_for_ltv(params, collateral, debt, params.lltv)
    if price.price is not None:
        room = lending.max_borrow(params, collateral, debt, scaled, price.price, borrow_index)
    return PositionView(
        market=market, account=account, asset=asset, collateral_token=collateral_token,
        params=params, collateral=collateral, debt=debt, scaled=scaled, price=shown,
        price_fresh=price.fresh, health=health, health_factor=factor, max_borrow=room,
        liquidation_price=liquidation, **rest)


def outcome(client: Client, number: int, receipts: Sequence[Receipt]) -> Outcome:
    """What market `number`'s events in `receipts` say was done."""
    pool = _load(client, number).pool
    logs = [log for receipt in receipts for log in receipt.logs]
    fields = {"deposited": ("Deposit", "assets"), "minted": ("Deposit", "shares"),
              "withdrawn": ("Withdraw", "assets"),
              "collateral_in": ("CollateralSupplied", "amount"),
              "collateral_out": ("CollateralWithdrawn", "amount"),
              "borrowed": ("Borrowed", "assets"), "repaid": ("Repaid", "assets"),
              "income_claimed": ("CollateralIncomeClaimed", "amount")}
    total = {key: event_sum(pool, event, field, logs) for key, (event, field) in fields.items()}
    done = [(e["borrower"], int(e["repaid"]), int(e["collateral_seized"]), int(e["bad_debt"]))
            for e in pool.events("Liquidated", logs)]
    return Outcome(liquidations=done, **total)


# ---------------------------------------------------------------------------------
# Lenders
# ---------------------------------------------------------------------------------


def plan_supply(client: Client, lender: str, number: int, amount: int) -> Plan:
    """Supply `amount` of the loan asset for vault shares (ERC-4626 deposit; works
    paused or stale)."""
    who = address(lender, "lender")
    m = _load(client, number)
    units = _positive(amount, "amount")
    money = m.asset.fmt(units)
    problems = [p for p in [short_of(who, m.asset, int(m.asset_contract.balanceOf(who)), units,
                                     "to supply")] if p]
    if int(m.pool.previewDeposit(units)) == 0:
        problems.append(f"{reasons.POOL_DEPOSIT_MINTS_ZERO_VAULT}: supply more than {money}")
    txs = [*approval(m.asset_contract, who, m.pool.address, units, f"approve {money}"),
           m.pool.deposit.tx(units, who, what=f"supply {money} to market {number}")]
    return action("supply", txs, problems)


def plan_withdraw(client: Client, lender: str, number: int, amount: int | None = None) -> Plan:
    """Withdraw `amount` of the loan asset, or redeem every vault share (None). Needs
    idle liquidity: what is lent out comes back as loans are repaid."""
    who = address(lender, "lender")
    m = _load(client, number)
    pool = m.pool
    shares = int(pool.balanceOf(who))
    if shares == 0:
        raise Refused("withdrawal", f"{who} has supplied nothing to market {number}")
    idle = int(pool.market()[3])
    most = int(pool.maxWithdraw(who))
    claim = int(pool.convertToAssets(shares))
    problems = []
    if amount is None:
        worth = int(pool.previewRedeem(shares))
        if int(pool.maxRedeem(who)) < shares:
            problems.append(
                f"{reasons.POOL_NOT_ENOUGH_IDLE_LIQUIDITY}: your {m.asset.fmt(worth)} is not all "
                f"idle: the pool holds {m.asset.fmt(idle)} idle (the rest is lent out); "
                f"withdraw an amount up to {m.asset.fmt(most)} or wait for repayments")
        tx = pool.redeem.tx(shares, who, who,
                            what=f"redeem all vault shares of market {number}")
        return action("withdrawal", [tx], problems)
    units = _positive(amount, "amount")
    if units > idle:
        problems.append(f"{reasons.POOL_NOT_ENOUGH_IDLE_LIQUIDITY} (idle liquidity "
                        f"{m.asset.fmt(idle)}; at most {m.asset.fmt(most)} now)")
    elif units > claim:
        problems.append(f"at most {m.asset.fmt(most)} can be withdrawn now (your claim "
                        f"{m.asset.fmt(claim)}, idle liquidity {m.asset.fmt(idle)})")
    tx = pool.withdraw.tx(units, who, who,
                          what=f"withdraw {m.asset.fmt(units)} from market {number}")
    return action("withdrawal", [tx], problems)


# ---------------------------------------------------------------------------------
# Borrowers
# ---------------------------------------------------------------------------------


def _positive(amount: int, what: str) -> int:
    if not isinstance(amount, int) or amount <= 0:
        raise BadInput(f"{what}: must be a positive amount (base units), got {amount!r}")
    return amount


def plan_deposit_collateral(client: Client, borrower: str, number: int, shares: int, *,
                            on_behalf: str | None = None) -> Plan:
    """Post `shares` (base units) of `borrower`'s GPU shares as collateral of
    `on_behalf`'s position (default the borrower's own): a gated transfer into the pool,
    so the share token's transfer rules apply (they keep earning income for the
    position's holder). For another wallet it is decided as a transfer of `shares` to
    it. Works paused or stale."""
    who = address(borrower, "borrower")
    beneficiary = address(on_behalf, "on_behalf") if on_behalf is not None else who
    m = _load(client, number)
    units = _positive(shares, "shares")
    text = m.collateral.fmt(units)
    problems = []
    # The pool's order: for another wallet, the transfer to it; then the move in.
    if beneficiary != who:
        code, message = restriction(m.share_token, who, beneficiary, units)
        if code:
            problems.append(f"{message} (ERC-1404 code {code}: supplying for {beneficiary} is "
                            "a transfer to it)")
    code, message = restriction(m.share_token, who, m.pool.address, units)
    if code:
        problems.append(f"{message} (ERC-1404 code {code}: the share token refuses the move "
                        "into the pool)")
    held = int(m.share_token.balanceOf(who))
    if held < units:
        problems.append(f"{who} holds {m.collateral.fmt(held)}, less than {text}")
    notes = []
    price = m.price().price
    if price is not None:
        collateral, debt, scaled = m.position(beneficiary)
        room = _max_borrow(m, collateral + units, debt, scaled, price)
        value = lending.collateral_value(m.params, collateral + units, price)
        notes.append(f"collateral worth {m.asset.fmt(value)} at "
                     f"{fmt_units(price, m.params.feed_decimals)} USD per share: borrow up to "
                     f"{m.asset.fmt(room)} more")
    txs = [*approval(m.share_token, who, m.pool.address, units, f"approve {text}"),
           m.pool.supply_collateral.tx(
               units, beneficiary,
               what=f"deposit {text} as collateral in market {number}"
                    + (f" for {beneficiary}" if beneficiary != who else ""))]
    return action("collateral deposit", txs, problems, notes)


def plan_withdraw_collateral(client: Client, borrower: str, number: int,
                             shares: int | None = None, *, receiver: str | None = None) -> Plan:
    """Take `shares` of collateral back (None: all of it) to `receiver` (default the
    borrower). With debt the loan must stay within the max LTV at a fresh price; the
    receiver must be allowed to hold the shares."""
    who = address(borrower, "borrower")
    to = address(receiver, "receiver") if receiver is not None else who
    m = _load(client, number)
    collateral, debt, _ = m.position(who)
    if collateral == 0:
        raise Refused("collateral withdrawal", f"{who} has no collateral in market {number}")
    units = collateral if shares is None else _positive(shares, "shares")
    problems = []
    # The pool's order: the move (the token's rules), pause, amount, then the LTV. To
    # another wallet the move is a transfer of the amount from the borrower, whose
    # holding counts its pooled collateral (a partial freeze covers pooled shares).
    if to == who:
        code, message = restriction(m.share_token, who, to, 0)
    else:
        code = int(m.share_token.custody_restriction(who, to, units, collateral))
        message = str(m.share_token.messageForTransferRestriction(code)) if code else ""
    if code:
        problems.append(f"{message} (ERC-1404 code {code}: the share token refuses the move "
                        f"to {to})")
    if m.pool.paused():
        problems.append(reasons.POOL_PAUSED_GUARDIAN_REPAY_STILL)
    if units > collateral:
        problems.append(f"{reasons.POOL_WITHDRAWAL_EXCEEDS_COLLATERAL} (you have "
                        f"{m.collateral.fmt(collateral)})")
    elif debt:
        price = m.price()
        if price.price is None:
            problems.append(f"{price.refusal}: with debt, collateral waits for a fresh price "
                            "(or repay first)")
        elif not lending.within(m.params, debt, collateral - units, price.price,
                                m.params.max_ltv):
            after = lending.health(m.params, collateral - units, debt, price.price)
            problems.append(f"{reasons.POOL_WITHDRAWAL_PUT_LOAN_ABOVE} (LTV {after.ltv_percent()}"
                            f", max {percent(m.params.max_ltv)}): repay first or take back less")
    tx = m.pool.withdraw_collateral.tx(
        units, to, what=f"withdraw {m.collateral.fmt(units)} of collateral from market {number}")
    return action("collateral withdrawal", [tx], problems)


def _holder_problem(m: _Pool, client: Client, who: str, consequence: str) -> str | None:
    """Why the pool refuses `who` as a position's holder (borrowing, collateral income):
    the registry's receiver check, the message the pool reverts with; None if eligible."""
    code = int(client.registry().check_receiver(who))
    if not code:
        return None
    return (f"{m.share_token.messageForTransferRestriction(code)} (ERC-1404 code {code}: only "
            f"a holder the compliance rules allow may benefit from a position; {consequence})")


def plan_borrow(client: Client, borrower: str, number: int, amount: int, *,
                receiver: str | None = None) -> Plan:
    """Borrow `amount` against the posted collateral, up to the max LTV at a fresh
    price; the notes give the LTV after."""
    who = address(borrower, "borrower")
    to = address(receiver, "receiver") if receiver is not None else who
    m = _load(client, number)
    units = _positive(amount, "amount")
    money = m.asset.fmt(units)
    collateral, debt, scaled = m.position(who)
    problems, notes = [], []
    # The pool's order: pause, the borrower's record, price, max LTV, liquidity.
    if m.pool.paused():
        problems.append(reasons.POOL_PAUSED_GUARDIAN_REPAY_STILL)
    holder = _holder_problem(m, client, who, "borrows nothing")
    if holder:
        problems.append(holder)
    # Frozen shares back no new loan: only what a freeze of wallet and position leaves.
    frozen = int(m.share_token.getFrozenTokens(who))
    if frozen:
        holding = int(m.share_token.balanceOf(who)) + collateral
        counted = min(collateral, holding - min(frozen, holding))
        if counted < collateral:
            notes.append(f"{m.collateral.fmt(collateral - counted)} of the collateral is frozen "
                         "by the SPV's agent and backs no new loan")
        collateral = counted
    price = m.price()
    if price.price is None:
        problems.append(f"{price.refusal}; borrowing waits for the oracle to publish a fresh NAV")
    else:
        after = lending.debt_after_borrow(scaled, int(m.pool.borrow_index()), units)
        health = lending.health(m.params, collateral, after, price.price)
        if not health.within_max_ltv:
            room = _max_borrow(m, collateral, debt, scaled, price.price)
            problems.append(
                f"borrowing {money} would put the loan at LTV {health.ltv_percent()}, above the "
                f"max LTV {percent(m.params.max_ltv)} (collateral "
                f"{m.collateral.fmt(collateral)} worth {m.asset.fmt(health.value)} at "
                f"{price.text(price.price)}): borrow at most {m.asset.fmt(room)} or add "
                f"collateral ({reasons.POOL_BORROW_PUT_LOAN_ABOVE})")
        notes.append(f"LTV after the borrow {health.ltv_percent()} (max "
                     f"{percent(m.params.max_ltv)}, liquidation above {percent(m.params.lltv)})")
    idle = int(m.pool.market()[3])
    if units > idle:
        problems.append(f"{reasons.POOL_NOT_ENOUGH_LIQUIDITY_POOL} (idle liquidity "
                        f"{m.asset.fmt(idle)})")
    tx = m.pool.borrow.tx(units, to, what=f"borrow {money} from market {number}")
    return action("borrow", [tx], problems, notes)


def plan_repay(client: Client, payer: str, number: int, amount: int | None = None, *,
               borrower: str | None = None) -> Plan:
    """Repay `amount` of `borrower`'s debt (default the payer's own), or all of it
    (None: the pool takes exactly the debt, interest to the block included). Always
    works, paused or stale."""
    who = address(payer, "payer")
    debtor = address(borrower, "borrower") if borrower is not None else who
    m = _load(client, number)
    _, debt, _ = m.position(debtor)
    if debt == 0:
        raise Refused("repay", f"{debtor} has no debt in market {number} "
                               f"({reasons.POOL_NO_DEBT_REPAY})")
    # Interest accrues until the transaction is mined: allow one basis point more.
    margin = debt // 10_000 + 1
    balance = int(m.asset_contract.balanceOf(who))
    notes: list[str] = []
    if amount is None:
        send, what, pull = MAX_UINT256, f"repay all ({m.asset.fmt(debt)} and interest)", debt
        allowance = min(debt + margin, max(balance, debt))
    else:
        send = _positive(amount, "amount")
        what, pull, allowance = f"repay {m.asset.fmt(send)}", min(send, debt), send
        if send >= debt:
            notes.append(f"{m.asset.fmt(send)} covers the debt: the pool takes only the debt")
            allowance = min(send, debt + margin)
    problem = short_of(who, m.asset, balance, pull, "to repay")
    txs = [*approval(m.asset_contract, who, m.pool.address, allowance,
                     f"approve {m.asset.fmt(allowance)}"),
           m.pool.repay.tx(send, debtor, what=f"{what} in market {number}")]
    return action("repay", txs, [problem] if problem else [], notes)


def plan_claim_income(client: Client, borrower: str, number: int) -> Plan:
    """Claim the rental income `borrower`'s collateral earned while in the pool."""
    who = address(borrower, "borrower")
    m = _load(client, number)
    income = token(client, m.pool.income_token())
    owed = int(m.pool.income_owed(who))
    problems = []
    holder = _holder_problem(m, client, who, f"{income.fmt(owed)} stays owed to it")
    if holder:
        problems.append(holder)
    if owed == 0:
        problems.append(f"{reasons.POOL_NO_COLLATERAL_INCOME_CLAIM} in market {number} (income "
                        "arrives when the SPV distributes: `ape run spv distribute`)")
    tx = m.pool.claim_income.tx(what=f"claim {income.fmt(owed)} of collateral income")
    return action("claim", [tx], problems)


# ---------------------------------------------------------------------------------
# Risk admin and guardian
# ---------------------------------------------------------------------------------


def plan_set(client: Client, admin: str, number: int, *, max_ltv: str | Decimal | None = None,
             reserve_factor: str | Decimal | None = None, treasury: str | None = None,
             paused: bool | None = None) -> Plan:
    """Change a market's risk parameters (percentages; the others are kept; RISK_ADMIN)
    and/or pause or unpause borrowing and collateral withdrawals (GUARDIAN)."""
    who = address(admin, "admin")
    if max_ltv is None and reserve_factor is None and treasury is None and paused is None:
        raise BadInput("nothing to change: give max_ltv, reserve_factor, treasury or paused")
    m = _load(client, number)
    pool = m.pool
    txs, problems = [], []
    if max_ltv is not None or reserve_factor is not None or treasury is not None:
        new_max = (percent_to_wad(parse_percent(max_ltv, "max_ltv"), "max_ltv")
                   if max_ltv is not None else m.params.max_ltv)
        new_bps = (percent_to_bps(parse_percent(reserve_factor, "reserve_factor",
                                                allow_zero=True), "reserve_factor")
                   if reserve_factor is not None else int(pool.reserve_factor_bps()))
        new_treasury = (address(treasury, "treasury") if treasury is not None
                        else str(pool.treasury()))
        if new_max >= m.params.lltv:
            raise BadInput(f"max_ltv: {max_ltv} % must be below the market's LLTV "
                           f"{percent(m.params.lltv)} (fixed at creation)")
        if new_bps > 5_000:
            raise BadInput(f"reserve_factor: {reserve_factor} % is above 50 %")
        if not pool.hasRole(RISK_ADMIN_ROLE, who):
            problems.append(f"{reasons.ACCESS_CONTROL_MISSING_ROLE} ({who} lacks RISK_ADMIN_ROLE "
                            f"on market {number})")
        txs.append(pool.set_risk_parameters.tx(
            new_max, new_bps, new_treasury,
            what=f"risk parameters of market {number}: max LTV {percent(new_max)}, reserve "
                 f"factor {new_bps / 100:.2f}%, treasury {new_treasury}"))
    if paused is not None:
        if bool(pool.paused()) == paused:
            problems.append(f"{reasons.POOL_PAUSE_UNCHANGED} (market {number} is already "
                            f"{'paused' if paused else 'not paused'})")
        if not pool.hasRole(GUARDIAN_ROLE, who):
            problems.append(f"{reasons.ACCESS_CONTROL_MISSING_ROLE} ({who} lacks GUARDIAN_ROLE on "
                            f"market {number})")
        txs.append(pool.set_paused.tx(paused, what=f"{'pause' if paused else 'unpause'} market "
                                                   f"{number}"))
    return action("parameter change", txs, problems)


def plan_liquidate(client: Client, keeper: str, number: int, borrower: str,
                   max_repay: int = MAX_UINT256) -> Plan:
    """Liquidate `borrower`'s loan (up to `max_repay` of the loan asset, default all):
    the keeper repays and receives collateral worth the repayment times the incentive.
    The approval covers the debt plus a basis point of interest."""
    who, debtor = address(keeper, "keeper"), address(borrower, "borrower")
    m = _load(client, number)
    collateral, debt, _ = m.position(debtor)
    problems = []
    code, message = restriction(m.share_token, m.pool.address, who, 0)
    if code:
        problems.append(f"{message} (ERC-1404 code {code}: {who} may not hold "
                        f"{m.collateral.symbol} collateral)")
    if debt == 0:
        problems.append(reasons.POOL_NO_DEBT_REPAY)
    price = m.price()
    if debt and price.price is None:
        problems.append(str(price.refusal))
    elif debt and price.price is not None and lending.within(m.params, debt, collateral,
                                                             price.price, m.params.lltv):
        problems.append(reasons.POOL_LOAN_HEALTHY_UNDER_LIQUIDATION)
    pull = min(max_repay, debt + debt // 10_000 + 1)
    txs = [*approval(m.asset_contract, who, m.pool.address, pull,
                     f"approve {m.asset.fmt(pull)}"),
           m.pool.liquidate.tx(debtor, max_repay, what=f"liquidate {debtor}")]
    return action("liquidation", txs, problems)


# ---------------------------------------------------------------------------------
# Creating a market
# ---------------------------------------------------------------------------------


class MarketTerms(BaseModel):
    """A new market's terms, checked: what it lends, against which SPV's shares,
    priced by which hub feed, with which risk parameters and rate model."""

    model_config = _FROZEN

    spv_id: int
    collateral: Token
    asset: Token
    feed: str
    feed_adapter: str
    lltv: int
    max_ltv: int
    reserve_factor_bps: int
    treasury: str
    rates: tuple[int, int, int, int]  # base, slope1, slope2, kink (WAD)
    name: str
    symbol: str
    jurisdiction: int
    jurisdiction_code: str

    def rate_text(self) -> str:
        base, slope1, slope2, kink = (percent(r) for r in self.rates)
        return f"base {base}, slope1 {slope1}, slope2 {slope2}, kink {kink}"


def market_terms(client: Client, creator: str, spv_id: int, *, feed: str | None = None,
                 asset: str | None = None, lltv: str | Decimal = "80",
                 max_ltv: str | Decimal = "70", reserve_factor: str | Decimal = "10",
                 treasury: str | None = None, base_rate: str | Decimal = "2",
                 slope1: str | Decimal = "10", slope2: str | Decimal = "300",
                 kink: str | Decimal = "80", name: str | None = None, symbol: str | None = None,
                 jurisdiction: str = "840") -> MarketTerms:
    """The terms of a new market from what a person typed (percentages in percent,
    annual rates); BadInput naming the field for anything the factory or the rate
    model would refuse. Defaults: the deployment's stablecoin, the NAV feed of the
    SPV's token (`NAV/<symbol>/USD`), the creator as treasury, the US."""
    from jurisdictions.rules import RulesError, load_rules
    from oracle.reports import feed_id

    who = address(creator, "creator")
    share = client.token(spv_id)
    collateral = Token(address=share.address, symbol=str(share.symbol()), decimals=SHARE_DECIMALS)
    loan_asset = address(asset, "asset") if asset else client.deployed.income_token
    if not client.chain.code(loan_asset):
        raise BadInput(f"asset: {loan_asset} has no contract on this chain")
    lltv_pct = parse_percent(lltv, "lltv")
    max_pct = parse_percent(max_ltv, "max_ltv")
    reserve_pct = parse_percent(reserve_factor, "reserve_factor", allow_zero=True)
    if lltv_pct > MAX_LLTV_PERCENT:
        raise BadInput(f"lltv: {lltv} % is above the factory's 95 % limit")
    if max_pct >= lltv_pct:
        raise BadInput(f"max_ltv: {max_ltv} % must be below the LLTV {lltv} %")
    if reserve_pct > MAX_RESERVE_FACTOR_PERCENT:
        raise BadInput(f"reserve_factor: {reserve_factor} % is above 50 %")
    named = (("base_rate", base_rate), ("slope1", slope1), ("slope2", slope2))
    rates = [parse_percent(v, w, allow_zero=True, cap=MAX_RATE_PERCENT) for w, v in named]
    if sum(rates) > MAX_RATE_PERCENT:
        raise BadInput(f"base_rate + slope1 + slope2 = {sum(rates)} % is above the rate model's "
                       "1,000 % a year")
    kink_pct = parse_percent(kink, "kink")
    if kink_pct >= 100:
        raise BadInput("kink: must be strictly between 0 and 100 %")
    asset_token = token(client, loan_asset)
    vault_name = name if name is not None else f"GPU Lend {collateral.symbol}/{asset_token.symbol}"
    vault_symbol = symbol if symbol is not None else f"l{collateral.symbol}"[:5]
    if not 0 < len(vault_name) <= 25:
        raise BadInput(f"name: vault name {vault_name!r} must be 1 to 25 characters")
    if not 0 < len(vault_symbol) <= 5:
        raise BadInput(f"symbol: vault symbol {vault_symbol!r} must be 1 to 5 characters")
    try:
        rule = load_rules().resolve(jurisdiction)
    except RulesError as exc:
        raise BadInput(f"jurisdiction: {exc}") from exc
    feed_name = feed or f"NAV/{collateral.symbol}/USD"
    try:
        fid = bytes.fromhex(feed_id(feed_name)[2:])
    except ValueError as exc:
        raise BadInput(f"feed: {exc}") from exc
    if not client.hub().feed(fid).exists:
        raise BadInput(f"feed: the oracle hub has no feed {feed_name}: the hub admin adds it with "
                       f"`ape run oracle add-feed --name {feed_name} ...` (or name another feed)")
    return MarketTerms(
        spv_id=spv_id, collateral=collateral, asset=asset_token, feed=feed_name,
        feed_adapter=str(client.hub().feed_adapter(fid)),
        lltv=percent_to_wad(lltv_pct, "lltv"), max_ltv=percent_to_wad(max_pct, "max_ltv"),
        reserve_factor_bps=percent_to_bps(reserve_pct, "reserve_factor"),
        treasury=address(treasury, "treasury") if treasury else who,
        rates=(*(percent_to_wad(r, w) for r, (w, _) in zip(rates, named, strict=True)),
               percent_to_wad(kink_pct, "kink")),
        name=vault_name, symbol=vault_symbol, jurisdiction=rule.numeric,
        jurisdiction_code=rule.alpha2,
    )


def plan_create(client: Client, creator: str, terms: MarketTerms, rate_model: str) -> Plan:
    """`create_market` with a deployed `KinkedRateModel` at `rate_model`; the notes say
    what the creator should know (a disabled feed, no price yet, a similar market)."""
    from oracle.reports import feed_id

    who = address(creator, "creator")
    model = address(rate_model, "rate_model")
    factory = client.lending_factory()
    problems, notes = _creator_problems(factory, who), []
    fid = bytes.fromhex(feed_id(terms.feed)[2:])
    hub = client.hub()
    if not hub.feed(fid).enabled:
        notes.append(f"warning: feed {terms.feed} is disabled on the hub")
    if int(hub.latest_value(fid)[2]) == 0:
        notes.append(f"note: feed {terms.feed} has no value yet; borrowing waits for one")
    for number in range(1, int(factory.market_count()) + 1):
        other = client.chain.contract("LendingPool", factory.market_at(number))
        if (str(other.asset()), str(other.collateral_token()), str(other.price_feed()),
                int(other.lltv())) == (terms.asset.address, terms.collateral.address,
                                       terms.feed_adapter, terms.lltv):
            notes.append(f"note: market {number} ({other.address}) already lends "
                         f"{terms.asset.symbol} against {terms.collateral.symbol} on this feed "
                         f"at LLTV {percent(terms.lltv)}; this one has its own rate model")
    tx = factory.create_market.tx(
        terms.asset.address, terms.collateral.address, terms.feed_adapter, model, terms.lltv,
        terms.max_ltv, terms.reserve_factor_bps, terms.treasury, terms.name, terms.symbol,
        what=f"create market {terms.collateral.symbol}/{terms.asset.symbol}")
    return action("market creation", [tx], problems, notes)


def _creator_problems(factory: Contract, who: str) -> list[str]:
    if factory.hasRole(MARKET_CREATOR_ROLE, who):
        return []
    return [f"{reasons.ACCESS_CONTROL_MISSING_ROLE} ({who} lacks the lending factory's "
            "MARKET_CREATOR_ROLE; ask the factory admin, the deployer, to grant it)"]


def plan_register_pool(client: Client, kyc: str, pool: str, terms: MarketTerms) -> Plan:
    """Register a new pool in the compliance registry as an eligible (accredited)
    holder of the shares for a century (it holds the collateral) and as a custodian
    (the token's agent powers then refuse its own balance). Needs KYC_PROVIDER_ROLE."""
    who, where = address(kyc, "KYC provider"), address(pool, "pool")
    registry = client.registry()
    expires = client.chain.now() + POOL_ELIGIBILITY_YEARS * YEAR
    txs = [registry.set_investor.tx(
        where, terms.jurisdiction, True, expires,
        what=f"register pool {where} as an eligible holder ({terms.jurisdiction_code}, "
             "accredited)")]
    if not registry.custodian(where):
        txs.append(registry.set_custodian.tx(
            where, True, what=f"mark pool {where} as a custodian (agents act on positions "
                              "through the pool, never on its own balance)"))
    problems = []
    if not registry.hasRole(KYC_PROVIDER_ROLE, who):
        problems.append(f"{reasons.ACCESS_CONTROL_MISSING_ROLE} ({who} is not a KYC provider)")
    return action("pool registration", txs, problems)


class CreatedMarket(BaseModel):
    """A market `create_market` made."""

    model_config = _FROZEN

    number: int
    pool: str
    rate_model: str
    terms: MarketTerms
    liquidation_incentive: int
    registered: bool
    notes: list[str] = []

    def lines(self, network: str = "") -> list[str]:
        t = self.terms
        incentive = Decimal(self.liquidation_incentive) / Decimal(WAD)
        out = [*(f"  {note}" for note in self.notes),
               f"market {self.number}: pool {self.pool} ({t.name}, {t.symbol})",
               f"  lend {t.asset.symbol} against SPV {t.spv_id}'s {t.collateral.symbol} priced by "
               f"{t.feed} (adapter {t.feed_adapter})",
               f"  LLTV {percent(t.lltv)}, max LTV {percent(t.max_ltv)}, liquidation incentive "
               f"{incentive:.4f}, reserve factor {t.reserve_factor_bps / 100:.2f}% to {t.treasury}"]
        if self.registered:
            return [*out, f"market {self.number} can hold {t.collateral.symbol} collateral now"]
        where = f" --network {network}" if network else ""
        return [*out,
                "  the creator is not a KYC provider: the pool cannot hold collateral until a "
                "KYC provider registers it:",
                f"    ape run kyc register{where} --account KYC_PROVIDER --investor {self.pool} "
                f"--jurisdiction {t.jurisdiction} --accredited --valid-days {KYC_MAX_VALID_DAYS}"]


def create_market(client: Client, sender: object, terms: MarketTerms,
                  on_receipt: Callable[[Receipt], None] = lambda _r: None) -> CreatedMarket:
    """Deploy the market's rate model, create the market, and register the pool as a
    holder when the creator is a KYC provider (signed by `sender`; `on_receipt` sees
    each transaction). Refused before anything is sent when the factory would refuse."""
    chain = client.chain
    creator = chain.address_of(sender)
    factory = client.lending_factory()
    problems = _creator_problems(factory, creator)
    if problems:
        raise Refused("market creation", "; ".join(problems))
    deployed = chain.deploy("KinkedRateModel", list(terms.rates), sender)
    model = str(deployed.contract_address)
    on_receipt(dataclasses.replace(deployed,
                                   what=f"KinkedRateModel at {model} ({terms.rate_text()})"))
    plan = plan_create(client, creator, terms, model).checked()
    receipt = chain.send(plan.txs[0], sender)
    on_receipt(receipt)
    pool = str(factory.events("MarketCreated", receipt)[0]["pool"])
    register = plan_register_pool(client, creator, pool, terms)
    if register.refusal is None:
        on_receipt(chain.send(register.txs[0], sender))
    incentive = int(chain.contract("LendingPool", pool).liquidation_incentive())
    return CreatedMarket(number=int(factory.market_count()), pool=pool, rate_model=model,
                         terms=terms, liquidation_incentive=incentive,
                         registered=register.refusal is None, notes=list(plan.notes))


# ---------------------------------------------------------------------------------
# The local mock stablecoin
# ---------------------------------------------------------------------------------


def plan_mint_mock(client: Client, minter: str, receiver: str, amount: int) -> Plan:
    """Mint the local chains' mock stablecoin (its owner, the deployer, may)."""
    who, to = address(minter, "minter"), address(receiver, "receiver")
    if not client.deployed.mock_stablecoin:
        raise Refused("mint", f"{client.deployed.network} has no mock stablecoin (income token "
                              f"{client.deployed.income_token} is a real one); minting works "
                              "on local chains only")
    stable = client.erc20(client.deployed.income_token)
    money = token(client, stable.address)
    units = _positive(amount, "amount")
    problems = []
    if not stable.is_minter(who):
        problems.append(f"{who} may not mint the mock; its owner {stable.owner()} (the "
                        "deployer) can")
    tx = stable.mint.tx(to, units, what=f"mint {money.fmt(units)} to {to}")
    return action("mint", [tx], problems)
