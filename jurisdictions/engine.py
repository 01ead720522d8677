"""The transfer decision, in Python: `decide(asset, sender, receiver, amount) -> Decision`.

It runs the same checks, in the same order, as `ComplianceRegistry._check` on-chain
(the differential tests hold the two to the same code on random inputs), and adds what
the chain cannot: the legal citations behind a refusal.

Order (the first failing check decides the code, see `jurisdictions.codes`):

1. the token is paused;
2. a jurisdiction where the token's GPUs sit does not recognise tokenized title
   (`unclear` counts as recognised only with the SPV's legal-opinion override; a
   jurisdiction missing from the rules never counts), unless the movement is a transfer
   back to the SPV (redemption) or a burn; a mint is never exempt. In a country whose
   file lists subdivisions, each region the GPUs sit in is checked too: a GPU without
   a region stops transfers (fail closed), a listed region must be `recognised`, or
   `unclear` where the country is `unclear` with the override in force;
3. sender (unless a mint): registered, not expired, wallet not frozen;
4. receiver (unless a burn): registered, not expired, wallet not frozen, residence
   policy (missing from the rules or `blocked`: refused; in a country whose file lists
   subdivisions, a record without a region is refused (RECEIVER_REGION_UNKNOWN) and a
   listed region's policy tightens the country's; `accredited_only`: accredited);
5. sender (unless a mint): the amount is within the balance, and within the unfrozen
   balance.

A position in a lending pool is a holding (issue 17): `decide_pool` (or one function per
operation: `decide_supply`, `decide_withdraw`, `decide_claim_income`, `decide_borrow`,
`decide_liquidate`) decides each `LendingPool` operation that changes who holds, benefits
from or can withdraw shares exactly as the pool asks the chain, that is as transfers
between the parties through `decide` (or the receiver checks alone), in the pool's order.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from jurisdictions.codes import Restriction, TitleStatus, message
from jurisdictions.rules import (
    SUBDIVISION_PATTERN,
    HolderPolicy,
    JurisdictionRules,
    RuleBook,
    SubdivisionRules,
    TitleRecognition,
    load_rules,
)

Numeric = Annotated[int, Field(ge=1, le=999)]
Amount = Annotated[int, Field(ge=0, lt=2**256)]
Subdivision = Annotated[str, StringConstraints(pattern=SUBDIVISION_PATTERN)]


class InvestorRecord(BaseModel):
    """An investor's eligibility record, as the registry holds it."""

    model_config = ConfigDict(frozen=True)

    jurisdiction: Numeric
    accredited: bool = False
    expires_at: Annotated[int, Field(ge=1, lt=2**64)]
    # ISO 3166-2 region of residence (`UA-30`), None when none is recorded. The registry
    # keeps only the part after the hyphen (the country is `jurisdiction`), so the
    # engine matches a region by that part too.
    subdivision: Subdivision | None = None


class Party(BaseModel):
    """One side of a share movement: its record and its position in the token."""

    model_config = ConfigDict(frozen=True)

    address: str
    record: InvestorRecord | None = None
    wallet_frozen: bool = False
    balance: Amount = 0
    frozen_tokens: Amount = 0
    is_spv: bool = False


class ShareAsset(BaseModel):
    """The share token being moved: its SPV, where its GPUs sit, whether it is paused.

    `overridden_locations`: where the SPV's title override is in force on-chain
    (`registry.title_override_in_force`). Leave it None to use the overrides the rules
    data records for `spv_lei` (what the chain holds once `apply` has run); set it to
    decide exactly as a registry that is not in sync would.

    `regions`: the regions the GPUs sit in, as (location, ISO 3166-2 code or "" for GPUs
    registered without one) pairs (`registry.asset_subdivisions`). None: every GPU in
    `locations` was registered without a region.
    """

    model_config = ConfigDict(frozen=True)

    spv_lei: str | None = None
    locations: frozenset[Numeric] = frozenset()
    paused: bool = False
    overridden_locations: frozenset[Numeric] | None = None
    regions: frozenset[tuple[Numeric, str]] | None = None

    def regions_in(self, location: int) -> frozenset[str]:
        """The regions (ISO 3166-2, "" for none) of the GPUs in `location`."""
        if self.regions is None:
            return frozenset({""})
        return frozenset(code for loc, code in self.regions if loc == location)


