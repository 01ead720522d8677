"""`gpushares.client.spv` against the deployed suite, in-process: every action's plan
either goes through, leaving the state the reads report, or names the refusal a wallet
shows (with the law behind it) before anything is sent, and the contract refuses the
same plan with the same message when it is sent anyway."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import boa
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from gpushares import reasons
from gpushares.client import jurisdictions, kyc, spv
from gpushares.client.chain import Plan, Reverted
from gpushares.client.context import Client
from gpushares.client.jurisdictions import Restricted
from gpushares.client.units import BadInput
from gpushares.demo import SPV_LEI, TITLE_OVERRIDE
from gpushares.devnode import PROJECT_ROOT
from gpushares.fleet import GPURow
from jurisdictions.codes import MESSAGES, Restriction
from jurisdictions.rules import RuleBook
from tests.budgets import budget
from tests.client.conftest import ALICE, BOB, DEPLOYER, KYC, OPERATOR, STRANGER, refused_alike, sent

FLEET_US = PROJECT_ROOT / "examples" / "fleet-h100.csv"
FLEET_DE = PROJECT_ROOT / "examples" / "fleet-de.csv"
DOCUMENTS = PROJECT_ROOT / "examples" / "spv-legal-documents.txt"
CAROL = boa.env.generate_address("spv-carol")  # resident in North Korea (blocked)
AGENT = boa.env.generate_address("spv-agent")  # gets the token's agent roles
NEW_WALLET = boa.env.generate_address("spv-new-wallet")
SHARE = 10**18
USDC = 10**6
SECOND_LEI = "529900SECONDFLEET028"


# ---------------------------------------------------------------------------------
# Helpers and the world
# ---------------------------------------------------------------------------------


def restricted(client: Client, plan: Plan, sender: str, code: Restriction) -> Restricted:
    """A refused share movement: the wallet's message for `code`, as the token says it."""
    refusal = refused_alike(client, plan, sender)
    assert isinstance(refusal, Restricted)
    assert (refusal.code, refusal.message) == (code, MESSAGES[code])
    return refusal


def whole(units: int) -> str:
    """Share base units as the decimal text people type (no separators)."""
    return format(Decimal(units).scaleb(-18), "f")


def register(client: Client, who: str, jurisdiction: str = "US") -> None:
    sent(client, kyc.plan_register(client, KYC, who, kyc.residence(jurisdiction),
                                   accredited=True), KYC)


def create(client: Client, lei: str = SPV_LEI, symbol: str = "LSH1") -> int:
    receipts = sent(client, spv.plan_create(
        client, OPERATOR, legal_name="Lone Star GPU Fleet I LLC", jurisdiction=840, lei=lei,
        documents_hash=spv.documents_digest(file=DOCUMENTS), token_name="Lone Star H100 Shares",
        symbol=symbol, shares_per_gpu="1000"), OPERATOR)
    return spv.created(client, receipts)


def gpu_row(serial: str, location: int = 840, commissioned: str = "2025-03-17") -> GPURow:
    return GPURow.model_validate({
        "serial": serial, "model": "H100-SXM5-80GB", "location_iso3166_numeric": location,
        "datacenter": "US-TX-DFW-01", "acquisition_cost_usd": "27500",
        "commissioned_at": commissioned})


def demo_override_rules() -> RuleBook:
    """The shipped rules plus the demo SPV's US title override (its own file)."""
    return jurisdictions.load(overrides=[TITLE_OVERRIDE])


SHIPPED = jurisdictions.load()
OVERRIDE_RULES = demo_override_rules()


@pytest.fixture(scope="module")
def spv_id(client: Client) -> int:
    """SPV 1 as the demo runs it: the rules applied and its US title override recorded,
    Alice and Bob accredited US investors, Carol resident in North Korea, the operator
    without a KYC record of its own, the 8 GPUs of the fleet CSV, 3,000 shares minted
    to Alice and 4,000 to Bob (of the 8,000 the fleet backs)."""
    sent(client, jurisdictions.plan_apply(client, DEPLOYER, SHIPPED), DEPLOYER)
    register(client, ALICE)
    register(client, BOB)
    register(client, CAROL, "KP")
    number = create(client)
    sent(client, jurisdictions.plan_apply(client, OPERATOR, OVERRIDE_RULES), OPERATOR)
    sent(client, spv.plan_add_gpus(client, OPERATOR, number, spv.load_fleet(FLEET_US)),
         OPERATOR)
    sent(client, spv.plan_mint(client, OPERATOR, number, ALICE, "3000"), OPERATOR)
    sent(client, spv.plan_mint(client, OPERATOR, number, BOB, "4000"), OPERATOR)
    return number


def grant(client: Client, spv_id: int, role: str, to: str = AGENT) -> None:
    sent(client, spv.plan_grant_role(client, OPERATOR, spv_id, role, to), OPERATOR)


# ---------------------------------------------------------------------------------
# Reads
# ---------------------------------------------------------------------------------


