"""GPUShareToken's GPU register: add, impair, retire, backing."""

from __future__ import annotations

import boa
import pytest
from eth_utils import keccak

from gpushares import reasons
from tests.contracts.helpers import (
    ACTIVE,
    IMPAIRED,
    RETIRED,
    SHARE,
    SHARES_PER_GPU,
    bytes32,
    gpu,
)


def test_add_gpus_registers_active_gpus(token):
    assert token.gpu_count() == 8 and token.active_gpus() == 8 and token.impaired_gpus() == 0
    record = token.gpus(1)
    assert record.serial_hash == keccak(text="SN-0")
    assert record.model == bytes32("H100-SXM5-80GB")
    assert record.location == 840
    assert record.datacenter == bytes32("US-TX-DFW-01")
    assert record.acquisition_cost == 27_500 * 10**8
    assert record.commissioned_at == 1
    assert record.status == ACTIVE
    assert token.gpu_id_of_serial(keccak(text="SN-7")) == 8
    assert token.gpu_id_of_serial(keccak(text="unknown")) == 0
    assert token.backing() == (8 * SHARES_PER_GPU, 8 * SHARES_PER_GPU)


def test_add_gpus_returns_first_id_and_logs_each(token, operator):
    with boa.env.prank(operator):
        first = token.add_gpus([gpu("SN-A", location=756), gpu("SN-B", location=438)])
        logs = [log for log in token.get_logs() if type(log).__name__ == "GPUAdded"]
    assert first == 9
    assert [log.gpu_id for log in logs] == [9, 10]
    assert [log.location for log in logs] == [756, 438]
    assert logs[0].serial_hash == keccak(text="SN-A")
    assert token.gpu_count() == 10 and token.active_gpus() == 10


def test_add_gpus_requires_operator(token, stranger):
    with boa.env.prank(stranger), boa.reverts(reasons.ACCESS_CONTROL_MISSING_ROLE):
        token.add_gpus([gpu("SN-X")])


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ((b"\0" * 32, bytes32("H100"), 840, bytes32("DC"), 1, 1, 0),
         reasons.TOKEN_GPU_SERIAL_HASH_ZERO),
        (gpu("SN-0"), reasons.TOKEN_GPU_SERIAL_ALREADY_REGISTERED),
        (gpu("SN-N", model=""), reasons.TOKEN_GPU_MODEL_EMPTY),
        (gpu("SN-N", location=0), reasons.TOKEN_GPU_LOCATION_NOT_ISO),
        (gpu("SN-N", location=1000),
         reasons.TOKEN_GPU_LOCATION_NOT_ISO),
        (gpu("SN-N", datacenter=""), reasons.TOKEN_GPU_DATACENTER_EMPTY),
        (gpu("SN-N", cost=0), reasons.TOKEN_GPU_ACQUISITION_COST_ZERO),
        (gpu("SN-N", commissioned_at=0), reasons.TOKEN_GPU_COMMISSIONING_TIME_ZERO),
        (gpu("SN-N", subdivision=0x3A), reasons.REGISTRY_SUBDIVISION_NOT_ISO_3166_2),
        (gpu("SN-N", subdivision=0x410041), reasons.REGISTRY_SUBDIVISION_NOT_ISO_3166_2),
        (gpu("SN-N", commissioned_at=2**40),
         reasons.TOKEN_GPU_COMMISSIONING_TIME_FUTURE),
    ],
)
def test_add_gpus_rejects_bad_entries_and_changes_nothing(token, operator, entry, reason):
    with boa.env.prank(operator), boa.reverts(reason):
        token.add_gpus([gpu("SN-OK"), entry])
    assert token.gpu_count() == 8 and token.active_gpus() == 8
    assert token.gpu_id_of_serial(keccak(text="SN-OK")) == 0


def test_add_gpus_rejects_duplicates_inside_a_batch(token, operator):
    with boa.env.prank(operator), boa.reverts(reasons.TOKEN_GPU_SERIAL_ALREADY_REGISTERED):
        token.add_gpus([gpu("SN-D"), gpu("SN-D")])


