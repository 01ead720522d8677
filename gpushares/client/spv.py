"""SPVs and their share tokens: register an SPV and its GPUs, mint and burn shares, pay
and claim rental income, move shares under the compliance registry's rules, and the
token's agent powers (partial freeze, forced transfer, wallet recovery) and roles.

Reads (pydantic models): `status`, `gpus`, `holding`, `spv_ids`, `roles_of`, and
`check_movement`, the token's own ERC-1404 verdict on a share movement with the law
behind a refusal. Actions: `plan_create`, `plan_add_gpus`, `plan_mint`, `plan_transfer`,
`plan_return_to_spv`, `plan_burn`, `plan_distribute`, `plan_claim`, `plan_impair_gpu`,
`plan_retire_gpu`, `plan_freeze_shares`, `plan_forced_transfer`, `plan_recover_wallet`,
`plan_grant_role`. A refused share movement or GPU is a `jurisdictions.Restricted`: the
contract's message, the ERC-1404 code, the jurisdictions and their citations.

Amounts of shares are whole shares as people write them (`"1000"`, `"0.5"`); income
amounts are in the income token (`"11520.00"`). Models hold base units.

The buy-back path (taking shares out of circulation, e.g. before retiring a GPU): the
SPV's operator gets its own KYC record (`kyc.plan_register`), each holder transfers the
shares back to the SPV (`plan_return_to_spv`, allowed even while title is not
recognised), the operator burns them (`plan_burn`), then retires the GPU
(`plan_retire_gpu`). Each refusal on the way says which step is missing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from eth_utils import keccak
from pydantic import BaseModel, ConfigDict

from gpushares import reasons
from gpushares.client import jurisdictions as law
from gpushares.client.chain import ZERO_ADDRESS, Contract, Plan, Receipt, Tx
from gpushares.client.context import Client
from gpushares.client.kyc import region_name
from gpushares.client.units import SHARE_DECIMALS, BadInput, address, fmt_units, to_base_units
from gpushares.fleet import FleetCSVError, GPURow, bytes32_text, load_fleet_csv
from jurisdictions.codes import Restriction
from jurisdictions.rules import RuleBook

BATCH = 64  # GPUs per `add_gpus` (the token's MAX_GPU_BATCH)
MAX_LOCATIONS = 16  # jurisdictions one SPV's GPUs may sit in (the registry's)
MAX_SUPPLY = 2**96 - 1
STATUS_NAMES = {1: "active", 2: "impaired", 4: "retired"}
ADMIN_ROLE = b"\0" * 32
#: the token's agent roles `plan_grant_role` grants, by the name people use
AGENT_ROLES = {"freezer": "FREEZER_ROLE", "forced-transfer": "FORCED_TRANSFER_ROLE",
               "recovery": "RECOVERY_ROLE", "pauser": "PAUSER_ROLE"}
TOKEN_ROLES = ("DEFAULT_ADMIN_ROLE", "OPERATOR_ROLE", *AGENT_ROLES.values())
SENDER_CODES = (Restriction.SENDER_NOT_REGISTERED, Restriction.SENDER_ELIGIBILITY_EXPIRED,
                Restriction.SENDER_FROZEN)
_RECEIVER_STEP = {
    Restriction.RECEIVER_NOT_REGISTERED: "a KYC provider must register it first",
    Restriction.RECEIVER_ELIGIBILITY_EXPIRED: "its KYC record has expired: a KYC provider "
                                              "must renew it first",
    Restriction.RECEIVER_FROZEN: "its wallet is frozen: the registry's freezer must unfreeze it",
    Restriction.RECEIVER_JURISDICTION_BLOCKED: "its KYC record must name a residence whose "
                                               "holder policy lets it hold these shares",
    Restriction.RECEIVER_NOT_ACCREDITED: "its KYC record must say it is accredited",
}


def role_id(name: str) -> bytes:
    """The bytes32 of an access-control role by its constant's name."""
    return ADMIN_ROLE if name == "DEFAULT_ADMIN_ROLE" else keccak(text=name)


def shares(value: int) -> str:
    """Share base units as whole shares (`3,000`, `0.5`)."""
    return fmt_units(value, SHARE_DECIMALS)


def _shares(value: str | int, what: str = "shares", *, allow_zero: bool = False) -> int:
    return to_base_units(str(value), SHARE_DECIMALS, what, allow_zero=allow_zero)


def _holder(value: str, what: str) -> str:
    """An address that can hold shares (not the zero address)."""
    who = address(value, what)
    if who == ZERO_ADDRESS:
        raise BadInput(f"{what}: the zero address cannot hold shares")
    return who


def _missing_role(contract: Contract, name: str, who: str, where: str, fix: str) -> str | None:
    """Why `who` (the signer) cannot call a function behind role `name`, or None."""
    if contract.hasRole(role_id(name), address(who, "signer")):
        return None
    return f"{reasons.ACCESS_CONTROL_MISSING_ROLE} ({who} lacks {where}'s {name}: {fix})"


