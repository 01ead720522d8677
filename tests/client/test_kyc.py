"""`gpushares.client.kyc` against the deployed registry: every plan either goes through
or names the refusal the registry itself gives, before anything is sent."""

from __future__ import annotations

import boa
import pytest
from eth_account import Account

from gpushares import reasons
from gpushares.client import kyc
from gpushares.client.chain import Refused, Reverted
from gpushares.client.context import Client
from gpushares.client.units import BadInput
from jurisdictions import eligibility
from tests.client.conftest import ALICE, BOB, DEPLOYER, KYC, STRANGER, sent

US = kyc.residence("US")
KYC_KEY = "0x" + "42" * 32
KYC_SIGNER = Account.from_key(KYC_KEY).address


def test_register_writes_the_record_valid_from_the_chains_now(client: Client):
    plan = kyc.plan_register(client, KYC, ALICE, US, accredited=True, valid_days=30)
    assert plan.refusal is None and plan.what.startswith(f"register {ALICE}: US")
    sent(client, plan, KYC)
    record = kyc.record(client, ALICE)
    assert record.registered and record.accredited and record.jurisdiction == 840
    assert record.expires_at == client.chain.now() + 30 * kyc.DAY
    assert "valid until" in record.describe()


def test_register_by_someone_without_the_role_is_refused_with_the_registrys_message(
        client: Client):
    plan = kyc.plan_register(client, STRANGER, ALICE, US, accredited=False)
    assert plan.refusal is not None
    assert plan.refusal.reason.startswith(reasons.ACCESS_CONTROL_MISSING_ROLE)
    # and the registry refuses it with the same words
    with pytest.raises(Reverted) as caught:
        client.chain.send(plan.txs[0], STRANGER)
    assert caught.value.reason == reasons.ACCESS_CONTROL_MISSING_ROLE


@pytest.mark.parametrize("bad", ["0x7099...79C8", "alice", "0x" + "1" * 39])
def test_a_malformed_address_is_bad_input(client: Client, bad: str):
    with pytest.raises(BadInput, match="is not an address"):
        kyc.plan_register(client, KYC, bad, US, accredited=False)


def test_an_unknown_jurisdiction_is_bad_input():
    with pytest.raises(BadInput, match="jurisdiction"):
        kyc.residence("XX")


@pytest.fixture
def provider_key(client: Client) -> None:
    """KYC_SIGNER (a key we hold) is a KYC provider."""
    role = client.registry().KYC_PROVIDER_ROLE()
    client.chain.send(client.registry().grantRole.tx(role, KYC_SIGNER), DEPLOYER)


def test_attest_then_submit_onboards_the_investor(client: Client, provider_key):
    signed = kyc.attest(client, KYC_KEY, BOB, US, accredited=True, deadline_hours=1)
    assert signed.signer == KYC_SIGNER and signed.attestation.nonce == 0
    plan = kyc.plan_submit(client, signed)
    sent(client, plan, BOB)
    assert kyc.record(client, BOB).registered
    # the same attestation again: its nonce is used
    again = kyc.plan_submit(client, signed)
    assert again.refusal is not None
    assert again.refusal.reason.startswith(reasons.REGISTRY_ELIGIBILITY_ATTESTATION_NONCE_NOT)
    with pytest.raises(Reverted, match="nonce"):
        client.chain.send(again.txs[0], BOB)


def test_a_late_attestation_is_refused_by_the_chains_clock(client: Client, provider_key):
    signed = kyc.attest(client, KYC_KEY, BOB, US, accredited=True, deadline_hours=1)
    boa.env.time_travel(seconds=2 * 3_600)
    plan = kyc.plan_submit(client, signed)
    assert plan.refusal is not None
    assert plan.refusal.reason.startswith(
        reasons.REGISTRY_ELIGIBILITY_ATTESTATION_DEADLINE_PASSED)
    with pytest.raises(Reverted) as caught:
        client.chain.send(plan.txs[0], BOB)
    assert caught.value.reason == reasons.REGISTRY_ELIGIBILITY_ATTESTATION_DEADLINE_PASSED


def test_an_attestation_for_another_registry_or_a_forged_one_is_refused(client: Client,
                                                                        provider_key):
    signed = kyc.attest(client, KYC_KEY, BOB, US, accredited=True)
    elsewhere = eligibility.sign(signed.attestation, KYC_KEY, client.chain.chain_id,
                                 STRANGER)
    with pytest.raises(Refused, match="signed for registry"):
        kyc.plan_submit(client, elsewhere)
    forged = signed.model_copy(update={"signer": STRANGER})
    with pytest.raises(Refused, match="signature does not match"):
        kyc.plan_submit(client, forged)


def test_an_attestation_by_a_key_without_the_role_cannot_be_made(client: Client):
    with pytest.raises(Refused, match="KYC_PROVIDER_ROLE"):
        kyc.attest(client, "0x" + "43" * 32, BOB, US, accredited=False)


def test_freeze_and_unfreeze(client: Client):
    sent(client, kyc.plan_register(client, KYC, ALICE, US, accredited=True), KYC)
    sent(client, kyc.plan_freeze(client, DEPLOYER, ALICE), DEPLOYER)
    assert kyc.record(client, ALICE).frozen
    twice = kyc.plan_freeze(client, DEPLOYER, ALICE)
    assert twice.refusal is not None
    assert twice.refusal.reason == reasons.REGISTRY_WALLET_ALREADY_FROZEN_STATE
    by_stranger = kyc.plan_freeze(client, STRANGER, ALICE, frozen=False)
    assert by_stranger.refusal is not None and "FREEZER_ROLE" in by_stranger.refusal.reason
    sent(client, kyc.plan_freeze(client, DEPLOYER, ALICE, frozen=False), DEPLOYER)
    assert not kyc.record(client, ALICE).frozen


def test_a_stranger_has_no_record(client: Client):
    record = kyc.record(client, STRANGER)
    assert not record.registered
    assert record.describe() == f"{STRANGER}: no eligibility record"
