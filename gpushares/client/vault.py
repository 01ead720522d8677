"""Primary issuance and redemption (issue 20): an SPV's ERC-7540 subscription vault, its
requests as pydantic views, and what operators and investors do as `Plan`s.

    terms = vault.vault_terms(client, operator, 1, notice_days="7", fee="0.5")
    opened = vault.open_vault(client, sender, terms)          # create, grant, register
    book = vault.requests(client, 1)                          # every controller's requests
    plan = vault.plan_request_deposit(client, investor, 1, "15000")
    plan = vault.plan_fulfil_deposit(client, operator, 1, investor)    # all pending
    plan = vault.plan_claim(client, investor, 1)              # shares and/or proceeds

The vault (`contracts/SubscriptionVault.vy`) is asynchronous: an investor requests
(stablecoin or shares escrowed in the vault), the SPV's operator fulfils at the NAV the
oracle publishes after the request (forward pricing), the investor claims. Amounts are
what people type: stablecoin (`"15000"`) and whole shares (`"250.5"`); the views hold
base units. Every plan checks what the vault (or the token it mints, moves or burns
through) would refuse, in the contract's order, and names the refusal with the
contract's own message first, then what to do about it ("register new GPUs first",
"fund first"), so nothing that would revert is sent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from pydantic import BaseModel, ConfigDict

from gpushares import reasons
from gpushares.client.chain import (
    ZERO_ADDRESS,
    Chain,
    ChainError,
    Contract,
    Plan,
    Receipt,
    Reverted,
    Tx,
)
from gpushares.client.context import Client
from gpushares.client.markets import (
    Token,
    accounts_in_events,
    action,
    approval,
    event_sum,
    restriction,
    short_of,
    token,
)
from gpushares.client.suite import KYC_PROVIDER_ROLE, OPERATOR_ROLE
from gpushares.client.units import (
    SHARE_DECIMALS,
    BadInput,
    address,
    fmt_units,
    parse_percent,
    percent_to_bps,
    to_base_units,
)

DAY = 86_400
YEAR = 365 * DAY
ADMIN_ROLE = b"\0" * 32
MAX_FEE_PERCENT = Decimal(10)  # SubscriptionVault.MAX_FEE_BPS
MAX_NOTICE_DAYS = 365  # MAX_NOTICE_PERIOD
CANCEL_AFTER_DAYS = (1, 90)  # MIN_CANCEL_AFTER, MAX_CANCEL_AFTER
NAV_DECIMALS = 8
VAULT_ELIGIBILITY_YEARS = 100  # a vault is a contract: its registry record runs a century
NUM = 10**26  # the vault's _NUM: 10**(18 + NAV_DECIMALS)
MAX_UINT128 = 2**128 - 1

_FROZEN = ConfigDict(frozen=True)


def _when(moment: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _duration(seconds: int) -> str:
    days, rest = divmod(seconds, DAY)
    hours, rest = divmod(rest, 3_600)
    minutes = rest // 60
    parts = [f"{days}d" if days else "", f"{hours}h" if hours else "",
             f"{minutes}m" if minutes and not days else ""]
    return " ".join(p for p in parts if p) or f"{seconds}s"


def about(token_: Token, units: int) -> str:
    """An estimate, rounded down to two decimals (`about 909.47 LSH1`)."""
    step = 10 ** max(token_.decimals - 2, 0)
    return token_.fmt(units - units % step)


# ---------------------------------------------------------------------------------
# Views
# ---------------------------------------------------------------------------------


class NavView(BaseModel):
    """The NAV feed as the vault reads it: the latest answer and when it was observed,
    its age at the chain's time, and the NAV a fulfilment would use now (None with the
    vault's reason for refusing it: none yet, not positive, stale)."""

    model_config = _FROZEN

    feed: str
    adapter: str
    answer: int
    updated_at: int  # 0: no answer yet
    age: int
    heartbeat: int
    nav: int | None
    refusal: str | None

    def text(self, value: int) -> str:
        return f"{fmt_units(value, NAV_DECIMALS)} USD per share"

    def line(self) -> str:
        if self.updated_at == 0:
            return f"NAV ({self.feed}): none published yet ({self.refusal})"
        state = "fresh" if self.nav is not None else f"NOT USABLE: {self.refusal}"
        return (f"NAV ({self.feed}) {self.text(self.answer)}, observed "
                f"{_when(self.updated_at)} ({self.age:,}s ago, heartbeat {self.heartbeat:,}s): "
                f"{state}")


class VaultView(BaseModel):
    """An SPV's subscription vault: its terms, the NAV, the backing and its books."""

    model_config = _FROZEN

    spv_id: int
    address: str
    asset: Token
    share: Token
    treasury: str
    notice_period: int
    redemption_fee_bps: int
    cancel_after: int
    nav: NavView
    supply: int
    mint_cap: int
    shares_per_gpu: int
    total_pending_deposit_assets: int
    total_claimable_deposit_assets: int
    total_claimable_deposit_shares: int
    total_pending_redeem_shares: int
    total_claimable_redeem_shares: int
    total_claimable_redeem_assets: int
    redemption_funds: int
    total_income_owed: int
    last_fulfilment_nav: int
    last_fulfilment_time: int

    def lines(self) -> list[str]:
        a, s = self.asset, self.share
        last = (f"last fulfilment at {self.nav.text(self.last_fulfilment_nav)} on "
                f"{_when(self.last_fulfilment_time)}" if self.last_fulfilment_time
                else "no fulfilment yet")
        return [
            f"SPV {self.spv_id} subscription vault {self.address} (ERC-7540): {s.symbol} for "
            f"{a.symbol}",
            f"  notice period {_duration(self.notice_period)}, redemption fee "
            f"{self.redemption_fee_bps / 100:.2f}%, cancel after {_duration(self.cancel_after)}, "
            f"treasury {self.treasury}",
            f"  {self.nav.line()}",
            f"  supply {s.fmt(self.supply)} of a {s.fmt(self.mint_cap)} mint cap (room "
            f"{s.fmt(max(self.mint_cap - self.supply, 0))}; {s.fmt(self.shares_per_gpu)} per "
            "active GPU)",
            f"  pending: {a.fmt(self.total_pending_deposit_assets)} of subscriptions, "
            f"{s.fmt(self.total_pending_redeem_shares)} to redeem",
            f"  claimable: {s.fmt(self.total_claimable_deposit_shares)} (for "
            f"{a.fmt(self.total_claimable_deposit_assets)}), "
            f"{a.fmt(self.total_claimable_redeem_assets)} of proceeds (for "
            f"{s.fmt(self.total_claimable_redeem_shares)})",
            f"  redemption funds {a.fmt(self.redemption_funds)} unallocated; income owed "
            f"{a.fmt(self.total_income_owed)}; {last}",
        ]