def test_status_reads_the_spv_its_token_and_its_fleet(client: Client, spv_id: int):
    s = spv.status(client, spv_id)
    assert (s.spv_id, s.legal_name, s.jurisdiction, s.lei, s.operator) == (
        1, "Lone Star GPU Fleet I LLC", 840, SPV_LEI, OPERATOR)
    assert s.documents_hash == "0x" + hashlib.sha256(DOCUMENTS.read_bytes()).hexdigest()
    assert (s.token_name, s.token_symbol, s.income_symbol, s.income_decimals) == (
        "Lone Star H100 Shares", "LSH1", "mUSDC", 6)
    assert (s.supply, s.mint_cap, s.backing) == (7000 * SHARE, 8000 * SHARE, 8000 * SHARE)
    assert (s.gpu_count, s.active_gpus, s.impaired_gpus, s.locations) == (8, 8, 0, (840,))
    assert not s.paused and s.income_token == client.deployed.income_token
    lines = s.describe()
    assert lines[0] == "SPV 1: Lone Star GPU Fleet I LLC"
    assert "  supply 7,000 shares; mint cap 8,000; backing 8,000" in lines
    assert "  GPUs: 8 registered, 8 active, 0 impaired" in lines
    assert spv.spv_ids(client) == [1]


def test_gpus_are_the_fleet_csv(client: Client, spv_id: int):
    fleet = spv.load_fleet(FLEET_US)
    gpus = spv.gpus(client, spv_id)
    assert [g.serial_hash for g in gpus] == ["0x" + row.serial_hash.hex() for row in fleet]
    commissioned = int(datetime(2025, 3, 17, tzinfo=UTC).timestamp())
    for gpu in gpus:
        assert (gpu.model, gpu.location, gpu.datacenter, gpu.status) == (
            "H100-SXM5-80GB", 840, "US-TX-DFW-01", "active")
        assert (gpu.acquisition_cost, gpu.commissioned_at) == (27_500 * 10**8, commissioned)
    assert gpus[2].describe().split()[0] == "#3" and gpus[2].describe().endswith("active")
    assert spv.gpu(client, spv_id, 3) == gpus[2]
    with pytest.raises(BadInput, match="unknown GPU id 9: SPV 1 has GPUs 1..8"):
        spv.gpu(client, spv_id, 9)


def test_holding_and_roles(client: Client, spv_id: int):
    held = spv.holding(client, spv_id, ALICE)
    assert (held.shares, held.frozen_shares, held.claimable, held.income_balance) == (
        3000 * SHARE, 0, 0, 0)
    assert held.describe() == f"{ALICE} holds 3,000 shares, claimable 0 mUSDC"
    assert spv.roles_of(client, spv_id, OPERATOR) == (
        "DEFAULT_ADMIN_ROLE", "OPERATOR_ROLE", "PAUSER_ROLE")
    assert spv.roles_of(client, spv_id, ALICE) == ()


def test_an_unknown_spv_is_bad_input(client: Client, spv_id: int):
    with pytest.raises(BadInput, match=r"unknown SPV id 99: this factory has 1 SPV\(s\)"):
        spv.status(client, 99)
    with pytest.raises(BadInput, match="unknown SPV id 0"):
        spv.plan_mint(client, OPERATOR, 0, ALICE, "1")


PLANS = {
    "mint": lambda c, bad: spv.plan_mint(c, OPERATOR, 1, bad, "1"),
    "transfer": lambda c, bad: spv.plan_transfer(c, ALICE, 1, bad, "1"),
    "freeze": lambda c, bad: spv.plan_freeze_shares(c, OPERATOR, 1, bad, "1"),
    "forced from": lambda c, bad: spv.plan_forced_transfer(c, OPERATOR, 1, bad, BOB, "1"),
    "forced to": lambda c, bad: spv.plan_forced_transfer(c, OPERATOR, 1, ALICE, bad, "1"),
    "lost": lambda c, bad: spv.plan_recover_wallet(c, OPERATOR, 1, bad, BOB),
    "new": lambda c, bad: spv.plan_recover_wallet(c, OPERATOR, 1, ALICE, bad),
    "grant": lambda c, bad: spv.plan_grant_role(c, OPERATOR, 1, "freezer", bad),
    "holding": lambda c, bad: spv.holding(c, 1, bad),
    "check": lambda c, bad: spv.check_movement(c, 1, ALICE, bad, "1"),
}
FIELDS = {"mint": "to", "transfer": "to", "freeze": "holder", "forced from": "from",
          "forced to": "to", "lost": "lost", "new": "new", "grant": "to", "holding": "holder",
          "check": "receiver"}


@pytest.mark.parametrize("action", sorted(PLANS))
@pytest.mark.parametrize("bad", ["0x7099...79C8", "alice"])
def test_a_malformed_address_is_bad_input_naming_the_field(client: Client, spv_id: int,
                                                           action: str, bad: str):
    with pytest.raises(BadInput, match=f"^{FIELDS[action]}: .* is not an address"):
        PLANS[action](client, bad)


