"""`gpushares.client.jurisdictions` against the deployed registry, in-process: the rules
data diffed against the chain and applied idempotently (rows by the rules admin,
overrides by the SPV operator), one jurisdiction's view, and the law behind a refused
GPU location."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import boa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpushares import reasons
from gpushares.client import jurisdictions
from gpushares.client.chain import Reverted
from gpushares.client.context import Client
from gpushares.client.units import BadInput
from gpushares.demo import LEGAL_OPINION, SPV_LEI
from jurisdictions import onchain
from jurisdictions.codes import HolderPolicyCode, TitleStatus
from jurisdictions.onchain import ChangeKind, compile_rules, compile_subdivisions
from jurisdictions.rules import RULES_DIR, HolderPolicy, RuleBook, encode_subdivision
from tests.budgets import budget
from tests.client.conftest import DEPLOYER, OPERATOR, STRANGER, refused_alike, sent
from tests.client.test_spv import OVERRIDE_RULES, SHIPPED, create

US, FR, DE, SY = 840, 250, 276, 760
ZERO32 = b"\0" * 32
OPINION_HASH = hashlib.sha256(LEGAL_OPINION.read_bytes()).digest()


@pytest.fixture(scope="module")
def changed_rules(tmp_path_factory: pytest.TempPathFactory) -> RuleBook:
    """A copy of the shipped rules where France blocks holders and Syria is gone."""
    rules = tmp_path_factory.mktemp("changed") / "rules"
    shutil.copytree(RULES_DIR, rules)
    fr = rules / "FR.toml"
    text = fr.read_text(encoding="utf-8")
    assert text.count('holder_policy = "accredited_only"') == 1
    fr.write_text(text.replace('holder_policy = "accredited_only"', 'holder_policy = "blocked"'),
                  encoding="utf-8")
    (rules / "SY.toml").unlink()
    return jurisdictions.load(rules)


def rows(client: Client) -> dict[int, tuple[int, int, bytes]]:
    """Every listed row of the registry's table, as (title, policy, rules hash)."""
    registry = client.registry()
    return {int(code): tuple(registry.jurisdiction(code))
            for code in registry.listed_jurisdictions()}


def compiled(rules: RuleBook) -> dict[int, tuple[int, int, bytes]]:
    return {s.jurisdiction: s.as_tuple()[1:] for s in compile_rules(rules)}


@pytest.fixture
def applied(client: Client) -> None:
    """The rules admin has loaded the shipped rules (in the test's own state)."""
    sent(client, jurisdictions.plan_apply(client, DEPLOYER, SHIPPED), DEPLOYER)


# ---------------------------------------------------------------------------------
# Diff and apply
# ---------------------------------------------------------------------------------


def test_the_shipped_rules_are_seventeen_jurisdictions():
    table = compiled(SHIPPED)
    assert len(table) == 17
    # Ukraine's six embargoed regions have rows of their own.
    assert {(s.jurisdiction, s.subdivision) for s in compile_subdivisions(SHIPPED)} == {
        (804, encode_subdivision(c)) for c in
        ("UA-43", "UA-40", "UA-14", "UA-09", "UA-65", "UA-23")}
    assert table[US][:2] == (TitleStatus.UNCLEAR, HolderPolicyCode.ACCREDITED_ONLY)
    assert table[DE][0] == TitleStatus.NOT_RECOGNISED
    assert table[408][1] == HolderPolicyCode.BLOCKED  # KP


def test_an_empty_registry_differs_by_seventeen_additions(client: Client):
    changes = jurisdictions.diff(client, SHIPPED)
    assert [c.kind for c in changes] == [ChangeKind.ADD] * 17
    assert {c.label for c in changes} == {f"{r.alpha2} ({n})" for n, r in SHIPPED.items()}
    lines = list(onchain.describe(jurisdictions.pending(client, SHIPPED), len(SHIPPED)))
    assert any("unlisted -> title=unclear policy=accredited_only" in line for line in lines)


def test_apply_writes_the_compiled_rules_once(client: Client):
    plan = jurisdictions.plan_apply(client, DEPLOYER, SHIPPED)
    assert plan.refusal is None and plan.notes == ()
    assert [tx.what for tx in plan.txs] == ["set 17 jurisdiction row(s)",
                                            "set 6 subdivision row(s)"]
    sent(client, plan, DEPLOYER)
    assert rows(client) == compiled(SHIPPED)
    registry = client.registry()
    for setting in compile_rules(SHIPPED):
        assert bytes(registry.rules_hash(setting.jurisdiction)) == setting.rules_hash
    # idempotent: nothing left to change, nothing planned
    assert jurisdictions.diff(client, SHIPPED) == []
    changes = jurisdictions.pending(client, SHIPPED)
    assert changes.empty
    assert list(onchain.describe(changes, len(SHIPPED))) == [
        "registry matches the rules data (17 jurisdictions): nothing to change"]
    crimea = client.registry().subdivision(804, encode_subdivision("UA-43"))
    assert tuple(crimea)[:2] == (TitleStatus.SANCTIONED, HolderPolicyCode.BLOCKED)
    assert jurisdictions.plan_apply(client, DEPLOYER, SHIPPED).txs == ()


