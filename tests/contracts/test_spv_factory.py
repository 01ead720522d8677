"""SPVFactory: roles, SPV registration, LEI validation, records, listing."""

from __future__ import annotations

import boa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpushares import reasons
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

LEI_REASON = reasons.SPV_FACTORY_LEI_NOT_20_CHARACTERS

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
    with boa.env.prank(admin), boa.reverts(reasons.SPV_FACTORY_BLUEPRINT_NOT_CONTRACT):
        deployers.SPV_FACTORY.deploy(nobody, registry.address)
    with boa.env.prank(admin), boa.reverts(reasons.SPV_FACTORY_COMPLIANCE_REGISTRY_NOT_CONTRACT):
        deployers.SPV_FACTORY.deploy(blueprint.address, nobody)


def test_deployer_is_admin_and_can_grant_operator(factory, admin, operator, stranger):
    assert factory.hasRole(DEFAULT_ADMIN_ROLE, admin)
    assert factory.hasRole(OPERATOR_ROLE, operator)
    assert not factory.hasRole(OPERATOR_ROLE, stranger)
    with boa.env.prank(stranger), boa.reverts(reasons.ACCESS_CONTROL_MISSING_ROLE):
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
    with boa.reverts(reasons.ACCESS_CONTROL_MISSING_ROLE):
        create(factory, stranger, stablecoin.address)
    assert factory.spv_count() == 0


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"legal_name": ""}, reasons.SPV_FACTORY_LEGAL_NAME_EMPTY),
        ({"jurisdiction": 0}, reasons.SPV_FACTORY_JURISDICTION_NOT_ISO_3166),
        ({"jurisdiction": 1000}, reasons.SPV_FACTORY_JURISDICTION_NOT_ISO_3166),
        ({"documents_hash": b"\0" * 32}, reasons.SPV_FACTORY_DOCUMENTS_HASH_ZERO),
        ({"lei": "5493001KJTIIGC8Y1R13"}, LEI_REASON),
        ({"lei": "5493001KJTIIGC8Y1R1"}, LEI_REASON),
        ({"lei": "5493001kjtiigc8y1r12"}, LEI_REASON),
        ({"lei": "5493001KJTIIGC8Y1R-2"}, LEI_REASON),
        ({"shares_per_gpu": 0}, reasons.TOKEN_SHARES_PER_GPU_ZERO),
        ({"shares_per_gpu": 2**96}, reasons.TOKEN_SHARES_PER_GPU_ABOVE),
        ({"token_name": ""}, reasons.TOKEN_EMPTY_NAME),
        ({"token_symbol": ""}, reasons.TOKEN_EMPTY_SYMBOL),
    ],
)
def test_create_spv_rejects_bad_input(factory, operator, stablecoin, overrides, reason):
    with boa.reverts(reason):
        create(factory, operator, stablecoin.address, **overrides)
    assert factory.spv_count() == 0


def test_create_spv_rejects_income_token_that_is_not_a_contract(factory, operator):
    with boa.reverts(reasons.TOKEN_INCOME_TOKEN_NOT_CONTRACT):
        create(factory, operator, boa.env.generate_address("eoa"))


def test_lei_is_unique(factory, operator, stablecoin):
    create(factory, operator, stablecoin.address)
    with boa.reverts(reasons.SPV_FACTORY_LEI_ALREADY_REGISTERED):
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
    with boa.env.prank(stranger), boa.reverts(reasons.SPV_FACTORY_CALLER_NOT_SPV_OPERATOR):
        factory.update_documents(1, new_hash)
    with boa.env.prank(operator):
        with boa.reverts(reasons.SPV_FACTORY_UNKNOWN_SPV_ID):
            factory.update_documents(2, new_hash)
        with boa.reverts(reasons.SPV_FACTORY_DOCUMENTS_HASH_ZERO):
            factory.update_documents(1, b"\0" * 32)
        with boa.reverts(reasons.SPV_FACTORY_DOCUMENTS_HASH_UNCHANGED):
            factory.update_documents(1, ARGS["documents_hash"])
        factory.update_documents(1, new_hash)
        event = factory.get_logs()[-1]
    assert factory.spvs(1).documents_hash == new_hash
    assert event.previous_hash == ARGS["documents_hash"] and event.new_hash == new_hash


def test_set_spv_operator(factory, operator, stranger, stablecoin):
    create(factory, operator, stablecoin.address)
    with boa.env.prank(stranger), boa.reverts(reasons.SPV_FACTORY_CALLER_NOT_SPV_OPERATOR):
        factory.set_spv_operator(1, stranger)
    with boa.env.prank(operator):
        with boa.reverts(reasons.SPV_FACTORY_OPERATOR_ZERO_ADDRESS):
            factory.set_spv_operator(1, "0x0000000000000000000000000000000000000000")
        with boa.reverts(reasons.SPV_FACTORY_OPERATOR_UNCHANGED):
            factory.set_spv_operator(1, operator)
        factory.set_spv_operator(1, stranger)
        event = factory.get_logs()[-1]
    assert factory.spvs(1).operator == stranger
    assert event.previous_operator == operator and event.new_operator == stranger
    with boa.env.prank(operator), boa.reverts(reasons.SPV_FACTORY_CALLER_NOT_SPV_OPERATOR):
        factory.update_documents(1, b"\x03" * 32)


def test_list_spvs_pages(factory, operator, stablecoin):
    tokens = []
    for i in range(3):
        tokens.append(create(factory, operator, stablecoin.address,
                             lei=make_lei(f"LIST{i:014d}"))[1])
    assert factory.list_spvs(1, 10) == tokens
    assert factory.list_spvs(2, 1) == tokens[1:2]
    assert factory.list_spvs(4, 10) == []
    with boa.reverts(reasons.SPV_FACTORY_SPV_IDS_START_1):
        factory.list_spvs(0, 1)
    with boa.reverts(reasons.SPV_FACTORY_MOST_100_SPVS_PER):
        factory.list_spvs(1, 101)


def test_create_token_helper_produces_working_tokens(factory, operator, stablecoin):
    token = create_token(factory, operator, stablecoin.address)
    assert token.paused() is False
    assert token.income_per_share() == 1