def test_the_zero_address_cannot_hold_shares(client: Client, spv_id: int):
    with pytest.raises(BadInput, match="to: the zero address cannot hold shares"):
        spv.plan_transfer(client, ALICE, spv_id, "0x" + "0" * 40, "1")


@pytest.mark.parametrize("amount", ["0", "-1", "1e-19", "0.0000000000000000001", "many"])
def test_an_unusable_share_amount_is_bad_input(client: Client, spv_id: int, amount: str):
    with pytest.raises(BadInput, match="^shares: "):
        spv.plan_transfer(client, ALICE, spv_id, BOB, amount)


# ---------------------------------------------------------------------------------
# Creating an SPV
# ---------------------------------------------------------------------------------


def test_create_registers_an_spv_and_deploys_its_token(client: Client, spv_id: int):
    second = create(client, SECOND_LEI, "SEC")
    assert second == 2 and spv.spv_ids(client) == [1, 2]
    s = spv.status(client, second)
    assert (s.lei, s.token_symbol, s.shares_per_gpu, s.supply, s.gpu_count) == (
        SECOND_LEI, "SEC", 1000 * SHARE, 0, 0)
    assert spv.roles_of(client, second, OPERATOR) == (
        "DEFAULT_ADMIN_ROLE", "OPERATOR_ROLE", "PAUSER_ROLE")


def test_create_refusals(client: Client, spv_id: int):
    terms = {"legal_name": "Outsider GPU Holdings Ltd", "jurisdiction": 442, "lei": SECOND_LEI,
             "documents_hash": b"\xab" * 32, "token_name": "Outsider Shares", "symbol": "OUT",
             "shares_per_gpu": "10"}
    by_stranger = spv.plan_create(client, STRANGER, **terms)
    refusal = refused_alike(client, by_stranger, STRANGER)
    assert refusal.reason.startswith(reasons.ACCESS_CONTROL_MISSING_ROLE)
    assert f"{STRANGER} lacks the factory's OPERATOR_ROLE" in refusal.reason
    again = spv.plan_create(client, OPERATOR, **(terms | {"lei": SPV_LEI}))
    assert refused_alike(client, again, OPERATOR).reason == \
        reasons.SPV_FACTORY_LEI_ALREADY_REGISTERED
    no_token = spv.plan_create(client, OPERATOR, **terms, income_token=STRANGER)
    assert no_token.refusal is not None
    assert no_token.refusal.reason.startswith(reasons.TOKEN_INCOME_TOKEN_NOT_CONTRACT)


@pytest.mark.parametrize(("change", "field"), [
    ({"lei": SPV_LEI[:-1] + "3"}, "lei"), ({"lei": "SHORT"}, "lei"),
    ({"legal_name": ""}, "name"), ({"token_name": "x" * 26}, "token name"),
    ({"symbol": "TOOLONG"}, "symbol"), ({"jurisdiction": 1000}, "jurisdiction"),
    ({"shares_per_gpu": "0"}, "shares per GPU"), ({"income_token": "0x12"}, "income token"),
    ({"documents_hash": bytes(32)}, "documents hash"),
])
def test_create_with_unusable_terms_is_bad_input(client: Client, change: dict, field: str):
    terms = {"legal_name": "Second Fleet LLC", "jurisdiction": 840, "lei": SECOND_LEI,
             "documents_hash": b"\xab" * 32, "token_name": "Second Shares", "symbol": "SEC",
             "shares_per_gpu": "10"}
    with pytest.raises(BadInput, match=f"^{field}: "):
        spv.plan_create(client, OPERATOR, **(terms | change))


def test_documents_digest(tmp_path: Path):
    assert spv.documents_digest(file=DOCUMENTS) == hashlib.sha256(DOCUMENTS.read_bytes()).digest()
    assert spv.documents_digest(hex_digest="0x" + "ab" * 32) == b"\xab" * 32
    for bad in ("0xzz", "0x" + "ab" * 31, "0x" + "00" * 32):
        with pytest.raises(BadInput, match="documents hash"):
            spv.documents_digest(hex_digest=bad)
    with pytest.raises(BadInput, match="exactly one"):
        spv.documents_digest()
    with pytest.raises(BadInput, match="cannot read"):
        spv.documents_digest(file=tmp_path / "missing.pdf")


# ---------------------------------------------------------------------------------
# GPUs
# ---------------------------------------------------------------------------------


def test_gpus_in_germany_are_refused_with_the_law(client: Client, spv_id: int):
    plan = spv.plan_add_gpus(client, OPERATOR, spv_id, spv.load_fleet(FLEET_DE))
    refusal = refused_alike(client, plan, OPERATOR)
    assert isinstance(refusal, Restricted) and refusal.code is None
    assert refusal.reason == f"{reasons.REGISTRY_GPU_LOCATION_DOES_NOT} (GPUs in location(s) 276)"
    (finding,) = refusal.findings
    assert finding.note.startswith("GPU(s) 1654923099001 at location 276: ")
    assert "Germany (DE): title_recognition = not_recognised." in finding.note
    assert any("(EGBGB) Art. 43(1)" in citation for citation in finding.citations)
    assert refusal.lines()[0] == finding.note and refusal.lines()[1].startswith("  - ")