class Decision(BaseModel):
    """The outcome: allowed or not, the ERC-1404 code, its message, and the law behind it."""

    model_config = ConfigDict(frozen=True)

    allowed: bool
    code: Restriction
    message: str
    citations: tuple[str, ...] = ()
    jurisdictions: tuple[str, ...] = ()

    @classmethod
    def of(
        cls,
        code: Restriction,
        rules: Iterable[JurisdictionRules | SubdivisionRules] = (),
        note: str = "",
    ) -> Decision:
        rules = list(rules)
        citations = tuple(dict.fromkeys(str(c) for r in rules for c in r.citations))
        text = message(code) + (f" {note}" if note else "")
        return cls(
            allowed=code is Restriction.SUCCESS,
            code=code,
            message=text,
            citations=citations,
            jurisdictions=tuple(
                r.code if isinstance(r, SubdivisionRules) else r.alpha2 for r in rules),
        )


_DEFAULT_RULES: RuleBook | None = None


def default_rules() -> RuleBook:
    """The shipped rules (`jurisdictions/rules/`), loaded once."""
    global _DEFAULT_RULES
    if _DEFAULT_RULES is None:
        _DEFAULT_RULES = load_rules()
    return _DEFAULT_RULES


def title_recognised(
    rules: RuleBook,
    location: int,
    spv_lei: str | None,
    overridden_locations: frozenset[int] | None = None,
) -> bool:
    """Whether a token may carry title to a GPU located in `location` for this SPV."""
    rule = rules.get(location)
    if rule is None or rule.sanctioned:
        return False
    if rule.title_recognition is TitleRecognition.RECOGNISED:
        return True
    if rule.title_recognition is not TitleRecognition.UNCLEAR:
        return False
    if overridden_locations is not None:
        return location in overridden_locations
    return spv_lei is not None and rule.override_for(spv_lei) is not None


def region_rule(rule: JurisdictionRules, code: str) -> SubdivisionRules | None:
    """The subdivision of `rule`'s country whose code ends as `code` does (the registry
    keys a region by its country's numeric code and the part after the hyphen)."""
    suffix = code.partition("-")[2]
    return next((s for s in rule.subdivisions if s.code[3:] == suffix), None)


def region_blocks(rule: JurisdictionRules, region: str) -> SubdivisionRules | str | None:
    """Why a GPU in `region` ("" for none recorded) of `rule`'s country stops transfers,
    given that the country's own title check passed (the registry's `_region_ok`): None
    when it does not; else the region's rule, or a note when no region was recorded.
    Only for a country whose file lists subdivisions."""
    if not region:
        return (f"{rule.name} ({rule.alpha2}) has regional rules and a GPU there was "
                "registered without its ISO 3166-2 region.")
    sub = region_rule(rule, region)
    if sub is None or sub.title_code is TitleStatus.RECOGNISED:
        return None
    if sub.title_code is TitleStatus.UNCLEAR and rule.title_code is TitleStatus.UNCLEAR:
        return None  # the country's override (in force: its check passed) covers it
    return sub


def location_recognised(
    rules: RuleBook,
    location: int,
    spv_lei: str | None,
    overridden_locations: frozenset[int] | None = None,
    regions: frozenset[str] = frozenset({""}),
) -> bool:
    """`title_recognised` for the country, and `region_blocks` for each region the GPUs
    in it sit in where its file lists subdivisions (what the registry's `_title_ok`
    decides for one location)."""
    if not title_recognised(rules, location, spv_lei, overridden_locations):
        return False
    rule = rules[location]
    return not rule.subdivisions or all(region_blocks(rule, r) is None for r in regions)