def _operator_role(token: Contract, spv_id: int, who: str) -> str | None:
    return _missing_role(token, "OPERATOR_ROLE", who, f"SPV {spv_id}'s token",
                         "sign with the SPV operator's account")


def _agent_role(token: Contract, spv_id: int, name: str, who: str) -> str | None:
    flag = next(k for k, v in AGENT_ROLES.items() if v == name)
    return _missing_role(token, name, who, f"SPV {spv_id}'s token",
                         f"the token's admin grants it with `spv grant-role --role {flag}`")


# ---------------------------------------------------------------------------------
# Reads
# ---------------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class SpvStatus(_Model):
    """An SPV, its share token and its income, as the chain holds them now."""

    spv_id: int
    legal_name: str
    jurisdiction: int
    lei: str
    documents_hash: str
    operator: str
    registered_at: int
    token: str
    token_name: str
    token_symbol: str
    shares_per_gpu: int
    supply: int
    mint_cap: int
    backing: int
    paused: bool
    gpu_count: int
    active_gpus: int
    impaired_gpus: int
    locations: tuple[int, ...]
    income_token: str
    income_symbol: str
    income_decimals: int
    total_distributed: int
    total_claimed: int

    def money(self, value: int, *, unit: bool = True) -> str:
        """Income-token units as text (`10,000 mUSDC`; `unit=False`: `10,000`)."""
        text = fmt_units(value, self.income_decimals)
        return f"{text} {self.income_symbol}" if unit else text

    def describe(self) -> list[str]:
        return [
            f"SPV {self.spv_id}: {self.legal_name}",
            f"  LEI {self.lei}, jurisdiction {self.jurisdiction}, operator {self.operator}",
            f"  documents {self.documents_hash}",
            f"  token {self.token_name} ({self.token_symbol}) at {self.token}",
            f"  supply {shares(self.supply)} shares; mint cap {shares(self.mint_cap)}; backing "
            f"{shares(self.backing)}{'; PAUSED' if self.paused else ''}",
            f"  income: {self.money(self.total_distributed)} distributed, "
            f"{self.money(self.total_claimed, unit=False)} claimed",
            f"  GPUs: {self.gpu_count} registered, {self.active_gpus} active, "
            f"{self.impaired_gpus} impaired",
        ]


class Gpu(_Model):
    """One GPU of the SPV's register."""

    gpu_id: int
    serial_hash: str
    model: str
    location: int
    datacenter: str
    acquisition_cost: int  # USD with 8 decimals
    commissioned_at: int
    status: str
    region: str | None = None  # ISO 3166-2 region of the location, when recorded

    def describe(self) -> str:
        where = f"{self.location}" + (f" {self.region}" if self.region else "")
        return (f"#{self.gpu_id:<3} {self.model:<16} {self.datacenter:<14} loc "
                f"{where:<9} cost ${fmt_units(self.acquisition_cost, 8):>10} "
                f"{self.status}")


class Holding(_Model):
    """One holder's position in an SPV's shares and income."""

    spv_id: int
    holder: str
    shares: int
    frozen_shares: int
    claimable: int
    income_balance: int
    income_symbol: str
    income_decimals: int

    def money(self, value: int) -> str:
        return f"{fmt_units(value, self.income_decimals)} {self.income_symbol}"

    def money_held(self) -> str:
        """The holder's income-token balance (`4,285.714285 mUSDC`)."""
        return self.money(self.income_balance)

    def describe(self) -> str:
        frozen = f" ({shares(self.frozen_shares)} frozen)" if self.frozen_shares else ""
        return (f"{self.holder} holds {shares(self.shares)} shares{frozen}, claimable "
                f"{self.money(self.claimable)}")


class Movement(_Model):
    """The token's verdict on a share movement now (ERC-1404), and for a refusal the
    law behind it and the step that is missing (`hint`)."""

    allowed: bool
    code: int
    message: str
    findings: tuple[law.Finding, ...] = ()
    hint: str = ""

    @property
    def reason(self) -> str:
        return f"{self.message} {self.hint}" if self.hint else self.message

    def refusal(self, what: str) -> law.Restricted:
        return law.Restricted(what, self.reason, message=self.message, code=self.code,
                              findings=self.findings)


def spv_ids(client: Client) -> list[int]:
    """Every SPV id the factory registered (1, 2, ...)."""
    return list(range(1, int(client.spv_factory().spv_count()) + 1))


