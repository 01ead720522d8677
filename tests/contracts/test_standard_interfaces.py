"""Every standard interface an integrator calls (issue 23): ERC-165 ids computed here from
the standards' function signatures and answered true by the contracts that implement
them (and false for anything else); the FeedAdapter's legacy AggregatorInterface ("V2")
views against its AggregatorV3 values, including rounds the hub's ring no longer holds
(0, as Chainlink's aggregators answer, never a revert); the pool's vault shares' EIP-2612
permit signed with eth_account over EIP-712 typed data, and its EIP-5267 domain."""

from __future__ import annotations

import random
from functools import reduce

import boa
import pytest
from eth_abi import encode
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak

from gpushares import abi, reasons
from tests.contracts import oracle_helpers as oh
from tests.contracts.helpers import PERMIT_TYPES
from tests.contracts.pool_helpers import NAV_FEED_ID, PRICE, World, build_world

# ---------------------------------------------------------------------------------
# The standards, as their texts define them (function signatures only: that is what an
# ERC-165 id covers)
# ---------------------------------------------------------------------------------

STANDARDS: dict[str, tuple[str, ...]] = {
    "ERC-165": ("supportsInterface(bytes4)",),
    "ERC-20": ("totalSupply()", "balanceOf(address)", "transfer(address,uint256)",
               "transferFrom(address,address,uint256)", "approve(address,uint256)",
               "allowance(address,address)"),
    "ERC-20 metadata": ("name()", "symbol()", "decimals()"),
    "ERC-4626": ("asset()", "totalAssets()", "convertToShares(uint256)",
                 "convertToAssets(uint256)", "maxDeposit(address)", "previewDeposit(uint256)",
                 "deposit(uint256,address)", "maxMint(address)", "previewMint(uint256)",
                 "mint(uint256,address)", "maxWithdraw(address)", "previewWithdraw(uint256)",
                 "withdraw(uint256,address,address)", "maxRedeem(address)",
                 "previewRedeem(uint256)", "redeem(uint256,address,address)"),
    "EIP-2612": ("permit(address,address,uint256,uint256,uint8,bytes32,bytes32)",
                 "nonces(address)", "DOMAIN_SEPARATOR()"),
    "EIP-5267": ("eip712Domain()",),
    "IAccessControl": ("hasRole(bytes32,address)", "getRoleAdmin(bytes32)",
                       "grantRole(bytes32,address)", "revokeRole(bytes32,address)",
                       "renounceRole(bytes32,address)"),
    "AggregatorV3Interface": ("decimals()", "description()", "version()",
                              "getRoundData(uint80)", "latestRoundData()"),
    "AggregatorInterface": ("latestAnswer()", "latestTimestamp()", "latestRound()",
                            "getAnswer(uint256)", "getTimestamp(uint256)"),
}
# Chainlink's `AggregatorV2V3Interface is AggregatorInterface, AggregatorV3Interface {}`:
# its function set is the union of both.
STANDARDS["AggregatorV2V3Interface"] = (STANDARDS["AggregatorInterface"]
                                        + STANDARDS["AggregatorV3Interface"])

#: Contract (its shipped ABI's name) -> the standards it answers true for.
IMPLEMENTS = {
    "FeedAdapter": ("ERC-165", "AggregatorV3Interface", "AggregatorInterface",
                    "AggregatorV2V3Interface"),
    "LendingPool": ("ERC-165", "ERC-20", "ERC-20 metadata", "ERC-4626", "EIP-2612",
                    "EIP-5267", "IAccessControl"),
    "GPUShareToken": ("ERC-165", "ERC-20", "EIP-2612", "EIP-5267", "IAccessControl"),
    "OracleHub": ("ERC-165", "EIP-5267", "IAccessControl"),
    "ComplianceRegistry": ("ERC-165", "EIP-5267", "IAccessControl"),
}
#: Ids published in the standards' own texts, to check `interface_id` itself.
PUBLISHED = {"ERC-165": 0x01FFC9A7, "ERC-20": 0x36372B07}
ERC165_INVALID = 0xFFFFFFFF  # ERC-165: must answer false

OWNER_KEY = keccak(text="standard-interfaces-permit-owner")
OTHER_KEY = keccak(text="standard-interfaces-someone-else")
SHARE = 10**18