def test_gpus_where_title_is_unclear_need_the_spvs_override(client: Client, spv_id: int):
    second = create(client, SECOND_LEI, "SEC")
    plan = spv.plan_add_gpus(client, OPERATOR, second, [gpu_row("SECOND-0001")])
    refusal = refused_alike(client, plan, OPERATOR)
    assert refusal.reason.startswith(reasons.REGISTRY_TOKENIZED_TITLE_GPU_LOCATION)
    assert isinstance(refusal, Restricted)
    assert "this SPV has recorded no legal-opinion override" in refusal.findings[0].note
    (check,) = spv.location_checks(client, second, [gpu_row("SECOND-0001")])
    assert (check.location, check.allowed, check.reason) == (
        840, False, reasons.REGISTRY_TOKENIZED_TITLE_GPU_LOCATION)
    assert spv.location_checks(client, spv_id, [gpu_row("X")])[0].allowed


def test_a_location_without_rules_is_refused(client: Client, spv_id: int):
    plan = spv.plan_add_gpus(client, OPERATOR, spv_id, [gpu_row("NOWHERE-1", location=4)])
    refusal = refused_alike(client, plan, OPERATOR)
    assert refusal.reason.startswith(reasons.REGISTRY_GPU_LOCATION_NOT_JURISDICTION)
    assert isinstance(refusal, Restricted)
    assert "Location 4 has no rules file" in refusal.findings[0].note


def test_registered_serials_and_future_commissioning_are_refused(client: Client, spv_id: int):
    known = spv.load_fleet(FLEET_US)[2]
    again = spv.plan_add_gpus(client, OPERATOR, spv_id, [gpu_row("NEW-0003"), known])
    assert refused_alike(client, again, OPERATOR).reason == (
        f"{reasons.TOKEN_GPU_SERIAL_ALREADY_REGISTERED} on SPV 1: {known.serial}")
    future = spv.plan_add_gpus(client, OPERATOR, spv_id,
                               [gpu_row("NEW-0004", commissioned="2099-01-01")])
    assert refused_alike(client, future, OPERATOR).reason.startswith(
        reasons.TOKEN_GPU_COMMISSIONING_TIME_FUTURE)


def test_add_gpus_by_someone_without_the_role(client: Client, spv_id: int):
    plan = spv.plan_add_gpus(client, STRANGER, spv_id, [gpu_row("NEW-0005")])
    assert refused_alike(client, plan, STRANGER).reason.startswith(
        reasons.ACCESS_CONTROL_MISSING_ROLE)


def test_a_large_fleet_goes_in_batches_of_64(client: Client, spv_id: int):
    rows = [gpu_row(f"BATCH-{i:04d}") for i in range(65)]
    plan = spv.plan_add_gpus(client, OPERATOR, spv_id, rows)
    assert [tx.what for tx in plan.txs] == ["add 64 GPU(s)", "add 1 GPU(s)"]
    sent(client, plan, OPERATOR)
    s = spv.status(client, spv_id)
    assert (s.gpu_count, s.active_gpus, s.mint_cap) == (73, 73, 73_000 * SHARE)


def test_a_malformed_fleet_csv_names_the_line(tmp_path: Path):
    csv = tmp_path / "fleet-bad.csv"
    header = FLEET_US.read_text(encoding="utf-8").splitlines()[0]
    csv.write_text(f"{header}\nNEW-1,H100-SXM5-80GB,840,US-TX-DFW-01,27500.00,2025-03-17\n"
                   "NEW-2,H100-SXM5-80GB,Texas,US-TX-DFW-01,27500.00,2025-03-17\n",
                   encoding="utf-8")
    with pytest.raises(BadInput, match="fleet CSV rejected, nothing sent") as caught:
        spv.load_fleet(csv)
    assert "line 3" in str(caught.value) and "line 2" not in str(caught.value)
    assert "location_iso3166_numeric" in str(caught.value)


# ---------------------------------------------------------------------------------
# Minting and moving shares
# ---------------------------------------------------------------------------------


def test_mint_within_the_backing(client: Client, spv_id: int):
    plan = spv.plan_mint(client, OPERATOR, spv_id, BOB, "1000")
    assert plan.what == f"mint 1,000 shares to {BOB}"
    sent(client, plan, OPERATOR)
    assert spv.holding(client, spv_id, BOB).shares == 5000 * SHARE
    assert spv.status(client, spv_id).supply == 8000 * SHARE
    beyond = spv.plan_mint(client, OPERATOR, spv_id, ALICE, "0.5")
    assert refused_alike(client, beyond, OPERATOR).reason == (
        f"{reasons.TOKEN_MINT_EXCEEDS_ACTIVE_GPUS}: minting 0.5 would exceed it (supply 8,000 "
        "of a 8,000 cap; at most 0 more)")