def status(client: Client, spv_id: int) -> SpvStatus:
    """SPV `spv_id` (BadInput for an unknown id)."""
    token = client.token(spv_id)
    record = client.spv_factory().spvs(spv_id)
    stable = client.erc20(token.income_token())
    mint_cap, backing = token.backing()
    return SpvStatus(
        spv_id=spv_id, legal_name=record.legal_name, jurisdiction=int(record.jurisdiction),
        lei=record.lei, documents_hash="0x" + bytes(record.documents_hash).hex(),
        operator=record.operator, registered_at=int(record.registered_at), token=token.address,
        token_name=token.name(), token_symbol=token.symbol(),
        shares_per_gpu=int(token.shares_per_gpu()), supply=int(token.totalSupply()),
        mint_cap=int(mint_cap), backing=int(backing), paused=bool(token.paused()),
        gpu_count=int(token.gpu_count()), active_gpus=int(token.active_gpus()),
        impaired_gpus=int(token.impaired_gpus()),
        locations=tuple(sorted(int(c) for c in client.registry().asset_locations(token.address))),
        income_token=stable.address, income_symbol=stable.symbol(),
        income_decimals=int(stable.decimals()), total_distributed=int(token.total_distributed()),
        total_claimed=int(token.total_claimed()))


def _read_gpu(token: Contract, gpu_id: int) -> Gpu:
    return gpu_from(gpu_id, token.gpus(gpu_id))


def gpu_from(gpu_id: int, g: Any) -> Gpu:
    """The model of the token's `gpus(gpu_id)` record (shared with the app's lens)."""
    return Gpu(gpu_id=gpu_id, serial_hash="0x" + bytes(g.serial_hash).hex(),
               model=bytes32_text(g.model), location=int(g.location),
               datacenter=bytes32_text(g.datacenter), acquisition_cost=int(g.acquisition_cost),
               commissioned_at=int(g.commissioned_at),
               status=STATUS_NAMES.get(int(g.status), "unknown"),
               region=region_name(int(g.location), int(g.subdivision)))


def gpus(client: Client, spv_id: int) -> list[Gpu]:
    """The SPV's GPU register, in id order."""
    token = client.token(spv_id)
    return [_read_gpu(token, gpu_id) for gpu_id in range(1, int(token.gpu_count()) + 1)]


def gpu(client: Client, spv_id: int, gpu_id: int) -> Gpu:
    """One GPU of the register (BadInput for an unknown id)."""
    token = client.token(spv_id)
    _gpu_status(token, spv_id, gpu_id)
    return _read_gpu(token, gpu_id)


def holding(client: Client, spv_id: int, holder: str) -> Holding:
    """`holder`'s shares, frozen shares, claimable income and income-token balance."""
    who = address(holder, "holder")
    token = client.token(spv_id)
    stable = client.erc20(token.income_token())
    return Holding(spv_id=spv_id, holder=who, shares=int(token.balanceOf(who)),
                   frozen_shares=int(token.getFrozenTokens(who)),
                   claimable=int(token.claimable(who)), income_balance=int(stable.balanceOf(who)),
                   income_symbol=stable.symbol(), income_decimals=int(stable.decimals()))


def roles_of(client: Client, spv_id: int, account: str) -> tuple[str, ...]:
    """The roles `account` holds on SPV `spv_id`'s token."""
    who = address(account, "account")
    token = client.token(spv_id)
    return tuple(name for name in TOKEN_ROLES if token.hasRole(role_id(name), who))


def check_movement(client: Client, spv_id: int, sender: str | None, receiver: str | None,
                   amount: str | int, *, rules: RuleBook | None = None) -> Movement:
    """Would moving `amount` shares from `sender` to `receiver` go through now? `sender`
    None is a mint, `receiver` None a burn. The token decides (its
    `detectTransferRestriction`); `rules` (default: the shipped data) give the citations."""
    src = _holder(sender, "sender") if sender is not None else ZERO_ADDRESS
    dst = _holder(receiver, "receiver") if receiver is not None else ZERO_ADDRESS
    return _movement(client, client.token(spv_id), src, dst, _shares(amount), rules)


def _movement(client: Client, token: Contract, src: str, dst: str, amount: int,
              rules: RuleBook | None) -> Movement:
    return _verdict(client, token, int(token.detectTransferRestriction(src, dst, amount)),
                    src, dst, rules)


def _verdict(client: Client, token: Contract, code: int, src: str, dst: str,
             rules: RuleBook | None) -> Movement:
    message = str(token.messageForTransferRestriction(code))
    if code == Restriction.SUCCESS:
        return Movement(allowed=True, code=code, message=message)
    rules = rules if rules is not None else law.shipped()
    receiver = None if dst == ZERO_ADDRESS else dst
    return Movement(allowed=False, code=code, message=message,
                    findings=law.explain(client, token.address, code, receiver, rules),
                    hint=_hint(client, token, code, src, dst))


