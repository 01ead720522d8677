"""SPVFactory: roles, SPV registration, LEI validation, records, listing."""

from __future__ import annotations

import boa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.contracts import deployers
from tests.contracts.conftest import create_token
from tests.contracts.helpers import (
    DEFAULT_ADMIN_ROLE,
    OPERATOR_ROLE,
    PAUSER_ROLE,
    SHARES_PER_GPU,
    VALID_LEI,
    make_lei,
)

LEI_REASON = "SPVFactory: LEI is not 20 characters of 0-9/A-Z with valid check digits"

ARGS = dict(
    legal_name="Lone Star GPU Fleet I LLC",
    jurisdiction=840,
    lei=VALID_LEI,
    documents_hash=b"\x01" * 32,
    token_name="Lone Star H100 Shares",
    token_symbol="LSH1",
    shares_per_gpu=SHARES_PER_GPU,
)


def create(factory, sender, income_token, **overrides):
    args = {**ARGS, **overrides}
    with boa.env.prank(sender):
        return factory.create_spv(
            args["legal_name"], args["jurisdiction"], args["lei"], args["documents_hash"],
            args["token_name"], args["token_symbol"], args["shares_per_gpu"], income_token,
        )


def test_constructor_requires_contracts(admin, blueprint, registry):
    nobody = boa.env.generate_address("not-a-contract")
    with boa.env.prank(admin), boa.reverts("SPVFactory: blueprint is not a contract"):
        deployers.SPV_FACTORY.deploy(nobody, registry.address)
    with boa.env.prank(admin), boa.reverts("SPVFactory: compliance registry is not a contract"):
        deployers.SPV_FACTORY.deploy(blueprint.address, nobody)


def test_deployer_is_admin_and_can_grant_operator(factory, admin, operator, stranger):
    assert factory.hasRole(DEFAULT_ADMIN_ROLE, admin)
    assert factory.hasRole(OPERATOR_ROLE, operator)
    assert not factory.hasRole(OPERATOR_ROLE, stranger)
    with boa.env.prank(stranger), boa.reverts("access_control: account is missing role"):
        factory.grantRole(OPERATOR_ROLE, stranger)


def test_create_spv_deploys_token_and_records_spv(factory, operator, stablecoin, blueprint):
    spv_id, token_address = create(factory, operator, stablecoin.address)
    logs = factory.get_logs()
    assert spv_id == 1
    assert factory.spv_count() == 1
    record = factory.spvs(1)
    assert record.legal_name == ARGS["legal_name"]
    assert record.jurisdiction == 840
    assert record.lei == VALID_LEI
    assert record.documents_hash == ARGS["documents_hash"]
    assert record.token == token_address
    assert record.operator == operator
    assert record.registered_at == boa.env.timestamp
    assert factory.spv_id_of_token(token_address) == 1
    event = [log for log in logs if type(log).__name__ == "SPVRegistered"][0]
    assert event.spv_id == 1 and event.token == token_address and event.operator == operator
    assert event.lei == VALID_LEI and event.shares_per_gpu == SHARES_PER_GPU

    token = deployers.SHARE_TOKEN.at(token_address)
    assert token.name() == ARGS["token_name"] and token.symbol() == "LSH1"
    assert token.decimals() == 18 and token.totalSupply() == 0
    assert token.spv_id() == 1 and token.factory() == factory.address
    assert token.shares_per_gpu() == SHARES_PER_GPU
    assert token.income_token() == stablecoin.address
    for role in (DEFAULT_ADMIN_ROLE, OPERATOR_ROLE, PAUSER_ROLE):
        assert token.hasRole(role, operator)
        assert not token.hasRole(role, factory.address)