def test_mint_refusals(client: Client, spv_id: int):
    stranger = spv.plan_mint(client, OPERATOR, spv_id, STRANGER, "100")
    refusal = restricted(client, stranger, OPERATOR, Restriction.RECEIVER_NOT_REGISTERED)
    assert refusal.lines() == [
        f"refused (ERC-1404 code 6 RECEIVER_NOT_REGISTERED): {refusal.message}"]
    carol = restricted(client, spv.plan_mint(client, OPERATOR, spv_id, CAROL, "100"), OPERATOR,
                       Restriction.RECEIVER_JURISDICTION_BLOCKED)
    (finding,) = carol.findings
    assert finding.note == ("receiver resident in Democratic People's Republic of Korea (KP): "
                            "holder policy blocked, sanctioned")
    assert finding.citations
    by_stranger = spv.plan_mint(client, STRANGER, spv_id, ALICE, "1")
    assert refused_alike(client, by_stranger, STRANGER).reason.startswith(
        reasons.ACCESS_CONTROL_MISSING_ROLE)


def test_transfer_between_eligible_holders(client: Client, spv_id: int):
    plan = spv.plan_transfer(client, ALICE, spv_id, BOB, "500")
    assert plan.refusal is None and plan.what == f"transfer 500 shares to {BOB}"
    sent(client, plan, ALICE)
    assert spv.holding(client, spv_id, ALICE).shares == 2500 * SHARE
    assert spv.holding(client, spv_id, BOB).shares == 4500 * SHARE
    assert spv.check_movement(client, spv_id, ALICE, BOB, "2500").allowed


def test_transfer_refusals_are_the_wallets_messages(client: Client, spv_id: int):
    restricted(client, spv.plan_transfer(client, ALICE, spv_id, STRANGER, "100"), ALICE,
               Restriction.RECEIVER_NOT_REGISTERED)
    restricted(client, spv.plan_transfer(client, ALICE, spv_id, CAROL, "100"), ALICE,
               Restriction.RECEIVER_JURISDICTION_BLOCKED)
    restricted(client, spv.plan_transfer(client, ALICE, spv_id, BOB, "3000.5"), ALICE,
               Restriction.INSUFFICIENT_BALANCE)
    restricted(client, spv.plan_transfer(client, STRANGER, spv_id, BOB, "1"), STRANGER,
               Restriction.SENDER_NOT_REGISTERED)
    boa.env.time_travel(seconds=366 * kyc.DAY)  # every KYC record has expired
    restricted(client, spv.plan_transfer(client, ALICE, spv_id, BOB, "1"), ALICE,
               Restriction.SENDER_ELIGIBILITY_EXPIRED)


def test_a_wallet_frozen_in_the_registry(client: Client, spv_id: int):
    sent(client, kyc.plan_freeze(client, DEPLOYER, BOB), DEPLOYER)
    restricted(client, spv.plan_transfer(client, ALICE, spv_id, BOB, "1"), ALICE,
               Restriction.RECEIVER_FROZEN)
    restricted(client, spv.plan_transfer(client, BOB, spv_id, ALICE, "1"), BOB,
               Restriction.SENDER_FROZEN)


def test_withdrawn_override_stops_transfers_but_not_the_way_back(client: Client, spv_id: int):
    """The shipped data holds no US override for the SPV: applying it clears the one
    on-chain, and the shares stop moving, except back to the SPV."""
    sent(client, jurisdictions.plan_apply(client, OPERATOR, SHIPPED), OPERATOR)
    refusal = restricted(client, spv.plan_transfer(client, ALICE, spv_id, BOB, "1"), ALICE,
                         Restriction.ASSET_TITLE_NOT_RECOGNISED)
    (finding,) = refusal.findings
    assert finding.note == "United States (US): title unclear"
    assert refusal.reason.endswith(f"transfer them to its operator {OPERATOR}.")
    register(client, OPERATOR)
    sent(client, spv.plan_return_to_spv(client, ALICE, spv_id, "100"), ALICE)
    assert spv.holding(client, spv_id, OPERATOR).shares == 100 * SHARE


@settings(budget("client_transfer_plans"))
@given(sender=st.sampled_from([ALICE, BOB, ALICE, BOB, CAROL, STRANGER]),  # holders twice
       receiver=st.sampled_from([ALICE, BOB, ALICE, BOB, CAROL, STRANGER, OPERATOR]),
       amount=st.one_of(st.sampled_from([3000 * SHARE, 3000 * SHARE + 1, 4000 * SHARE + 1]),
                        st.integers(min_value=1, max_value=5000 * SHARE)),
       frozen=st.one_of(st.just(0), st.integers(min_value=1, max_value=4000 * SHARE)))