def _hint(client: Client, token: Contract, code: int, src: str, dst: str) -> str:
    """The step a refused movement is missing, where the wallet's message is not enough."""
    operator = role_id("OPERATOR_ROLE")
    if code == Restriction.ASSET_TITLE_NOT_RECOGNISED and src != ZERO_ADDRESS:
        spv = client.spv_factory().spvs(int(token.spv_id()))
        return (f"Shares can still go back to the SPV: transfer them to its operator "
                f"{spv.operator}.")
    if dst != ZERO_ADDRESS and code in _RECEIVER_STEP and token.hasRole(operator, dst):
        return (f"{dst} is the SPV's operator: to take shares back (a buy-back) it needs its "
                f"own KYC record, and {_RECEIVER_STEP[Restriction(code)]}.")
    if dst == ZERO_ADDRESS and src != ZERO_ADDRESS:  # a burn
        if code in SENDER_CODES:
            return (f"Buy-back step missing: the SPV's operator {src} burns shares from its own "
                    "wallet, so it needs its own valid KYC record first (a KYC provider "
                    "registers it).")
        if code == Restriction.INSUFFICIENT_BALANCE:
            return (f"Buy-back step missing: {src} holds {shares(int(token.balanceOf(src)))} "
                    "shares; the holders must first transfer the shares to burn back to the "
                    "SPV (to its operator).")
    return ""


# ---------------------------------------------------------------------------------
# Creating an SPV, registering GPUs
# ---------------------------------------------------------------------------------


def documents_digest(*, file: Path | None = None, hex_digest: str | None = None) -> bytes:
    """The 32-byte hash the factory records: SHA-256 of `file`, or `hex_digest` as given."""
    if (file is None) == (hex_digest is None):
        raise BadInput("documents: pass exactly one of a documents file or a 0x... hash")
    if file is not None:
        try:
            return hashlib.sha256(Path(file).read_bytes()).digest()
        except OSError as exc:
            raise BadInput(f"documents: cannot read {file}: {exc.strerror}") from exc
    assert hex_digest is not None
    try:
        digest = bytes.fromhex(hex_digest.removeprefix("0x"))
    except ValueError as exc:
        raise BadInput(f"documents hash: {hex_digest!r} is not hex") from exc
    if len(digest) != 32 or digest == bytes(32):
        raise BadInput("documents hash: must be 32 non-zero bytes (64 hex digits)")
    return digest


def _text(value: str, what: str, most: int) -> str:
    """Text for a `String[most]` (bytes, as the contract counts them)."""
    if not 0 < len(value.encode()) <= most:
        raise BadInput(f"{what}: must be 1 to {most} characters (UTF-8 bytes), got "
                       f"{len(value.encode())}")
    return value


def plan_create(client: Client, operator: str, *, legal_name: str, jurisdiction: int, lei: str,
                documents_hash: bytes, token_name: str, symbol: str, shares_per_gpu: str,
                income_token: str | None = None) -> Plan:
    """Register an SPV and deploy its share token (the factory's OPERATOR_ROLE)."""
    factory = client.spv_factory()
    _text(legal_name, "name", 100)
    _text(token_name, "token name", 25)
    _text(symbol, "symbol", 5)
    if not 1 <= jurisdiction <= 999:
        raise BadInput(f"jurisdiction: {jurisdiction} is not an ISO 3166-1 numeric code")
    if len(lei) != 20 or not factory.is_valid_lei(lei):
        raise BadInput(f"lei: {lei!r} is not a valid LEI (20 characters 0-9/A-Z with check "
                       "digits)")
    if len(documents_hash) != 32 or not any(documents_hash):
        raise BadInput("documents hash: must be 32 non-zero bytes (see `documents_digest`)")
    per_gpu = _shares(shares_per_gpu, "shares per GPU")
    if per_gpu > MAX_SUPPLY:
        raise BadInput(f"shares per GPU: {shares_per_gpu} is above the maximum supply")
    stable = address(income_token, "income token") if income_token \
        else client.deployed.income_token
    tx = factory.create_spv.tx(legal_name, jurisdiction, lei, documents_hash, token_name,
                               symbol, per_gpu, stable, what="create SPV")
    refusal = _missing_role(factory, "OPERATOR_ROLE", operator, "the factory",
                            "the factory admin grants it (`ape run deploy --operator ADDR` "
                            "does at deployment)")
    if refusal is None and lei in {str(factory.spvs(i).lei) for i in spv_ids(client)}:
        refusal = reasons.SPV_FACTORY_LEI_ALREADY_REGISTERED
    if refusal is None and not client.chain.code(stable):
        refusal = f"{reasons.TOKEN_INCOME_TOKEN_NOT_CONTRACT} ({stable})"
    return Plan.of(tx, refusal=refusal)


def created(client: Client, receipts: Sequence[Receipt]) -> int:
    """The id of the SPV a sent `plan_create` registered."""
    factory = client.spv_factory()
    for receipt in receipts:
        for event in factory.events("SPVRegistered", receipt):
            return int(event["spv_id"])
    raise ValueError("no SPVRegistered event in these receipts")


def load_fleet(path: Path) -> list[GPURow]:
    """The GPUs of a fleet CSV (`gpushares.fleet`); BadInput naming every bad line."""
    try:
        return load_fleet_csv(Path(path))
    except FleetCSVError as exc:
        raise BadInput(f"fleet CSV rejected, nothing sent:\n{exc}") from exc