def check_gpu_location(
    location: int,
    spv_lei: str | None = None,
    *,
    rules: RuleBook | None = None,
    subdivision: str | None = None,
) -> Decision:
    """May the SPV add a GPU located in `location` (region `subdivision`, ISO 3166-2)?
    Refusals carry the citations."""
    rules = rules if rules is not None else default_rules()
    if title_recognised(rules, location, spv_lei):
        rule = rules[location]
        if not rule.subdivisions:
            return Decision.of(Restriction.SUCCESS, [rule])
        blocker = region_blocks(rule, subdivision or "")
        if blocker is None:
            return Decision.of(Restriction.SUCCESS, [rule])
        if isinstance(blocker, str):
            return Decision.of(Restriction.ASSET_TITLE_NOT_RECOGNISED, [rule],
                               blocker.replace("a GPU there was registered", "the GPU is"))
        what = "is under sanctions" if blocker.sanctioned else (
            f"has title_recognition = {blocker.title_recognition}")
        return Decision.of(Restriction.ASSET_TITLE_NOT_RECOGNISED, [blocker],
                           f"{blocker.name} ({blocker.code}) {what}.")
    rule = rules.get(location)
    if rule is None:
        return Decision.of(
            Restriction.ASSET_TITLE_NOT_RECOGNISED,
            note=f"Location {location} has no rules file: tokenized title there is not "
            "established.",
        )
    if rule.sanctioned:
        return Decision.of(
            Restriction.ASSET_TITLE_NOT_RECOGNISED, [rule],
            f"{rule.name} ({rule.alpha2}) is under sanctions: tokenized title there is never "
            "recognised, whatever an SPV's legal opinion says.")
    note = f"{rule.name} ({rule.alpha2}): title_recognition = {rule.title_recognition}"
    if rule.title_recognition is TitleRecognition.UNCLEAR:
        note += " and this SPV has recorded no legal-opinion override"
    return Decision.of(Restriction.ASSET_TITLE_NOT_RECOGNISED, [rule], note + ".")


def _title_refusal(rules: RuleBook, asset: ShareAsset, blocking: list[int]) -> Decision:
    """ASSET_TITLE_NOT_RECOGNISED for the `blocking` locations, with what stops each."""
    cited: list[JurisdictionRules | SubdivisionRules] = []
    countries: list[str] = []
    regions: list[str] = []
    unlisted: list[str] = []
    for loc in blocking:
        rule = rules.get(loc)
        if rule is None:
            unlisted.append(str(loc))
        elif not title_recognised(rules, loc, asset.spv_lei, asset.overridden_locations):
            cited.append(rule)
            countries.append(f"{rule.alpha2} ({rule.title_recognition})")
        else:
            for region in sorted(asset.regions_in(loc)):
                blocker = region_blocks(rule, region)
                if isinstance(blocker, SubdivisionRules):
                    cited.append(blocker)
                    status = "sanctioned" if blocker.sanctioned else blocker.title_recognition
                    regions.append(f"{blocker.code} ({status})")
                elif blocker is not None:
                    cited.append(rule)
                    regions.append(f"{rule.alpha2} (a GPU without its region)")
    parts = []
    if countries:
        parts.append("Title not recognised in: " + ", ".join(countries) + ".")
    if regions:
        parts.append("Title not recognised in regions: " + ", ".join(regions) + ".")
    if unlisted:
        parts.append("No rules for: " + ", ".join(unlisted) + ".")
    return Decision.of(Restriction.ASSET_TITLE_NOT_RECOGNISED, cited, " ".join(parts))


def residence_decision(record: InvestorRecord, rules: RuleBook) -> Decision:
    """The residence part of the receiver checks (the registry's `_residence_code`): the
    country's holder policy, tightened by the region's where the country's file lists
    subdivisions (a record without a region is then refused)."""
    rule = rules.get(record.jurisdiction)
    if rule is None:
        return Decision.of(
            Restriction.RECEIVER_JURISDICTION_BLOCKED,
            note=f"Jurisdiction {record.jurisdiction} has no rules file.",
        )
    if rule.holder_policy is HolderPolicy.BLOCKED:
        return Decision.of(Restriction.RECEIVER_JURISDICTION_BLOCKED, [rule])
    deciding: JurisdictionRules | SubdivisionRules = rule
    if rule.subdivisions:
        if record.subdivision is None:
            return Decision.of(
                Restriction.RECEIVER_REGION_UNKNOWN, [rule],
                f"{rule.name} ({rule.alpha2}) lists regions with rules of their own: "
                + ", ".join(s.code for s in rule.subdivisions) + ".")
        sub = region_rule(rule, record.subdivision)
        if sub is not None and sub.holder_policy.strictness > rule.holder_policy.strictness:
            deciding = sub
        if deciding.holder_policy is HolderPolicy.BLOCKED:
            where = f"{sub.name} ({sub.code})" if sub else record.subdivision
            return Decision.of(Restriction.RECEIVER_JURISDICTION_BLOCKED, [deciding],
                               f"Region of residence: {where}.")
    if deciding.holder_policy is HolderPolicy.ACCREDITED_ONLY and not record.accredited:
        return Decision.of(Restriction.RECEIVER_NOT_ACCREDITED, [deciding])
    return Decision.of(Restriction.SUCCESS)