def test_add_gpus_rejects_empty_batch(token, operator):
    with boa.env.prank(operator), boa.reverts(reasons.TOKEN_EMPTY_GPU_BATCH):
        token.add_gpus([])


def test_add_gpus_accepts_a_full_batch(token, operator):
    with boa.env.prank(operator):
        token.add_gpus([gpu(f"BATCH-{i}") for i in range(64)])
    assert token.gpu_count() == 72


def test_impair_gpu(token, operator, stranger):
    with boa.env.prank(stranger), boa.reverts(reasons.ACCESS_CONTROL_MISSING_ROLE):
        token.impair_gpu(1)
    with boa.env.prank(operator):
        with boa.reverts(reasons.TOKEN_UNKNOWN_GPU_ID):
            token.impair_gpu(99)
        token.impair_gpu(1)
        event = token.get_logs()[-1]
        with boa.reverts(reasons.TOKEN_ACTIVE_GPU_IMPAIRED):
            token.impair_gpu(1)
    assert (event.gpu_id, event.previous_status, event.new_status) == (1, ACTIVE, IMPAIRED)
    assert event.operator == operator
    assert token.gpus(1).status == IMPAIRED
    assert token.active_gpus() == 7 and token.impaired_gpus() == 1
    assert token.backing() == (7 * SHARES_PER_GPU, 8 * SHARES_PER_GPU)


def test_impaired_gpu_keeps_backing_issued_shares_but_not_new_mints(token, operator, alice):
    with boa.env.prank(operator):
        token.mint(alice, 8 * SHARES_PER_GPU)
        token.impair_gpu(3)  # always allowed: it records a fact about the hardware
        with boa.reverts(reasons.TOKEN_MINT_EXCEEDS_ACTIVE_GPUS):
            token.mint(alice, 1)
    assert token.totalSupply() <= token.backing()[1]


def test_retire_gpu(token, operator, stranger):
    with boa.env.prank(stranger), boa.reverts(reasons.ACCESS_CONTROL_MISSING_ROLE):
        token.retire_gpu(1)
    with boa.env.prank(operator):
        with boa.reverts(reasons.TOKEN_UNKNOWN_GPU_ID):
            token.retire_gpu(0)
        token.retire_gpu(1)
        event = token.get_logs()[-1]
        with boa.reverts(reasons.TOKEN_GPU_ALREADY_RETIRED):
            token.retire_gpu(1)
        with boa.reverts(reasons.TOKEN_ACTIVE_GPU_IMPAIRED):
            token.impair_gpu(1)
        token.impair_gpu(2)
        token.retire_gpu(2)
    assert (event.previous_status, event.new_status) == (ACTIVE, RETIRED)
    assert token.gpus(1).status == RETIRED and token.gpus(2).status == RETIRED
    assert token.active_gpus() == 6 and token.impaired_gpus() == 0


def test_retire_needs_burn_first_when_fully_minted(token, operator):
    with boa.env.prank(operator):
        token.mint(operator, 8 * SHARES_PER_GPU)
        with boa.reverts(
            reasons.TOKEN_BURN_SHARES_FIRST_SUPPLY
        ):
            token.retire_gpu(4)
        token.burn(SHARES_PER_GPU - SHARE)
        with boa.reverts(
            reasons.TOKEN_BURN_SHARES_FIRST_SUPPLY
        ):
            token.retire_gpu(4)
        token.burn(SHARE)
        token.retire_gpu(4)
    assert token.totalSupply() == 7 * SHARES_PER_GPU == token.backing()[1]


def test_retiring_the_last_gpu_needs_zero_supply(token, operator):
    with boa.env.prank(operator):
        for gpu_id in range(1, 8):
            token.retire_gpu(gpu_id)
        token.mint(operator, 1)
        with boa.reverts(
            reasons.TOKEN_BURN_SHARES_FIRST_SUPPLY
        ):
            token.retire_gpu(8)
        token.burn(1)
        token.retire_gpu(8)
    assert token.backing() == (0, 0)