def location_checks(client: Client, spv_id: int, rows: Sequence[GPURow], *,
                    rules: RuleBook | None = None) -> list[law.LocationCheck]:
    """The registry's decision on each location (and ISO 3166-2 region) of `rows`, in
    numeric order."""
    token = client.token(spv_id)
    lei = str(client.spv_factory().spvs(spv_id).lei)
    rules = rules if rules is not None else law.shipped()
    places = sorted({_place(row) for row in rows}, key=lambda p: (p[0], p[1] or ""))
    return [law.gpu_location(client, token.address, lei, location, rules, region)
            for location, region in places]


def _place(row: GPURow) -> tuple[int, str | None]:
    return row.location_iso3166_numeric, row.location_iso3166_2


def _located(check: law.LocationCheck, rows: Sequence[GPURow]) -> law.Finding:
    """A refused location's finding, naming the GPUs located there."""
    serials = ", ".join(r.serial for r in rows if _place(r) == (check.location, check.region))
    finding = check.finding or law.Finding(note="")
    return law.Finding(note=f"GPU(s) {serials} at location {check.where}: {finding.note}",
                       citations=finding.citations)


def plan_add_gpus(client: Client, operator: str, spv_id: int, rows: Sequence[GPURow], *,
                  rules: RuleBook | None = None) -> Plan:
    """Register `rows` in batches of 64. Refused as the token would refuse the first bad
    GPU: a serial already registered, a commissioning time after the chain's now, a
    location whose title the registry does not recognise (with the rules cited), more
    than 16 locations."""
    if not rows:
        raise BadInput("GPUs: none to add")
    token = client.token(spv_id)
    txs = tuple(token.add_gpus.tx([row.onchain() for row in rows[i:i + BATCH]],
                                  what=f"add {len(rows[i:i + BATCH])} GPU(s)")
                for i in range(0, len(rows), BATCH))
    what = f"add {len(rows)} GPU(s) to SPV {spv_id}"
    refusal = _operator_role(token, spv_id, operator)
    if refusal is not None:
        return Plan(txs, law.Restricted(what, refusal))
    now = client.chain.now()
    known = [row.serial for row in rows if token.gpu_id_of_serial(row.serial_hash) != 0]
    future = [row.serial for row in rows if row.commissioned_at.timestamp() > now]
    checks = {(c.location, c.region): c
              for c in location_checks(client, spv_id, rows, rules=rules)}
    refused = [c for c in checks.values() if not c.allowed]
    findings = [_located(c, rows) for c in refused]
    held = set(client.registry().asset_locations(token.address))
    for row in rows:  # the token checks GPU by GPU, each in this order
        check = checks[_place(row)]
        if row.serial in known:
            reason = (f"{reasons.TOKEN_GPU_SERIAL_ALREADY_REGISTERED} on SPV {spv_id}: "
                      f"{', '.join(known)}")
        elif row.serial in future:
            reason = (f"{reasons.TOKEN_GPU_COMMISSIONING_TIME_FUTURE} (after the chain's clock): "
                      f"{', '.join(future)}")
        elif not check.allowed:
            locations = ", ".join(c.where for c in refused)
            reason = f"{check.reason} (GPUs in location(s) {locations})"
        else:
            held.add(row.location_iso3166_numeric)
            if len(held) <= MAX_LOCATIONS:
                continue
            reason = reasons.REGISTRY_SPV_GPUS_MAY_SIT
        return Plan(txs, law.Restricted(what, reason, findings=findings))
    return Plan(txs)


# ---------------------------------------------------------------------------------
# Shares
# ---------------------------------------------------------------------------------


def _gated(tx: Tx, movement: Movement) -> Plan:
    return Plan((tx,), None if movement.allowed else movement.refusal(tx.what))


def plan_mint(client: Client, operator: str, spv_id: int, to: str, amount: str,
              *, rules: RuleBook | None = None) -> Plan:
    """Mint new shares to an eligible investor, within the active GPUs' backing."""
    dst = _holder(to, "to")
    units = _shares(amount)
    token = client.token(spv_id)
    tx = token.mint.tx(dst, units, what=f"mint {shares(units)} shares to {dst}")
    refusal = _operator_role(token, spv_id, operator)
    if refusal is not None:
        return Plan.of(tx, refusal=refusal)
    movement = _movement(client, token, ZERO_ADDRESS, dst, units, rules)
    if not movement.allowed:
        return _gated(tx, movement)
    cap, supply = int(token.backing()[0]), int(token.totalSupply())
    if supply + units > cap:
        return Plan.of(tx, refusal=(
            f"{reasons.TOKEN_MINT_EXCEEDS_ACTIVE_GPUS}: minting {shares(units)} would exceed "
            f"it (supply {shares(supply)} of a {shares(cap)} cap; at most "
            f"{shares(max(cap - supply, 0))} more)"))
    if supply + units > MAX_SUPPLY:
        return Plan.of(tx, refusal=reasons.TOKEN_MINT_EXCEEDS_MAX_SUPPLY)
    return Plan.of(tx)