class RequestView(BaseModel):
    """One controller's requests (`request(controller)`), what they would give at the
    NAV a fulfilment would use now (or the feed's latest answer), and whether each can
    be fulfilled now (`deposit_refusal` / `redeem_refusal`: None when it can)."""

    model_config = _FROZEN

    controller: str
    asset: Token
    share: Token
    pending_deposit: int
    deposit_requested_at: int
    claimable_deposit_assets: int
    claimable_deposit_shares: int
    pending_redeem: int
    redeem_requested_at: int
    claimable_redeem_shares: int
    claimable_redeem_assets: int
    income_owed: int
    estimated_shares: int | None  # for the pending deposit, at the NAV
    estimated_proceeds: int | None  # for the pending redemption, net of the fee
    notice_over_at: int  # when the pending redemption may be fulfilled (0: none)
    deposit_refusal: str | None
    redeem_refusal: str | None

    @property
    def empty(self) -> bool:
        return not (self.pending_deposit or self.claimable_deposit_assets or self.pending_redeem
                    or self.claimable_redeem_shares or self.income_owed)

    def lines(self) -> list[str]:
        a, s = self.asset, self.share
        out = [f"{self.controller}:"]
        if self.pending_deposit:
            guess = (f" (about {about(s, self.estimated_shares)} at the NAV)"
                     if self.estimated_shares is not None else "")
            state = ("fulfillable now" if self.deposit_refusal is None
                     else f"not fulfillable now: {self.deposit_refusal}")
            out.append(f"  deposit pending {a.fmt(self.pending_deposit)}{guess}, requested "
                       f"{_when(self.deposit_requested_at)}: {state}")
        if self.claimable_deposit_assets:
            out.append(f"  shares claimable {s.fmt(self.claimable_deposit_shares)} (for "
                       f"{a.fmt(self.claimable_deposit_assets)})")
        if self.pending_redeem:
            guess = (f" (about {about(a, self.estimated_proceeds)} after the fee at the NAV)"
                     if self.estimated_proceeds is not None else "")
            state = ("fulfillable now" if self.redeem_refusal is None
                     else f"not fulfillable now: {self.redeem_refusal}")
            out.append(f"  redemption pending {s.fmt(self.pending_redeem)}{guess}, requested "
                       f"{_when(self.redeem_requested_at)}, notice over "
                       f"{_when(self.notice_over_at)}: {state}")
        if self.claimable_redeem_shares:
            out.append(f"  proceeds claimable {a.fmt(self.claimable_redeem_assets)} (for "
                       f"{s.fmt(self.claimable_redeem_shares)})")
        if self.income_owed:
            out.append(f"  income owed {a.fmt(self.income_owed)} (shares the vault holds for "
                       "it keep earning)")
        if len(out) == 1:
            out.append("  nothing pending or claimable")
        return out


class RequestBook(BaseModel):
    """The vault and every controller that ever requested, with something open."""

    model_config = _FROZEN

    vault: VaultView
    requests: list[RequestView]

    def lines(self) -> list[str]:
        out = self.vault.lines()
        if not self.requests:
            return [*out, "  requests: none open"]
        out.append(f"  requests ({len(self.requests)} controller(s)):")
        return [*out, *(f"    {line}" for r in self.requests for line in r.lines())]


class InvestorView(BaseModel):
    """An investor's requests in the vault and its wallet."""

    model_config = _FROZEN

    spv_id: int
    request: RequestView
    wallet_assets: int
    wallet_shares: int
    eligible: bool  # could receive newly issued shares now
    eligibility: str  # the token's message when not

    def lines(self) -> list[str]:
        r = self.request
        out = [f"SPV {self.spv_id} vault: {r.controller} holds {r.share.fmt(self.wallet_shares)} "
               f"and {r.asset.fmt(self.wallet_assets)}",
               *(f"  {line}" for line in r.lines()[1:])]
        if not self.eligible:
            out.append(f"  may not subscribe now: {self.eligibility}")
        return out


class Outcome(BaseModel):
    """What the vault's events in some receipts say was done."""

    model_config = _FROZEN

    deposit_requested: int = 0
    redeem_requested: int = 0
    shares_issued: int = 0  # DepositFulfilled shares
    assets_fulfilled: int = 0  # DepositFulfilled assets (sent to the treasury)
    shares_redeemed: int = 0  # RedeemFulfilled shares (burnt)
    proceeds_set_aside: int = 0  # RedeemFulfilled assets
    fees: int = 0
    shares_claimed: int = 0  # Deposit shares
    proceeds_claimed: int = 0  # Withdraw assets
    assets_returned: int = 0  # DepositRequestCancelled
    shares_returned: int = 0  # RedeemRequestCancelled
    income_claimed: int = 0
    funds_added: int = 0
    funds_withdrawn: int = 0


# ---------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------


def vault_factory(client: Client) -> Contract:
    """The SubscriptionVaultFactory of the deployment."""
    where = client.deployed.subscription_vault_factory
    if where is None:
        raise ChainError("the deployments file has no SubscriptionVaultFactory: run `ape run "
                         "deploy` again (it deploys the whole suite)")
    return client.chain.contract("SubscriptionVaultFactory", where)


def vault_of(client: Client, spv_id: int) -> str | None:
    """The vault of SPV `spv_id`'s token, or None before it is opened."""
    where = str(vault_factory(client).vault_of(client.token(spv_id).address))
    return None if int(where, 16) == 0 else where