def receiver_decision(receiver: Party, *, rules: RuleBook, now: int) -> Decision:
    """The receiver checks alone (the registry's `check_receiver`)."""
    record = receiver.record
    if record is None:
        return Decision.of(Restriction.RECEIVER_NOT_REGISTERED)
    if record.expires_at <= now:
        return Decision.of(Restriction.RECEIVER_ELIGIBILITY_EXPIRED)
    if receiver.wallet_frozen:
        return Decision.of(Restriction.RECEIVER_FROZEN)
    return residence_decision(record, rules)


def decide(
    asset: ShareAsset,
    sender: Party | None,
    receiver: Party | None,
    amount: int,
    *,
    rules: RuleBook | None = None,
    now: int,
) -> Decision:
    """Decide a movement of `amount` share base units of `asset` at `now`.

    `sender=None` is a mint, `receiver=None` a burn. `rules` defaults to the shipped
    rules. `now` (unix seconds) is the chain's time (the block the movement would land
    in), never this machine's clock: KYC expiry is judged by the chain.
    """
    if amount < 0:
        raise ValueError(f"amount must be >= 0, got {amount}")
    if sender is None and receiver is None:
        raise ValueError("a movement needs a sender, a receiver, or both")
    rules = rules if rules is not None else default_rules()

    if asset.paused:
        return Decision.of(Restriction.TOKEN_PAUSED)

    if receiver is not None:
        blocking = sorted(
            loc
            for loc in asset.locations
            if not location_recognised(rules, loc, asset.spv_lei, asset.overridden_locations,
                                       asset.regions_in(loc))
        )
        redemption = sender is not None and receiver.is_spv
        if blocking and not redemption:
            return _title_refusal(rules, asset, blocking)

    if sender is not None:
        if sender.record is None:
            return Decision.of(Restriction.SENDER_NOT_REGISTERED)
        if sender.record.expires_at <= now:
            return Decision.of(Restriction.SENDER_ELIGIBILITY_EXPIRED)
        if sender.wallet_frozen:
            return Decision.of(Restriction.SENDER_FROZEN)

    if receiver is not None:
        outcome = receiver_decision(receiver, rules=rules, now=now)
        if not outcome.allowed:
            return outcome

    if sender is not None:
        if amount > sender.balance:
            return Decision.of(Restriction.INSUFFICIENT_BALANCE)
        if amount > sender.balance - min(sender.frozen_tokens, sender.balance):
            return Decision.of(Restriction.AMOUNT_FROZEN)

    return Decision.of(Restriction.SUCCESS)


# ---------------------------------------------------------------------------------
# Lending pools: a position in a pool is a holding
# ---------------------------------------------------------------------------------


class PoolOperation(StrEnum):
    """The `LendingPool` operations that change who holds, benefits from or can withdraw
    collateral shares (issue 17: each is decided like a transfer between its parties)."""

    SUPPLY_COLLATERAL = "supply_collateral"
    WITHDRAW_COLLATERAL = "withdraw_collateral"
    CLAIM_INCOME = "claim_income"
    BORROW = "borrow"
    LIQUIDATE = "liquidate"


def _same_wallet(a: Party, b: Party | None) -> bool:
    return b is None or a.address.lower() == b.address.lower()


def _explained(decision: Decision, note: str) -> Decision:
    """`decision` with `note` appended to its message when it is a refusal (the code,
    citations and jurisdictions stay `decide`'s)."""
    if decision.allowed:
        return decision
    return decision.model_copy(update={"message": f"{decision.message} {note}"})


def _first_refusal(*steps: tuple[Decision, str]) -> Decision:
    """The first refused step (its note appended), else success: the pool runs its
    checks in this order and the first failing one reverts the call."""
    for decision, note in steps:
        if not decision.allowed:
            return _explained(decision, note)
    return Decision.of(Restriction.SUCCESS)


def _positive(amount: int, operation: PoolOperation) -> None:
    if amount < 1:
        raise ValueError(
            f"{operation}: amount must be >= 1, got {amount} (the pool refuses a zero amount "
            "before any compliance check)"
        )