def _listed(factory: Contract, count: int) -> list[str]:
    """Every market of a factory, in id order (`list_markets`: ids from 1, 100 a page)."""
    found: list[str] = []
    for start in range(1, count + 1, 100):
        found += [str(a) for a in factory.list_markets(start, 100)]
    return found


def suite_contract(client: Client, where: str) -> str | None:
    """What `where` is when it is one of the suite's own contracts (a lending pool, a
    subscription vault, a perp market, a share token, the registry, a factory...), in
    words; None for anything else (a wallet, a multisig, someone else's contract). A
    plain token transfer to one of them is never credited to anyone: each keeps its own
    books, and none sweeps stray tokens."""
    if not client.chain.code(where):
        return None
    d = client.deployed
    fixed = {"the compliance registry": d.compliance_registry, "the SPV factory": d.spv_factory,
             "the OracleHub": d.oracle_hub, "the lending pool factory": d.lending_pool_factory,
             "the perp market factory": d.perp_market_factory, "the PerpLens": d.perp_lens,
             "the Lens": d.lens, "the MarketLens": d.market_lens,
             "the subscription vault factory": d.subscription_vault_factory,
             "the income stablecoin": d.income_token}
    for name, known in fixed.items():
        if known is not None and known.lower() == where.lower():
            return name
    spv_id = int(client.spv_factory().spv_id_of_token(where))
    if spv_id:
        return f"SPV {spv_id}'s share token"
    if d.lending_pool_factory is not None:
        factory = client.lending_factory()
        for number, pool in enumerate(_listed(factory, int(factory.market_count())), start=1):
            if pool.lower() == where.lower():
                return (f"lending pool {number} (it credits only collateral posted through it: "
                        f"use `ape run pool deposit-collateral` or the app's Post collateral)")
    if d.perp_market_factory is not None:
        factory = client.perp_factory()
        for number, market in enumerate(_listed(factory, int(factory.market_count())),
                                        start=1):
            if market.lower() == where.lower():
                return f"perp market {number}"
    if d.subscription_vault_factory is not None:
        factory = client.chain.contract("SubscriptionVaultFactory",
                                        d.subscription_vault_factory)
        for number in range(1, int(factory.vault_count()) + 1):
            if str(factory.vault_at(number)).lower() == where.lower():
                return ("a subscription vault (it takes shares only by a redemption request: "
                        "`ape run invest redeem` or the app's Redeem)")
    return None


def plan_transfer(client: Client, holder: str, spv_id: int, to: str, amount: str,
                  *, rules: RuleBook | None = None) -> Plan:
    """A holder moves shares to another eligible holder (or back to the SPV). Refused
    before anything is sent when `to` is one of the suite's own contracts: a plain
    transfer to a pool or a vault is credited to nobody, and the shares are lost."""
    src, dst = _holder(holder, "holder"), _holder(to, "to")
    units = _shares(amount)
    token = client.token(spv_id)
    tx = token.transfer.tx(dst, units, what=f"transfer {shares(units)} shares to {dst}")
    if (kind := suite_contract(client, dst)) is not None:
        return Plan.of(tx, refusal=f"{dst} is {kind}: shares sent to it by a plain transfer "
                                   "are credited to nobody and cannot be recovered")
    return _gated(tx, _movement(client, token, src, dst, units, rules))


def plan_return_to_spv(client: Client, holder: str, spv_id: int, amount: str,
                       *, rules: RuleBook | None = None) -> Plan:
    """A holder transfers shares back to the SPV (its operator), the first step of a
    buy-back; allowed even while the title where the GPUs sit is not recognised."""
    client.token(spv_id)  # BadInput for an unknown id
    operator = str(client.spv_factory().spvs(spv_id).operator)
    return plan_transfer(client, holder, spv_id, operator, amount, rules=rules)


def plan_burn(client: Client, operator: str, spv_id: int, amount: str,
              *, rules: RuleBook | None = None) -> Plan:
    """The SPV's operator burns shares it holds (bought back). Refusals name the missing
    buy-back step: the operator's own KYC record, the shares transferred back to it."""
    units = _shares(amount)
    token = client.token(spv_id)
    me = address(operator, "operator")
    tx = token.burn.tx(units, what=f"burn {shares(units)} shares")
    refusal = _operator_role(token, spv_id, me)
    if refusal is not None:
        return Plan.of(tx, refusal=refusal)
    return _gated(tx, _movement(client, token, me, ZERO_ADDRESS, units, rules))


def plan_freeze_shares(client: Client, agent: str, spv_id: int, holder: str,
                       amount: str) -> Plan:
    """Set how many of a holder's shares are frozen, 0 unfreezes (FREEZER_ROLE)."""
    who = _holder(holder, "holder")
    units = _shares(amount, allow_zero=True)
    token = client.token(spv_id)
    verb = f"freeze {shares(units)} shares of" if units else "unfreeze the shares of"
    tx = token.setFrozenTokens.tx(who, units, what=f"{verb} {who}")
    refusal = _agent_role(token, spv_id, "FREEZER_ROLE", agent)
    if refusal is None and int(token.getFrozenTokens(who)) == units:
        refusal = reasons.TOKEN_FROZEN_AMOUNT_UNCHANGED
    return Plan.of(tx, refusal=refusal)