class _Rounding:
    """The vault's rounding, for anything with its `asset` and `fee_bps`."""

    asset: Token
    fee_bps: int

    def shares_for(self, assets: int, nav: int) -> int:
        """The vault's rounding: shares = floor(assets * 1e26 / (nav * 10**decimals))."""
        return assets * NUM // (nav * 10**self.asset.decimals)

    def proceeds_for(self, shares: int, nav: int) -> tuple[int, int]:
        """(assets net of the fee, fee): gross rounded down, the fee rounded up."""
        gross = shares * nav * 10**self.asset.decimals // NUM
        fee = -(-gross * self.fee_bps // 10_000)
        return gross - fee, fee


@dataclass(frozen=True)
class _Vault(_Rounding):
    """A vault's contracts and fixed terms, as the plans need them. The checks read the
    chain through its methods (`VaultSnapshot` answers the same from one lens read)."""

    spv_id: int
    vault: Contract
    token: Contract
    stable: Contract
    feed: Contract
    asset: Token
    share: Token
    notice_period: int
    fee_bps: int
    cancel_after: int

    @property
    def chain(self) -> Chain:
        return self.vault.chain

    def nav(self) -> NavView:
        feed = self.feed
        try:
            _round, answer, _started, updated, _answered = feed.latestRoundData()
            latest: tuple[int, int] | Reverted = (int(answer), int(updated))
        except Reverted as exc:  # no data yet: the vault refuses with the hub's message
            latest = exc
        return nav_view_from(_feed_name(feed), feed.address, int(feed.heartbeat()), latest,
                             self.chain.now())

    @property
    def address(self) -> str:
        return self.vault.address

    def request(self, who: str) -> tuple[int, ...]:
        return tuple(int(x) for x in self.vault.request(who))

    def income_owed(self, who: str) -> int:
        return int(self.vault.income_owed(who))

    def vault_role(self) -> bool:
        """Whether the vault holds the token's OPERATOR_ROLE (it mints and burns)."""
        return bool(self.token.hasRole(OPERATOR_ROLE, self.vault.address))

    def restriction(self, sender: str, receiver: str, amount: int) -> tuple[int, str]:
        return restriction(self.token, sender, receiver, amount)

    def vault_code(self) -> int:
        """The token's code for issuing to the vault (0: it may hold shares)."""
        return int(self.token.detectTransferRestriction(ZERO_ADDRESS, self.vault.address, 0))

    def cap_supply(self) -> tuple[int, int]:
        return int(self.token.backing()[0]), int(self.token.totalSupply())

    def per_gpu(self) -> int:
        return int(self.token.shares_per_gpu())

    def funds(self) -> int:
        return int(self.vault.redemption_funds())

    def now(self) -> int:
        return self.chain.now()


@dataclass(frozen=True)
class VaultSnapshot(_Rounding):
    """What the checks of `_request_view` read, answered from one lens read (the app's
    `gpushares.client.lens.vaults`) instead of the chain: `restrictions` holds the
    token's verdict on each movement the checks ask about."""

    spv_id: int
    address: str
    asset: Token
    share: Token
    notice_period: int
    fee_bps: int
    requests: dict[str, tuple[int, ...]]
    incomes: dict[str, int]
    role: bool
    code_for_vault: int
    restrictions: dict[tuple[str, str, int], tuple[int, str]]
    cap: int
    supply: int
    shares_per_gpu: int
    redemption_funds: int
    at: int

    def request(self, who: str) -> tuple[int, ...]:
        return self.requests[who]

    def income_owed(self, who: str) -> int:
        return self.incomes[who]

    def vault_role(self) -> bool:
        return self.role

    def restriction(self, sender: str, receiver: str, amount: int) -> tuple[int, str]:
        try:
            return self.restrictions[(sender, receiver, amount)]
        except KeyError:
            raise ChainError(f"the lens read no verdict on moving {amount} from {sender} to "
                             f"{receiver}") from None

    def vault_code(self) -> int:
        return self.code_for_vault

    def cap_supply(self) -> tuple[int, int]:
        return self.cap, self.supply

    def per_gpu(self) -> int:
        return self.shares_per_gpu

    def funds(self) -> int:
        return self.redemption_funds

    def now(self) -> int:
        return self.at


def nav_view_from(name: str, adapter: str, heartbeat: int, latest: tuple[int, int] | Reverted,
                  now: int) -> NavView:
    """The NAV as the vault reads it at chain time `now`, from the feed's latest
    (answer, updatedAt) or its revert (shared by the readers here and the app's lens)."""
    if isinstance(latest, Reverted):  # no data yet: the vault refuses with the hub's message
        return NavView(feed=name, adapter=adapter, answer=0, updated_at=0, age=-1,
                       heartbeat=heartbeat, nav=None,
                       refusal=latest.reason or "no NAV published yet")
    answer, updated = latest
    age = now - updated
    refusal = None
    if answer <= 0 or answer >= 2**128:
        refusal = reasons.VAULT_NAV_NOT_POSITIVE
    elif updated > now or age > heartbeat:
        refusal = (f"{reasons.VAULT_NAV_STALE} (observed {age:,}s ago, heartbeat "
                   f"{heartbeat:,}s): the oracle must publish a newer NAV first")
    return NavView(feed=name, adapter=adapter, answer=max(answer, 0), updated_at=updated,
                   age=age, heartbeat=heartbeat,
                   nav=answer if refusal is None else None, refusal=refusal)


def _feed_name(feed: Contract) -> str:
    from oracle.reports import feed_name

    try:
        return feed_name("0x" + bytes(feed.FEED_ID()).hex())
    except (Reverted, ValueError):
        return str(feed.address)


def _load(client: Client, spv_id: int) -> _Vault:
    where = vault_of(client, spv_id)
    if where is None:
        raise BadInput(f"SPV {spv_id} has no subscription vault yet: its operator opens it with "
                       f"`ape run spv subscriptions open --spv {spv_id}`")
    chain = client.chain
    vault = chain.contract("SubscriptionVault", where)
    share_token = chain.contract("GPUShareToken", vault.share())
    stable = client.erc20(vault.asset())
    asset = Token(address=stable.address, symbol=str(stable.symbol()),
                  decimals=int(stable.decimals()))
    share = Token(address=share_token.address, symbol=str(share_token.symbol()),
                  decimals=SHARE_DECIMALS)
    return _Vault(spv_id, vault, share_token, stable, chain.contract("FeedAdapter",
                                                                      vault.nav_feed()),
                  asset, share, int(vault.notice_period()), int(vault.redemption_fee_bps()),
                  int(vault.cancel_after()))


def status(client: Client, spv_id: int) -> VaultView:
    """SPV `spv_id`'s vault (BadInput if it has none)."""
    return _view(_load(client, spv_id))


def _view(v: _Vault) -> VaultView:
    vault, token_ = v.vault, v.token
    return VaultView(
        spv_id=v.spv_id, address=vault.address, asset=v.asset, share=v.share,
        treasury=str(vault.treasury()), notice_period=v.notice_period,
        redemption_fee_bps=v.fee_bps, cancel_after=v.cancel_after, nav=v.nav(),
        supply=int(token_.totalSupply()), mint_cap=int(token_.backing()[0]),
        shares_per_gpu=int(token_.shares_per_gpu()),
        total_pending_deposit_assets=int(vault.total_pending_deposit_assets()),
        total_claimable_deposit_assets=int(vault.total_claimable_deposit_assets()),
        total_claimable_deposit_shares=int(vault.total_claimable_deposit_shares()),
        total_pending_redeem_shares=int(vault.total_pending_redeem_shares()),
        total_claimable_redeem_shares=int(vault.total_claimable_redeem_shares()),
        total_claimable_redeem_assets=int(vault.total_claimable_redeem_assets()),
        redemption_funds=int(vault.redemption_funds()),
        total_income_owed=int(vault.total_income_owed()),
        last_fulfilment_nav=int(vault.last_fulfilment_nav()),
        last_fulfilment_time=int(vault.last_fulfilment_time()))


def _request_view(v: _Vault | VaultSnapshot, who: str, nav: NavView) -> RequestView:
    pd, pd_at, cd_a, cd_s, pr, pr_at, cr_s, cr_a = v.request(who)
    shown = nav.nav if nav.nav is not None else (nav.answer or None)
    estimated_shares = v.shares_for(pd, shown) if pd and shown else None
    estimated_proceeds = v.proceeds_for(pr, shown)[0] if pr and shown else None
    deposit_refusal = "; ".join(_deposit_problems(v, who, pd, nav)) if pd else None
    redeem_refusal = "; ".join(_redeem_problems(v, who, pr, nav)) if pr else None
    return RequestView(
        controller=who, asset=v.asset, share=v.share, pending_deposit=pd,
        deposit_requested_at=pd_at, claimable_deposit_assets=cd_a, claimable_deposit_shares=cd_s,
        pending_redeem=pr, redeem_requested_at=pr_at, claimable_redeem_shares=cr_s,
        claimable_redeem_assets=cr_a, income_owed=v.income_owed(who),
        estimated_shares=estimated_shares, estimated_proceeds=estimated_proceeds,
        notice_over_at=pr_at + v.notice_period if pr else 0,
        deposit_refusal=deposit_refusal or None, redeem_refusal=redeem_refusal or None)


def controllers(client: Client, spv_id: int) -> list[str]:
    """Every controller that ever requested (the vault's request events), in order."""
    return _controllers(_load(client, spv_id))


def _controllers(v: _Vault) -> list[str]:
    return accounts_in_events(v.vault, {"DepositRequest": "controller",
                                        "RedeemRequest": "controller"})


def requests(client: Client, spv_id: int, *, everyone: bool = False) -> RequestBook:
    """The vault and each controller's requests (those with nothing open are left out
    unless `everyone`), each with whether it can be fulfilled now, judged alone
    (fulfilling one subscription uses backing another may need)."""
    v = _load(client, spv_id)
    nav = v.nav()
    views = [_request_view(v, who, nav) for who in _controllers(v)]
    return RequestBook(vault=_view(v), requests=[r for r in views if everyone or not r.empty])


def investor(client: Client, spv_id: int, who: str) -> InvestorView:
    """`who`'s requests in SPV `spv_id`'s vault, its wallet, and whether it may subscribe."""
    account = address(who, "investor")
    v = _load(client, spv_id)
    code, message = restriction(v.token, ZERO_ADDRESS, account, 0)
    return InvestorView(spv_id=spv_id, request=_request_view(v, account, v.nav()),
                        wallet_assets=int(v.stable.balanceOf(account)),
                        wallet_shares=int(v.token.balanceOf(account)), eligible=code == 0,
                        eligibility=message)


def outcome(client: Client, spv_id: int, receipts: Sequence[Receipt]) -> Outcome:
    """What SPV `spv_id`'s vault's events in `receipts` say was done."""
    vault = _load(client, spv_id).vault
    logs = [log for receipt in receipts for log in receipt.logs]
    fields = {
        "deposit_requested": ("DepositRequest", "assets"),
        "redeem_requested": ("RedeemRequest", "shares"),
        "shares_issued": ("DepositFulfilled", "shares"),
        "assets_fulfilled": ("DepositFulfilled", "assets"),
        "shares_redeemed": ("RedeemFulfilled", "shares"),
        "proceeds_set_aside": ("RedeemFulfilled", "assets"),
        "fees": ("RedeemFulfilled", "fee"),
        "shares_claimed": ("Deposit", "shares"),
        "proceeds_claimed": ("Withdraw", "assets"),
        "assets_returned": ("DepositRequestCancelled", "assets"),
        "shares_returned": ("RedeemRequestCancelled", "shares"),
        "income_claimed": ("IncomeClaimed", "amount"),
        "funds_added": ("RedemptionFundsChanged", "added"),
        "funds_withdrawn": ("RedemptionFundsChanged", "withdrawn"),
    }
    return Outcome(**{key: event_sum(vault, event, field, logs)
                      for key, (event, field) in fields.items()})


# ---------------------------------------------------------------------------------
# Checks, in the vault's order
# ---------------------------------------------------------------------------------


def _nav_problems(nav: NavView, requested_at: int) -> list[str]:
    """The vault's `_nav()` and forward-pricing checks."""
    if nav.nav is None:
        return [str(nav.refusal)]
    if nav.updated_at <= requested_at:
        return [f"{reasons.VAULT_NAV_NOT_AFTER_REQUEST} (the latest NAV was observed "
                f"{_when(nav.updated_at)}, the request made {_when(requested_at)}): the oracle "
                "must publish the next NAV first"]
    return []


def _token_role_problem(v: _Vault | VaultSnapshot) -> str | None:
    if v.vault_role():
        return None
    return (f"{reasons.ACCESS_CONTROL_MISSING_ROLE} (the vault lacks SPV {v.spv_id}'s token "
            "OPERATOR_ROLE, which mints and burns: the token's admin grants it with `ape run "
            f"spv subscriptions register --spv {v.spv_id}`)")


def _vault_move_problem(v: _Vault | VaultSnapshot, sender: str, receiver: str, amount: int,
                        what: str) -> str | None:
    """The token's verdict on a share movement the vault makes, with the step missing
    when the vault itself is the problem (not registered as a holder)."""
    code, message = v.restriction(sender, receiver, amount)
    if not code:
        return None
    hint = ""
    if v.address in (sender, receiver) and v.vault_code():
        hint = (f": the vault must be registered as a holder first (`ape run spv subscriptions "
                f"register --account KYC_PROVIDER --spv {v.spv_id}`)")
    return f"{message} (ERC-1404 code {code}: {what}){hint}"


def _deposit_problems(v: _Vault | VaultSnapshot, controller: str, assets: int,
                      nav: NavView) -> list[str]:
    """Why `fulfil_deposit(controller, assets)` would be refused now (the role aside)."""
    pending, requested_at = v.request(controller)[:2]
    if assets == 0 or assets > pending:
        return [f"{reasons.VAULT_EXCEEDS_PENDING} ({controller} has "
                f"{v.asset.fmt(pending)} pending)"]
    problems = _nav_problems(nav, requested_at)
    price = nav.nav if nav.nav is not None else (nav.answer or None)
    if price is None:
        return problems
    shares = v.shares_for(assets, price)
    if shares == 0:
        problems.append(reasons.VAULT_NO_SHARE_AT_NAV)
        return problems
    if (role := _token_role_problem(v)) is not None:
        return [*problems, role]
    move = _vault_move_problem(v, ZERO_ADDRESS, v.address, shares,
                               "the token refuses to issue shares to the vault")
    if move is not None:
        return [*problems, move]
    cap, supply = v.cap_supply()
    if supply + shares > cap:
        per_gpu = v.per_gpu()
        gpus = -(-(supply + shares - cap) // per_gpu) if per_gpu else 0
        at = "at the latest NAV" if nav.nav is None or problems else "at the NAV"
        problems.append(
            f"{reasons.TOKEN_MINT_EXCEEDS_ACTIVE_GPUS}: issuing {v.share.fmt(shares)} {at} "
            f"would exceed it (supply {v.share.fmt(supply)} of a {v.share.fmt(cap)} cap): "
            f"register new GPUs first ({gpus} more GPU(s) of {v.share.fmt(per_gpu)}: `ape run "
            f"spv add-gpus --spv {v.spv_id}`)")
    return problems


def _redeem_problems(v: _Vault | VaultSnapshot, controller: str, shares: int,
                     nav: NavView) -> list[str]:
    """Why `fulfil_redeem(controller, shares)` would be refused now (the role aside)."""
    r = v.request(controller)
    pending, requested_at = r[4], r[5]
    if shares == 0 or shares > pending:
        return [f"{reasons.VAULT_EXCEEDS_PENDING} ({controller} has "
                f"{v.share.fmt(pending)} pending)"]
    over = requested_at + v.notice_period
    now = v.now()
    if now < over:
        return [f"{reasons.VAULT_NOTICE_NOT_OVER} (notice of {_duration(v.notice_period)} from "
                f"{_when(requested_at)}: over {_when(over)}, in {_duration(over - now)})"]
    problems = _nav_problems(nav, requested_at)
    if problems:
        return problems
    assert nav.nav is not None
    assets, _fee = v.proceeds_for(shares, nav.nav)
    funds = v.funds()
    if assets > funds:
        return [f"{reasons.VAULT_REDEMPTION_FUNDS_SHORT} (the redemption needs "
                f"{v.asset.fmt(assets)} after the fee, the vault holds {v.asset.fmt(funds)} "
                f"unallocated): fund first (`ape run spv subscriptions fund --spv {v.spv_id} "
                f"--amount {fmt_units(assets - funds, v.asset.decimals).replace(',', '')}`)"]
    if (role := _token_role_problem(v)) is not None:
        return [role]
    move = _vault_move_problem(v, v.address, ZERO_ADDRESS, shares,
                               "the token refuses the vault's burn")
    return [move] if move is not None else []


def _operator_problem(v: _Vault, who: str) -> str | None:
    if v.vault.hasRole(OPERATOR_ROLE, who):
        return None
    return (f"{reasons.ACCESS_CONTROL_MISSING_ROLE} ({who} lacks the vault's OPERATOR_ROLE: "
            "the SPV operator who opened the vault holds it)")


def _payee_problem(v: _Vault, client: Client, controller: str, receiver: str,
                   consequence: str) -> str | None:
    """The vault's `_check_payee`: neither the controller nor the receiver frozen or
    blocked (the registry's income check), with the restriction's message."""
    registry = client.registry()
    for who in (controller, receiver):
        code = int(registry.income_code(who))
        if code:
            message = str(v.token.messageForTransferRestriction(code))
            return f"{message} (ERC-1404 code {code}: {who} may not be paid; {consequence})"
    return None


def _units(value: str | Decimal | int, decimals: int, what: str) -> int:
    return to_base_units(value, decimals, what)


# ---------------------------------------------------------------------------------
# Opening a vault
# ---------------------------------------------------------------------------------


class VaultTerms(BaseModel):
    """A new vault's terms, checked: which SPV, priced by which NAV feed, where the
    subscriptions go, the notice period, fee and cancellation delay, and where the
    vault is registered as a holder."""

    model_config = _FROZEN

    spv_id: int
    share: Token
    asset: Token
    feed: str
    feed_adapter: str
    treasury: str
    notice_period: int
    redemption_fee_bps: int
    cancel_after: int
    jurisdiction: int
    jurisdiction_code: str


def _days(value: str | Decimal | int, what: str, low: int, high: int) -> int:
    """A number of days (decimals allowed) as whole seconds, between `low` and `high`."""
    try:
        number = Decimal(str(value))
    except InvalidOperation as exc:
        raise BadInput(f"{what}: {value!r} is not a number of days") from exc
    if not number.is_finite() or not low <= number <= high:
        raise BadInput(f"{what}: {value} days is not between {low} and {high} days")
    seconds = number * DAY
    if seconds != seconds.to_integral_value():
        raise BadInput(f"{what}: {value} days is not a whole number of seconds")
    return int(seconds)


def vault_terms(client: Client, operator: str, spv_id: int, *, feed: str | None = None,
                treasury: str | None = None, notice_days: str | Decimal = "7",
                fee: str | Decimal = "0.5", cancel_after_days: str | Decimal = "14",
                jurisdiction: str | None = None) -> VaultTerms:
    """The terms of SPV `spv_id`'s vault from what a person typed; BadInput naming the
    field for what the vault would refuse. Defaults: the NAV feed of the SPV's token
    (`NAV/<symbol>/USD`), the operator as treasury, a 7-day notice, a 0.5 % fee,
    cancellation after 14 days, the vault registered where the SPV is incorporated."""
    from gpushares.client import kyc
    from oracle.reports import feed_id

    who = address(operator, "operator")
    share_token = client.token(spv_id)
    share = Token(address=share_token.address, symbol=str(share_token.symbol()),
                  decimals=SHARE_DECIMALS)
    asset = token(client, share_token.income_token())
    notice = _days(notice_days, "notice_days", 0, MAX_NOTICE_DAYS)
    cancel = _days(cancel_after_days, "cancel_after_days", *CANCEL_AFTER_DAYS)
    fee_pct = parse_percent(fee, "fee", allow_zero=True, cap=MAX_FEE_PERCENT)
    feed_name = feed or f"NAV/{share.symbol}/USD"
    try:
        fid = bytes.fromhex(feed_id(feed_name)[2:])
    except ValueError as exc:
        raise BadInput(f"feed: {exc}") from exc
    hub = client.hub()
    if not hub.feed(fid).exists:
        raise BadInput(f"feed: the oracle hub has no feed {feed_name}: the hub admin adds it with "
                       f"`ape run oracle add-feed --name {feed_name} ...` (or name another feed)")
    adapter = str(hub.feed_adapter(fid))
    if int(client.chain.contract("FeedAdapter", adapter).decimals()) != NAV_DECIMALS:
        raise BadInput(f"feed: {reasons.VAULT_FEED_DECIMALS}")
    place = jurisdiction or str(int(client.spv_factory().spvs(spv_id).jurisdiction))
    rule, region = kyc.residence_and_region(place)
    if region is not None or kyc.region_problem(rule, region) is not None:
        raise BadInput(f"jurisdiction: register the vault in a country ({rule.alpha2}), not a "
                       "region")
    return VaultTerms(spv_id=spv_id, share=share, asset=asset, feed=feed_name,
                      feed_adapter=adapter,
                      treasury=address(treasury, "treasury") if treasury else who,
                      notice_period=notice, redemption_fee_bps=percent_to_bps(fee_pct, "fee"),
                      cancel_after=cancel, jurisdiction=rule.numeric,
                      jurisdiction_code=rule.alpha2)


def plan_open(client: Client, operator: str, terms: VaultTerms) -> Plan:
    """`create_vault` for SPV `terms.spv_id`'s token (an operator of the token)."""
    who = address(operator, "operator")
    factory = vault_factory(client)
    share_token = client.token(terms.spv_id)
    problems, notes = [], []
    if not share_token.hasRole(OPERATOR_ROLE, who):
        problems.append(f"{reasons.VAULT_FACTORY_NOT_TOKEN_OPERATOR} ({who} is not an operator "
                        f"of SPV {terms.spv_id}'s token: sign with the SPV operator's account)")
    existing = str(factory.vault_of(share_token.address))
    if int(existing, 16):
        problems.append(f"{reasons.VAULT_FACTORY_VAULT_EXISTS} (at {existing})")
    try:
        client.chain.contract("FeedAdapter", terms.feed_adapter).latestRoundData()
    except Reverted:
        notes.append(f"note: feed {terms.feed} has no value yet; fulfilments wait for one")
    tx = factory.create_vault.tx(
        share_token.address, terms.feed_adapter, terms.treasury, terms.notice_period,
        terms.redemption_fee_bps, terms.cancel_after,
        what=f"open the subscription vault of SPV {terms.spv_id} ({terms.share.symbol})")
    return action("vault opening", [tx], problems, notes)


def plan_register_vault(client: Client, signer: str, spv_id: int,
                        jurisdiction: str | None = None) -> Plan:
    """What the vault needs before it can issue, hold and burn shares, as far as
    `signer` may do it: the token's OPERATOR_ROLE (granted by the token's admin), an
    eligible (accredited) holder record for a century where the SPV is incorporated and
    the custodian flag (by a KYC provider). The notes say what is left for someone
    else; refused when `signer` may do none of what is missing (or nothing is)."""
    from gpushares.client import kyc

    who = address(signer, "signer")
    v = _load(client, spv_id)
    registry = client.registry()
    where = v.vault.address
    txs: list[Tx] = []
    left: list[str] = []
    if not v.token.hasRole(OPERATOR_ROLE, where):
        if v.token.hasRole(ADMIN_ROLE, who):
            txs.append(v.token.grantRole.tx(
                OPERATOR_ROLE, where, what=f"grant SPV {spv_id}'s token OPERATOR_ROLE to the "
                                           f"vault {where} (it mints and burns)"))
        else:
            left.append(f"{reasons.ACCESS_CONTROL_MISSING_ROLE} ({who} is not the admin of SPV "
                        f"{spv_id}'s token: the token's admin must grant the vault the token's "
                        "OPERATOR_ROLE with this command)")
    record = registry.investor(where)
    rule = kyc.residence(jurisdiction or str(int(client.spv_factory().spvs(spv_id).jurisdiction)))
    needs_record = not (record.registered and record.accredited and not record.frozen
                        and int(record.jurisdiction) == rule.numeric
                        and int(record.expires_at) > client.chain.now() + YEAR)
    needs_custodian = not registry.custodian(where)
    if (needs_record or needs_custodian) and not registry.hasRole(KYC_PROVIDER_ROLE, who):
        left.append(f"{reasons.ACCESS_CONTROL_MISSING_ROLE} ({who} is not a KYC provider: a KYC "
                    "provider must register the vault as a holder with this command)")
    elif needs_record or needs_custodian:
        if needs_record:
            expires = client.chain.now() + VAULT_ELIGIBILITY_YEARS * YEAR
            txs.append(registry.set_investor.tx(
                where, rule.numeric, True, expires,
                what=f"register vault {where} as an eligible holder ({rule.alpha2}, accredited)"))
        if needs_custodian:
            txs.append(registry.set_custodian.tx(
                where, True, what=f"mark vault {where} as a custodian (it holds shares for its "
                                  "controllers)"))
    if txs:
        return action("vault registration", txs, (), tuple(f"still missing: {m}" for m in left))
    return action("vault registration", [], left or [
        f"the vault {where} is registered and holds the token's OPERATOR_ROLE: nothing to do"])


def registration_line(client: Client, spv_id: int) -> str:
    """Whether SPV `spv_id`'s vault holds the token's OPERATOR_ROLE and is registered as
    an eligible holder and a custodian."""
    v = _load(client, spv_id)
    registry = client.registry()
    where = v.vault.address
    role = bool(v.token.hasRole(OPERATOR_ROLE, where))
    code, message = restriction(v.token, ZERO_ADDRESS, where, 0)
    custodian = bool(registry.custodian(where))
    state = ("ready" if role and not code and custodian else "NOT ready")
    holder = "an eligible holder" if not code else f"not an eligible holder ({message})"
    return (f"vault {where}: {state}: the token's OPERATOR_ROLE {'granted' if role else 'MISSING'}"
            f", {holder}, {'a custodian' if custodian else 'NOT a custodian'}")


class OpenedVault(BaseModel):
    """A vault `open_vault` made, and what is still missing."""

    model_config = _FROZEN

    vault: str
    terms: VaultTerms
    granted: bool
    registered: bool
    notes: list[str] = []

    def lines(self, network: str = "") -> list[str]:
        t = self.terms
        out = [*(f"  {note}" for note in self.notes),
               f"SPV {t.spv_id} subscription vault {self.vault}: {t.share.symbol} for "
               f"{t.asset.symbol} at {t.feed} (adapter {t.feed_adapter})",
               f"  notice period {_duration(t.notice_period)}, redemption fee "
               f"{t.redemption_fee_bps / 100:.2f}%, cancel after {_duration(t.cancel_after)}, "
               f"treasury {t.treasury}"]
        if self.granted and self.registered:
            return [*out, "the vault can take requests now (`ape run invest request ...`)"]
        where = f" --network {network}" if network else ""
        if not self.granted:
            out.append("  the opener is not the token's admin: the token's admin grants the vault "
                       f"the token's OPERATOR_ROLE: `ape run spv subscriptions register{where} "
                       f"--account TOKEN_ADMIN --spv {t.spv_id}`")
        if not self.registered:
            out.append("  the opener is not a KYC provider: the vault cannot hold shares until a "
                       f"KYC provider registers it: `ape run spv subscriptions register{where} "
                       f"--account KYC_PROVIDER --spv {t.spv_id}`")
        return out


def open_vault(client: Client, sender: object, terms: VaultTerms,
               on_receipt: Callable[[Receipt], None] = lambda _r: None) -> OpenedVault:
    """Create the vault, then grant it the token's OPERATOR_ROLE and register it as a
    holder and custodian as far as the sender may (signed by `sender`; `on_receipt`
    sees each transaction). Refused before anything is sent when the factory would
    refuse."""
    chain = client.chain
    opener = chain.address_of(sender)
    plan = plan_open(client, opener, terms).checked()
    receipt = chain.send(plan.txs[0], sender)
    on_receipt(receipt)
    where = str(vault_factory(client).events("VaultCreated", receipt)[0]["vault"])
    register = plan_register_vault(client, opener, terms.spv_id,
                                   str(terms.jurisdiction))
    for tx in register.txs:
        on_receipt(chain.send(tx, sender))
    share_token = client.token(terms.spv_id)
    registry = client.registry()
    return OpenedVault(vault=where, terms=terms,
                       granted=bool(share_token.hasRole(OPERATOR_ROLE, where)),
                       registered=bool(registry.investor(where).registered
                                       and registry.custodian(where)),
                       notes=list(plan.notes))


# ---------------------------------------------------------------------------------
# Operators: fulfil, fund
# ---------------------------------------------------------------------------------


def plan_fulfil_deposit(client: Client, operator: str, spv_id: int, controller: str,
                        amount: str | Decimal | None = None) -> Plan:
    """Fulfil `amount` of `controller`'s pending subscription (stablecoin; None: all of
    it) at the NAV: refused while the NAV is stale or not published after the request,
    or while the shares would exceed the fleet's backing (register new GPUs first)."""
    who, to = address(operator, "operator"), address(controller, "controller")
    v = _load(client, spv_id)
    pending = v.request(to)[0]
    assets = pending if amount is None else _units(amount, v.asset.decimals, "amount")
    problems = [p for p in [_operator_problem(v, who)] if p]
    nav = v.nav()
    problems += _deposit_problems(v, to, assets, nav)
    notes = []
    if not problems and nav.nav is not None:
        notes.append(f"{v.share.fmt(v.shares_for(assets, nav.nav))} issued at "
                     f"{nav.text(nav.nav)}; {v.asset.fmt(assets)} to the treasury "
                     f"{v.vault.treasury()}")
    tx = v.vault.fulfil_deposit.tx(
        to, assets, what=f"fulfil {v.asset.fmt(assets)} of {to}'s subscription")
    return action("deposit fulfilment", [tx], problems, notes)


def plan_fulfil_redeem(client: Client, operator: str, spv_id: int, controller: str,
                       shares: str | Decimal | None = None) -> Plan:
    """Fulfil `shares` of `controller`'s pending redemption (None: all of it) at the
    NAV, after the notice period, from the redemption funds (fund first)."""
    who, to = address(operator, "operator"), address(controller, "controller")
    v = _load(client, spv_id)
    pending = v.request(to)[4]
    units = pending if shares is None else _units(shares, SHARE_DECIMALS, "shares")
    problems = [p for p in [_operator_problem(v, who)] if p]
    nav = v.nav()
    problems += _redeem_problems(v, to, units, nav)
    notes = []
    if not problems and nav.nav is not None:
        assets, fee = v.proceeds_for(units, nav.nav)
        notes.append(f"{v.share.fmt(units)} burnt at {nav.text(nav.nav)}: "
                     f"{v.asset.fmt(assets)} claimable by {to} (fee {v.asset.fmt(fee)})")
    tx = v.vault.fulfil_redeem.tx(
        to, units, what=f"fulfil {v.share.fmt(units)} of {to}'s redemption")
    return action("redemption fulfilment", [tx], problems, notes)


def plan_fund(client: Client, operator: str, spv_id: int, amount: str | Decimal) -> Plan:
    """Add `amount` of stablecoin to the redemption funds (approving the vault first)."""
    who = address(operator, "operator")
    v = _load(client, spv_id)
    units = _units(amount, v.asset.decimals, "amount")
    problems = [p for p in [_operator_problem(v, who)] if p]
    held = int(v.stable.balanceOf(who))
    if held < units:
        problems.append(f"{reasons.ERC20_INSUFFICIENT_BALANCE} "
                        f"({short_of(who, v.asset, held, units, 'to fund')})")
    txs = [*approval(v.stable, who, v.vault.address, units, f"approve {v.asset.fmt(units)}"),
           v.vault.fund_redemptions.tx(units, what=f"fund redemptions with "
                                                   f"{v.asset.fmt(units)}")]
    return action("funding", txs, problems)


def plan_defund(client: Client, operator: str, spv_id: int,
                amount: str | Decimal | None = None) -> Plan:
    """Send `amount` (None: all) of the unallocated redemption funds back to the
    treasury (never escrowed subscriptions, proceeds set aside or income)."""
    who = address(operator, "operator")
    v = _load(client, spv_id)
    funds = int(v.vault.redemption_funds())
    units = funds if amount is None else _units(amount, v.asset.decimals, "amount")
    problems = [p for p in [_operator_problem(v, who)] if p]
    if units == 0 or units > funds:
        problems.append(f"{reasons.VAULT_EXCEEDS_REDEMPTION_FUNDS} ({v.asset.fmt(funds)} "
                        "unallocated)")
    tx = v.vault.withdraw_redemption_funds.tx(
        units, what=f"withdraw {v.asset.fmt(units)} of redemption funds to the treasury "
                    f"{v.vault.treasury()}")
    return action("funds withdrawal", [tx], problems)


# ---------------------------------------------------------------------------------
# Investors: request, cancel, claim
# ---------------------------------------------------------------------------------


def plan_request_deposit(client: Client, investor_: str, spv_id: int,
                         amount: str | Decimal) -> Plan:
    """Subscribe `amount` of stablecoin (escrowed in the vault until the operator
    fulfils at the next NAV; approving the vault first if needed). Refused, with the
    token's message, when the investor could not receive newly issued shares."""
    who = address(investor_, "investor")
    v = _load(client, spv_id)
    units = _units(amount, v.asset.decimals, "amount")
    money = v.asset.fmt(units)
    problems, notes = [], []
    if v.request(who)[0]:
        problems.append(f"{reasons.VAULT_REQUEST_PENDING} ({who} has "
                        f"{v.asset.fmt(v.request(who)[0])} pending)")
    code, message = restriction(v.token, ZERO_ADDRESS, who, 0)
    if code:
        problems.append(f"{message} (ERC-1404 code {code}: {who} could not receive newly "
                        f"issued {v.share.symbol})")
    if units > MAX_UINT128:
        problems.append(reasons.VAULT_AMOUNT_TOO_LARGE)
    held = int(v.stable.balanceOf(who))
    if held < units:
        problems.append(f"{reasons.ERC20_INSUFFICIENT_BALANCE} "
                        f"({short_of(who, v.asset, held, units, 'to subscribe')})")
    nav = v.nav()
    if nav.answer:
        shares = about(v.share, v.shares_for(units, nav.answer))
        notes.append(f"priced at the next NAV the oracle publishes (the latest: "
                     f"{nav.text(nav.answer)}, about {shares}); binding: cancellable only "
                     f"after {_duration(v.cancel_after)} without a fulfilment")
    txs = [*approval(v.stable, who, v.vault.address, units, f"approve {money}"),
           v.vault.requestDeposit.tx(units, who, who,
                                     what=f"request a subscription of {money} to SPV {spv_id}")]
    return action("deposit request", txs, problems, notes)


def plan_request_redeem(client: Client, investor_: str, spv_id: int,
                        shares: str | Decimal) -> Plan:
    """Redeem `shares` (escrowed in the vault, a transfer the token's rules decide;
    they keep earning for the investor until burnt; approving the vault first)."""
    who = address(investor_, "investor")
    v = _load(client, spv_id)
    units = _units(shares, SHARE_DECIMALS, "shares")
    text = v.share.fmt(units)
    problems, notes = [], []
    pending = v.request(who)[4]
    if pending:
        problems.append(f"{reasons.VAULT_REQUEST_PENDING} ({who} has {v.share.fmt(pending)} "
                        "pending)")
    if units > MAX_UINT128:
        problems.append(reasons.VAULT_AMOUNT_TOO_LARGE)
    move = _vault_move_problem(v, who, v.vault.address, units,
                               "the token refuses the move into the vault")
    if move is not None:
        problems.append(move)
    nav = v.nav()
    notes.append(f"fulfilled after the {_duration(v.notice_period)} notice period at the next "
                 f"NAV, less a {v.fee_bps / 100:.2f}% fee"
                 + (f" (about {about(v.asset, v.proceeds_for(units, nav.answer)[0])} at "
                    f"{nav.text(nav.answer)})" if nav.answer else ""))
    txs = [*approval(v.token, who, v.vault.address, units, f"approve {text}"),
           v.vault.requestRedeem.tx(units, who, who,
                                    what=f"request the redemption of {text} from SPV {spv_id}")]
    return action("redemption request", txs, problems, notes)


def plan_cancel(client: Client, investor_: str, spv_id: int, kind: str, *,
                receiver: str | None = None) -> Plan:
    """Cancel the whole pending `kind` ("deposit" or "redeem") request, for exactly
    what was escrowed: a request is a binding order until `cancel_after` has passed
    since it without a fulfilment (a NAV report is public before it lands)."""
    if kind not in ("deposit", "redeem"):
        raise BadInput(f"kind: {kind!r} is not 'deposit' or 'redeem'")
    who = address(investor_, "investor")
    to = address(receiver, "receiver") if receiver is not None else who
    v = _load(client, spv_id)
    r = v.request(who)
    pending, requested_at = (r[0], r[1]) if kind == "deposit" else (r[4], r[5])
    problems = []
    unlocked = requested_at + v.cancel_after
    if pending == 0:
        problems.append(f"{reasons.VAULT_NOTHING_PENDING} ({who} has no pending {kind} request)")
    elif v.chain.now() < unlocked:
        problems.append(f"{reasons.VAULT_REQUEST_LOCKED} (requested {_when(requested_at)}, "
                        f"cancel after {_duration(v.cancel_after)}: cancellable from "
                        f"{_when(unlocked)} unless fulfilled before)")
    elif kind == "redeem":
        move = _vault_move_problem(v, v.vault.address, to, pending,
                                   f"the shares cannot go back to {to}")
        if move is not None:
            problems.append(move)
    if kind == "deposit":
        tx = v.vault.cancelDepositRequest.tx(
            to, who, what=f"cancel the subscription of {v.asset.fmt(pending)}")
    else:
        tx = v.vault.cancelRedeemRequest.tx(
            to, who, what=f"cancel the redemption of {v.share.fmt(pending)}")
    return action("cancellation", [tx], problems)


def plan_claim_shares(client: Client, investor_: str, spv_id: int, *,
                      receiver: str | None = None) -> Plan:
    """Claim every share of the fulfilled subscription (ERC-7540 `deposit` of all the
    claimable assets) to `receiver` (default the investor), a gated transfer."""
    who = address(investor_, "investor")
    to = address(receiver, "receiver") if receiver is not None else who
    v = _load(client, spv_id)
    assets, shares = v.request(who)[2:4]
    problems = []
    if assets == 0:
        problems.append(f"{reasons.VAULT_EXCEEDS_CLAIMABLE} ({who} has no shares to claim)")
    elif (move := _vault_move_problem(v, v.vault.address, to, shares,
                                      f"{to} may not receive the shares")) is not None:
        problems.append(move)
    tx = v.vault.deposit.tx(assets, to, who,
                            what=f"claim {v.share.fmt(shares)} (subscribed "
                                 f"{v.asset.fmt(assets)})")
    return action("claim", [tx], problems)


def plan_claim_proceeds(client: Client, investor_: str, spv_id: int, *,
                        receiver: str | None = None) -> Plan:
    """Claim every unit of the fulfilled redemption's proceeds (ERC-7540 `redeem` of
    all the claimable shares) to `receiver` (default the investor)."""
    who = address(investor_, "investor")
    to = address(receiver, "receiver") if receiver is not None else who
    v = _load(client, spv_id)
    shares, assets = v.request(who)[6:8]
    problems = []
    if shares == 0:
        problems.append(f"{reasons.VAULT_EXCEEDS_CLAIMABLE} ({who} has no proceeds to claim)")
    elif (payee := _payee_problem(v, client, who, to,
                                  f"{v.asset.fmt(assets)} stays claimable")) is not None:
        problems.append(payee)
    tx = v.vault.redeem.tx(shares, to, who,
                           what=f"claim {v.asset.fmt(assets)} (redeemed {v.share.fmt(shares)})")
    return action("claim", [tx], problems)


def plan_claim(client: Client, investor_: str, spv_id: int, *,
               receiver: str | None = None) -> Plan:
    """Claim whatever is claimable: the shares of a fulfilled subscription and the
    proceeds of a fulfilled redemption (refused when there is nothing)."""
    who = address(investor_, "investor")
    v = _load(client, spv_id)
    r = v.request(who)
    plans = []
    if r[2]:
        plans.append(plan_claim_shares(client, who, spv_id, receiver=receiver))
    if r[6]:
        plans.append(plan_claim_proceeds(client, who, spv_id, receiver=receiver))
    if not plans:
        return plan_claim_shares(client, who, spv_id, receiver=receiver)
    refused = [p.refusal.reason for p in plans if p.refusal is not None]
    return action("claim", [tx for p in plans for tx in p.txs], refused)


def plan_claim_income(client: Client, investor_: str, spv_id: int, *,
                      receiver: str | None = None) -> Plan:
    """Claim the rental income the shares the vault holds for the investor earned
    (escrowed for redemption, or issued and not yet claimed)."""
    who = address(investor_, "investor")
    to = address(receiver, "receiver") if receiver is not None else who
    v = _load(client, spv_id)
    owed = int(v.vault.income_owed(who))
    problems = []
    if owed == 0:
        problems.append(f"{reasons.VAULT_NO_INCOME} (shares the vault holds for {who} earn when "
                        f"the SPV distributes: `ape run spv distribute`)")
    elif (payee := _payee_problem(v, client, who, to,
                                  f"{v.asset.fmt(owed)} stays owed")) is not None:
        problems.append(payee)
    tx = v.vault.claim_income.tx(to, who, what=f"claim {v.asset.fmt(owed)} of income")
    return action("income claim", [tx], problems)