def selector(signature: str) -> int:
    return int.from_bytes(keccak(text=signature)[:4], "big")


def interface_id(signatures: tuple[str, ...]) -> int:
    """ERC-165: the XOR of the interface's function selectors."""
    return reduce(lambda a, b: a ^ b, (selector(s) for s in signatures))


def as_bytes4(value: int) -> bytes:
    return value.to_bytes(4, "big")


def abi_signatures(name: str) -> set[str]:
    """`name(types)` of every function in contract `name`'s shipped ABI."""
    return {f"{e['name']}({','.join(i['type'] for i in e['inputs'])})"
            for e in abi.load(name) if e["type"] == "function"}


# ---------------------------------------------------------------------------------
# The world: one lending market (pool, share token, hub and NAV feed adapter)
# ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def world() -> World:
    return build_world(label="std", initial_price=None)


@pytest.fixture(scope="module")
def contracts(world):
    return {"FeedAdapter": world.feed, "LendingPool": world.pool, "GPUShareToken": world.token,
            "OracleHub": world.hub, "ComplianceRegistry": world.registry}


def publish(world: World, value: int) -> int:
    """One more round on the NAV feed; returns its observation time."""
    boa.env.time_travel(seconds=60)
    assert world.set_price(value)
    return world.last_observed


# ---------------------------------------------------------------------------------
# ERC-165
# ---------------------------------------------------------------------------------


def test_interface_ids_are_the_xor_of_the_selectors():
    for name, published in PUBLISHED.items():
        assert interface_id(STANDARDS[name]) == published, name
    v2, v3 = STANDARDS["AggregatorInterface"], STANDARDS["AggregatorV3Interface"]
    assert interface_id(v2 + v3) == interface_id(v2) ^ interface_id(v3)
    # The ids the contracts' comments state, recomputed from the signatures.
    assert {name: f"{interface_id(sigs):#010x}" for name, sigs in STANDARDS.items()} == {
        "ERC-165": "0x01ffc9a7", "ERC-20": "0x36372b07", "ERC-20 metadata": "0xa219a025",
        "ERC-4626": "0x87dfe5a0", "EIP-2612": "0x9d8ff7da", "EIP-5267": "0x84b0196e",
        "IAccessControl": "0x7965db0b", "AggregatorV3Interface": "0x73851258",
        "AggregatorInterface": "0xb7c5d175", "AggregatorV2V3Interface": "0xc440c32d",
    }


@pytest.mark.parametrize(("contract", "standard"),
                         [(c, s) for c, standards in IMPLEMENTS.items() for s in standards])
def test_each_implemented_interface_is_answered_and_present(contracts, contract, standard):
    signatures = STANDARDS[standard]
    assert contracts[contract].supportsInterface(as_bytes4(interface_id(signatures))) is True
    missing = set(signatures) - abi_signatures(contract)
    assert not missing, f"{contract} claims {standard} but lacks {sorted(missing)}"


@pytest.mark.parametrize("contract", sorted(IMPLEMENTS))
def test_anything_else_is_refused(contracts, contract):
    target = contracts[contract]
    answered = {interface_id(STANDARDS[s]) for s in IMPLEMENTS[contract]}
    others = {interface_id(sigs) for name, sigs in STANDARDS.items()
              if name not in IMPLEMENTS[contract]}
    rng = random.Random(f"erc165-{contract}")
    candidates = {ERC165_INVALID, 0, *others, *(rng.getrandbits(32) for _ in range(24))}
    for candidate in sorted(candidates - answered):
        assert target.supportsInterface(as_bytes4(candidate)) is False, hex(candidate)


# ---------------------------------------------------------------------------------
# FeedAdapter: AggregatorInterface (V2) views against the V3 values
# ---------------------------------------------------------------------------------


def test_v2_views_read_zero_before_the_first_report(world):
    adapter = world.feed
    for round_id in (0, 1, 2**80, 2**256 - 1):
        assert adapter.getAnswer(round_id) == 0 and adapter.getTimestamp(round_id) == 0
    assert (adapter.latestAnswer(), adapter.latestTimestamp(), adapter.latestRound()) == (0, 0, 0)
    # V3 reverts where V2 answers 0 (Chainlink: getRoundData must not return unset values).
    with boa.reverts(oh.NO_DATA):
        adapter.latestRoundData()
    with boa.reverts(oh.ROUND_NOT_YET):
        adapter.getRoundData(1)