def test_a_transfer_plan_is_refused_exactly_when_the_token_refuses_it(
        client: Client, spv_id: int, sender: str, receiver: str, amount: int, frozen: int):
    """Whatever the parties, amount and frozen shares: the plan goes through, or its
    refusal is the message the token reverts with."""
    with boa.env.anchor():
        token = client.token(spv_id)
        if frozen:
            grant(client, spv_id, "freezer")
            sent(client, spv.plan_freeze_shares(client, AGENT, spv_id, sender, whole(frozen)),
                 AGENT)
        plan = spv.plan_transfer(client, sender, spv_id, receiver, whole(amount))
        event("allowed" if plan.refusal is None else
              Restriction(getattr(plan.refusal, "code", 0)).name)
        if plan.refusal is None:
            before = int(token.balanceOf(receiver))
            sent(client, plan, sender)
            assert int(token.balanceOf(receiver)) == before + (amount if sender != receiver
                                                              else 0)
        else:
            assert isinstance(plan.refusal, Restricted)
            with pytest.raises(Reverted) as caught:
                client.chain.send(plan.txs[0], sender)
            assert caught.value.reason == plan.refusal.message


# ---------------------------------------------------------------------------------
# Income
# ---------------------------------------------------------------------------------


def test_distribute_then_claim(client: Client, spv_id: int):
    plan = spv.plan_distribute(client, OPERATOR, spv_id, "10000.00")
    assert [tx.what for tx in plan.txs] == ["approve income token", "distribute 10,000 mUSDC"]
    sent(client, plan, OPERATOR)
    s = spv.status(client, spv_id)
    assert (s.total_distributed, s.total_claimed) == (10_000 * USDC, 0)
    alice_due = 10_000 * USDC * 3000 // 7000
    assert spv.holding(client, spv_id, ALICE).claimable == alice_due == 4_285_714_285
    claim = spv.plan_claim(client, ALICE, spv_id)
    assert claim.what == "claim 4,285.714285 mUSDC"
    sent(client, claim, ALICE)
    held = spv.holding(client, spv_id, ALICE)
    assert (held.income_balance, held.claimable) == (alice_due, 0)
    assert held.money_held() == "4,285.714285 mUSDC"
    assert spv.status(client, spv_id).total_claimed == alice_due
    again = spv.plan_claim(client, ALICE, spv_id)
    assert refused_alike(client, again, ALICE).reason == (
        f"{reasons.TOKEN_NOTHING_CLAIM} ({ALICE} has nothing to claim on SPV 1)")


def test_distribute_refusals(client: Client, spv_id: int):
    too_much = spv.plan_distribute(client, OPERATOR, spv_id, "1000001")
    refusal = refused_alike(client, too_much, OPERATOR)
    assert refusal.reason.startswith(reasons.ERC20_INSUFFICIENT_BALANCE)
    assert f"{OPERATOR} holds 1,000,000 mUSDC, less than 1000001" in refusal.reason
    by_stranger = spv.plan_distribute(client, STRANGER, spv_id, "1")
    assert refused_alike(client, by_stranger, STRANGER).reason.startswith(
        reasons.ACCESS_CONTROL_MISSING_ROLE)
    empty = spv.plan_distribute(client, OPERATOR, create(client, SECOND_LEI, "SEC"), "1")
    assert refused_alike(client, empty, OPERATOR).reason.startswith(
        reasons.TOKEN_NO_SHARES_OUTSTANDING_RECEIVE)
    with pytest.raises(BadInput, match="amount: 1.0000001 has more than 6 decimals"):
        spv.plan_distribute(client, OPERATOR, spv_id, "1.0000001")


def test_a_frozen_wallet_cannot_claim(client: Client, spv_id: int):
    sent(client, spv.plan_distribute(client, OPERATOR, spv_id, "700"), OPERATOR)
    sent(client, kyc.plan_freeze(client, DEPLOYER, ALICE), DEPLOYER)
    frozen = spv.plan_claim(client, ALICE, spv_id)
    assert refused_alike(client, frozen, ALICE).reason == \
        reasons.TOKEN_WALLET_FROZEN_COMPLIANCE_AGENT


# ---------------------------------------------------------------------------------
# GPU status and the buy-back path
# ---------------------------------------------------------------------------------


def test_impair_a_gpu(client: Client, spv_id: int):
    sent(client, spv.plan_impair_gpu(client, OPERATOR, spv_id, 3), OPERATOR)
    s = spv.status(client, spv_id)
    assert (s.active_gpus, s.impaired_gpus, s.mint_cap, s.backing) == (
        7, 1, 7000 * SHARE, 8000 * SHARE)
    assert spv.gpu(client, spv_id, 3).status == "impaired"
    again = spv.plan_impair_gpu(client, OPERATOR, spv_id, 3)
    assert refused_alike(client, again, OPERATOR).reason == (
        f"{reasons.TOKEN_ACTIVE_GPU_IMPAIRED} (GPU 3 is impaired)")
    by_stranger = spv.plan_impair_gpu(client, STRANGER, spv_id, 4)
    assert refused_alike(client, by_stranger, STRANGER).reason.startswith(
        reasons.ACCESS_CONTROL_MISSING_ROLE)
    with pytest.raises(BadInput, match="unknown GPU id 0"):
        spv.plan_impair_gpu(client, OPERATOR, spv_id, 0)