def decide_supply(
    asset: ShareAsset,
    caller: Party,
    beneficiary: Party | None,
    amount: int,
    *,
    pool: Party,
    rules: RuleBook | None = None,
    now: int,
) -> Decision:
    """`pool.supply_collateral(amount, beneficiary)` called by `caller`.

    For another wallet it is first decided as a transfer of `amount` from the caller to
    the beneficiary (who gains the position, its income and the right to withdraw it);
    then, for oneself too, the share token decides the caller's transfer into the pool.
    `beneficiary=None` (or the caller's own wallet) supplies for the caller. `pool` is
    the pool as a holder (its record: a registered, eligible custodian). `amount >= 1`.
    """
    _positive(amount, PoolOperation.SUPPLY_COLLATERAL)
    into_pool = (
        decide(asset, caller, pool, amount, rules=rules, now=now),
        f"(supply_collateral: the share token's transfer of {amount} from {caller.address} "
        f"into the pool {pool.address}.)",
    )
    if _same_wallet(caller, beneficiary):
        return _first_refusal(into_pool)
    assert beneficiary is not None
    return _first_refusal(
        (
            decide(asset, caller, beneficiary, amount, rules=rules, now=now),
            f"(supply_collateral for {beneficiary.address}: decided as a transfer of "
            f"{amount} from {caller.address} to {beneficiary.address}.)",
        ),
        into_pool,
    )


def decide_withdraw(
    asset: ShareAsset,
    caller: Party,
    receiver: Party | None,
    amount: int,
    *,
    pooled: int,
    pool: Party,
    rules: RuleBook | None = None,
    now: int,
) -> Decision:
    """`pool.withdraw_collateral(amount, receiver)` called by `caller`, whose position
    holds `pooled` collateral shares.

    To the caller's own wallet (`receiver=None` or the caller) nothing changes hands, so
    it is decided as a transfer of 0 from the caller to itself (a frozen, expired,
    unregistered or ineligible holder, a paused token, an unrecognised title refuse it).
    To another wallet it is decided as a transfer of `amount` from the caller to the
    receiver with the caller's holding taken as its wallet (`caller.balance`) plus
    `pooled`, so a partial freeze (`caller.frozen_tokens`) covers pooled shares too.

    Then the pool sends the shares from its own wallet (`pool.balance`) and the token
    decides that transfer. The pool refuses a withdrawal beyond the position with its
    own message before sending anything, so for `amount > pooled` only the first step is
    decided here (success then means: compliance allows it, the pool will not). The
    pool's other conditions (not paused by its guardian, the loan within the max LTV at
    a fresh price) are not compliance and are not decided here. `amount >= 1`.
    """
    _positive(amount, PoolOperation.WITHDRAW_COLLATERAL)
    if pooled < 0:
        raise ValueError(f"pooled must be >= 0, got {pooled}")
    if _same_wallet(caller, receiver):
        receiver = caller
        first = (
            decide(asset, caller, caller, 0, rules=rules, now=now),
            f"(withdraw_collateral to the holder's own wallet: decided as a transfer of 0 "
            f"from {caller.address} to itself.)",
        )
    else:
        assert receiver is not None
        holding = caller.model_copy(update={"balance": caller.balance + pooled})
        first = (
            decide(asset, holding, receiver, amount, rules=rules, now=now),
            f"(withdraw_collateral to {receiver.address}: decided as a transfer of {amount} "
            f"from {caller.address} to {receiver.address}, the holding counted as wallet "
            f"{caller.balance} + pooled {pooled}.)",
        )
    if amount > pooled:
        return _first_refusal(first)
    return _first_refusal(
        first,
        (
            decide(asset, pool, receiver, amount, rules=rules, now=now),
            f"(withdraw_collateral: the share token's transfer of {amount} from the pool "
            f"{pool.address} to {receiver.address}.)",
        ),
    )


def decide_claim_income(
    caller: Party, *, rules: RuleBook | None = None, now: int, paused: bool = False
) -> Decision:
    """`pool.claim_income()` called by `caller`: the holder of a position takes its
    rental income only while the rules let it hold the shares (the registry's
    `check_receiver`: registered, not expired, wallet not frozen, residence policy),
    and, like the token's own claims, not while the share token is `paused`.

    Not decided here: whether income is owed."""
    rules = rules if rules is not None else default_rules()
    decision = receiver_decision(caller, rules=rules, now=now)
    if decision.code is Restriction.SUCCESS and paused:
        decision = Decision.of(Restriction.TOKEN_PAUSED)
    return _explained(
        decision,
        f"(claim_income: {caller.address} must be a holder the rules let hold the shares.)",
    )