def test_apply_without_the_rules_admin_role_is_refused(client: Client):
    plan = jurisdictions.plan_apply(client, OPERATOR, SHIPPED)
    refusal = refused_alike(client, plan, OPERATOR)
    assert refusal.reason.startswith(reasons.ACCESS_CONTROL_MISSING_ROLE)
    assert f"{OPERATOR} lacks the registry's RULES_ADMIN_ROLE" in refusal.reason
    assert rows(client) == {}


def test_changed_rules_update_and_remove_rows(client: Client, applied: None,
                                              changed_rules: RuleBook):
    changes = jurisdictions.diff(client, changed_rules)
    # SY is missing from the changed data, so its row is labelled by number alone
    assert sorted((c.kind, c.label) for c in changes) == [
        (ChangeKind.REMOVE, "760"), (ChangeKind.UPDATE, "FR (250)")]
    described = "\n".join(c.describe() for c in changes)
    assert "policy=accredited_only" in described and "policy=blocked" in described
    plan = jurisdictions.plan_apply(client, DEPLOYER, changed_rules)
    assert [tx.what for tx in plan.txs] == ["set 2 jurisdiction row(s)"]
    sent(client, plan, DEPLOYER)
    table = rows(client)
    assert SY not in table and table[FR][1] == HolderPolicyCode.BLOCKED
    assert tuple(client.registry().jurisdiction(SY)) == (0, 0, ZERO32)
    assert {c: r for c, r in table.items() if c != FR} == {
        c: r for c, r in compiled(SHIPPED).items() if c not in (FR, SY)}
    # and the shipped rules restore the table
    sent(client, jurisdictions.plan_apply(client, DEPLOYER, SHIPPED), DEPLOYER)
    assert rows(client) == compiled(SHIPPED)


def test_dropping_a_country_removes_its_regions_first(client: Client, applied: None):
    """Ukraine leaves the data: its six regional rows go in one transaction, then its
    row (the registry refuses to remove a country that still has regions)."""
    without = RuleBook([r for r in SHIPPED.values() if r.alpha2 != "UA"])
    plan = jurisdictions.plan_apply(client, DEPLOYER, without)
    assert [tx.what for tx in plan.txs] == ["set 6 subdivision row(s)",
                                            "set 1 jurisdiction row(s)"]
    lines = list(onchain.describe(jurisdictions.pending(client, without), len(without)))
    assert sum(line.startswith("remove") for line in lines) == 7
    sent(client, plan, DEPLOYER)
    registry = client.registry()
    assert list(registry.listed_subdivisions()) == [] and 804 not in rows(client)
    assert jurisdictions.plan_apply(client, DEPLOYER, without).txs == ()


@settings(budget("client_rules_apply"))
@given(policies=st.dictionaries(st.sampled_from([US, FR, DE, 826, 702, 756]),
                                st.sampled_from(list(HolderPolicy)), max_size=5),
       removed=st.sets(st.sampled_from([FR, DE, 826, 442, SY, 408]), max_size=4))
def test_apply_converges_in_one_plan_whatever_the_data(
        client: Client, policies: dict[int, HolderPolicy], removed: set[int]):
    """Any rules data: one plan makes the registry equal to it, and the next plans
    nothing; the shipped data then restores the table."""
    variant = RuleBook([rule.model_copy(update={"holder_policy": policies[n]})
                        if n in policies else rule
                        for n, rule in SHIPPED.items() if n not in removed])
    with boa.env.anchor():
        sent(client, jurisdictions.plan_apply(client, DEPLOYER, SHIPPED), DEPLOYER)
        sent(client, jurisdictions.plan_apply(client, DEPLOYER, variant), DEPLOYER)
        assert rows(client) == compiled(variant)
        assert jurisdictions.diff(client, variant) == []
        assert jurisdictions.plan_apply(client, DEPLOYER, variant).txs == ()
        sent(client, jurisdictions.plan_apply(client, DEPLOYER, SHIPPED), DEPLOYER)
        assert rows(client) == compiled(SHIPPED)


# ---------------------------------------------------------------------------------
# Title overrides
# ---------------------------------------------------------------------------------


def test_an_override_for_an_spv_not_on_this_chain_is_only_listed(
        client: Client, applied: None):
    (change,) = jurisdictions.overrides(client, OVERRIDE_RULES)
    assert (change.token, change.setting.spv_lei) == (None, SPV_LEI)
    assert jurisdictions.pending(client, OVERRIDE_RULES).empty
    lines = list(onchain.describe(jurisdictions.pending(client, OVERRIDE_RULES),
                                  len(OVERRIDE_RULES)))
    assert lines[0].endswith("nothing to change")
    assert lines[1].startswith("  (not on this chain) override 5493001KJTIIGC8Y1R12")


