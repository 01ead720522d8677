"""Lending pools: create and run a market (operator), supply, borrow, repay (users).

    ape run pool create   --account A --spv 1 [--feed NAV/LSH1/USD] [--asset ADDR]
                          [--lltv 80] [--max-ltv 70] [--reserve-factor 10] [--treasury ADDR]
                          [--base-rate 2 --slope1 10 --slope2 300 --kink 80]
                          [--name ... --symbol ...] [--jurisdiction 840]
    ape run pool set      --account A --pool 1 [--max-ltv P] [--reserve-factor P]
                          [--treasury ADDR] [--pause | --unpause]
    ape run pool status   [--pool 1] [--near 5]
    ape run pool supply              --account L --pool 1 --amount 50000
    ape run pool withdraw            --account L --pool 1 (--amount X | --all)
    ape run pool deposit-collateral  --account B --pool 1 --shares 1000
    ape run pool withdraw-collateral --account B --pool 1 (--shares X | --all)
    ape run pool borrow              --account B --pool 1 --amount 10000
    ape run pool repay               --account B --pool 1 (--amount X | --all)
    ape run pool claim-income        --account B --pool 1
    ape run pool mint-mock           --account DEPLOYER --to 0x... --amount 100000  (local)

Percentages are percent (`--lltv 80` is 80 %), decimals allowed; rates are annual.
Markets are numbered 1, 2, ... in creation order (`LendingPoolFactory.market_at`).
Every command checks first what the pool would refuse (stale price, pause, max LTV,
liquidity, the share token's transfer rules) and says so without sending anything;
`--skip-checks` sends anyway, to see the contract refuse with its own message.
Health (LTV, liquidatable) is computed with `gpushares.lending`, the pool's own
rounding: the pool has no health view.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple

import click
from ape import chain, project
from ape.cli import ConnectedProviderCommand
from ape.exceptions import ApeException, ContractLogicError
from eth_utils import keccak, to_checksum_address
from web3.exceptions import Web3Exception

from gpushares import lending, reasons
from jurisdictions.rules import RulesError, load_rules
from oracle.reports import feed_id, feed_name
from scripts._lib import (
    account_option,
    checked_market_numbers,
    checksum_address,
    erc20,
    fmt_units,
    load_deployments,
    registry,
    report,
    require_account,
    restriction,
    share_token,
    to_base_units,
    transact,
)

SHARE_DECIMALS = 18
WAD = 10**18
MAX_UINT256 = 2**256 - 1
# `debt = ceil(scaled * index / DEBT_SCALE)` in LendingPool.
DEBT_SCALE = 10**24
# Highest liquidation LTV and reserve factor the factory accepts.
MAX_LLTV_PERCENT = Decimal(95)
MAX_RESERVE_FACTOR_PERCENT = Decimal(50)
# KinkedRateModel.MAX_RATE_PER_YEAR, in percent.
MAX_RATE_PERCENT = Decimal(1_000)
# A pool is a contract: its registry record runs for a century.
POOL_ELIGIBILITY_YEARS = 100
YEAR = 365 * 86_400
# `ape run kyc register --valid-days` accepts at most this.
KYC_MAX_VALID_DAYS = 3_650
MARKET_CREATOR_ROLE = keccak(text="MARKET_CREATOR_ROLE")
RISK_ADMIN_ROLE = keccak(text="RISK_ADMIN_ROLE")
GUARDIAN_ROLE = keccak(text="GUARDIAN_ROLE")
# Event topics of the pool's borrower events, and the block range of one log query.
COLLATERAL_SUPPLIED_TOPIC = keccak(text="CollateralSupplied(address,address,uint256)")
BORROWED_TOPIC = keccak(text="Borrowed(address,address,uint256,uint256)")
LOG_PAGE = 10_000
# LendingPool._price's refusals.
PRICE_NOT_POSITIVE = reasons.POOL_COLLATERAL_PRICE_NOT_POSITIVE
PRICE_STALE = reasons.POOL_COLLATERAL_PRICE_STALE_OLDER
FROZEN = reasons.POOL_WALLET_FROZEN_COMPLIANCE
STALE_NOTE = "STALE: borrowing, collateral withdrawals and liquidations paused"

pool_option = click.option(
    "--pool", "pool_number", type=click.IntRange(min=1), required=True,
    help="Market number (1, 2, ...; see `ape run pool status`).",
)
skip_checks_option = click.option(
    "--skip-checks", is_flag=True,
    help="Send even if the pre-checks refuse (to see the contract's own refusal).",
)


# ---------------------------------------------------------------------------------
# Shared helpers (the keeper imports these too)
# ---------------------------------------------------------------------------------


class PoolMarket(NamedTuple):
    """One market and what reading it needs: contracts, decimals, health parameters.
    (NamedTuples, not dataclasses: `ape run` executes scripts outside sys.modules.)"""

    number: int
    pool: Any
    asset: Any
    asset_symbol: str
    asset_decimals: int
    token: Any
    token_symbol: str
    feed: Any
    model: Any
    params: lending.Market

    def money(self, units: int) -> str:
        """Asset units as `1,234.5 mUSDC`."""
        return f"{fmt_units(units, self.asset_decimals)} {self.asset_symbol}"

    def shares(self, units: int) -> str:
        """Collateral share base units as `1,000 LSH1`."""
        return f"{fmt_units(units, SHARE_DECIMALS)} {self.token_symbol}"

    def price_text(self, price: int) -> str:
        """A feed price as `15.95 USD per share`."""
        return f"{fmt_units(price, self.params.feed_decimals)} USD per share"


def percent(wad: int) -> str:
    """A WAD fraction as a percentage with two decimals."""
    return f"{Decimal(wad) / Decimal(WAD) * 100:.2f}%"


def parse_percent(
    value: str, what: str, *, allow_zero: bool = False, cap: Decimal | None = Decimal(100)
) -> Decimal:
    """A percentage option as a Decimal, refusing what is not a number in range."""
    try:
        number = Decimal(value)
    except InvalidOperation as exc:
        raise click.BadParameter(f"{what}: {value!r} is not a number") from exc
    if not number.is_finite() or number < 0 or (number == 0 and not allow_zero):
        kind = "non-negative" if allow_zero else "positive"
        raise click.BadParameter(f"{what}: must be a {kind} percentage, got {value}")
    if cap is not None and number > cap:
        raise click.BadParameter(f"{what}: {value} is above {cap} %")
    return number


def percent_to_wad(number: Decimal, what: str) -> int:
    """A percentage as a WAD fraction (80 -> 0.8e18), refusing excess precision."""
    scaled = number.scaleb(16)
    if scaled != scaled.to_integral_value():
        raise click.BadParameter(f"{what}: {number} has more than 16 decimals")
    return int(scaled)


def percent_to_bps(number: Decimal, what: str) -> int:
    """A percentage as basis points (10 -> 1,000), refusing fractions of a basis point."""
    scaled = number.scaleb(2)
    if scaled != scaled.to_integral_value():
        raise click.BadParameter(f"{what}: {number} is finer than a basis point (0.01)")
    return int(scaled)


def lending_factory(deployed: Any) -> Any:
    """The LendingPoolFactory of the deployments file, or a clear error."""
    if deployed.lending_pool_factory is None:
        raise click.ClickException(
            "the deployments file has no LendingPoolFactory: run `ape run deploy` again "
            "(it now deploys the lending factory)"
        )
    return project.LendingPoolFactory.at(deployed.lending_pool_factory)


def market_numbers(factory: Any, number: int | None) -> list[int]:
    """`[number]` after checking it exists, or every market's number when None."""
    return checked_market_numbers(factory, number, label="market", create="pool")