def decide_borrow(caller: Party, *, rules: RuleBook | None = None, now: int) -> Decision:
    """`pool.borrow(...)` called by `caller`: only a holder the rules let hold the shares
    (the registry's `check_receiver`) borrows against them. How much collateral counts
    (frozen shares count for nothing) is `counted_collateral`; the loan-to-value, price
    and liquidity conditions are the pool's, not compliance."""
    rules = rules if rules is not None else default_rules()
    return _explained(
        receiver_decision(caller, rules=rules, now=now),
        f"(borrow: {caller.address} must be a holder the rules let hold the shares.)",
    )


def counted_collateral(holder: Party, pooled: int) -> int:
    """The part of a `pooled` collateral position that backs a new loan: a freeze of
    `holder.frozen_tokens` covers the wallet (`holder.balance`) and the position together,
    and only the unfrozen part of that holding counts, never more than the position:
    `min(pooled, holding - min(frozen, holding))`, `holding = balance + pooled`."""
    if pooled < 0:
        raise ValueError(f"pooled must be >= 0, got {pooled}")
    holding = holder.balance + pooled
    return min(pooled, holding - min(holder.frozen_tokens, holding))


def decide_liquidate(
    asset: ShareAsset,
    liquidator: Party,
    *,
    pool: Party,
    seized: int = 0,
    rules: RuleBook | None = None,
    now: int,
) -> Decision:
    """`pool.liquidate(borrower, ...)` called by `liquidator`: the pool sends the seized
    collateral to the liquidator, so it is first decided as a transfer of 0 from the
    pool to the liquidator (before any accounting), then, when `seized` shares are
    known, the share token decides the pool's transfer of them. Whether the loan can be
    liquidated (debt, a fresh price, above the liquidation LTV) is the pool's, not
    compliance. The borrower is no party to the decision: the lenders' claim on the
    collateral came first."""
    if seized < 0:
        raise ValueError(f"seized must be >= 0, got {seized}")
    steps = [(
        decide(asset, pool, liquidator, 0, rules=rules, now=now),
        f"(liquidate: decided as a transfer of 0 from the pool {pool.address} to the "
        f"liquidator {liquidator.address}.)",
    )]
    if seized:
        steps.append((
            decide(asset, pool, liquidator, seized, rules=rules, now=now),
            f"(liquidate: the share token's transfer of the {seized} seized shares from the "
            f"pool {pool.address} to {liquidator.address}.)",
        ))
    return _first_refusal(*steps)


def decide_pool(
    asset: ShareAsset,
    operation: PoolOperation,
    caller: Party,
    counterparty: Party | None = None,
    amount: int = 0,
    *,
    pool: Party,
    pooled: int = 0,
    rules: RuleBook | None = None,
    now: int,
) -> Decision:
    """Decide `operation` on a lending pool of `asset`'s shares, called by `caller`.

    One entry point over `decide_supply` (`counterparty`: the beneficiary, `amount`
    shares), `decide_withdraw` (`counterparty`: the receiver, `amount` shares, `pooled`:
    the caller's collateral), `decide_claim_income` and `decide_borrow` (no counterparty;
    `amount` unused) and `decide_liquidate` (`amount`: the shares seized, 0 if not yet
    known). `counterparty=None` means the caller's own wallet. `pool` is the pool as a
    holder: its record, wallet freeze, share balance and frozen amount. `now` is the
    chain's time.
    """
    if operation is PoolOperation.SUPPLY_COLLATERAL:
        return decide_supply(asset, caller, counterparty, amount, pool=pool, rules=rules,
                             now=now)
    if operation is PoolOperation.WITHDRAW_COLLATERAL:
        return decide_withdraw(asset, caller, counterparty, amount, pooled=pooled, pool=pool,
                               rules=rules, now=now)
    if operation is PoolOperation.LIQUIDATE:
        if counterparty is not None:
            raise ValueError("liquidate: pass no counterparty (the borrower is no party to "
                             "the decision; the pool sends the collateral to the caller)")
        return decide_liquidate(asset, caller, pool=pool, seized=amount, rules=rules, now=now)
    if not _same_wallet(caller, counterparty):
        raise ValueError(f"{operation}: pass no counterparty (the caller is the holder)")
    if operation is PoolOperation.CLAIM_INCOME:
        return decide_claim_income(caller, rules=rules, now=now, paused=asset.paused)
    return decide_borrow(caller, rules=rules, now=now)