def test_the_buy_back_path_says_which_step_is_missing(client: Client, spv_id: int):
    """Supply 8,000 on 8 GPUs: retiring one needs 1,000 shares bought back and burnt,
    which needs the operator's own KYC record and the shares transferred back to it."""
    sent(client, spv.plan_mint(client, OPERATOR, spv_id, BOB, "1000"), OPERATOR)
    retire = spv.plan_retire_gpu(client, OPERATOR, spv_id, 3)
    assert refused_alike(client, retire, OPERATOR).reason == (
        f"{reasons.TOKEN_BURN_SHARES_FIRST_SUPPLY} (retiring GPU 3 would leave 8,000 shares "
        "backed by 7 GPU(s) (7,000 shares): buy back and burn 1,000 shares first: holders "
        "transfer them to the SPV's operator, which burns them)")
    # 1. the operator has no KYC record: it can neither burn nor take shares back
    burn = restricted(client, spv.plan_burn(client, OPERATOR, spv_id, "1000"), OPERATOR,
                      Restriction.SENDER_NOT_REGISTERED)
    assert "Buy-back step missing" in burn.reason and "own valid KYC record" in burn.reason
    back = restricted(client, spv.plan_return_to_spv(client, BOB, spv_id, "1000"), BOB,
                      Restriction.RECEIVER_NOT_REGISTERED)
    assert back.reason.endswith(f"{OPERATOR} is the SPV's operator: to take shares back (a "
                                "buy-back) it needs its own KYC record, and a KYC provider "
                                "must register it first.")
    register(client, OPERATOR)
    # 2. registered, it holds nothing to burn yet
    burn = restricted(client, spv.plan_burn(client, OPERATOR, spv_id, "1000"), OPERATOR,
                      Restriction.INSUFFICIENT_BALANCE)
    assert f"{OPERATOR} holds 0 shares; the holders must first transfer" in burn.reason
    # 3. Bob transfers 1,000 back, the operator burns them, GPU 3 retires
    sent(client, spv.plan_return_to_spv(client, BOB, spv_id, "1000"), BOB)
    sent(client, spv.plan_burn(client, OPERATOR, spv_id, "1000"), OPERATOR)
    assert spv.status(client, spv_id).supply == 7000 * SHARE
    sent(client, spv.plan_retire_gpu(client, OPERATOR, spv_id, 3), OPERATOR)
    s = spv.status(client, spv_id)
    assert (s.gpu_count, s.active_gpus, s.impaired_gpus, s.backing) == (8, 7, 0, 7000 * SHARE)
    assert spv.gpu(client, spv_id, 3).status == "retired"
    twice = spv.plan_retire_gpu(client, OPERATOR, spv_id, 3)
    assert refused_alike(client, twice, OPERATOR).reason == reasons.TOKEN_GPU_ALREADY_RETIRED
    burn_by_alice = spv.plan_burn(client, ALICE, spv_id, "1")
    assert refused_alike(client, burn_by_alice, ALICE).reason.startswith(
        reasons.ACCESS_CONTROL_MISSING_ROLE)


# ---------------------------------------------------------------------------------
# The token's roles and agent powers
# ---------------------------------------------------------------------------------


def test_grant_and_revoke_an_agent_role(client: Client, spv_id: int):
    plan = spv.plan_grant_role(client, OPERATOR, spv_id, "freezer", AGENT)
    assert plan.what == f"grant FREEZER_ROLE on SPV 1's token to {AGENT}"
    sent(client, plan, OPERATOR)
    assert spv.roles_of(client, spv_id, AGENT) == ("FREEZER_ROLE",)
    again = spv.plan_grant_role(client, OPERATOR, spv_id, "freezer", AGENT)
    assert again.refusal is not None and "already holds FREEZER_ROLE" in again.refusal.reason
    for role in ("forced-transfer", "recovery", "pauser"):
        grant(client, spv_id, role)
    assert spv.roles_of(client, spv_id, AGENT) == (
        "FREEZER_ROLE", "FORCED_TRANSFER_ROLE", "RECOVERY_ROLE", "PAUSER_ROLE")
    sent(client, spv.plan_grant_role(client, OPERATOR, spv_id, "pauser", AGENT, revoke=True),
         OPERATOR)
    assert "PAUSER_ROLE" not in spv.roles_of(client, spv_id, AGENT)
    gone = spv.plan_grant_role(client, OPERATOR, spv_id, "pauser", AGENT, revoke=True)
    assert gone.refusal is not None and "does not hold PAUSER_ROLE" in gone.refusal.reason


def test_only_the_tokens_admin_grants_roles(client: Client, spv_id: int):
    plan = spv.plan_grant_role(client, STRANGER, spv_id, "recovery", STRANGER)
    refusal = refused_alike(client, plan, STRANGER)
    assert refusal.reason.startswith(reasons.ACCESS_CONTROL_MISSING_ROLE)
    assert f"{STRANGER} lacks SPV 1's token's DEFAULT_ADMIN_ROLE" in refusal.reason
    with pytest.raises(BadInput, match="role: 'minter' is not one of freezer, forced-transfer"):
        spv.plan_grant_role(client, OPERATOR, spv_id, "minter", AGENT)


