"""The transfer decision, in Python: `decide(asset, sender, receiver, amount) -> Decision`.

It runs the same checks, in the same order, as `ComplianceRegistry._check` on-chain
(the differential tests hold the two to the same code on random inputs), and adds what
the chain cannot: the legal citations behind a refusal.

Order (the first failing check decides the code, see `jurisdictions.codes`):

1. the token is paused;
2. a jurisdiction where the token's GPUs sit does not recognise tokenized title
   (`unclear` counts as recognised only with the SPV's legal-opinion override; a
   jurisdiction missing from the rules never counts), unless the movement is a transfer
   back to the SPV (redemption) or a burn; a mint is never exempt;
3. sender (unless a mint): registered, not expired, wallet not frozen;
4. receiver (unless a burn): registered, not expired, wallet not frozen, residence
   policy (missing from the rules or `blocked`: refused; `accredited_only`: accredited);
5. sender (unless a mint): the amount is within the balance, and within the unfrozen
   balance.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from jurisdictions.codes import Restriction, message
from jurisdictions.rules import (
    HolderPolicy,
    JurisdictionRules,
    RuleBook,
    TitleRecognition,
    load_rules,
)

Numeric = Annotated[int, Field(ge=1, le=999)]
Amount = Annotated[int, Field(ge=0, lt=2**256)]


class InvestorRecord(BaseModel):
    """An investor's eligibility record, as the registry holds it."""

    model_config = ConfigDict(frozen=True)

    jurisdiction: Numeric
    accredited: bool = False
    expires_at: Annotated[int, Field(ge=1, lt=2**64)]


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
    """

    model_config = ConfigDict(frozen=True)

    spv_lei: str | None = None
    locations: frozenset[Numeric] = frozenset()
    paused: bool = False
    overridden_locations: frozenset[Numeric] | None = None


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
        cls, code: Restriction, rules: Iterable[JurisdictionRules] = (), note: str = ""
    ) -> Decision:
        rules = list(rules)
        citations = tuple(dict.fromkeys(str(c) for r in rules for c in r.citations))
        text = message(code) + (f" {note}" if note else "")
        return cls(
            allowed=code is Restriction.SUCCESS,
            code=code,
            message=text,
            citations=citations,
            jurisdictions=tuple(r.alpha2 for r in rules),
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
    if rule is None:
        return False
    if rule.title_recognition is TitleRecognition.RECOGNISED:
        return True
    if rule.title_recognition is not TitleRecognition.UNCLEAR:
        return False
    if overridden_locations is not None:
        return location in overridden_locations
    return spv_lei is not None and rule.override_for(spv_lei) is not None


def check_gpu_location(
    location: int, spv_lei: str | None = None, *, rules: RuleBook | None = None
) -> Decision:
    """May the SPV add a GPU located in `location`? Refusals carry the citations."""
    rules = rules if rules is not None else default_rules()
    if title_recognised(rules, location, spv_lei):
        return Decision.of(Restriction.SUCCESS, [rules[location]])
    rule = rules.get(location)
    if rule is None:
        return Decision.of(
            Restriction.ASSET_TITLE_NOT_RECOGNISED,
            note=f"Location {location} has no rules file: tokenized title there is not "
            "established.",
        )
    note = f"{rule.name} ({rule.alpha2}): title_recognition = {rule.title_recognition}"
    if rule.title_recognition is TitleRecognition.UNCLEAR:
        note += " and this SPV has recorded no legal-opinion override"
    return Decision.of(Restriction.ASSET_TITLE_NOT_RECOGNISED, [rule], note + ".")


def receiver_decision(receiver: Party, *, rules: RuleBook, now: int) -> Decision:
    """The receiver checks alone (the registry's `check_receiver`)."""
    record = receiver.record
    if record is None:
        return Decision.of(Restriction.RECEIVER_NOT_REGISTERED)
    if record.expires_at <= now:
        return Decision.of(Restriction.RECEIVER_ELIGIBILITY_EXPIRED)
    if receiver.wallet_frozen:
        return Decision.of(Restriction.RECEIVER_FROZEN)
    rule = rules.get(record.jurisdiction)
    if rule is None:
        return Decision.of(
            Restriction.RECEIVER_JURISDICTION_BLOCKED,
            note=f"Jurisdiction {record.jurisdiction} has no rules file.",
        )
    if rule.holder_policy is HolderPolicy.BLOCKED:
        return Decision.of(Restriction.RECEIVER_JURISDICTION_BLOCKED, [rule])
    if rule.holder_policy is HolderPolicy.ACCREDITED_ONLY and not record.accredited:
        return Decision.of(Restriction.RECEIVER_NOT_ACCREDITED, [rule])
    return Decision.of(Restriction.SUCCESS)


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
            if not title_recognised(rules, loc, asset.spv_lei, asset.overridden_locations)
        )
        redemption = sender is not None and receiver.is_spv
        if blocking and not redemption:
            listed = [rules[loc] for loc in blocking if loc in rules]
            unlisted = [str(loc) for loc in blocking if loc not in rules]
            note = ""
            if listed:
                note += "Title not recognised in: " + ", ".join(
                    f"{r.alpha2} ({r.title_recognition})" for r in listed
                ) + "."
            if unlisted:
                note += (" " if note else "") + "No rules for: " + ", ".join(unlisted) + "."
            return Decision.of(Restriction.ASSET_TITLE_NOT_RECOGNISED, listed, note)

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
