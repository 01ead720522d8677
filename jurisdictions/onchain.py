"""Compile the rules data into ComplianceRegistry settings, diff them against the chain,
and plan the transactions that make the chain match (idempotent: a chain that already
matches yields an empty plan).

Works with any contract object exposing the registry's and factory's view functions
by name (ape `ContractInstance`s in the scripts, titanoboa contracts in the tests).
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Annotated, Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from jurisdictions.codes import HolderPolicyCode, TitleStatus
from jurisdictions.rules import RuleBook, decode_subdivision

ZERO32 = b"\0" * 32
# Rows per `set_jurisdictions` transaction (the contract's MAX_JURISDICTION_BATCH).
BATCH = 64

Numeric = Annotated[int, Field(ge=1, le=999)]
Bytes32 = Annotated[bytes, Field(min_length=32, max_length=32)]


class RegistryReader(Protocol):
    """The registry views the diff reads."""

    def jurisdiction(self, code: int) -> Any: ...
    def listed_jurisdictions(self) -> Any: ...
    def title_override(self, token: str, code: int) -> Any: ...
    def title_override_in_force(self, token: str, code: int) -> Any: ...
    def subdivision(self, code: int, subdivision: int) -> Any: ...
    def listed_subdivisions(self) -> Any: ...


class JurisdictionSetting(BaseModel):
    """One row of the registry's jurisdiction table."""

    model_config = ConfigDict(frozen=True)

    jurisdiction: Numeric
    title: TitleStatus
    policy: HolderPolicyCode
    rules_hash: Bytes32

    def as_tuple(self) -> tuple[int, int, int, bytes]:
        """The `JurisdictionSetting` struct as the contract call takes it."""
        return (self.jurisdiction, int(self.title), int(self.policy), self.rules_hash)

    @classmethod
    def removal(cls, jurisdiction: int) -> JurisdictionSetting:
        return cls(
            jurisdiction=jurisdiction,
            title=TitleStatus.UNLISTED,
            policy=HolderPolicyCode.UNLISTED,
            rules_hash=ZERO32,
        )


class SubdivisionSetting(BaseModel):
    """One row of the registry's subdivision table (an ISO 3166-2 region's own rule)."""

    model_config = ConfigDict(frozen=True)

    jurisdiction: Numeric
    subdivision: Annotated[int, Field(ge=1, lt=2**24)]
    title: TitleStatus
    policy: HolderPolicyCode
    rules_hash: Bytes32

    @property
    def key(self) -> tuple[int, int]:
        return (self.jurisdiction, self.subdivision)

    def as_tuple(self) -> tuple[int, int, int, int, bytes]:
        """The `SubdivisionSetting` struct as the contract call takes it."""
        return (self.jurisdiction, self.subdivision, int(self.title), int(self.policy),
                self.rules_hash)

    @classmethod
    def removal(cls, jurisdiction: int, subdivision: int) -> SubdivisionSetting:
        return cls(jurisdiction=jurisdiction, subdivision=subdivision,
                   title=TitleStatus.UNLISTED, policy=HolderPolicyCode.UNLISTED,
                   rules_hash=ZERO32)


class OverrideSetting(BaseModel):
    """An SPV's legal-opinion override of an `unclear` title status."""

    model_config = ConfigDict(frozen=True)

    spv_lei: str
    jurisdiction: Numeric
    legal_opinion_hash: Bytes32


class ChangeKind(StrEnum):
    ADD = "add"
    UPDATE = "update"
    REMOVE = "remove"


class RowChange(BaseModel):
    """A row of the jurisdiction table that differs from the rules data."""

    model_config = ConfigDict(frozen=True)

    kind: ChangeKind
    label: str
    before: JurisdictionSetting | SubdivisionSetting | None
    after: JurisdictionSetting | SubdivisionSetting

    def describe(self) -> str:
        def show(s: JurisdictionSetting | SubdivisionSetting | None) -> str:
            if s is None or s.title is TitleStatus.UNLISTED:
                return "unlisted"
            return (
                f"title={s.title.name.lower()} policy={s.policy.name.lower()} "
                f"rules=0x{s.rules_hash.hex()[:12]}…"
            )

        return f"{self.kind:<6} {self.label:<9} {show(self.before)} -> {show(self.after)}"