def test_freeze_part_of_a_holding(client: Client, spv_id: int):
    lacking = spv.plan_freeze_shares(client, AGENT, spv_id, ALICE, "500")
    assert refused_alike(client, lacking, AGENT).reason.endswith(
        "the token's admin grants it with `spv grant-role --role freezer`)")
    grant(client, spv_id, "freezer")
    sent(client, spv.plan_freeze_shares(client, AGENT, spv_id, ALICE, "500"), AGENT)
    assert spv.holding(client, spv_id, ALICE).frozen_shares == 500 * SHARE
    restricted(client, spv.plan_transfer(client, ALICE, spv_id, BOB, "2600"), ALICE,
               Restriction.AMOUNT_FROZEN)
    same = spv.plan_freeze_shares(client, AGENT, spv_id, ALICE, "500")
    assert refused_alike(client, same, AGENT).reason == reasons.TOKEN_FROZEN_AMOUNT_UNCHANGED
    unfreeze = spv.plan_freeze_shares(client, AGENT, spv_id, ALICE, "0")
    assert unfreeze.what == f"unfreeze the shares of {ALICE}"
    sent(client, unfreeze, AGENT)
    assert spv.plan_transfer(client, ALICE, spv_id, BOB, "2600").refusal is None


def test_forced_transfer(client: Client, spv_id: int):
    grant(client, spv_id, "forced-transfer")
    restricted(client, spv.plan_forced_transfer(client, AGENT, spv_id, ALICE, STRANGER, "10"),
               AGENT, Restriction.RECEIVER_NOT_REGISTERED)
    itself = spv.plan_forced_transfer(client, AGENT, spv_id, ALICE, ALICE, "10")
    assert refused_alike(client, itself, AGENT).reason == \
        reasons.TOKEN_FORCED_TRANSFER_ACCOUNT_ITSELF
    beyond = spv.plan_forced_transfer(client, AGENT, spv_id, ALICE, BOB, "3001")
    assert refused_alike(client, beyond, AGENT).reason == (
        f"{reasons.TOKEN_FORCED_TRANSFER_EXCEEDS_SENDER} ({ALICE} holds 3,000 shares)")
    # a frozen sender does not stop it
    sent(client, kyc.plan_freeze(client, DEPLOYER, ALICE), DEPLOYER)
    sent(client, spv.plan_forced_transfer(client, AGENT, spv_id, ALICE, BOB, "10"), AGENT)
    assert spv.holding(client, spv_id, BOB).shares == 4010 * SHARE
    by_operator = spv.plan_forced_transfer(client, OPERATOR, spv_id, ALICE, BOB, "10")
    assert "FORCED_TRANSFER_ROLE" in refused_alike(client, by_operator, OPERATOR).reason


def test_recover_a_lost_wallet(client: Client, spv_id: int):
    grant(client, spv_id, "recovery")
    restricted(client, spv.plan_recover_wallet(client, AGENT, spv_id, ALICE, NEW_WALLET),
               AGENT, Restriction.RECEIVER_NOT_REGISTERED)
    register(client, NEW_WALLET)
    active = spv.plan_recover_wallet(client, AGENT, spv_id, ALICE, NEW_WALLET)
    assert refused_alike(client, active, AGENT).reason.startswith(
        reasons.TOKEN_RECOVERY_LOST_WALLET_ACTIVE)
    sent(client, kyc.plan_freeze(client, DEPLOYER, ALICE), DEPLOYER)  # stop the lost key
    sent(client, spv.plan_recover_wallet(client, AGENT, spv_id, ALICE, NEW_WALLET), AGENT)
    assert spv.holding(client, spv_id, NEW_WALLET).shares == 3000 * SHARE
    assert spv.holding(client, spv_id, ALICE).shares == 0
    empty = spv.plan_recover_wallet(client, AGENT, spv_id, ALICE, NEW_WALLET)
    assert refused_alike(client, empty, AGENT).reason == reasons.TOKEN_LOST_WALLET_HOLDS_NO
    same = spv.plan_recover_wallet(client, AGENT, spv_id, BOB, BOB)
    assert refused_alike(client, same, AGENT).reason == reasons.TOKEN_RECOVERY_SAME_WALLET


def test_a_paused_token_stops_movements_and_claims(client: Client, spv_id: int):
    grant(client, spv_id, "pauser")
    sent(client, spv.plan_distribute(client, OPERATOR, spv_id, "700"), OPERATOR)
    token = client.token(spv_id)
    client.chain.send(token.pause.tx(what="pause"), AGENT)
    assert spv.status(client, spv_id).paused
    restricted(client, spv.plan_transfer(client, ALICE, spv_id, BOB, "1"), ALICE,
               Restriction.TOKEN_PAUSED)
    paused = spv.plan_claim(client, ALICE, spv_id)
    assert refused_alike(client, paused, ALICE).reason == reasons.TOKEN_PAUSED