# ---------------------------------------------------------------------------------
# Subscription vaults (issue 20): requests and claims are transfers too
# ---------------------------------------------------------------------------------


class VaultOperation(StrEnum):
    """The `SubscriptionVault` operations compliance decides (issue 20)."""

    REQUEST_DEPOSIT = "request_deposit"
    CLAIM_SHARES = "claim_shares"
    REQUEST_REDEEM = "request_redeem"
    CANCEL_REDEEM = "cancel_redeem"
    CLAIM_ASSETS = "claim_assets"
    CANCEL_DEPOSIT = "cancel_deposit"


def sender_decision(party: Party, *, now: int) -> Decision:
    """The sender checks alone (the registry's `check_sender`): registered, not expired,
    not frozen."""
    if party.record is None:
        return Decision.of(Restriction.SENDER_NOT_REGISTERED)
    if party.record.expires_at <= now:
        return Decision.of(Restriction.SENDER_ELIGIBILITY_EXPIRED)
    if party.wallet_frozen:
        return Decision.of(Restriction.SENDER_FROZEN)
    return Decision.of(Restriction.SUCCESS)


def income_decision(party: Party, *, rules: RuleBook | None = None) -> Decision:
    """The registry's `income_code`: may `party` be paid stablecoin (income, redemption
    proceeds)? A frozen wallet is not; a registered one resident where the rules block
    holders (country or region, or a region missing where the country needs one) is not;
    an expired, removed or absent record does not stop a payment (the money was earned)."""
    rules = rules if rules is not None else default_rules()
    if party.wallet_frozen:
        return Decision.of(Restriction.RECEIVER_FROZEN)
    if party.record is None:
        return Decision.of(Restriction.SUCCESS)
    decision = residence_decision(party.record, rules)
    if decision.code is Restriction.RECEIVER_NOT_ACCREDITED:
        return Decision.of(Restriction.SUCCESS)
    return decision


def decide_vault(
    asset: ShareAsset,
    operation: VaultOperation,
    *,
    vault: Party,
    party: Party,
    receiver: Party | None = None,
    shares: int = 0,
    rules: RuleBook | None = None,
    now: int,
) -> Decision:
    """Decide a `SubscriptionVault` operation as the vault asks the chain.

    - REQUEST_DEPOSIT: `party` is the controller; refused up front unless it could
      receive newly issued shares (`decide` of a mint of 0 to it).
    - CLAIM_SHARES: the controller `party` directs shares held for it, so it must be
      able to send (registered, not expired, not frozen: the registry's `check_sender`,
      asked first, before the token); then the vault transfers `shares` to `receiver`
      (default: `party`).
    - REQUEST_REDEEM: `party` (the owner) transfers `shares` to the vault, which holds the
      token's OPERATOR_ROLE (pass `vault` with `is_spv=True`: a transfer to the SPV is a
      redemption, exempt from the title check).
    - CANCEL_REDEEM: as CLAIM_SHARES, for the escrowed `shares`.
    - CLAIM_ASSETS (redeem, withdraw, claim_income) and CANCEL_DEPOSIT: stablecoin is
      paid for the controller `party` to `receiver`: `income_decision` of both, the
      controller first.
    Amounts, prices, notice periods and funds are the vault's, not compliance."""
    rules = rules if rules is not None else default_rules()
    receiver = receiver if receiver is not None else party
    if operation is VaultOperation.REQUEST_DEPOSIT:
        return decide(asset, None, party, 0, rules=rules, now=now)
    if operation is VaultOperation.REQUEST_REDEEM:
        return decide(asset, party, vault, shares, rules=rules, now=now)
    if operation in (VaultOperation.CLAIM_SHARES, VaultOperation.CANCEL_REDEEM):
        sender = sender_decision(party, now=now)
        if not sender.allowed:
            return sender
        return decide(asset, vault, receiver, shares, rules=rules, now=now)
    first = income_decision(party, rules=rules)
    return first if not first.allowed else income_decision(receiver, rules=rules)