class OverrideChange(BaseModel):
    """An override in the rules data that the chain does not hold yet (or differently)."""

    model_config = ConfigDict(frozen=True)

    setting: OverrideSetting
    token: str | None
    current: Bytes32 | None

    def describe(self) -> str:
        where = self.token or "no SPV with this LEI on this chain"
        return (
            f"override {self.setting.spv_lei} jurisdiction {self.setting.jurisdiction}: "
            f"0x{(self.current or ZERO32).hex()[:12]}… -> "
            f"0x{self.setting.legal_opinion_hash.hex()[:12]}… (token {where})"
        )


class Plan(BaseModel):
    """What `apply` would send; empty when the chain already matches the rules."""

    model_config = ConfigDict(frozen=True)

    rows: tuple[RowChange, ...] = ()
    overrides: tuple[OverrideChange, ...] = ()
    # Rows of the subdivision table (`after` is a SubdivisionSetting).
    subdivision_rows: tuple[RowChange, ...] = ()

    @property
    def empty(self) -> bool:
        """Nothing to send on this chain (overrides of SPVs absent here are only listed)."""
        return (not self.rows and not self.subdivision_rows
                and all(o.token is None for o in self.overrides))

    def row_batches(self) -> list[list[tuple[int, int, int, bytes]]]:
        """The `set_jurisdictions` calls, at most `BATCH` rows each."""
        tuples = [change.after.as_tuple() for change in self.rows]
        return [tuples[i : i + BATCH] for i in range(0, len(tuples), BATCH)]

    def table_calls(self) -> list[tuple[str, list[tuple[Any, ...]]]]:
        """Every table write in the order the registry accepts it, as (function, batch):
        countries added or changed, then their regions' rows, then countries removed (a
        region's country must be listed first, and its regions removed before it)."""
        def batches(name: str, changes: list[RowChange]) -> list[tuple[str, list[Any]]]:
            tuples = [change.after.as_tuple() for change in changes]
            return [(name, tuples[i : i + BATCH]) for i in range(0, len(tuples), BATCH)]

        if not self.subdivision_rows:
            return batches("set_jurisdictions", list(self.rows))
        kept = [c for c in self.rows if c.kind is not ChangeKind.REMOVE]
        removed = [c for c in self.rows if c.kind is ChangeKind.REMOVE]
        return (batches("set_jurisdictions", kept)
                + batches("set_subdivisions", list(self.subdivision_rows))
                + batches("set_jurisdictions", removed))


def compile_rules(rules: RuleBook) -> list[JurisdictionSetting]:
    """The registry rows the rules data asks for, in numeric order."""
    return [
        JurisdictionSetting(
            jurisdiction=rule.numeric,
            title=rule.title_code,
            policy=rule.holder_policy.code,
            rules_hash=rule.rules_hash(),
        )
        for rule in rules.values()
    ]


def compile_subdivisions(rules: RuleBook) -> list[SubdivisionSetting]:
    """The subdivision rows the rules data asks for (each listed region of each country)."""
    return [
        SubdivisionSetting(
            jurisdiction=rule.numeric,
            subdivision=sub.encoded,
            title=sub.title_code,
            policy=sub.holder_policy.code,
            rules_hash=sub.rules_hash(),
        )
        for rule in rules.values()
        for sub in rule.subdivisions
    ]


def read_subdivision(registry: RegistryReader, code: int, subdivision: int) -> SubdivisionSetting:
    """The registry's current row for a region (all zero when it has none)."""
    title, policy, rules_hash = registry.subdivision(code, subdivision)
    return SubdivisionSetting(
        jurisdiction=code,
        subdivision=subdivision,
        title=TitleStatus(int(title)),
        policy=HolderPolicyCode(int(policy)),
        rules_hash=bytes(rules_hash),
    )


def _subdivision_changes(rules: RuleBook, registry: RegistryReader) -> list[RowChange]:
    wanted = {s.key: s for s in compile_subdivisions(rules)}
    onchain = {(int(k) >> 24, int(k) & (2**24 - 1)) for k in registry.listed_subdivisions()}
    changes: list[RowChange] = []
    for key in sorted(set(wanted) | onchain):
        current = read_subdivision(registry, *key)
        listed = current.title is not TitleStatus.UNLISTED
        country = rules.get(key[0])
        try:
            label = decode_subdivision(country.alpha2, key[1]) if country else None
        except ValueError:
            label = None
        label = label or f"{key[0]}/{key[1]:#x}"
        if key in wanted:
            if current != wanted[key]:
                changes.append(RowChange(
                    kind=ChangeKind.UPDATE if listed else ChangeKind.ADD, label=label,
                    before=current if listed else None, after=wanted[key]))
        elif listed:
            changes.append(RowChange(kind=ChangeKind.REMOVE, label=label, before=current,
                                     after=SubdivisionSetting.removal(*key)))
    return changes