def _receiver(client: Client, token: Contract, dst: str, rules: RuleBook | None) -> Movement:
    """The receiver's checks alone (what forced transfers and recoveries keep)."""
    code = int(client.registry().check_receiver(dst))
    return _verdict(client, token, code, ZERO_ADDRESS, dst, rules)


def _agent_move(client: Client, token: Contract, spv_id: int, tx: Tx, role: str, agent: str,
                same_wallet: str | None, receiver: str, holdings: str | None,
                rules: RuleBook | None) -> Plan:
    """An agent power that moves shares to `receiver`, refused in the token's order: the
    agent's `role`, `same_wallet` (a move to the same wallet), the receiver's
    eligibility, then `holdings` (what the losing wallet holds)."""
    refusal = _agent_role(token, spv_id, role, agent) or same_wallet
    if refusal is not None:
        return Plan.of(tx, refusal=refusal)
    movement = _receiver(client, token, receiver, rules)
    return _gated(tx, movement) if not movement.allowed else Plan.of(tx, refusal=holdings)


def plan_forced_transfer(client: Client, agent: str, spv_id: int, sender: str, receiver: str,
                         amount: str, *, rules: RuleBook | None = None) -> Plan:
    """Move shares without the holder's consent (FORCED_TRANSFER_ROLE): bypasses the
    pause, the title stop, the sender's checks and freezes; never the receiver's
    eligibility or the sender's balance."""
    src, dst = _holder(sender, "from"), _holder(receiver, "to")
    units = _shares(amount)
    token = client.token(spv_id)
    tx = token.forcedTransfer.tx(src, dst, units, what=(
        f"forced transfer of {shares(units)} shares {src} -> {dst}"))
    held = int(token.balanceOf(src))
    return _agent_move(
        client, token, spv_id, tx, "FORCED_TRANSFER_ROLE", agent,
        reasons.TOKEN_FORCED_TRANSFER_ACCOUNT_ITSELF if src == dst else None, dst,
        f"{reasons.TOKEN_FORCED_TRANSFER_EXCEEDS_SENDER} ({src} holds {shares(held)} shares)"
        if units > held else None, rules)


def plan_recover_wallet(client: Client, agent: str, spv_id: int, lost: str, new: str,
                        *, rules: RuleBook | None = None) -> Plan:
    """Move a lost wallet's shares, income and freezes to the holder's new, eligible
    wallet (RECOVERY_ROLE)."""
    old, fresh = _holder(lost, "lost"), _holder(new, "new")
    token = client.token(spv_id)
    tx = token.recover_wallet.tx(old, fresh, what=f"recover {old} -> {fresh}")
    empty = (int(token.balanceOf(old)) == 0 and int(token.claimable(old)) == 0
             and int(token.getFrozenTokens(old)) == 0)
    # The token's order: role, same wallet, the new wallet's eligibility, then the lost
    # key must be stopped (frozen, expired or removed), then something to recover.
    last = (f"{reasons.TOKEN_RECOVERY_LOST_WALLET_ACTIVE} (`ape run kyc freeze --investor "
            f"{old}`)" if int(client.registry().check_sender(old)) == 0
            else reasons.TOKEN_LOST_WALLET_HOLDS_NO if empty else None)
    return _agent_move(client, token, spv_id, tx, "RECOVERY_ROLE", agent,
                       reasons.TOKEN_RECOVERY_SAME_WALLET if old == fresh else None, fresh,
                       last, rules)


def plan_grant_role(client: Client, admin: str, spv_id: int, role: str, account: str, *,
                    revoke: bool = False) -> Plan:
    """Grant (or revoke) one of the token's agent roles: `freezer`, `forced-transfer`,
    `recovery` or `pauser`. Only the token's admin (DEFAULT_ADMIN_ROLE, the SPV's
    creator unless it handed it on) can."""
    name = AGENT_ROLES.get(role)
    if name is None:
        raise BadInput(f"role: {role!r} is not one of {', '.join(AGENT_ROLES)}")
    who = _holder(account, "to")
    token = client.token(spv_id)
    where = f"SPV {spv_id}'s token"
    tx = (token.revokeRole.tx(role_id(name), who, what=f"revoke {name} on {where} from {who}")
          if revoke else
          token.grantRole.tx(role_id(name), who, what=f"grant {name} on {where} to {who}"))
    refusal = _missing_role(token, "DEFAULT_ADMIN_ROLE", admin, where,
                            "only the token's admin, the SPV's creator unless it handed the "
                            "role on, grants roles")
    has = bool(token.hasRole(role_id(name), who))
    if refusal is None and has != revoke:
        refusal = (f"{who} {'does not hold' if revoke else 'already holds'} {name} on {where}: "
                   "nothing to change")
    return Plan.of(tx, refusal=refusal)