def load_market(factory: Any, number: int) -> PoolMarket:
    """Market `number` of the factory, with its contracts and health parameters."""
    pool = project.LendingPool.at(factory.market_at(number))
    asset = erc20(pool.asset())
    token = project.GPUShareToken.at(pool.collateral_token())
    feed = project.FeedAdapter.at(pool.price_feed())
    decimals = int(asset.decimals())
    params = lending.Market(
        asset_decimals=decimals,
        feed_decimals=int(feed.decimals()),
        lltv=int(pool.lltv()),
        max_ltv=int(pool.max_ltv()),
    )
    return PoolMarket(
        number=number,
        pool=pool,
        asset=asset,
        asset_symbol=str(asset.symbol()),
        asset_decimals=decimals,
        token=token,
        token_symbol=str(token.symbol()),
        feed=feed,
        model=project.KinkedRateModel.at(pool.rate_model()),
        params=params,
    )


def feed_age(market: PoolMarket) -> tuple[int, int, int]:
    """(latest answer, its age in seconds at the head block, the feed's heartbeat);
    age -1 before the feed has any data."""
    heartbeat = int(market.feed.heartbeat())
    try:
        _round, answer, _started, updated, _answered = market.feed.latestRoundData()
    except ContractLogicError:  # "no data present for this feed"
        return 0, -1, heartbeat
    return int(answer), int(chain.blocks.head.timestamp) - int(updated), heartbeat


def checked_price(market: PoolMarket) -> tuple[int | None, str]:
    """The pool's checked price, or None and why the pool refuses it (no data, not
    positive, older than the heartbeat). The feed is read first, so a stale price is
    reported without a reverting call (ape prints a trace for each)."""
    answer, age, heartbeat = feed_age(market)
    if age < 0:
        return None, "no collateral price published yet"
    if answer <= 0:
        return None, PRICE_NOT_POSITIVE
    if age > heartbeat:
        return None, PRICE_STALE
    try:
        return int(market.pool.price()), ""
    except ContractLogicError as exc:  # stale in the block the call ran in
        return None, str(exc.message)


def _creation_block(provider: Any, address: str) -> int:
    """The block a contract was deployed in (binary search on its code); 0 if the node
    cannot answer for old blocks."""
    low, high = 0, int(provider.get_block("latest").number)
    try:
        while low < high:
            mid = (low + high) // 2
            if provider.get_code(address, block_id=mid):
                high = mid
            else:
                low = mid + 1
    except (ApeException, Web3Exception, ValueError):  # a pruned node: scan from genesis
        return 0
    return low


def borrowers(market: PoolMarket, provider: Any) -> list[str]:
    """Every address that ever received collateral or borrowed in the pool, from its
    `CollateralSupplied` and `Borrowed` events, in order of first appearance. (Raw
    `eth_getLogs` in pages: ape's event decoding is slow, and only a topic is needed.)"""
    address = market.pool.address
    start = _creation_block(provider, address)
    head = int(provider.get_block("latest").number)
    seen: dict[str, None] = {}
    for first in range(start, head + 1, LOG_PAGE):
        logs = provider.web3.eth.get_logs({
            "address": address,
            "fromBlock": first,
            "toBlock": min(first + LOG_PAGE - 1, head),
            "topics": [[COLLATERAL_SUPPLIED_TOPIC, BORROWED_TOPIC]],
        })
        for log in logs:
            topics = log["topics"]
            # CollateralSupplied(sender, borrower, ...) and Borrowed(borrower, receiver, ...)
            who = topics[2] if bytes(topics[0]) == COLLATERAL_SUPPLIED_TOPIC else topics[1]
            seen.setdefault(to_checksum_address(bytes(who)[-20:]), None)
    return list(seen)


class Loan(NamedTuple):
    """One open position of a market."""

    borrower: str
    collateral: int
    debt: int
    scaled: int
    health: lending.Health | None


