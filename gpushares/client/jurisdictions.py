"""The jurisdiction rules on-chain, and the law behind a refusal.

The registry's jurisdiction table and the SPVs' title overrides are kept equal to the
rules data (`jurisdictions/rules/`, or a copy of it): `jurisdictions.onchain` compiles
the data into registry rows and diffs them against the chain; this module reads the
chain through the client and plans the transactions.

    rules = jurisdictions.load()                              # BadInput if it does not load
    jurisdictions.diff(client, rules)                         # -> [RowChange], [] when in sync
    plan = jurisdictions.plan_apply(client, admin, rules)     # rows, then overrides

`apply` is idempotent: it plans only what differs, so a second run plans nothing. Table
rows need the registry's RULES_ADMIN_ROLE; a title override needs the SPV operator's
key (the token's OPERATOR_ROLE), so overrides another key must record are left pending
(`Plan.notes` lists them).

A refused share movement or GPU is explained here with what the rules data says: the
jurisdictions involved (`Finding.note`) and the sources (`Finding.citations`). A
`Restricted` refusal carries them with the contract's own message.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from gpushares import reasons
from gpushares.client.chain import Contract, Plan, Refused, Tx
from gpushares.client.context import Client
from gpushares.client.kyc import residence
from gpushares.client.suite import OPERATOR_ROLE
from gpushares.client.units import BadInput
from jurisdictions import onchain
from jurisdictions.codes import HolderPolicyCode, Restriction, TitleStatus
from jurisdictions.engine import check_gpu_location, default_rules
from jurisdictions.onchain import JurisdictionSetting, OverrideChange, RowChange
from jurisdictions.rules import (
    RULES_DIR,
    JurisdictionRules,
    RuleBook,
    RulesError,
    decode_subdivision,
    encode_subdivision,
    load_rules,
    with_overrides,
)

RULES_ADMIN_ROLE_NAME = "RULES_ADMIN_ROLE"
RECEIVER_POLICY_CODES = (Restriction.RECEIVER_JURISDICTION_BLOCKED,
                         Restriction.RECEIVER_NOT_ACCREDITED,
                         Restriction.RECEIVER_REGION_UNKNOWN)


# ---------------------------------------------------------------------------------
# The rules data
# ---------------------------------------------------------------------------------


def load(directory: Path | None = None, overrides: Sequence[Path] = ()) -> RuleBook:
    """The rules data in `directory` (default: the shipped `jurisdictions/rules/`), plus
    the title overrides of each file in `overrides` (an SPV's own legal opinions)."""
    try:
        rules = load_rules(directory or RULES_DIR)
        for path in overrides:
            rules = with_overrides(rules, path)
    except RulesError as exc:
        raise BadInput(f"rules data rejected, nothing sent: {exc}") from exc
    return rules


def shipped() -> RuleBook | None:
    """The shipped rules (loaded once), for citations; None when they do not load."""
    try:
        return default_rules()
    except RulesError:
        return None


# ---------------------------------------------------------------------------------
# The registry against the rules data
# ---------------------------------------------------------------------------------


def pending(client: Client, rules: RuleBook) -> onchain.Plan:
    """Everything that differs: table rows and title overrides (overrides of SPVs that
    are not on this chain are listed with `token=None`; `.empty` ignores them)."""
    return onchain.plan(rules, client.registry(), onchain.tokens_by_lei(client.spv_factory()))


def diff(client: Client, rules: RuleBook) -> list[RowChange]:
    """The jurisdiction table's rows that differ from the rules data."""
    return list(pending(client, rules).rows)


def overrides(client: Client, rules: RuleBook) -> list[OverrideChange]:
    """Title overrides to record or clear (token None: the SPV is not on this chain)."""
    return list(pending(client, rules).overrides)


def plan_apply(client: Client, signer: str, rules: RuleBook) -> Plan:
    """Make the registry match `rules`: `set_jurisdictions` and `set_subdivisions`
    batches first, in the order the registry accepts them (refused unless
    `signer` holds RULES_ADMIN_ROLE), then the title overrides `signer` may record (it
    holds the SPV token's OPERATOR_ROLE); the others are in `notes`. No transaction
    when the registry already matches."""
    changes = pending(client, rules)
    registry = client.registry()
    txs: list[Tx] = [
        getattr(registry, name).tx(
            batch, what=f"set {len(batch)} "
            f"{'jurisdiction' if name == 'set_jurisdictions' else 'subdivision'} row(s)")
        for name, batch in changes.table_calls()]
    notes: list[str] = []
    for change in changes.overrides:
        setting = change.setting
        if change.token is None:
            notes.append(f"skipped: {change.describe()}")
            continue
        if not client.chain.contract("GPUShareToken", change.token).hasRole(OPERATOR_ROLE,
                                                                            signer):
            notes.append(f"pending (needs the SPV operator's key): {change.describe()}")
            continue
        clearing = setting.legal_opinion_hash == onchain.ZERO32
        txs.append(registry.set_title_override.tx(
            change.token, setting.jurisdiction, setting.legal_opinion_hash,
            what=f"{'clear withdrawn' if clearing else 'record'} title override for "
                 f"jurisdiction {setting.jurisdiction} on {change.token}"))
    refusal = None
    writes_table = bool(changes.rows or changes.subdivision_rows)
    if writes_table and not registry.hasRole(registry.RULES_ADMIN_ROLE(), signer):
        refusal = Refused(txs[0].what, f"{reasons.ACCESS_CONTROL_MISSING_ROLE} ({signer} lacks "
                                       f"the registry's {RULES_ADMIN_ROLE_NAME}: use the rules "
                                       "admin's account, the deployer unless it granted the role)")
    return Plan(tuple(txs), refusal, tuple(notes))


class JurisdictionView(BaseModel):
    """One jurisdiction: its rules and its row in the registry."""

    model_config = ConfigDict(frozen=True)

    rule: JurisdictionRules
    row: JurisdictionSetting
    in_sync: bool

    def describe(self) -> list[str]:
        rule, row = self.rule, self.row
        lines = [
            f"{rule.name} ({rule.alpha2}, {rule.numeric}) as of {rule.as_of}, "
            f"reviewed by {rule.reviewed_by}",
            f"  title_recognition: {rule.title_recognition}    holder_policy: "
            f"{rule.holder_policy}    sanctioned: {rule.sanctioned}",
            f"  on-chain: title={TitleStatus(row.title).name.lower()} "
            f"policy={HolderPolicyCode(row.policy).name.lower()} "
            f"({'in sync' if self.in_sync else 'OUT OF SYNC: run apply'})",
            f"  basis: {rule.basis}",
        ]
        if rule.unknowns:
            lines.append(f"  unknowns: {rule.unknowns}")
        lines += [f"  - {citation}" for citation in rule.citations]
        for sub in rule.subdivisions:
            lines.append(f"  region {sub.code} {sub.name}: title_recognition "
                         f"{sub.title_recognition}, holder_policy {sub.holder_policy}"
                         f"{', sanctioned' if sub.sanctioned else ''}")
            lines += [f"    - {citation}" for citation in sub.citations]
        return lines


def view(client: Client, rules: RuleBook, jurisdiction: str | int) -> JurisdictionView:
    """A jurisdiction by alpha-2 (`DE`) or numeric code (`276`), and its on-chain row."""
    rule = residence(str(jurisdiction), rules)
    row = onchain.read_row(client.registry(), rule.numeric)
    wanted = next(s for s in onchain.compile_rules(rules) if s.jurisdiction == rule.numeric)
    return JurisdictionView(rule=rule, row=row, in_sync=row == wanted)


# ---------------------------------------------------------------------------------
# The law behind a refusal
# ---------------------------------------------------------------------------------


class Finding(BaseModel):
    """What the rules data says about one reason for a refusal, and its sources."""

    model_config = ConfigDict(frozen=True)

    note: str
    citations: tuple[str, ...] = ()

    def lines(self) -> list[str]:
        return [self.note, *(f"  - {citation}" for citation in self.citations)]


class Restricted(Refused):
    """A refusal with the law behind it: `reason` is the contract's message (and what to
    do), `code` the ERC-1404 restriction code when a share movement is refused (None for
    a GPU location), `findings` the jurisdictions involved and their sources."""

    def __init__(self, what: str, reason: str, *, message: str = "", code: int | None = None,
                 findings: Sequence[Finding] = ()) -> None:
        super().__init__(what, reason)
        self.message = message or reason
        self.code = code
        self.findings = tuple(findings)

    def lines(self) -> list[str]:
        """The refusal as a wallet shows it, then the law (for a terminal)."""
        head = [] if self.code is None else [
            f"refused (ERC-1404 code {self.code} {Restriction(self.code).name}): {self.message}"]
        return head + [line for finding in self.findings for line in finding.lines()]


def _unreadable() -> tuple[Finding, ...]:
    return (Finding(note="(rules data unreadable: no citations)"),)


def _title_ok(registry: Contract, token: str, location: int) -> bool:
    """The registry's own rule: recognised, or unclear with the SPV's override in force."""
    title = TitleStatus(int(registry.jurisdiction(location)[0]))
    return title is TitleStatus.RECOGNISED or bool(registry.title_override_in_force(token,
                                                                                   location))


def title_findings(client: Client, token: str, rules: RuleBook | None) -> tuple[Finding, ...]:
    """Each location of `token`'s GPUs whose title the registry does not recognise now."""
    if rules is None:
        return _unreadable()
    registry = client.registry()
    found = []
    for location in registry.asset_locations(token):
        if _title_ok(registry, token, int(location)):
            found.extend(_region_findings(registry, token, int(location), rules))
            continue
        rule = rules.get(int(location))
        if rule is None:
            found.append(Finding(note=f"location {location}: no rules file"))
        else:
            found.append(Finding(note=f"{rule.name} ({rule.alpha2}): title "
                                      f"{rule.title_recognition}",
                                 citations=tuple(str(c) for c in rule.citations)))
    return tuple(found)


def _region_findings(registry: Contract, token: str, location: int,
                     rules: RuleBook) -> list[Finding]:
    """The regions of `location` (whose own title passed) where `token`'s GPUs sit and
    that stop its transfers: a GPU without its region where the country has regional
    rows, or a region whose row refuses title."""
    rule = rules.get(location)
    found = []
    for code in registry.asset_subdivisions(token, location):
        region = (decode_subdivision(rule.alpha2, int(code)) if rule and int(code) else None)
        if _region_refusal(registry, location, region) is None:
            continue
        sub = rule.subdivision(region) if rule and region else None
        if sub is not None:
            status = "sanctioned" if sub.sanctioned else f"title {sub.title_recognition}"
            found.append(Finding(note=f"{sub.name} ({sub.code}): {status}",
                                 citations=tuple(str(c) for c in sub.citations)))
        else:
            found.append(Finding(note=f"location {location}: a GPU registered without its "
                                      "ISO 3166-2 region where the country has regional "
                                      "rules (retire it and register it with its region)"))
    return found


def residence_finding(client: Client, receiver: str, rules: RuleBook | None) -> Finding:
    """Where `receiver` is resident and who may hold shares there."""
    if rules is None:
        return _unreadable()[0]
    record = client.registry().investor(receiver)
    code = int(record.jurisdiction)
    rule = rules.get(code)
    if rule is None:
        return Finding(note=f"receiver resident in jurisdiction {code}: no rules file")
    region = decode_subdivision(rule.alpha2, int(record.subdivision)) if int(
        record.subdivision) else None
    sub = rule.subdivision(region) if region and rule.subdivisions else None
    if sub is not None and sub.holder_policy.strictness > rule.holder_policy.strictness:
        return Finding(note=f"receiver resident in {sub.name} ({sub.code}), {rule.name}: "
                            f"holder policy {sub.holder_policy}"
                            f"{', sanctioned' if sub.sanctioned else ''}",
                       citations=tuple(str(c) for c in sub.citations))
    if rule.subdivisions and region is None:
        return Finding(note=f"receiver resident in {rule.name} ({rule.alpha2}) with no region "
                            "on record; regions with rules of their own: "
                            + ", ".join(s.code for s in rule.subdivisions),
                       citations=tuple(str(c) for s in rule.subdivisions for c in s.citations))
    where = f"{region}, {rule.name}" if region else rule.name
    return Finding(note=f"receiver resident in {where} ({rule.alpha2}): holder policy "
                        f"{rule.holder_policy}{', sanctioned' if rule.sanctioned else ''}",
                   citations=tuple(str(c) for c in rule.citations))


def explain(client: Client, token: str, code: int, receiver: str | None,
            rules: RuleBook | None) -> tuple[Finding, ...]:
    """The law behind restriction `code` of a movement of `token`'s shares to `receiver`."""
    if code == Restriction.ASSET_TITLE_NOT_RECOGNISED:
        return title_findings(client, token, rules)
    if code in RECEIVER_POLICY_CODES and receiver is not None:
        return (residence_finding(client, receiver, rules),)
    return ()


class LocationCheck(BaseModel):
    """May the SPV's token carry title to GPUs in `location`? As the registry decides it
    now (`reason`: its refusal message), explained by the rules data (`finding`)."""

    model_config = ConfigDict(frozen=True)

    location: int
    allowed: bool
    reason: str | None = None
    finding: Finding | None = None
    region: str | None = None  # ISO 3166-2 region of the GPUs checked (None: none given)

    @property
    def where(self) -> str:
        return self.region or str(self.location)


_LOCATION_REFUSALS = {
    TitleStatus.UNLISTED: reasons.REGISTRY_GPU_LOCATION_NOT_JURISDICTION,
    TitleStatus.NOT_RECOGNISED: reasons.REGISTRY_GPU_LOCATION_DOES_NOT,
    TitleStatus.UNCLEAR: reasons.REGISTRY_TOKENIZED_TITLE_GPU_LOCATION,
}


def _region_refusal(registry: Contract, location: int, region: str | None) -> str | None:
    """The registry's refusal of a GPU in `region` of `location` (whose own title check
    passed), or None: a country with regional rows needs the region, and the region's row
    must not stop it (`ComplianceRegistry.register_asset_location`)."""
    keys = [int(k) for k in registry.listed_subdivisions()]
    if not any(k >> 24 == location for k in keys):
        return None
    if region is None:
        return reasons.REGISTRY_GPU_LOCATION_NEEDS_REGION
    title = TitleStatus(int(registry.subdivision(location, encode_subdivision(region))[0]))
    if title is TitleStatus.SANCTIONED:
        return reasons.REGISTRY_GPU_LOCATION_SANCTIONED
    if title is TitleStatus.NOT_RECOGNISED:
        return reasons.REGISTRY_GPU_LOCATION_DOES_NOT
    country = TitleStatus(int(registry.jurisdiction(location)[0]))
    if title is TitleStatus.UNCLEAR and country is not TitleStatus.UNCLEAR:
        return reasons.REGISTRY_TOKENIZED_TITLE_GPU_LOCATION
    return None


def gpu_location(client: Client, token: str, lei: str, location: int,
                 rules: RuleBook | None, region: str | None = None) -> LocationCheck:
    """The registry's decision on a GPU of `token` (SPV `lei`) located in `location`
    (ISO 3166-2 `region`, where one is given)."""
    registry = client.registry()
    if _title_ok(registry, token, location):
        reason = _region_refusal(registry, location, region)
        if reason is None:
            return LocationCheck(location=location, allowed=True, region=region)
    else:
        reason = _LOCATION_REFUSALS[TitleStatus(int(registry.jurisdiction(location)[0]))]
    if rules is None:
        finding = _unreadable()[0]
    else:
        decision = check_gpu_location(location, lei, rules=rules, subdivision=region)
        note = decision.message if not decision.allowed else (
            "the rules data recognises tokenized title there for this SPV, but the registry "
            "does not hold it yet: apply the rules data (`jurisdictions apply`, with the SPV "
            "operator's key for an override)")
        finding = Finding(note=note, citations=decision.citations)
    return LocationCheck(location=location, allowed=False, reason=reason, finding=finding,
                         region=region)