def test_v2_views_match_v3_across_rounds(world):
    adapter = world.feed
    values = [15 * PRICE, 15 * PRICE + 1, 14 * PRICE, 16 * PRICE + 12_345, 9 * PRICE]
    published = {}
    for n, value in enumerate(values, start=1):
        published[n] = (value, publish(world, value))
        round_id, answer, started, updated, answered = adapter.latestRoundData()
        assert (round_id, answer, updated) == (n, value, published[n][1])
        assert adapter.latestRound() == round_id == answered
        assert adapter.latestAnswer() == answer
        assert adapter.latestTimestamp() == updated == started
    for n, (value, observed) in published.items():
        _round, answer, _started, updated, _answered = adapter.getRoundData(n)
        assert adapter.getAnswer(n) == answer == value
        assert adapter.getTimestamp(n) == updated == observed
    latest = len(values)
    for missing in (0, latest + 1, 2**80 - 1, 2**80, 2**256 - 1):
        assert adapter.getAnswer(missing) == 0 and adapter.getTimestamp(missing) == 0
    with boa.reverts(oh.ROUND_NOT_YET):
        adapter.getRoundData(latest + 1)


def test_v2_views_read_zero_for_a_round_the_ring_dropped(world):
    adapter, ring = world.feed, world.hub.RING_SIZE()
    assert ring == oh.RING_SIZE
    history = {}
    for n in range(1, ring + 4):  # three rounds past a full ring: rounds 1..3 are gone
        value = PRICE + (n * 7_919) % (50 * PRICE)
        history[n] = (value, publish(world, value))
    latest = ring + 3
    assert adapter.latestRound() == latest
    oldest = latest - ring + 1
    for gone in (1, 2, oldest - 1):
        assert adapter.getAnswer(gone) == 0 and adapter.getTimestamp(gone) == 0
        with boa.reverts(oh.ROUND_GONE):
            adapter.getRoundData(gone)
    for kept in (oldest, oldest + 1, ring, latest - 1, latest):
        value, observed = history[kept]
        assert adapter.getRoundData(kept) == (kept, value, observed, observed, kept)
        assert (adapter.getAnswer(kept), adapter.getTimestamp(kept)) == (value, observed)
    assert adapter.getAnswer(latest + 1) == 0 and adapter.getAnswer(0) == 0


# ---------------------------------------------------------------------------------
# LendingPool vault shares: EIP-2612 permit, EIP-5267 domain
# ---------------------------------------------------------------------------------


def permit_signature(world: World, key: bytes, spender: str, value: int, nonce: int,
                     deadline: int, *, chain_id: int | None = None,
                     verifying_contract: str | None = None):
    """An EIP-2612 permit signed by `key` over EIP-712 typed data (eth_account)."""
    pool = world.pool
    data = {
        "types": PERMIT_TYPES,
        "primaryType": "Permit",
        "domain": {
            "name": pool.name(),
            "version": "1",
            "chainId": boa.env.evm.patch.chain_id if chain_id is None else chain_id,
            "verifyingContract": verifying_contract or pool.address,
        },
        "message": {
            "owner": Account.from_key(key).address,
            "spender": spender,
            "value": value,
            "nonce": nonce,
            "deadline": deadline,
        },
    }
    return Account.sign_message(encode_typed_data(full_message=data), key)


def send_permit(pool, owner: str, spender: str, value: int, deadline: int, sig) -> None:
    pool.permit(owner, spender, value, deadline, sig.v, sig.r.to_bytes(32, "big"),
                sig.s.to_bytes(32, "big"))


@pytest.fixture
def holder(world) -> str:
    """The permit owner's address, holding vault shares (a lender deposits and passes
    them on: vault shares move like any ERC-20)."""
    lender, owner = world.lenders[0], Account.from_key(OWNER_KEY).address
    world.fund(lender, 10_000 * world.unit)
    with boa.env.prank(lender):
        shares = world.pool.deposit(10_000 * world.unit, lender)
        world.pool.transfer(owner, shares)
    return owner