def compile_overrides(rules: RuleBook) -> list[OverrideSetting]:
    """The title overrides recorded in the rules data."""
    return [
        OverrideSetting(
            spv_lei=override.spv_lei,
            jurisdiction=rule.numeric,
            legal_opinion_hash=bytes.fromhex(override.legal_opinion_sha256[2:]),
        )
        for rule in rules.values()
        for override in rule.title_overrides
    ]


def read_row(registry: RegistryReader, code: int) -> JurisdictionSetting:
    """The registry's current row for `code` (an all-zero setting when unlisted)."""
    title, policy, rules_hash = registry.jurisdiction(code)
    return JurisdictionSetting(
        jurisdiction=code,
        title=TitleStatus(int(title)),
        policy=HolderPolicyCode(int(policy)),
        rules_hash=bytes(rules_hash),
    )


def plan(
    rules: RuleBook,
    registry: RegistryReader,
    tokens_by_lei: dict[str, str] | None = None,
) -> Plan:
    """Diff the rules against the registry.

    `tokens_by_lei` maps SPV LEIs to their share tokens on this chain (see
    `tokens_by_lei`); overrides for SPVs missing from it are listed with `token=None`.
    """
    wanted = {s.jurisdiction: s for s in compile_rules(rules)}
    onchain_codes = {int(c) for c in registry.listed_jurisdictions()}
    rows: list[RowChange] = []
    for code in sorted(set(wanted) | onchain_codes):
        current = read_row(registry, code)
        listed = current.title is not TitleStatus.UNLISTED
        label = f"{rules[code].alpha2} ({code})" if code in rules else str(code)
        if code in wanted:
            if current != wanted[code]:
                kind = ChangeKind.UPDATE if listed else ChangeKind.ADD
                rows.append(
                    RowChange(kind=kind, label=label, before=current if listed else None,
                              after=wanted[code])
                )
        elif listed:
            rows.append(
                RowChange(kind=ChangeKind.REMOVE, label=label, before=current,
                          after=JurisdictionSetting.removal(code))
            )
    overrides: list[OverrideChange] = []
    tokens_by_lei = tokens_by_lei or {}
    wanted_overrides = compile_overrides(rules)
    for setting in wanted_overrides:
        token = tokens_by_lei.get(setting.spv_lei)
        current = bytes(registry.title_override(token, setting.jurisdiction)) if token else None
        # Recorded under an earlier title status, an override no longer counts: record again.
        in_force = bool(token) and bool(
            registry.title_override_in_force(token, setting.jurisdiction)
        )
        if current != setting.legal_opinion_hash or not in_force:
            overrides.append(OverrideChange(setting=setting, token=token, current=current))
    # Overrides recorded on-chain that the data no longer holds are cleared: a withdrawn
    # legal opinion must stop counting.
    kept = {(o.spv_lei, o.jurisdiction) for o in wanted_overrides}
    for lei, token in sorted(tokens_by_lei.items()):
        for code in sorted(set(wanted) | onchain_codes):
            if (lei, code) in kept:
                continue
            current = bytes(registry.title_override(token, code))
            if current != ZERO32:
                clear = OverrideSetting(spv_lei=lei, jurisdiction=code, legal_opinion_hash=ZERO32)
                overrides.append(OverrideChange(setting=clear, token=token, current=current))
    return Plan(rows=tuple(rows), overrides=tuple(overrides),
                subdivision_rows=tuple(_subdivision_changes(rules, registry)))


def tokens_by_lei(factory: Any) -> dict[str, str]:
    """LEI -> share token address of every SPV the factory registered."""
    result: dict[str, str] = {}
    for spv_id in range(1, int(factory.spv_count()) + 1):
        spv = factory.spvs(spv_id)
        result[str(spv.lei)] = str(spv.token)
    return result


def describe(plan_: Plan, rules_count: int) -> Iterable[str]:
    """Human-readable lines for a plan."""
    if plan_.empty:
        yield f"registry matches the rules data ({rules_count} jurisdictions): nothing to change"
        for change in plan_.overrides:
            yield f"  (not on this chain) {change.describe()}"
        return
    for change in plan_.rows:
        yield change.describe()
    for change in plan_.subdivision_rows:
        yield change.describe()
    for change in plan_.overrides:
        yield change.describe()