def test_create_spv_requires_operator_role(factory, stranger, stablecoin):
    with boa.reverts("access_control: account is missing role"):
        create(factory, stranger, stablecoin.address)
    assert factory.spv_count() == 0


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"legal_name": ""}, "SPVFactory: legal name is empty"),
        ({"jurisdiction": 0}, "SPVFactory: jurisdiction is not an ISO 3166-1 numeric code"),
        ({"jurisdiction": 1000}, "SPVFactory: jurisdiction is not an ISO 3166-1 numeric code"),
        ({"documents_hash": b"\0" * 32}, "SPVFactory: documents hash is zero"),
        ({"lei": "5493001KJTIIGC8Y1R13"}, LEI_REASON),
        ({"lei": "5493001KJTIIGC8Y1R1"}, LEI_REASON),
        ({"lei": "5493001kjtiigc8y1r12"}, LEI_REASON),
        ({"lei": "5493001KJTIIGC8Y1R-2"}, LEI_REASON),
        ({"shares_per_gpu": 0}, "GPUShareToken: shares per GPU is zero"),
        ({"shares_per_gpu": 2**96}, "GPUShareToken: shares per GPU above MAX_SUPPLY"),
        ({"token_name": ""}, "GPUShareToken: empty name"),
        ({"token_symbol": ""}, "GPUShareToken: empty symbol"),
    ],
)
def test_create_spv_rejects_bad_input(factory, operator, stablecoin, overrides, reason):
    with boa.reverts(reason):
        create(factory, operator, stablecoin.address, **overrides)
    assert factory.spv_count() == 0


def test_create_spv_rejects_income_token_that_is_not_a_contract(factory, operator):
    with boa.reverts("GPUShareToken: income token is not a contract"):
        create(factory, operator, boa.env.generate_address("eoa"))


def test_lei_is_unique(factory, operator, stablecoin):
    create(factory, operator, stablecoin.address)
    with boa.reverts("SPVFactory: LEI already registered"):
        create(factory, operator, stablecoin.address)
    spv_id, _ = create(factory, operator, stablecoin.address, lei=make_lei("5299000J2N45DDNE4Y"))
    assert spv_id == 2


@given(base=st.text(alphabet="0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=18, max_size=18))
def test_lei_checksum_matches_iso_7064(factory, base):
    lei = make_lei(base)
    assert factory.is_valid_lei(lei)
    wrong = lei[:18] + f"{(int(lei[18:]) + 1) % 100:02d}"
    assert not factory.is_valid_lei(wrong)


def test_update_documents(factory, operator, stranger, stablecoin):
    create(factory, operator, stablecoin.address)
    new_hash = b"\x02" * 32
    with boa.env.prank(stranger), boa.reverts("SPVFactory: caller is not the SPV's operator"):
        factory.update_documents(1, new_hash)
    with boa.env.prank(operator):
        with boa.reverts("SPVFactory: unknown SPV id"):
            factory.update_documents(2, new_hash)
        with boa.reverts("SPVFactory: documents hash is zero"):
            factory.update_documents(1, b"\0" * 32)
        with boa.reverts("SPVFactory: documents hash unchanged"):
            factory.update_documents(1, ARGS["documents_hash"])
        factory.update_documents(1, new_hash)
        event = factory.get_logs()[-1]
    assert factory.spvs(1).documents_hash == new_hash
    assert event.previous_hash == ARGS["documents_hash"] and event.new_hash == new_hash


def test_set_spv_operator(factory, operator, stranger, stablecoin):
    create(factory, operator, stablecoin.address)
    with boa.env.prank(stranger), boa.reverts("SPVFactory: caller is not the SPV's operator"):
        factory.set_spv_operator(1, stranger)
    with boa.env.prank(operator):
        with boa.reverts("SPVFactory: operator is the zero address"):
            factory.set_spv_operator(1, "0x0000000000000000000000000000000000000000")
        with boa.reverts("SPVFactory: operator unchanged"):
            factory.set_spv_operator(1, operator)
        factory.set_spv_operator(1, stranger)
        event = factory.get_logs()[-1]
    assert factory.spvs(1).operator == stranger
    assert event.previous_operator == operator and event.new_operator == stranger
    with boa.env.prank(operator), boa.reverts("SPVFactory: caller is not the SPV's operator"):
        factory.update_documents(1, b"\x03" * 32)


def test_list_spvs_pages(factory, operator, stablecoin):
    tokens = []
    for i in range(3):
        tokens.append(create(factory, operator, stablecoin.address,
                             lei=make_lei(f"LIST{i:014d}"))[1])
    assert factory.list_spvs(1, 10) == tokens
    assert factory.list_spvs(2, 1) == tokens[1:2]
    assert factory.list_spvs(4, 10) == []
    with boa.reverts("SPVFactory: SPV ids start at 1"):
        factory.list_spvs(0, 1)
    with boa.reverts("SPVFactory: at most 100 SPVs per page"):
        factory.list_spvs(1, 101)


def test_create_token_helper_produces_working_tokens(factory, operator, stablecoin):
    token = create_token(factory, operator, stablecoin.address)
    assert token.paused() is False
    assert token.income_per_share() == 1