def test_eip712_domain_and_separator(world):
    pool = world.pool
    chain_id = boa.env.evm.patch.chain_id
    assert pool.eip712Domain() == (b"\x0f", pool.name(), "1", chain_id, pool.address,
                                   b"\0" * 32, [])
    type_hash = keccak(text="EIP712Domain(string name,string version,uint256 chainId,"
                            "address verifyingContract)")
    expected = keccak(encode(["bytes32", "bytes32", "bytes32", "uint256", "address"],
                             [type_hash, keccak(text=pool.name()), keccak(text="1"), chain_id,
                              pool.address]))
    assert pool.DOMAIN_SEPARATOR() == expected


def test_permit_sets_the_allowance_and_the_spender_moves_the_shares(world, holder):
    pool, spender, receiver = world.pool, world.stranger, world.lenders[1]
    balance = pool.balanceOf(holder)
    deadline = boa.env.evm.patch.timestamp + 3_600
    assert pool.nonces(holder) == 0
    sig = permit_signature(world, OWNER_KEY, spender, balance, 0, deadline)
    with boa.env.prank(spender):  # anyone may relay the signature
        send_permit(pool, holder, spender, balance, deadline, sig)
    (approval,) = [e for e in pool.get_logs() if type(e).__name__ == "Approval"]
    assert (approval.owner, approval.spender, approval.value) == (holder, spender, balance)
    assert pool.allowance(holder, spender) == balance and pool.nonces(holder) == 1
    with boa.env.prank(spender):
        pool.transferFrom(holder, receiver, balance)
    assert pool.balanceOf(holder) == 0 and pool.balanceOf(receiver) == balance
    with boa.reverts(reasons.ERC20_INVALID_SIGNATURE):  # a replay: the nonce moved on
        send_permit(pool, holder, spender, balance, deadline, sig)


def test_a_permit_exactly_at_its_deadline_still_works(world, holder):
    deadline = boa.env.evm.patch.timestamp + 100
    sig = permit_signature(world, OWNER_KEY, world.stranger, SHARE, 0, deadline)
    boa.env.time_travel(seconds=100)
    send_permit(world.pool, holder, world.stranger, SHARE, deadline, sig)
    assert world.pool.allowance(holder, world.stranger) == SHARE


def test_permit_refusals(world, holder):
    pool, spender = world.pool, world.stranger
    now = boa.env.evm.patch.timestamp
    deadline = now + 3_600
    # Signed by someone other than the owner.
    forged = permit_signature(world, OTHER_KEY, spender, SHARE, 0, deadline)
    with boa.reverts(reasons.ERC20_INVALID_SIGNATURE):
        send_permit(pool, holder, spender, SHARE, deadline, forged)
    # Signed by the owner, but for other values than those sent.
    good = permit_signature(world, OWNER_KEY, spender, SHARE, 0, deadline)
    with boa.reverts(reasons.ERC20_INVALID_SIGNATURE):
        send_permit(pool, holder, spender, 2 * SHARE, deadline, good)
    with boa.reverts(reasons.ERC20_INVALID_SIGNATURE):
        send_permit(pool, holder, world.lenders[2], SHARE, deadline, good)
    # Signed for another chain or another contract (the domain differs).
    other_chain = boa.env.evm.patch.chain_id + 1
    for other in (permit_signature(world, OWNER_KEY, spender, SHARE, 0, deadline,
                                   chain_id=other_chain),
                  permit_signature(world, OWNER_KEY, spender, SHARE, 0, deadline,
                                   verifying_contract=world.token.address)):
        with boa.reverts(reasons.ERC20_INVALID_SIGNATURE):
            send_permit(pool, holder, spender, SHARE, deadline, other)
    # Past its deadline.
    late = permit_signature(world, OWNER_KEY, spender, SHARE, 0, now - 1)
    with boa.reverts(reasons.ERC20_EXPIRED_DEADLINE):
        send_permit(pool, holder, spender, SHARE, now - 1, late)
    assert pool.allowance(holder, spender) == 0 and pool.nonces(holder) == 0
    send_permit(pool, holder, spender, SHARE, deadline, good)  # the right one still works
    assert pool.allowance(holder, spender) == SHARE


def test_nav_feed_is_the_pools_price_feed(world):
    """The adapter answering ERC-165 above is the very feed the pool reads."""
    assert world.pool.price_feed() == world.feed.address
    assert world.hub.feed_adapter(NAV_FEED_ID) == world.feed.address