def test_the_spv_operator_records_and_the_data_withdraws_an_override(
        client: Client, applied: None):
    token = client.token(create(client)).address
    # the rules admin is not the SPV's operator: the override waits for the operator's key
    by_admin = jurisdictions.plan_apply(client, DEPLOYER, OVERRIDE_RULES)
    assert by_admin.txs == () and by_admin.refusal is None
    (note,) = by_admin.notes
    assert note.startswith("pending (needs the SPV operator's key): override " + SPV_LEI)
    plan = jurisdictions.plan_apply(client, OPERATOR, OVERRIDE_RULES)
    assert [tx.what for tx in plan.txs] == [
        f"record title override for jurisdiction {US} on {token}"]
    sent(client, plan, OPERATOR)
    registry = client.registry()
    assert bytes(registry.title_override(token, US)) == OPINION_HASH
    assert registry.title_override_in_force(token, US)
    assert rows(client) == compiled(SHIPPED)  # the override is not part of the row
    assert jurisdictions.pending(client, OVERRIDE_RULES).empty
    assert jurisdictions.plan_apply(client, OPERATOR, OVERRIDE_RULES).txs == ()
    # the shipped data holds no override for the SPV: applying it withdraws the one on-chain
    (withdrawn,) = jurisdictions.overrides(client, SHIPPED)
    assert withdrawn.setting.legal_opinion_hash == ZERO32 and withdrawn.current == OPINION_HASH
    clear = jurisdictions.plan_apply(client, OPERATOR, SHIPPED)
    assert [tx.what for tx in clear.txs] == [
        f"clear withdrawn title override for jurisdiction {US} on {token}"]
    sent(client, clear, OPERATOR)
    assert bytes(registry.title_override(token, US)) == ZERO32
    assert jurisdictions.pending(client, SHIPPED).empty


def test_a_stranger_cannot_record_an_override(client: Client, applied: None):
    token = client.token(create(client)).address
    tx = client.registry().set_title_override.tx(token, US, OPINION_HASH)
    with pytest.raises(Reverted) as caught:
        client.chain.send(tx, STRANGER)
    assert caught.value.reason == reasons.REGISTRY_TOKEN_SPV_OPERATOR_RECORD


# ---------------------------------------------------------------------------------
# One jurisdiction, the rules data, GPU locations
# ---------------------------------------------------------------------------------


def test_view_shows_the_rules_and_the_row(client: Client):
    before = jurisdictions.view(client, SHIPPED, "DE")
    assert not before.in_sync and "OUT OF SYNC: run apply" in before.describe()[2]
    sent(client, jurisdictions.plan_apply(client, DEPLOYER, SHIPPED), DEPLOYER)
    view = jurisdictions.view(client, SHIPPED, "276")
    assert view.in_sync and view.rule.alpha2 == "DE"
    lines = view.describe()
    assert lines[0].startswith("Germany (DE, 276) as of ")
    assert "title_recognition: not_recognised" in lines[1]
    assert lines[2] == "  on-chain: title=not_recognised policy=accredited_only (in sync)"
    assert any("(EGBGB) Art. 43(1)" in line for line in lines)
    with pytest.raises(BadInput, match="^jurisdiction: no rules for 'XX'"):
        jurisdictions.view(client, SHIPPED, "XX")


def test_rules_data_that_does_not_load_is_bad_input(tmp_path: Path):
    (tmp_path / "de.toml").write_text("", encoding="utf-8")
    with pytest.raises(BadInput, match="^rules data rejected, nothing sent: .*XX.toml"):
        jurisdictions.load(tmp_path)
    with pytest.raises(BadInput, match="does not exist"):
        jurisdictions.load(tmp_path / "missing")


def test_gpu_locations_as_the_registry_decides_them(client: Client, applied: None):
    token = client.token(create(client)).address
    germany = jurisdictions.gpu_location(client, token, SPV_LEI, DE, SHIPPED)
    assert (germany.allowed, germany.reason) == (False, reasons.REGISTRY_GPU_LOCATION_DOES_NOT)
    assert germany.finding is not None
    assert "Germany (DE): title_recognition = not_recognised." in germany.finding.note
    assert any("Einführungsgesetz zum Bürgerlichen Gesetzbuche (EGBGB) Art. 43(1)" in c
               for c in germany.finding.citations)
    us = jurisdictions.gpu_location(client, token, SPV_LEI, US, SHIPPED)
    assert us.reason == reasons.REGISTRY_TOKENIZED_TITLE_GPU_LOCATION
    # the data holds the override, the chain not yet: the note says what to run
    pending = jurisdictions.gpu_location(client, token, SPV_LEI, US, OVERRIDE_RULES)
    assert pending.finding is not None and "apply the rules data" in pending.finding.note
    sent(client, jurisdictions.plan_apply(client, OPERATOR, OVERRIDE_RULES), OPERATOR)
    assert jurisdictions.gpu_location(client, token, SPV_LEI, US, SHIPPED).allowed
    unlisted = jurisdictions.gpu_location(client, token, SPV_LEI, 4, SHIPPED)
    assert unlisted.reason == reasons.REGISTRY_GPU_LOCATION_NOT_JURISDICTION
    no_rules = jurisdictions.gpu_location(client, token, SPV_LEI, DE, None)
    assert no_rules.finding is not None and "unreadable" in no_rules.finding.note