# ---------------------------------------------------------------------------------
# Income and GPU status
# ---------------------------------------------------------------------------------


def plan_distribute(client: Client, operator: str, spv_id: int, amount: str) -> Plan:
    """Pay rental income to every holder pro rata; approves the token first if needed."""
    token = client.token(spv_id)
    stable = client.erc20(token.income_token())
    decimals, symbol = int(stable.decimals()), stable.symbol()
    units = to_base_units(amount, decimals, "amount")
    me = address(operator, "operator")
    txs: list[Tx] = []
    if int(stable.allowance(me, token.address)) < units:
        txs.append(stable.approve.tx(token.address, units, what="approve income token"))
    txs.append(token.distribute.tx(units, what=f"distribute {fmt_units(units, decimals)} "
                                               f"{symbol}"))
    refusal = _operator_role(token, spv_id, me)
    balance = int(stable.balanceOf(me))
    if refusal is None and int(token.totalSupply()) == 0:
        refusal = f"{reasons.TOKEN_NO_SHARES_OUTSTANDING_RECEIVE} (SPV {spv_id} has none)"
    if refusal is None and balance < units:
        refusal = (f"{reasons.ERC20_INSUFFICIENT_BALANCE} ({me} holds "
                   f"{fmt_units(balance, decimals)} {symbol}, less than {amount})")
    return Plan.of(*txs, refusal=refusal)


def plan_claim(client: Client, holder: str, spv_id: int) -> Plan:
    """A holder claims the rental income their shares earned."""
    who = address(holder, "holder")
    token = client.token(spv_id)
    stable = client.erc20(token.income_token())
    owed = int(token.claimable(who))
    amount = f"{fmt_units(owed, int(stable.decimals()))} {stable.symbol()}"
    tx = token.claim.tx(what=f"claim {amount}" if owed else "claim income")
    refusal = None
    if token.paused():
        refusal = reasons.TOKEN_PAUSED
    elif (code := int(client.registry().income_code(who))) == Restriction.RECEIVER_FROZEN:
        refusal = reasons.TOKEN_WALLET_FROZEN_COMPLIANCE_AGENT
    elif code:
        refusal = reasons.TOKEN_INCOME_JURISDICTION_BLOCKED
    elif owed == 0:
        refusal = f"{reasons.TOKEN_NOTHING_CLAIM} ({who} has nothing to claim on SPV {spv_id})"
    return Plan.of(tx, refusal=refusal)


def _gpu_status(token: Contract, spv_id: int, gpu_id: int) -> str:
    count = int(token.gpu_count())
    if not 1 <= gpu_id <= count:
        listing = f"GPUs 1..{count}" if count else "no GPU yet"
        raise BadInput(f"gpu: unknown GPU id {gpu_id}: SPV {spv_id} has {listing}")
    return STATUS_NAMES.get(int(token.gpus(gpu_id).status), "unknown")


def plan_impair_gpu(client: Client, operator: str, spv_id: int, gpu_id: int) -> Plan:
    """Mark an active GPU impaired: it keeps backing issued shares, not new mints."""
    token = client.token(spv_id)
    state = _gpu_status(token, spv_id, gpu_id)
    tx = token.impair_gpu.tx(gpu_id, what=f"impair GPU {gpu_id}")
    refusal = _operator_role(token, spv_id, operator)
    if refusal is None and state != "active":
        refusal = f"{reasons.TOKEN_ACTIVE_GPU_IMPAIRED} (GPU {gpu_id} is {state})"
    return Plan.of(tx, refusal=refusal)


def plan_retire_gpu(client: Client, operator: str, spv_id: int, gpu_id: int) -> Plan:
    """Retire a GPU; refused while the supply would exceed what the remaining GPUs back
    (buy back and burn first: see the module's docstring)."""
    token = client.token(spv_id)
    state = _gpu_status(token, spv_id, gpu_id)
    tx = token.retire_gpu.tx(gpu_id, what=f"retire GPU {gpu_id}")
    refusal = _operator_role(token, spv_id, operator)
    if refusal is None and state == "retired":
        refusal = reasons.TOKEN_GPU_ALREADY_RETIRED
    if refusal is None:
        remaining = int(token.active_gpus()) + int(token.impaired_gpus()) - 1
        supply, per_gpu = int(token.totalSupply()), int(token.shares_per_gpu())
        if supply > remaining * per_gpu:
            refusal = (f"{reasons.TOKEN_BURN_SHARES_FIRST_SUPPLY} (retiring GPU {gpu_id} would "
                       f"leave {shares(supply)} shares backed by {remaining} GPU(s) "
                       f"({shares(remaining * per_gpu)} shares): buy back and burn "
                       f"{shares(supply - remaining * per_gpu)} shares first: holders "
                       "transfer them to the SPV's operator, which burns them)")
    return Plan.of(tx, refusal=refusal)