def open_loans(market: PoolMarket, provider: Any, price: int | None) -> list[Loan]:
    """Positions with collateral or debt, with their health at `price` (None: no health)."""
    loans = []
    for who in borrowers(market, provider):
        collateral, debt, scaled = (int(x) for x in market.pool.position(who))
        if collateral == 0 and debt == 0:
            continue
        health = (
            lending.health(market.params, collateral, debt, price) if price is not None else None
        )
        loans.append(Loan(who, collateral, debt, scaled, health))
    return loans


def _borrow_debt_after(scaled: int, index: int, amount: int) -> int:
    """The debt after borrowing `amount`, rounded as the pool rounds (scaled up)."""
    added = -(-amount * DEBT_SCALE // index)
    return -(-(scaled + added) * index // DEBT_SCALE)


def max_borrow(market: PoolMarket, collateral: int, debt: int, scaled: int, price: int) -> int:
    """The most a borrower can still borrow at `price` within the max LTV, with the
    pool's rounding (the new debt is rounded up)."""
    index = int(market.pool.borrow_index())
    room = max(lending.collateral_value(market.params, collateral, price)
               * market.params.max_ltv // WAD - debt, 0)
    while room > 0 and not lending.within(market.params, _borrow_debt_after(scaled, index, room),
                                          collateral, price, market.params.max_ltv):
        room -= 1
    return room


def _account_market(provider: Any, pool_number: int) -> tuple[Any, PoolMarket]:
    deployed = load_deployments(provider)
    factory = lending_factory(deployed)
    market_numbers(factory, pool_number)
    return deployed, load_market(factory, pool_number)


def _frozen(deployed: Any, who: str) -> bool:
    """Whether the compliance registry froze `who` (the pool then lends it nothing and
    pays it no collateral income)."""
    return bool(registry(deployed).is_frozen(who))


def _refuse_or_warn(skip_checks: bool, what: str, reason: str) -> None:
    """Refuse `what` before sending, or with --skip-checks say that it is sent anyway."""
    if not skip_checks:
        raise click.ClickException(f"{what} refused, nothing sent: {reason}")
    click.echo(f"  pre-check refuses the {what}: {reason}")
    click.echo("  --skip-checks: sending anyway")


def _ensure_allowance(what: str, token: Any, owner: Any, spender: str, amount: int) -> None:
    if int(token.allowance(owner.address, spender)) < amount:
        transact(what, token.approve, spender, amount, sender=owner)


def _require_balance(market: PoolMarket, who: str, amount: int, what: str) -> None:
    balance = int(market.asset.balanceOf(who))
    if balance < amount:
        raise click.ClickException(
            f"{who} holds {market.money(balance)}, less than the {market.money(amount)} "
            f"{what}: get more {market.asset_symbol} first, nothing sent"
        )


# ---------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------


@click.group()
def cli():
    """Create and run lending markets against GPU shares; supply, borrow, repay."""


@cli.command(cls=ConnectedProviderCommand)
@account_option()
@click.option("--spv", "spv_id", type=int, required=True, help="SPV whose shares are collateral.")
@click.option("--feed", "feed", default=None,
              help="Oracle hub feed pricing one share (default NAV/<token symbol>/USD).")
@click.option("--asset", default=None, help="Loan asset (default: the deployment's stablecoin).")
@click.option("--lltv", default="80", show_default=True, help="Liquidation LTV, percent.")
@click.option("--max-ltv", default="70", show_default=True, help="Max LTV to borrow, percent.")
@click.option("--reserve-factor", default="10", show_default=True,
              help="Share of the interest kept as reserves, percent.")
@click.option("--treasury", default=None, help="Receiver of the reserves (default: the account).")
@click.option("--base-rate", default="2", show_default=True,
              help="Annual borrow rate at zero utilisation, percent.")
@click.option("--slope1", default="10", show_default=True,
              help="Annual rate added up to the kink, percent.")
@click.option("--slope2", default="300", show_default=True,
              help="Annual rate added from the kink to full utilisation, percent.")
@click.option("--kink", default="80", show_default=True, help="Utilisation of the kink, percent.")
@click.option("--name", "vault_name", default=None,
              help="Vault share name, at most 25 characters (default GPU Lend <token>/<asset>).")
@click.option("--symbol", "vault_symbol", default=None,
              help="Vault share symbol, at most 5 characters (default l<token>).")
@click.option("--jurisdiction", default="840", show_default=True,
              help="Jurisdiction the pool is registered in as a holder (alpha-2 or numeric).")
def create(provider, account, spv_id, feed, asset, lltv, max_ltv, reserve_factor,
           treasury, base_rate, slope1, slope2, kink, vault_name, vault_symbol, jurisdiction):
    """Deploy a rate model and a lending pool for an SPV's shares; register the pool."""
    creator = require_account(account)
    deployed = load_deployments(provider)
    factory = lending_factory(deployed)
    token = share_token(deployed, spv_id)
    token_symbol = str(token.symbol())
    loan_asset = checksum_address(asset, "--asset") if asset else deployed.income_token
    if not provider.get_code(loan_asset):
        raise click.BadParameter(f"--asset {loan_asset} has no contract on this chain")
    stable = erc20(loan_asset)
    asset_symbol = str(stable.symbol())

    lltv_pct = parse_percent(lltv, "--lltv")
    max_pct = parse_percent(max_ltv, "--max-ltv")
    reserve_pct = parse_percent(reserve_factor, "--reserve-factor", allow_zero=True)
    if lltv_pct > MAX_LLTV_PERCENT:
        raise click.BadParameter(f"--lltv {lltv} is above the factory's 95 % limit")
    if max_pct >= lltv_pct:
        raise click.BadParameter(f"--max-ltv {max_ltv} must be below --lltv {lltv}")
    if reserve_pct > MAX_RESERVE_FACTOR_PERCENT:
        raise click.BadParameter(f"--reserve-factor {reserve_factor} is above 50 %")
    rates = [parse_percent(v, w, allow_zero=True, cap=MAX_RATE_PERCENT) for v, w in
             ((base_rate, "--base-rate"), (slope1, "--slope1"), (slope2, "--slope2"))]
    kink_pct = parse_percent(kink, "--kink")
    if kink_pct >= 100:
        raise click.BadParameter("--kink must be strictly between 0 and 100 %")
    if sum(rates) > MAX_RATE_PERCENT:
        raise click.BadParameter(
            f"--base-rate + --slope1 + --slope2 = {sum(rates)} % is above the rate model's "
            "1,000 % a year"
        )
    lltv_wad = percent_to_wad(lltv_pct, "--lltv")
    max_wad = percent_to_wad(max_pct, "--max-ltv")
    reserve_bps = percent_to_bps(reserve_pct, "--reserve-factor")
    rate_wads = [percent_to_wad(r, w) for r, w in zip(rates, ("--base-rate", "--slope1",
                                                               "--slope2"), strict=True)]
    kink_wad = percent_to_wad(kink_pct, "--kink")
    receiver = checksum_address(treasury, "--treasury") if treasury else creator.address
    name = vault_name if vault_name is not None else f"GPU Lend {token_symbol}/{asset_symbol}"
    symbol = vault_symbol if vault_symbol is not None else f"l{token_symbol}"[:5]
    if not 0 < len(name) <= 25:
        raise click.BadParameter(f"vault name {name!r} must be 1 to 25 characters: pass --name")
    if not 0 < len(symbol) <= 5:
        raise click.BadParameter(f"vault symbol {symbol!r} must be 1 to 5 characters: "
                                 "pass --symbol")
    try:
        rule = load_rules().resolve(jurisdiction)
    except RulesError as exc:
        raise click.BadParameter(f"--jurisdiction: {exc}") from exc

    if deployed.oracle_hub is None:
        raise click.ClickException("the deployments file has no OracleHub: run `ape run deploy`")
    hub = project.OracleHub.at(deployed.oracle_hub)
    name_of_feed = feed or f"NAV/{token_symbol}/USD"
    try:
        fid = feed_id(name_of_feed)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--feed") from exc
    info = hub.feed(fid)
    if not info.exists:
        raise click.ClickException(
            f"the oracle hub has no feed {name_of_feed}: the hub admin adds it with `ape run "
            f"oracle add-feed --name {name_of_feed} ...` (or pass --feed NAME)"
        )
    adapter = str(hub.feed_adapter(fid))
    if not factory.hasRole(MARKET_CREATOR_ROLE, creator.address):
        raise click.ClickException(
            f"{creator.address} lacks the lending factory's MARKET_CREATOR_ROLE, nothing sent; "
            "ask the factory admin (the deployer) to grant it"
        )
    if not info.enabled:
        click.echo(f"  warning: feed {name_of_feed} is disabled on the hub")
    for number in range(1, int(factory.market_count()) + 1):
        other = project.LendingPool.at(factory.market_at(number))
        if (str(other.asset()), str(other.collateral_token()), str(other.price_feed()),
                int(other.lltv())) == (loan_asset, token.address, adapter, lltv_wad):
            click.echo(f"  note: market {number} ({other.address}) already lends "
                       f"{asset_symbol} against {token_symbol} on this feed at LLTV {lltv} %; "
                       "this one gets its own rate model")
    if int(hub.latest_value(fid)[2]) == 0:
        click.echo(f"  note: feed {name_of_feed} has no value yet; borrowing waits for one")

    model = creator.deploy(project.KinkedRateModel, *rate_wads, kink_wad)
    report(
        f"KinkedRateModel at {model.address} (base {base_rate} %, slope1 {slope1} %, "
        f"slope2 {slope2} %, kink {kink} %)",
        provider.get_receipt(model.txn_hash),
    )
    receipt = transact(
        f"create market {token_symbol}/{asset_symbol}",
        factory.create_market,
        loan_asset, token.address, adapter, model.address, lltv_wad, max_wad, reserve_bps,
        receiver, name, symbol,
        sender=creator,
    )
    event = next(iter(factory.MarketCreated.from_receipt(receipt)))
    pool_address = str(event.pool)
    number = int(factory.market_count())
    pool = project.LendingPool.at(pool_address)
    click.echo(f"market {number}: pool {pool_address} ({name}, {symbol})")
    click.echo(
        f"  lend {asset_symbol} against SPV {spv_id}'s {token_symbol} priced by {name_of_feed} "
        f"(adapter {adapter})"
    )
    click.echo(
        f"  LLTV {lltv} %, max LTV {max_ltv} %, liquidation incentive "
        f"{Decimal(int(pool.liquidation_incentive())) / Decimal(WAD):.4f}, reserve factor "
        f"{reserve_factor} % to {receiver}"
    )

    reg = registry(deployed)
    if reg.hasRole(reg.KYC_PROVIDER_ROLE(), creator.address):
        expires = provider.get_block("latest").timestamp + POOL_ELIGIBILITY_YEARS * YEAR
        transact(
            f"register pool {pool_address} as an eligible holder ({rule.alpha2}, accredited)",
            reg.set_investor, pool_address, rule.numeric, True, expires, sender=creator,
        )
        click.echo(f"market {number} can hold {token_symbol} collateral now")
    else:
        click.echo(
            f"  {creator.address} is not a KYC provider: the pool cannot hold collateral until "
            "a KYC provider registers it:\n"
            f"    ape run kyc register --network {provider.network_choice} "
            f"--account KYC_PROVIDER --investor {pool_address} --jurisdiction {rule.numeric} "
            f"--accredited --valid-days {KYC_MAX_VALID_DAYS}"
        )


@cli.command("set", cls=ConnectedProviderCommand)
@account_option()
@pool_option
@click.option("--max-ltv", default=None, help="New max LTV to borrow, percent.")
@click.option("--reserve-factor", default=None, help="New reserve factor, percent.")
@click.option("--treasury", default=None, help="New receiver of the reserves.")
@click.option("--pause/--unpause", "pause", default=None,
              help="Stop (or resume) borrowing and collateral withdrawals.")
def set_(provider, account, pool_number, max_ltv, reserve_factor, treasury, pause):
    """Change a market's risk parameters (unchanged ones are kept) or pause it."""
    admin = require_account(account)
    _, market = _account_market(provider, pool_number)
    pool = market.pool
    if max_ltv is None and reserve_factor is None and treasury is None and pause is None:
        raise click.UsageError(
            "nothing to change: pass --max-ltv, --reserve-factor, --treasury, --pause or "
            "--unpause"
        )
    if max_ltv is not None or reserve_factor is not None or treasury is not None:
        new_max = (percent_to_wad(parse_percent(max_ltv, "--max-ltv"), "--max-ltv")
                   if max_ltv is not None else int(pool.max_ltv()))
        new_bps = (percent_to_bps(parse_percent(reserve_factor, "--reserve-factor",
                                                allow_zero=True), "--reserve-factor")
                   if reserve_factor is not None else int(pool.reserve_factor_bps()))
        new_treasury = (checksum_address(treasury, "--treasury") if treasury is not None
                        else str(pool.treasury()))
        if new_max >= market.params.lltv:
            raise click.BadParameter(
                f"--max-ltv {max_ltv} must be below the market's LLTV "
                f"{percent(market.params.lltv)} (fixed at creation)"
            )
        if new_bps > 5_000:
            raise click.BadParameter(f"--reserve-factor {reserve_factor} is above 50 %")
        if not pool.hasRole(RISK_ADMIN_ROLE, admin.address):
            raise click.ClickException(
                f"{admin.address} lacks RISK_ADMIN_ROLE on market {pool_number}, nothing sent"
            )
        transact(
            f"risk parameters of market {pool_number}: max LTV {percent(new_max)}, reserve "
            f"factor {new_bps / 100:.2f}%, treasury {new_treasury}",
            pool.set_risk_parameters, new_max, new_bps, new_treasury, sender=admin,
        )
    if pause is not None:
        if bool(pool.paused()) == pause:
            raise click.ClickException(
                f"market {pool_number} is already {'paused' if pause else 'not paused'}"
            )
        if not pool.hasRole(GUARDIAN_ROLE, admin.address):
            raise click.ClickException(
                f"{admin.address} lacks GUARDIAN_ROLE on market {pool_number}, nothing sent"
            )
        transact(f"{'pause' if pause else 'unpause'} market {pool_number}", pool.set_paused,
                 pause, sender=admin)
    click.echo(
        f"market {pool_number}: max LTV {percent(int(pool.max_ltv()))}, reserve factor "
        f"{int(pool.reserve_factor_bps()) / 100:.2f}%, treasury {pool.treasury()}, "
        f"{'PAUSED (borrowing and collateral withdrawals stopped)' if pool.paused() else 'open'}"
    )


def _hub_feed_name(market: PoolMarket) -> str:
    try:
        return feed_name("0x" + bytes(market.feed.FEED_ID()).hex())
    except (ContractLogicError, AttributeError, ValueError):
        return "?"


def _status_one(provider: Any, deployed: Any, market: PoolMarket, near: Decimal) -> None:
    pool = market.pool
    spv_id = int(project.SPVFactory.at(deployed.spv_factory).spv_id_of_token(
        market.token.address))
    click.echo(f"\nmarket {market.number}: {pool.name()} ({pool.symbol()}) at {pool.address}")
    click.echo(f"  loan asset    {market.asset_symbol} {market.asset.address} "
               f"({market.asset_decimals} decimals)")
    click.echo(f"  collateral    {market.token_symbol} {market.token.address} (SPV {spv_id})")
    click.echo(f"  price feed    {_hub_feed_name(market)} adapter {market.feed.address}")
    click.echo(f"  rate model    {market.model.address}")
    incentive = Decimal(int(pool.liquidation_incentive())) / Decimal(WAD)
    click.echo(
        f"  LLTV {percent(market.params.lltv)}, max LTV {percent(market.params.max_ltv)}, "
        f"liquidation incentive {incentive:.4f}, reserve factor "
        f"{int(pool.reserve_factor_bps()) / 100:.2f}%, treasury {pool.treasury()}, "
        f"paused: {'YES (borrowing and collateral withdrawals stopped)' if pool.paused() else 'no'}"
    )
    price, refusal = checked_price(market)
    answer, age, heartbeat = feed_age(market)
    if price is not None:
        click.echo(f"  price {market.price_text(price)}, updated {age}s ago "
                   f"(heartbeat {heartbeat}s)")
    elif age < 0:
        click.echo(f"  price: none published yet; {STALE_NOTE}")
    else:
        click.echo(f"  price {STALE_NOTE} ({refusal}); last {market.price_text(answer)} "
                   f"updated {age}s ago, heartbeat {heartbeat}s")
    supplied, reserves, debt, idle = (int(x) for x in pool.market())
    util = int(market.model.utilisation(supplied, debt))
    borrow_apr = int(market.model.borrow_rate_per_year(supplied, debt))
    supply_apr = borrow_apr * util // WAD * (10_000 - int(pool.reserve_factor_bps())) // 10_000
    click.echo(f"  utilisation {percent(util)}, borrow APR {percent(borrow_apr)}, supply APR "
               f"{percent(supply_apr)}")
    click.echo(
        f"  total supplied {market.money(int(pool.totalAssets()))}, total borrowed "
        f"{market.money(debt)}, reserves {market.money(reserves)}, idle liquidity "
        f"{market.money(idle)}"
    )
    click.echo(f"  total collateral {market.shares(int(pool.total_collateral()))}")
    # With a stale price the LTVs shown use the feed's last answer, marked as such.
    shown_price = price if price is not None else (answer if answer > 0 else None)
    loans = open_loans(market, provider, shown_price)
    if not loans:
        click.echo("  loans: none")
        return
    click.echo(f"  loans ({len(loans)}){'' if price is not None else ' at the stale price'}:")
    near_wad = percent_to_wad(near, "--near")
    for loan in loans:
        flag = ""
        if loan.health is not None and loan.health.ltv is not None:
            if loan.health.liquidatable:
                flag = "  LIQUIDATABLE"
            elif loan.health.ltv >= market.params.lltv - near_wad:
                flag = "  near liquidation"
        ltv = loan.health.ltv_percent() if loan.health is not None else "?"
        click.echo(
            f"    {loan.borrower}: collateral {market.shares(loan.collateral)}, debt "
            f"{market.money(loan.debt)}, LTV {ltv}{flag}"
        )


@cli.command(cls=ConnectedProviderCommand)
@click.option("--pool", "pool_number", type=click.IntRange(min=1), default=None,
              help="One market; all markets when omitted.")
@click.option("--near", default="5", show_default=True,
              help="Flag loans within this many percentage points of the LLTV.")
def status(provider, pool_number, near):
    """Markets: parameters, price, rates, totals and every loan with its LTV."""
    deployed = load_deployments(provider)
    factory = lending_factory(deployed)
    near_pct = parse_percent(near, "--near", allow_zero=True)
    numbers = market_numbers(factory, pool_number)
    click.echo(f"LendingPoolFactory {factory.address}: {factory.market_count()} market(s)")
    if not numbers:
        click.echo("  (none yet: `ape run pool create ...`)")
    for number in numbers:
        _status_one(provider, deployed, load_market(factory, number), near_pct)


@cli.command(cls=ConnectedProviderCommand)
@account_option()
@pool_option
@click.option("--amount", required=True, help="Loan asset to supply (e.g. 50000).")
def supply(provider, account, pool_number, amount):
    """Supply the loan asset and receive vault shares (ERC-4626 deposit)."""
    lender = require_account(account)
    _, market = _account_market(provider, pool_number)
    pool = market.pool
    units = to_base_units(amount, market.asset_decimals, "--amount")
    _require_balance(market, lender.address, units, "to supply")
    if int(pool.previewDeposit(units)) == 0:
        raise click.ClickException(f"supplying {amount} would mint zero vault shares: supply more")
    _ensure_allowance(f"approve {market.money(units)}", market.asset, lender, pool.address, units)
    before = int(pool.balanceOf(lender.address))
    transact(f"supply {market.money(units)} to market {pool_number}", pool.deposit, units,
             lender.address, sender=lender)
    shares = int(pool.balanceOf(lender.address))
    click.echo(
        f"{lender.address}: +{fmt_units(shares - before, int(pool.decimals()))} vault shares, "
        f"now worth {market.money(int(pool.convertToAssets(shares)))}; market {pool_number} "
        f"total supplied {market.money(int(pool.totalAssets()))}"
    )


@cli.command(cls=ConnectedProviderCommand)
@account_option()
@pool_option
@click.option("--amount", default=None, help="Loan asset to withdraw.")
@click.option("--all", "everything", is_flag=True, help="Redeem every vault share.")
@skip_checks_option
def withdraw(provider, account, pool_number, amount, everything, skip_checks):
    """Withdraw supplied assets (needs idle liquidity: lent assets return on repayment)."""
    lender = require_account(account)
    _, market = _account_market(provider, pool_number)
    pool = market.pool
    if (amount is None) == (not everything):
        raise click.UsageError("pass exactly one of --amount X or --all")
    shares = int(pool.balanceOf(lender.address))
    if shares == 0:
        raise click.ClickException(f"{lender.address} has supplied nothing to market {pool_number}")
    _, _, _, idle = (int(x) for x in pool.market())
    if everything:
        worth = int(pool.previewRedeem(shares))
        if int(pool.maxRedeem(lender.address)) < shares:
            _refuse_or_warn(
                skip_checks, "withdrawal",
                f"your {market.money(worth)} is not all idle: the pool holds "
                f"{market.money(idle)} idle (the rest is lent out); withdraw --amount up to "
                f"{market.money(int(pool.maxWithdraw(lender.address)))} or wait for repayments",
            )
        receipt = transact(f"redeem all vault shares of market {pool_number}", pool.redeem,
                           shares, lender.address, lender.address, sender=lender)
    else:
        units = to_base_units(amount, market.asset_decimals, "--amount")
        most = int(pool.maxWithdraw(lender.address))
        if units > most:
            claim = int(pool.convertToAssets(shares))
            _refuse_or_warn(
                skip_checks, "withdrawal",
                f"at most {market.money(most)} can be withdrawn now (your claim "
                f"{market.money(claim)}, idle liquidity {market.money(idle)})",
            )
        receipt = transact(f"withdraw {market.money(units)} from market {pool_number}",
                           pool.withdraw, units, lender.address, lender.address, sender=lender)
    paid = sum(int(e.assets) for e in pool.Withdraw.from_receipt(receipt))
    left = int(pool.balanceOf(lender.address))
    click.echo(
        f"{lender.address}: received {market.money(paid)}; vault shares left worth "
        f"{market.money(int(pool.convertToAssets(left)))}"
    )


@cli.command("deposit-collateral", cls=ConnectedProviderCommand)
@account_option()
@pool_option
@click.option("--shares", required=True, help="GPU shares to post as collateral.")
@skip_checks_option
def deposit_collateral(provider, account, pool_number, shares, skip_checks):
    """Post GPU shares as collateral (they keep earning income for the borrower)."""
    borrower = require_account(account)
    _, market = _account_market(provider, pool_number)
    pool, token = market.pool, market.token
    amount = to_base_units(shares, SHARE_DECIMALS, "--shares")
    code, message = restriction(token, borrower.address, pool.address, amount)
    if code:
        click.echo(f"  share token refuses the move into the pool (ERC-1404 code {code}): "
                   f"{message}")
        _refuse_or_warn(skip_checks, "collateral deposit", message)
    if int(token.allowance(borrower.address, pool.address)) < amount:
        transact(f"approve {market.shares(amount)}", token.approve, pool.address, amount,
                 sender=borrower)
    transact(f"deposit {market.shares(amount)} as collateral in market {pool_number}",
             pool.supply_collateral, amount, borrower.address, sender=borrower)
    collateral, debt, scaled = (int(x) for x in pool.position(borrower.address))
    click.echo(f"{borrower.address}: collateral {market.shares(collateral)}, debt "
               f"{market.money(debt)}")
    price, _ = checked_price(market)
    if price is not None:
        value = lending.collateral_value(market.params, collateral, price)
        room = max_borrow(market, collateral, debt, scaled, price)
        click.echo(f"  collateral worth {market.money(value)} at {market.price_text(price)}: "
                   f"borrow up to {market.money(room)} more")


@cli.command("withdraw-collateral", cls=ConnectedProviderCommand)
@account_option()
@pool_option
@click.option("--shares", default=None, help="GPU shares to take back.")
@click.option("--all", "everything", is_flag=True, help="All the collateral (needs no debt).")
@skip_checks_option
def withdraw_collateral(provider, account, pool_number, shares, everything, skip_checks):
    """Take collateral back; with debt the loan must stay within the max LTV."""
    borrower = require_account(account)
    _, market = _account_market(provider, pool_number)
    pool, token = market.pool, market.token
    if (shares is None) == (not everything):
        raise click.UsageError("pass exactly one of --shares X or --all")
    collateral, debt, _ = (int(x) for x in pool.position(borrower.address))
    if collateral == 0:
        raise click.ClickException(f"{borrower.address} has no collateral in market "
                                   f"{pool_number}")
    amount = collateral if everything else to_base_units(shares, SHARE_DECIMALS, "--shares")
    problems = []
    if amount > collateral:
        problems.append(f"you have only {market.shares(collateral)} of collateral")
    if pool.paused():
        problems.append("the market is paused by its guardian (repay still works)")
    if debt and amount <= collateral:
        price, refusal = checked_price(market)
        if price is None:
            problems.append(f"{refusal}: with debt, collateral waits for a fresh price "
                            "(or repay first)")
        elif not lending.within(market.params, debt, collateral - amount, price,
                                market.params.max_ltv):
            after = lending.health(market.params, collateral - amount, debt, price)
            problems.append(
                f"the loan would be at LTV {after.ltv_percent()}, above the max LTV "
                f"{percent(market.params.max_ltv)}: repay first or take back less"
            )
    code, message = restriction(token, pool.address, borrower.address, min(amount, collateral))
    if code:
        problems.append(f"the share token refuses the move to you: {message}")
    if problems:
        _refuse_or_warn(skip_checks, "collateral withdrawal", "; ".join(problems))
    transact(f"withdraw {market.shares(amount)} of collateral from market {pool_number}",
             pool.withdraw_collateral, amount, borrower.address, sender=borrower)
    collateral, debt, _ = (int(x) for x in pool.position(borrower.address))
    wallet = int(token.balanceOf(borrower.address))
    click.echo(f"{borrower.address}: collateral {market.shares(collateral)}, debt "
               f"{market.money(debt)}; wallet {market.shares(wallet)}")


@cli.command(cls=ConnectedProviderCommand)
@account_option()
@pool_option
@click.option("--amount", required=True, help="Loan asset to borrow.")
@skip_checks_option
def borrow(provider, account, pool_number, amount, skip_checks):
    """Borrow against the posted collateral, up to the max LTV."""
    borrower = require_account(account)
    deployed, market = _account_market(provider, pool_number)
    pool = market.pool
    units = to_base_units(amount, market.asset_decimals, "--amount")
    collateral, debt, scaled = (int(x) for x in pool.position(borrower.address))
    problems = []
    if pool.paused():
        problems.append(reasons.POOL_PAUSED_GUARDIAN_REPAY_STILL)
    if _frozen(deployed, borrower.address):
        problems.append(f"{FROZEN} (the compliance registry froze {borrower.address})")
    price, refusal = checked_price(market)
    if price is None:
        problems.append(f"{refusal}; borrowing waits for the oracle to publish a fresh NAV")
    else:
        after = _borrow_debt_after(scaled, int(pool.borrow_index()), units)
        if not lending.within(market.params, after, collateral, price, market.params.max_ltv):
            value = lending.collateral_value(market.params, collateral, price)
            room = max_borrow(market, collateral, debt, scaled, price)
            ltv = lending.health(market.params, collateral, after, price).ltv_percent()
            problems.append(
                f"borrowing {market.money(units)} would put the loan at LTV {ltv}, above the "
                f"max LTV {percent(market.params.max_ltv)} (collateral "
                f"{market.shares(collateral)} worth {market.money(value)} at "
                f"{market.price_text(price)}): borrow at most {market.money(room)} or add "
                "collateral"
            )
    idle = int(pool.market()[3])
    if units > idle:
        problems.append(f"the pool has only {market.money(idle)} of idle liquidity")
    if problems:
        _refuse_or_warn(skip_checks, "borrow", "; ".join(problems))
    transact(f"borrow {market.money(units)} from market {pool_number}", pool.borrow, units,
             borrower.address, sender=borrower)
    collateral, debt, _ = (int(x) for x in pool.position(borrower.address))
    line = f"{borrower.address}: debt {market.money(debt)}, collateral {market.shares(collateral)}"
    price, _ = checked_price(market)
    if price is not None:
        health = lending.health(market.params, collateral, debt, price)
        line += (f", LTV {health.ltv_percent()} (max {percent(market.params.max_ltv)}, "
                 f"liquidation above {percent(market.params.lltv)})")
    click.echo(line)


@cli.command(cls=ConnectedProviderCommand)
@account_option()
@pool_option
@click.option("--amount", default=None, help="Loan asset to repay.")
@click.option("--all", "everything", is_flag=True, help="Repay the whole debt.")
def repay(provider, account, pool_number, amount, everything):
    """Repay debt (always works: paused or stale price)."""
    payer = require_account(account)
    _, market = _account_market(provider, pool_number)
    pool = market.pool
    if (amount is None) == (not everything):
        raise click.UsageError("pass exactly one of --amount X or --all")
    _, debt, _ = (int(x) for x in pool.position(payer.address))
    if debt == 0:
        raise click.ClickException(f"{payer.address} has no debt in market {pool_number}")
    # Interest accrues until the transaction is mined: allow one basis point more.
    margin = debt // 10_000 + 1
    if everything:
        send, what = MAX_UINT256, f"repay all ({market.money(debt)} and interest)"
        balance = int(market.asset.balanceOf(payer.address))
        if balance < debt:
            raise click.ClickException(
                f"{payer.address} holds {market.money(balance)}, less than the debt of "
                f"{market.money(debt)}: get {market.money(debt - balance + margin)} more "
                "first, nothing sent"
            )
        allowance = min(debt + margin, balance)
    else:
        units = to_base_units(amount, market.asset_decimals, "--amount")
        send, what, allowance = units, f"repay {market.money(units)}", units
        if units >= debt:
            click.echo(f"  {market.money(units)} covers the debt: the pool takes only the debt")
            allowance = min(units, debt + margin)
        _require_balance(market, payer.address, min(units, debt), "to repay")
    _ensure_allowance(f"approve {market.money(allowance)}", market.asset, payer, pool.address,
                      allowance)
    receipt = transact(f"{what} in market {pool_number}", pool.repay, send, payer.address,
                       sender=payer)
    repaid = sum(int(e.assets) for e in pool.Repaid.from_receipt(receipt))
    _, debt, _ = (int(x) for x in pool.position(payer.address))
    click.echo(f"{payer.address}: repaid {market.money(repaid)}; debt now {market.money(debt)}")


@cli.command("claim-income", cls=ConnectedProviderCommand)
@account_option()
@pool_option
def claim_income(provider, account, pool_number):
    """Claim the rental income the borrower's collateral earned while in the pool."""
    borrower = require_account(account)
    deployed, market = _account_market(provider, pool_number)
    pool = market.pool
    stable = erc20(pool.income_token())
    decimals, symbol = int(stable.decimals()), str(stable.symbol())
    owed = int(pool.income_owed(borrower.address))
    if _frozen(deployed, borrower.address):
        raise click.ClickException(
            f"claim refused, nothing sent: {FROZEN} (the compliance registry froze "
            f"{borrower.address}; {fmt_units(owed, decimals)} {symbol} stays owed to it)"
        )
    if owed == 0:
        raise click.ClickException(
            f"{borrower.address} has no collateral income to claim in market {pool_number} "
            "(income arrives when the SPV distributes: `ape run spv distribute`)"
        )
    receipt = transact(f"claim {fmt_units(owed, decimals)} {symbol} of collateral income",
                       pool.claim_income, sender=borrower)
    paid = sum(int(e.amount) for e in pool.CollateralIncomeClaimed.from_receipt(receipt))
    click.echo(f"{borrower.address}: received {fmt_units(paid, decimals)} {symbol}; now holds "
               f"{fmt_units(int(stable.balanceOf(borrower.address)), decimals)} {symbol}")


@cli.command("mint-mock", cls=ConnectedProviderCommand)
@account_option()
@click.option("--to", "receiver", required=True, help="Receiving address.")
@click.option("--amount", required=True, help="Mock stablecoin to mint (e.g. 100000).")
def mint_mock(provider, network, account, receiver, amount):
    """Mint the local mock stablecoin (local chains only; the deployer mints)."""
    minter = require_account(account)
    deployed = load_deployments(provider)
    if network.name != "local" or not deployed.mock_stablecoin:
        raise click.ClickException(
            f"refused: {provider.network_choice} has no mock stablecoin (income token "
            f"{deployed.income_token} is a real one); mint-mock works on local chains only"
        )
    stable = project.MockStablecoin.at(deployed.income_token)
    if not stable.is_minter(minter.address):
        raise click.ClickException(
            f"{minter.address} may not mint the mock; its owner {stable.owner()} (the "
            "deployer) can: pass --account for it"
        )
    to = checksum_address(receiver, "--to")
    decimals = int(stable.decimals())
    units = to_base_units(amount, decimals, "--amount")
    transact(f"mint {fmt_units(units, decimals)} {stable.symbol()} to {to}", stable.mint, to,
             units, sender=minter)
    click.echo(f"{to} holds {fmt_units(int(stable.balanceOf(to)), decimals)} {stable.symbol()}")
