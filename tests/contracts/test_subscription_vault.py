"""SubscriptionVault (issue 20): ERC-7540 conformance, the contract's NatSpec rules, and
exploits written as an attacker.

The world is `vault_helpers.vault_world` (the registry, a share token with 4 GPUs of
1,000 shares, mUSDC, the real OracleHub with its 2-of-3 signed NAV feed, the vault opened
through its factory), built once per module; every test runs in an anchor and starts with
a fresh NAV of 15 USD published through the hub.

ERC-7540 (eips.ethereum.org/EIPS/eip-7540, status Final), each MUST tested here:

- Asynchronous deposit Vaults: `previewDeposit` and `previewMint` MUST revert for all
  callers and inputs; asynchronous redeem Vaults: `previewRedeem` and `previewWithdraw`
  MUST revert for all callers and inputs.
- redeem / withdraw: the controller MUST be `msg.sender` unless the controller has
  approved `msg.sender` as an operator.
- Requests MUST NOT skip or short-circuit the Claimable state: the user MUST call both
  request* and the Claim function; Vaults MUST NOT "push" tokens onto the user after a
  Request, users MUST "pull" them via the Claim function.
- requestId 0: the Vault MUST use purely the controller to discriminate the request state
  (aggregated); if it returns 0 for any request it MUST return 0 for all requests.
- requestDeposit: MUST support ERC-20 approve / transferFrom on `asset`; `owner` MUST
  equal `msg.sender` unless the owner approved `msg.sender` as an operator; MUST revert
  if all of `assets` cannot be requested; MUST emit `DepositRequest`.
- pendingDepositRequest / claimableDepositRequest / pendingRedeemRequest /
  claimableRedeemRequest: MUST NOT include the other state's amounts, MUST NOT show any
  variations depending on the caller, MUST NOT revert (but for overflow).
- requestRedeem: the shares MUST be removed from the custody of `owner` upon
  `requestRedeem` and burned by the time the request is Claimed; MUST revert if all of
  `shares` cannot be requested; MUST emit `RedeemRequest`.
- setOperator: MUST set the operator status to `approved`, MUST log `OperatorSet`, MUST
  return True; `OperatorSet` MUST be logged when the status is set.
- The overloaded `deposit(uint256,address,address)` and `mint(uint256,address,address)`
  MUST be supported; calls MUST revert unless `msg.sender` is the controller or its
  operator; in the `Deposit` event the first parameter MUST be the controller and the
  second the receiver.
- DepositRequest / RedeemRequest MUST be emitted by requestDeposit / requestRedeem.
- ERC-165: MUST implement `supportsInterface`; MUST return true for 0xe3bc4e65
  (operators), 0x2f0a18c5 (ERC-7575), 0xce3bbe50 (async deposit), 0x620ee8e4 (async
  redeem). The ids are recomputed here as XORs of function selectors.
- ERC-7575: MUST implement `share`, which MUST return the ERC-20 share and MUST NOT
  revert; entry functions MUST increase `share.balanceOf(receiver)` by `shares`.
And from ERC-4626, which ERC-7540 Vaults MUST implement: `deposit`/`mint` MUST emit
`Deposit`, `redeem`/`withdraw` MUST emit `Withdraw`, each MUST revert if all of its amount
cannot be claimed; the max* views MUST NOT revert and MUST NOT be higher than what would
be accepted (MUST be 0 while the operation is disabled for the user); `totalAssets`
MUST NOT revert; `convertToShares` / `convertToAssets` MUST NOT revert (but for
overflow) and MUST round down.

Then every rule of the contract's NatSpec, and the exploits. Four of these failed against
e5974a9 and pass since 673001c: a controller's own one-unit top-up rejecting a NAV report
in flight, the ERC-4626 views reverting before the feed's first report, and the max*
views staying positive while every claim would revert (paused token, frozen controller).
"""

from __future__ import annotations

import re
from functools import reduce
from operator import xor

import boa
import pytest
from boa.contracts.base_evm_contract import BoaError
from eth_abi import encode
from eth_utils import keccak

from gpushares import reasons
from jurisdictions.codes import Restriction, message
from tests.contracts import deployers
from tests.contracts.helpers import CH, KP, OPERATOR_ROLE, ZERO, gpu, register
from tests.contracts.vault_helpers import (
    CANCEL_AFTER,
    FEE_BPS,
    HEARTBEAT,
    NAV_15,
    NOTICE,
    SHARE,
    USDC,
    vault_world,
)

MAX = 2**256 - 1
FUNDS = 1_000_000 * USDC
CAP = 4 * 1_000 * SHARE  # the world's 4 GPUs x 1,000 shares
MAGNITUDE = 10**36
SOURCE = deployers.CONTRACTS / "SubscriptionVault.vy"

MISSING_ROLE = reasons.ACCESS_CONTROL_MISSING_ROLE
NOT_OWNER = reasons.VAULT_NOT_OWNER_OR_OPERATOR
NOT_CONTROLLER = reasons.VAULT_NOT_CONTROLLER_OR_OPERATOR
LOCKED = reasons.VAULT_REQUEST_LOCKED
PENDING = reasons.VAULT_REQUEST_PENDING
EXCEEDS_CLAIMABLE = reasons.VAULT_EXCEEDS_CLAIMABLE
NO_PREVIEW = reasons.VAULT_ASYNC_NO_PREVIEW


# ---------------------------------------------------------------------------------
# Arithmetic the vault promises (forward pricing, rounding, fee)
# ---------------------------------------------------------------------------------


def shares_at(assets: int, nav: int) -> int:
    """Shares `assets` (6 decimals) buy at `nav` (8 decimals): rounded down."""
    return assets * 10**26 // (nav * 10**6)


def gross_at(shares: int, nav: int) -> int:
    """Stablecoin value of `shares` at `nav`: rounded down."""
    return shares * nav * 10**6 // 10**26


def fee_of(gross: int, bps: int = FEE_BPS) -> int:
    """The redemption fee: rounded up."""
    return -(-gross * bps // 10_000)


# ---------------------------------------------------------------------------------
# ERC-165 ids from selectors
# ---------------------------------------------------------------------------------


def selector(signature: str) -> int:
    return int.from_bytes(keccak(text=signature)[:4], "big")


def interface_id(*signatures: str) -> bytes:
    return reduce(xor, map(selector, signatures)).to_bytes(4, "big")


ERC165_ID = interface_id("supportsInterface(bytes4)")
OPERATORS_ID = interface_id("isOperator(address,address)", "setOperator(address,bool)")
ASYNC_DEPOSIT_ID = interface_id(
    "requestDeposit(uint256,address,address)", "pendingDepositRequest(uint256,address)",
    "claimableDepositRequest(uint256,address)", "deposit(uint256,address,address)",
    "mint(uint256,address,address)")
ASYNC_REDEEM_ID = interface_id(
    "requestRedeem(uint256,address,address)", "pendingRedeemRequest(uint256,address)",
    "claimableRedeemRequest(uint256,address)")
ERC7575_MINIMAL = ("asset()", "share()", "convertToAssets(uint256)", "convertToShares(uint256)",
                   "totalAssets()")
ERC7575_PARTIAL = (
    ("deposit(uint256,address)", "previewDeposit(uint256)", "maxDeposit(address)"),
    ("mint(uint256,address)", "previewMint(uint256)", "maxMint(address)"),
    ("redeem(uint256,address,address)", "previewRedeem(uint256)", "maxRedeem(address)"),
    ("withdraw(uint256,address,address)", "previewWithdraw(uint256)", "maxWithdraw(address)"),
)
ERC7575_ID = interface_id(*ERC7575_MINIMAL, *(s for group in ERC7575_PARTIAL for s in group))


# ---------------------------------------------------------------------------------
# The world
# ---------------------------------------------------------------------------------


def now() -> int:
    return boa.env.evm.patch.timestamp


def tick(seconds: int = 1) -> None:
    boa.env.time_travel(seconds=seconds)


def logs(contract, name: str) -> list:
    """`contract`'s own events `name` from the last call (the token has an
    `IncomeClaimed` of its own)."""
    return [e for e in contract.get_logs()
            if type(e).__name__ == name and e.address == contract.address]


def one(contract, name: str):
    (event,) = logs(contract, name)
    return event


class V:
    """The module's vault world and its people: Alice, Bob, Carol and Mallory are
    eligible US investors with 1M mUSDC each (approved to the vault, and their shares
    too); the stranger has no record; the SPV operator holds the vault's and the
    token's OPERATOR_ROLE and 1M mUSDC approved to both."""

    def __init__(self, w) -> None:
        self.w = w
        self.vault, self.token, self.stable = w.vault, w.token, w.stable
        self.operator, self.treasury = w.operator, w.treasury
        self.alice, self.bob, self.carol, self.mallory = (
            w.investor(f"v7540-{name}") for name in ("alice", "bob", "carol", "mallory"))
        self.stranger = boa.env.generate_address("v7540-stranger")
        self.people = (self.alice, self.bob, self.carol, self.mallory)
        for who in (*self.people, self.operator):
            w.fund(who, FUNDS)
        with boa.env.prank(self.operator):
            self.stable.approve(self.token.address, MAX)
        self.gpus = 0
        w.publish_nav(NAV_15)  # the feed has data from here on

    # -- oracle and time
    def nav(self, value: int = NAV_15) -> int:
        """A second later, a NAV report through the hub; returns its time."""
        tick()
        return self.w.publish_nav(value)

    # -- deposits
    def request_deposit(self, who: str, assets: int, controller: str | None = None,
                        sender: str | None = None) -> int:
        with boa.env.prank(sender or who):
            return self.vault.requestDeposit(assets, controller or who, who)

    def fulfil_deposit(self, controller: str, assets: int) -> int:
        with boa.env.prank(self.operator):
            return self.vault.fulfil_deposit(controller, assets)

    def deposited(self, who: str, assets: int, nav: int = NAV_15) -> int:
        """A subscription requested, priced at the next NAV and fulfilled: its shares."""
        self.request_deposit(who, assets)
        self.nav(nav)
        return self.fulfil_deposit(who, assets)

    # -- redemptions
    def give(self, who: str, shares: int) -> None:
        with boa.env.prank(self.operator):
            self.token.mint(who, shares)

    def request_redeem(self, who: str, shares: int, controller: str | None = None,
                       sender: str | None = None) -> int:
        with boa.env.prank(sender or who):
            return self.vault.requestRedeem(shares, controller or who, who)

    def fund(self, amount: int) -> None:
        with boa.env.prank(self.operator):
            self.vault.fund_redemptions(amount)

    def fulfil_redeem(self, controller: str, shares: int) -> int:
        with boa.env.prank(self.operator):
            return self.vault.fulfil_redeem(controller, shares)

    def redeemed(self, who: str, shares: int, nav: int = NAV_15) -> int:
        """Shares given, escrowed, the notice period passed, priced at the next NAV,
        funded exactly and fulfilled: the stablecoin claimable."""
        self.give(who, shares)
        self.request_redeem(who, shares)
        tick(NOTICE)
        self.nav(nav)
        gross = gross_at(shares, nav)
        if gross - fee_of(gross):
            self.fund(gross - fee_of(gross))
        return self.fulfil_redeem(who, shares)

    # -- the rest
    def add_gpus(self, n: int) -> None:
        with boa.env.prank(self.operator):
            self.token.add_gpus([gpu(f"V7540-EXTRA-{self.gpus + i}") for i in range(n)])
        self.gpus += n

    def distribute(self, amount: int) -> None:
        with boa.env.prank(self.operator):
            self.token.distribute(amount)

    def freeze(self, who: str, frozen: bool = True) -> None:
        with boa.env.prank(self.w.compliance_admin):
            self.w.registry.set_wallet_frozen(who, frozen)

    def state(self) -> tuple:
        """Everything a refused call must leave as it was."""
        vault, token, stable = self.vault, self.token, self.stable
        accounts = (*self.people, self.operator, self.treasury, vault.address)
        return (
            tuple(vault.request(p) for p in self.people),
            tuple(vault.income_owed(p) for p in self.people),
            tuple(getattr(vault, name)() for name in (
                "total_pending_deposit_assets", "total_claimable_deposit_assets",
                "total_claimable_deposit_shares", "total_pending_redeem_shares",
                "total_claimable_redeem_shares", "total_claimable_redeem_assets",
                "redemption_funds", "total_income_owed", "income_per_held_share",
                "last_fulfilment_nav", "last_fulfilment_time")),
            tuple(token.balanceOf(a) for a in accounts),
            tuple(stable.balanceOf(a) for a in accounts),
            token.totalSupply(),
            token.claimable(vault.address),
        )


@pytest.fixture(scope="module")
def base(registry, factory, stablecoin, admin, operator, oracle_admin, compliance_admin):
    return V(vault_world(registry, factory, stablecoin, admin, operator, oracle_admin,
                         compliance_admin, label="V7540"))


@pytest.fixture
def v(base):
    """The world, with a fresh NAV of 15 USD published now (inside the test's anchor)."""
    base.w.observed = base.w.feed.latestRoundData()[3]
    base.gpus = 0
    base.nav(NAV_15)
    return base


# =================================================================================
# ERC-7540 conformance
# =================================================================================


def test_erc165_ids_recomputed_from_selectors_are_supported(v):
    """ERC-165 and the ERC-7540 / ERC-7575 ids, computed as XORs of function selectors:
    they equal the standards' constants and the vault returns true for each; an id it
    does not implement, and ERC-165's invalid id, return false."""
    assert ERC165_ID == bytes.fromhex("01ffc9a7")
    assert OPERATORS_ID == bytes.fromhex("e3bc4e65")
    assert ASYNC_DEPOSIT_ID == bytes.fromhex("ce3bbe50")
    assert ASYNC_REDEEM_ID == bytes.fromhex("620ee8e4")
    assert ERC7575_ID == bytes.fromhex("2f0a18c5")
    for interface in (ERC165_ID, OPERATORS_ID, ASYNC_DEPOSIT_ID, ASYNC_REDEEM_ID, ERC7575_ID):
        assert v.vault.supportsInterface(interface) is True
    assert v.vault.supportsInterface(b"\xff\xff\xff\xff") is False
    assert v.vault.supportsInterface(interface_id("transfer(address,uint256)")) is False
    # ERC-7540's async deposit id covers the overloaded claims, not the 2-argument ones.
    assert v.vault.supportsInterface(interface_id(
        "requestDeposit(uint256,address,address)", "pendingDepositRequest(uint256,address)",
        "claimableDepositRequest(uint256,address)")) is False


def test_erc7575_share_and_asset(v):
    """`share()` is the SPV's ERC-20 share token (18 decimals) and never reverts;
    `asset()` is the token's income stablecoin."""
    assert v.vault.share() == v.token.address
    assert v.token.decimals() == 18 and v.token.totalSupply() == 0
    assert v.vault.asset() == v.stable.address == v.token.income_token()
    assert v.vault.share(sender=v.stranger) == v.token.address


@pytest.mark.parametrize("name", ["previewDeposit", "previewMint", "previewRedeem",
                                  "previewWithdraw"])
def test_previews_revert_for_all_callers_and_inputs(v, name):
    """ERC-7540: the preview functions of an async flow MUST revert for all callers and
    inputs, also while something is claimable."""
    v.deposited(v.alice, 1_500 * USDC)
    v.redeemed(v.bob, 10 * SHARE)
    preview = getattr(v.vault, name)
    for caller in (v.alice, v.bob, v.operator, v.stranger, v.vault.address):
        for amount in (0, 1, 10**18, MAX):
            with boa.reverts(NO_PREVIEW):
                preview(amount, sender=caller)


def test_request_deposit_escrows_and_emits(v):
    """requestDeposit pulls `assets` from `owner` with transferFrom, raises
    pendingDepositRequest, returns request id 0 and emits DepositRequest (controller,
    owner, 0, sender = the caller, assets); made by the owner's operator, `sender` is the
    operator."""
    vault, stable = v.vault, v.stable
    before = stable.balanceOf(v.alice)
    assert v.request_deposit(v.alice, 700 * USDC) == 0
    event = one(vault, "DepositRequest")
    assert (event.controller, event.owner, event.requestId, event.sender, event.assets) == (
        v.alice, v.alice, 0, v.alice, 700 * USDC)
    assert stable.balanceOf(v.alice) == before - 700 * USDC
    assert stable.balanceOf(vault.address) == 700 * USDC
    assert vault.pendingDepositRequest(0, v.alice) == 700 * USDC
    assert vault.total_pending_deposit_assets() == 700 * USDC
    with boa.env.prank(v.alice):
        vault.setOperator(v.bob, True)
    # Bob, Alice's operator, requests with Alice's stablecoin for himself.
    assert v.request_deposit(v.alice, 300 * USDC, controller=v.bob, sender=v.bob) == 0
    event = one(vault, "DepositRequest")
    assert (event.controller, event.owner, event.requestId, event.sender, event.assets) == (
        v.bob, v.alice, 0, v.bob, 300 * USDC)
    assert stable.balanceOf(v.alice) == before - 1_000 * USDC
    assert vault.pendingDepositRequest(0, v.bob) == 300 * USDC


def test_request_deposit_owner_is_the_sender_unless_operator(v):
    """`owner` MUST equal msg.sender unless it approved msg.sender as an operator: Bob
    cannot spend Alice's approval to the vault until Alice makes him her operator, and
    no longer once she revokes him."""
    with boa.reverts(NOT_OWNER):
        v.request_deposit(v.alice, USDC, controller=v.bob, sender=v.bob)
    with boa.env.prank(v.alice):
        v.vault.setOperator(v.bob, True)
    v.request_deposit(v.alice, USDC, controller=v.bob, sender=v.bob)
    assert v.vault.pendingDepositRequest(0, v.bob) == USDC
    with boa.env.prank(v.alice):
        v.vault.setOperator(v.bob, False)
    with boa.reverts(NOT_OWNER):
        v.request_deposit(v.alice, USDC, controller=v.bob, sender=v.bob)


def test_request_deposit_reverts_unless_all_assets_can_be_requested(v):
    """MUST revert if all of `assets` cannot be requested: short allowance, short
    balance; nothing is pending afterwards."""
    with boa.env.prank(v.alice):
        v.stable.approve(v.vault.address, 100 * USDC)
    with boa.reverts(reasons.ERC20_INSUFFICIENT_ALLOWANCE):
        v.request_deposit(v.alice, 100 * USDC + 1)
    with boa.env.prank(v.alice):
        v.stable.approve(v.vault.address, MAX)
    with boa.reverts(reasons.ERC20_INSUFFICIENT_BALANCE):
        v.request_deposit(v.alice, FUNDS + 1)
    assert v.vault.pendingDepositRequest(0, v.alice) == 0
    assert v.stable.balanceOf(v.vault.address) == 0


def test_request_ids_are_zero_and_claimables_aggregate_per_controller(v):
    """requestId 0: the state is the controller's alone, whoever the owner and the
    caller; every request returns 0 and views for another id return 0; a controller has
    one request of each kind pending at a time (VAULT_REQUEST_PENDING while one is,
    even partly fulfilled), and the Claimable amounts of its successive requests add
    up."""
    vault = v.vault
    with boa.env.prank(v.alice):
        vault.setOperator(v.carol, True)
    with boa.env.prank(v.bob):
        vault.setOperator(v.carol, True)
    # Carol, operator of Alice and Bob, requests with Bob's stablecoin for Alice.
    assert v.request_deposit(v.bob, 1_500 * USDC, controller=v.alice, sender=v.carol) == 0
    assert vault.pendingDepositRequest(0, v.alice) == 1_500 * USDC
    assert vault.pendingDepositRequest(0, v.bob) == 0
    assert vault.pendingDepositRequest(1, v.alice) == 0
    for owner, sender in ((v.alice, v.alice), (v.carol, v.carol), (v.bob, v.carol)):
        with boa.reverts(PENDING):
            v.request_deposit(owner, USDC, controller=v.alice, sender=sender)
    v.nav()
    v.fulfil_deposit(v.alice, 600 * USDC)  # partly: the rest is still pending
    with boa.reverts(PENDING):
        v.request_deposit(v.alice, USDC)
    v.fulfil_deposit(v.alice, 900 * USDC)
    assert v.request_deposit(v.alice, 3_000 * USDC) == 0  # nothing pending: accepted
    v.nav()
    v.fulfil_deposit(v.alice, 3_000 * USDC)
    assert vault.claimableDepositRequest(0, v.alice) == 4_500 * USDC
    assert vault.maxMint(v.alice) == 300 * SHARE
    assert vault.claimableDepositRequest(1, v.alice) == 0
    v.give(v.alice, 10 * SHARE)
    v.give(v.bob, 10 * SHARE)
    assert v.request_redeem(v.bob, 6 * SHARE, controller=v.alice, sender=v.carol) == 0
    with boa.reverts(PENDING):
        v.request_redeem(v.alice, 4 * SHARE)
    assert vault.pendingRedeemRequest(0, v.alice) == 6 * SHARE
    assert vault.pendingRedeemRequest(7, v.alice) == 0
    tick(NOTICE)
    v.nav()
    v.fund(1_000 * USDC)
    v.fulfil_redeem(v.alice, 6 * SHARE)
    assert v.request_redeem(v.alice, 4 * SHARE) == 0
    tick(NOTICE)
    v.nav()
    v.fulfil_redeem(v.alice, 4 * SHARE)
    assert vault.claimableRedeemRequest(0, v.alice) == 10 * SHARE
    assert vault.maxWithdraw(v.alice) == (
        gross_at(6 * SHARE, NAV_15) - fee_of(gross_at(6 * SHARE, NAV_15))
        + gross_at(4 * SHARE, NAV_15) - fee_of(gross_at(4 * SHARE, NAV_15)))


def test_one_request_of_each_kind_at_a_time(v):
    """A pending subscription does not stop a redemption request, nor the reverse; a
    cancelled or fully fulfilled request frees the slot."""
    v.give(v.alice, 10 * SHARE)
    v.request_deposit(v.alice, 100 * USDC)
    v.request_redeem(v.alice, 5 * SHARE)
    with boa.reverts(PENDING):
        v.request_redeem(v.alice, 5 * SHARE)
    tick(CANCEL_AFTER)
    with boa.env.prank(v.alice):
        v.vault.cancelDepositRequest(v.alice, v.alice)
        v.vault.cancelRedeemRequest(v.alice, v.alice)
    v.request_deposit(v.alice, 100 * USDC)
    v.request_redeem(v.alice, 10 * SHARE)
    assert v.vault.request(v.alice)[0::4] == (100 * USDC, 10 * SHARE)


def test_pending_and_claimable_views_split_states_and_never_vary(v):
    """pending* never include Claimable amounts and claimable* never Pending ones (a
    partial fulfilment splits a request); no variation with the caller; no revert for
    any id or controller (0 for an id other than 0)."""
    vault = v.vault
    v.request_deposit(v.alice, 3_000 * USDC)
    v.give(v.bob, 50 * SHARE)
    v.request_redeem(v.bob, 50 * SHARE)
    tick(NOTICE)
    v.nav()
    v.fulfil_deposit(v.alice, 1_200 * USDC)
    v.fund(10_000 * USDC)
    v.fulfil_redeem(v.bob, 20 * SHARE)
    expected = {
        ("pendingDepositRequest", v.alice): 1_800 * USDC,
        ("claimableDepositRequest", v.alice): 1_200 * USDC,
        ("pendingRedeemRequest", v.bob): 30 * SHARE,
        ("claimableRedeemRequest", v.bob): 20 * SHARE,
        ("pendingDepositRequest", v.bob): 0,
        ("claimableDepositRequest", v.bob): 0,
        ("pendingRedeemRequest", v.alice): 0,
        ("claimableRedeemRequest", v.alice): 0,
    }
    for (name, controller), amount in expected.items():
        view = getattr(vault, name)
        for caller in (controller, v.carol, v.operator, v.stranger, vault.address):
            assert view(0, controller, sender=caller) == amount, (name, caller)
        for request_id in (1, 2**255, MAX):
            assert view(request_id, controller) == 0
        assert view(0, ZERO) == 0 and view(MAX, ZERO) == 0


def test_request_redeem_takes_custody_emits_and_burns_before_the_claim(v):
    """requestRedeem removes the shares from the owner's custody (into the vault),
    raises pendingRedeemRequest, returns 0 and emits RedeemRequest; the shares are
    burnt at fulfilment, before the claim, and the claim moves no share."""
    vault, token = v.vault, v.token
    v.give(v.alice, 80 * SHARE)
    for who in (v.alice, v.carol):
        with boa.env.prank(who):
            vault.setOperator(v.bob, True)
    assert v.request_redeem(v.alice, 30 * SHARE, controller=v.carol, sender=v.bob) == 0
    event = one(vault, "RedeemRequest")
    assert (event.controller, event.owner, event.requestId, event.sender, event.shares) == (
        v.carol, v.alice, 0, v.bob, 30 * SHARE)
    assert token.balanceOf(v.alice) == 50 * SHARE
    assert token.balanceOf(vault.address) == 30 * SHARE
    assert vault.pendingRedeemRequest(0, v.carol) == 30 * SHARE
    tick(NOTICE)
    v.nav()
    v.fund(1_000 * USDC)
    v.fulfil_redeem(v.carol, 30 * SHARE)
    assert token.totalSupply() == 50 * SHARE  # burnt, not yet claimed
    assert token.balanceOf(vault.address) == 0
    with boa.env.prank(v.carol):
        vault.redeem(30 * SHARE, v.carol, v.carol)
    assert token.totalSupply() == 50 * SHARE


def test_request_redeem_owner_is_the_sender_unless_operator(v):
    """Only the owner or its operator escrows the owner's shares (the owner's share
    approval to the vault is not an approval for anyone else)."""
    v.give(v.alice, 10 * SHARE)
    with boa.reverts(NOT_OWNER):
        v.request_redeem(v.alice, SHARE, controller=v.bob, sender=v.bob)
    with boa.env.prank(v.alice):
        v.vault.setOperator(v.bob, True)
    v.request_redeem(v.alice, SHARE, controller=v.bob, sender=v.bob)
    assert v.vault.pendingRedeemRequest(0, v.bob) == SHARE


def test_request_redeem_reverts_unless_all_shares_can_be_requested(v):
    """More shares than the owner holds: the token's insufficient-balance refusal;
    nothing pending, nothing moved."""
    v.give(v.alice, 10 * SHARE)
    with boa.reverts(message(Restriction.INSUFFICIENT_BALANCE)):
        v.request_redeem(v.alice, 10 * SHARE + 1)
    assert v.vault.pendingRedeemRequest(0, v.alice) == 0
    assert v.token.balanceOf(v.alice) == 10 * SHARE


def test_nothing_is_pushed_the_user_pulls_with_the_claim(v):
    """Fulfilment makes a request Claimable and sends the user nothing: the shares and
    the stablecoin move only in the Claim function."""
    vault, token, stable = v.vault, v.token, v.stable
    v.request_deposit(v.alice, 1_500 * USDC)
    v.give(v.bob, 100 * SHARE)
    v.request_redeem(v.bob, 100 * SHARE)
    tick(NOTICE)
    v.nav()
    bob_cash = stable.balanceOf(v.bob)
    v.fulfil_deposit(v.alice, 1_500 * USDC)
    v.fund(1_500 * USDC)
    v.fulfil_redeem(v.bob, 100 * SHARE)
    assert token.balanceOf(v.alice) == 0
    assert stable.balanceOf(v.bob) == bob_cash
    assert vault.claimableDepositRequest(0, v.alice) == 1_500 * USDC
    assert vault.claimableRedeemRequest(0, v.bob) == 100 * SHARE
    with boa.env.prank(v.alice):
        assert vault.deposit(1_500 * USDC, v.alice) == 100 * SHARE
    with boa.env.prank(v.bob):
        net = gross_at(100 * SHARE, NAV_15) - fee_of(gross_at(100 * SHARE, NAV_15))
        assert vault.redeem(100 * SHARE, v.bob, v.bob) == net
    assert token.balanceOf(v.alice) == 100 * SHARE
    assert stable.balanceOf(v.bob) == bob_cash + net


def test_deposit_and_mint_claims_by_an_operator_emit_controller_then_receiver(v):
    """deposit(assets, receiver, controller) and mint(shares, receiver, controller)
    called by the controller's operator: claimable falls, the receiver's share balance
    rises by exactly the shares (ERC-7575), and Deposit's first parameter is the
    controller, the second the receiver (not msg.sender)."""
    vault, token = v.vault, v.token
    assert v.deposited(v.alice, 3_000 * USDC) == 200 * SHARE
    with boa.env.prank(v.alice):
        vault.setOperator(v.bob, True)
    with boa.env.prank(v.bob):
        shares = vault.deposit(600 * USDC, v.carol, v.alice)
        event = one(vault, "Deposit")
    assert shares == 40 * SHARE
    assert (event.sender, event.owner, event.assets, event.shares) == (
        v.alice, v.carol, 600 * USDC, 40 * SHARE)
    assert token.balanceOf(v.carol) == 40 * SHARE
    assert vault.claimableDepositRequest(0, v.alice) == 2_400 * USDC
    with boa.env.prank(v.bob):
        assets = vault.mint(60 * SHARE, v.bob, v.alice)
        event = one(vault, "Deposit")
    assert assets == 900 * USDC
    assert (event.sender, event.owner, event.assets, event.shares) == (
        v.alice, v.bob, 900 * USDC, 60 * SHARE)
    assert token.balanceOf(v.bob) == 60 * SHARE
    assert (vault.maxDeposit(v.alice), vault.maxMint(v.alice)) == (1_500 * USDC, 100 * SHARE)


def test_redeem_and_withdraw_claims_emit_withdraw(v):
    """redeem / withdraw pay the receiver and emit Withdraw(sender = the caller,
    receiver, owner = the controller, assets, shares)."""
    vault, stable = v.vault, v.stable
    net = v.redeemed(v.alice, 200 * SHARE)
    assert net == 3_000 * USDC - fee_of(3_000 * USDC)
    with boa.env.prank(v.alice):
        vault.setOperator(v.bob, True)
    carol_cash = stable.balanceOf(v.carol)
    with boa.env.prank(v.bob):
        assets = vault.redeem(50 * SHARE, v.carol, v.alice)
        event = one(vault, "Withdraw")
    assert assets == net // 4 and stable.balanceOf(v.carol) == carol_cash + assets
    assert (event.sender, event.receiver, event.owner, event.assets, event.shares) == (
        v.bob, v.carol, v.alice, assets, 50 * SHARE)
    with boa.env.prank(v.alice):
        shares = vault.withdraw(net // 4, v.alice, v.alice)
        event = one(vault, "Withdraw")
    assert shares == 50 * SHARE
    assert (event.sender, event.receiver, event.owner, event.assets, event.shares) == (
        v.alice, v.alice, v.alice, net // 4, 50 * SHARE)
    assert vault.maxRedeem(v.alice) == 100 * SHARE
    assert vault.maxWithdraw(v.alice) == net - 2 * (net // 4)


def test_claim_overloads_are_dispatched_by_their_erc7540_selectors(v):
    """The 3-argument deposit / mint (ERC-7540) and the 2-argument ones (ERC-4626, the
    caller as controller) are reachable by their own selectors."""
    vault, token = v.vault, v.token
    v.deposited(v.alice, 6_000 * USDC)
    with boa.env.prank(v.alice):
        vault.setOperator(v.bob, True)
    calls = [
        (v.bob, "deposit(uint256,address,address)", 1_500 * USDC, 100 * SHARE),
        (v.bob, "mint(uint256,address,address)", 100 * SHARE, 1_500 * USDC),
        (v.alice, "deposit(uint256,address)", 1_500 * USDC, 100 * SHARE),
        (v.alice, "mint(uint256,address)", 100 * SHARE, 1_500 * USDC),
    ]
    received = 0
    for sender, signature, amount, result in calls:
        args = (amount, v.carol) + ((v.alice,) if signature.count(",") == 2 else ())
        data = selector(signature).to_bytes(4, "big") + encode(
            ["uint256", "address", "address"][:len(args)], args)
        out = boa.env.raw_call(vault.address, sender=sender, data=data).output
        assert int.from_bytes(out, "big") == result, signature
        received += 100 * SHARE
        assert token.balanceOf(v.carol) == received
    assert vault.maxMint(v.alice) == 0


@pytest.mark.parametrize("claim", ["deposit", "mint", "redeem", "withdraw"])
def test_claims_revert_unless_the_caller_is_the_controller_or_its_operator(v, claim):
    """Calls MUST revert unless msg.sender is the controller or an operator it
    approved (the vault's OPERATOR_ROLE is no ERC-7540 operator)."""
    vault = v.vault
    v.deposited(v.alice, 1_500 * USDC)
    v.redeemed(v.alice, 100 * SHARE)
    amount = {"deposit": USDC, "mint": SHARE, "redeem": SHARE, "withdraw": USDC}[claim]

    def call(sender):
        with boa.env.prank(sender):
            return getattr(vault, claim)(amount, sender, v.alice)

    before = v.state()
    for intruder in (v.mallory, v.operator, v.stranger):
        with boa.reverts(NOT_CONTROLLER):
            call(intruder)
    assert v.state() == before
    with boa.env.prank(v.alice):
        vault.setOperator(v.mallory, True)
    call(v.mallory)
    with boa.env.prank(v.alice):
        vault.setOperator(v.mallory, False)
    with boa.reverts(NOT_CONTROLLER):
        call(v.mallory)


def test_max_views_equal_what_can_be_claimed(v):
    """maxDeposit / maxMint / maxRedeem / maxWithdraw are the claimable amounts, in sync
    with claimable*Request: a claim of exactly the max goes through, one unit more
    reverts, and they fall to 0 once claimed; they never revert."""
    vault = v.vault
    v.deposited(v.alice, 1_000 * USDC + 7)
    v.redeemed(v.bob, 77 * SHARE + 3)
    for who in (v.carol, ZERO, v.stranger):
        assert (vault.maxDeposit(who), vault.maxMint(who), vault.maxRedeem(who),
                vault.maxWithdraw(who)) == (0, 0, 0, 0)
    max_deposit, max_mint = vault.maxDeposit(v.alice), vault.maxMint(v.alice)
    assert max_deposit == vault.claimableDepositRequest(0, v.alice) == 1_000 * USDC + 7
    assert max_mint == shares_at(1_000 * USDC + 7, NAV_15)
    max_redeem, max_withdraw = vault.maxRedeem(v.bob), vault.maxWithdraw(v.bob)
    assert max_redeem == vault.claimableRedeemRequest(0, v.bob) == 77 * SHARE + 3
    gross = gross_at(77 * SHARE + 3, NAV_15)
    assert max_withdraw == gross - fee_of(gross)
    with boa.env.anchor(), boa.env.prank(v.alice):
        with boa.reverts(EXCEEDS_CLAIMABLE):
            vault.deposit(max_deposit + 1, v.alice)
        assert vault.deposit(max_deposit, v.alice) == max_mint
        assert (vault.maxDeposit(v.alice), vault.maxMint(v.alice)) == (0, 0)
    with boa.env.anchor(), boa.env.prank(v.alice):
        with boa.reverts(EXCEEDS_CLAIMABLE):
            vault.mint(max_mint + 1, v.alice)
        assert vault.mint(max_mint, v.alice) == max_deposit
        assert (vault.maxDeposit(v.alice), vault.maxMint(v.alice)) == (0, 0)
    with boa.env.anchor(), boa.env.prank(v.bob):
        with boa.reverts(EXCEEDS_CLAIMABLE):
            vault.redeem(max_redeem + 1, v.bob, v.bob)
        assert vault.redeem(max_redeem, v.bob, v.bob) == max_withdraw
        assert (vault.maxRedeem(v.bob), vault.maxWithdraw(v.bob)) == (0, 0)
    with boa.env.anchor(), boa.env.prank(v.bob):
        with boa.reverts(EXCEEDS_CLAIMABLE):
            vault.withdraw(max_withdraw + 1, v.bob, v.bob)
        assert vault.withdraw(max_withdraw, v.bob, v.bob) == max_redeem
        assert (vault.maxRedeem(v.bob), vault.maxWithdraw(v.bob)) == (0, 0)


def test_max_redeem_and_withdraw_are_zero_while_the_controller_cannot_be_paid(v):
    """ERC-4626: max* MUST NOT be higher than what would be accepted and MUST be 0 while
    the operation is disabled for the user: a frozen controller's redeem / withdraw
    revert whatever the receiver, so maxRedeem / maxWithdraw read 0 until unfrozen."""
    net = v.redeemed(v.bob, 10 * SHARE)
    v.freeze(v.bob)
    for receiver in (v.bob, v.carol):
        with boa.env.prank(v.bob), boa.reverts(message(Restriction.RECEIVER_FROZEN)):
            v.vault.redeem(1, receiver, v.bob)
    assert v.vault.maxRedeem(v.bob) == 0
    assert v.vault.maxWithdraw(v.bob) == 0
    assert v.vault.claimableRedeemRequest(0, v.bob) == 10 * SHARE  # still claimable later
    v.freeze(v.bob, False)
    assert (v.vault.maxRedeem(v.bob), v.vault.maxWithdraw(v.bob)) == (10 * SHARE, net)


def test_max_deposit_and_mint_are_zero_while_claims_are_disabled(v):
    """ERC-4626: maxDeposit / maxMint MUST be 0 while deposits are disabled, even
    temporarily: while the share token is paused every claim (a transfer) reverts."""
    v.deposited(v.alice, 1_500 * USDC)
    with boa.env.prank(v.operator):
        v.token.pause()
    with boa.env.prank(v.alice), boa.reverts(message(Restriction.TOKEN_PAUSED)):
        v.vault.mint(SHARE, v.alice)
    assert v.vault.maxDeposit(v.alice) == 0
    assert v.vault.maxMint(v.alice) == 0
    with boa.env.prank(v.operator):
        v.token.unpause()
    assert (v.vault.maxDeposit(v.alice), v.vault.maxMint(v.alice)) == (1_500 * USDC,
                                                                       100 * SHARE)


def test_set_operator(v):
    """setOperator sets the status to `approved`, logs OperatorSet (also when the status
    does not change) and returns True; isOperator reads it; a controller cannot be its
    own operator."""
    vault = v.vault
    assert vault.isOperator(v.alice, v.bob) is False
    for approved in (True, True, False, False):
        with boa.env.prank(v.alice):
            assert vault.setOperator(v.bob, approved) is True
            event = one(vault, "OperatorSet")
        assert (event.controller, event.operator, event.approved) == (v.alice, v.bob, approved)
        assert vault.isOperator(v.alice, v.bob) is approved
        assert vault.isOperator(v.bob, v.alice) is False
    with boa.env.prank(v.alice), boa.reverts(reasons.VAULT_OPERATOR_IS_SELF):
        vault.setOperator(v.alice, True)


def test_erc4626_views_at_the_latest_nav(v):
    """totalAssets and the conversions use the feed's latest answer and round down."""
    vault = v.vault
    v.give(v.alice, 7 * SHARE + 1)
    v.nav(1_234_567_891)  # 12.34567891 USD
    nav = 1_234_567_891
    assert vault.totalAssets() == gross_at(7 * SHARE + 1, nav)
    assert vault.convertToAssets(3 * SHARE) == gross_at(3 * SHARE, nav)
    assert vault.convertToShares(1_000 * USDC + 1) == shares_at(1_000 * USDC + 1, nav)
    assert vault.convertToShares(0) == 0 and vault.convertToAssets(0) == 0
    assert vault.convertToAssets(1) == 0  # rounded down


def test_erc4626_views_do_not_revert_before_the_first_nav(
        registry, factory, stablecoin, admin, operator, oracle_admin, compliance_admin):
    """ERC-4626: totalAssets MUST NOT revert, convertTo* MUST NOT revert (but for
    overflow): before the feed's first report (its latestRoundData reverts) they read
    0; fulfilment is still refused."""
    w = vault_world(registry, factory, stablecoin, admin, operator, oracle_admin,
                    compliance_admin, label="VNONAV")
    assert w.vault.totalAssets() == 0
    assert w.vault.convertToShares(USDC) == 0
    assert w.vault.convertToAssets(SHARE) == 0
    with boa.reverts(reasons.HUB_NO_DATA_PRESENT_FEED):
        w.feed.latestRoundData()


# =================================================================================
# The NatSpec's rules
# =================================================================================


@pytest.mark.parametrize("bad, reason", [
    ({"fee": 1_001}, reasons.VAULT_FEE_TOO_HIGH),
    ({"notice": 365 * 86_400 + 1}, reasons.VAULT_NOTICE_TOO_LONG),
    ({"cancel_after": 86_399}, reasons.VAULT_CANCEL_AFTER_BOUNDS),
    ({"cancel_after": 90 * 86_400 + 1}, reasons.VAULT_CANCEL_AFTER_BOUNDS),
    ({"treasury": ZERO}, reasons.VAULT_ZERO_ADDRESS),
    ({"admin": ZERO}, reasons.VAULT_ZERO_ADDRESS),
    ({"token": "eoa"}, reasons.VAULT_TOKEN_OR_FEED_NOT_CONTRACT),
    ({"feed": "eoa"}, reasons.VAULT_TOKEN_OR_FEED_NOT_CONTRACT),
    ({}, None),
    ({"fee": 1_000, "notice": 365 * 86_400, "cancel_after": 86_400}, None),
    ({"fee": 0, "notice": 0, "cancel_after": 90 * 86_400}, None),
])
def test_constructor_bounds(v, bad, reason):
    """Fee at most 1,000 bps, notice at most a year, cancel_after within 1-90 days,
    non-zero treasury and admin, token and feed contracts; the admin gets both roles."""
    args = {"token": v.token.address, "feed": v.w.feed.address, "treasury": v.treasury,
            "admin": v.operator, "notice": NOTICE, "fee": FEE_BPS,
            "cancel_after": CANCEL_AFTER}
    args.update({k: (v.stranger if value == "eoa" else value) for k, value in bad.items()})
    deploy = lambda: deployers.SUBSCRIPTION_VAULT.deploy(  # noqa: E731
        args["token"], args["feed"], args["treasury"], args["admin"], args["notice"],
        args["fee"], args["cancel_after"])
    if reason is None:
        vault = deploy()
        assert (vault.notice_period(), vault.redemption_fee_bps(), vault.cancel_after()) == (
            args["notice"], args["fee"], args["cancel_after"])
        assert vault.hasRole(OPERATOR_ROLE, v.operator)
        assert vault.hasRole(b"\0" * 32, v.operator)
        assert not vault.hasRole(b"\0" * 32, boa.env.eoa)
    else:
        with boa.reverts(reason):
            deploy()


def test_forward_pricing_refuses_a_nav_published_at_or_before_the_request(v):
    """fulfil_deposit needs a NAV published strictly after the latest request: one
    published before it, or in the same second, is refused; the next one prices it."""
    vault = v.vault
    v.request_deposit(v.alice, 1_500 * USDC)  # in the second of the test's NAV
    with boa.reverts(reasons.VAULT_NAV_NOT_AFTER_REQUEST):
        v.fulfil_deposit(v.alice, 1_500 * USDC)
    tick(600)
    v.request_deposit(v.bob, 1_500 * USDC)
    with boa.reverts(reasons.VAULT_NAV_NOT_AFTER_REQUEST):
        v.fulfil_deposit(v.bob, 1_500 * USDC)
    nav_time = v.nav(20 * 10**8)
    assert v.fulfil_deposit(v.bob, 1_500 * USDC) == shares_at(1_500 * USDC, 20 * 10**8)
    event = one(vault, "DepositFulfilled")
    assert (event.controller, event.assets, event.shares, event.nav, event.nav_time,
            event.operator) == (v.bob, 1_500 * USDC, 75 * SHARE, 20 * 10**8, nav_time,
                                v.operator)
    assert vault.last_fulfilment_nav() == 20 * 10**8
    assert vault.last_fulfilment_time() == now()


def test_forward_pricing_of_redemptions(v):
    """fulfil_redeem likewise prices at a NAV published after the latest request."""
    v.give(v.alice, 10 * SHARE)
    tick(NOTICE)  # the test's NAV is now stale and older than the request below
    v.request_redeem(v.alice, 10 * SHARE)
    tick(NOTICE)
    v.fund(1_000 * USDC)
    with boa.reverts(reasons.VAULT_NAV_STALE):
        v.fulfil_redeem(v.alice, 10 * SHARE)
    v.nav(12 * 10**8)
    gross = gross_at(10 * SHARE, 12 * 10**8)
    assert v.fulfil_redeem(v.alice, 10 * SHARE) == gross - fee_of(gross)


def test_stale_nav_is_refused(v):
    """A NAV older than the feed's heartbeat is refused; at exactly the heartbeat it is
    still fresh."""
    v.request_deposit(v.alice, 3_000 * USDC)
    nav_time = v.nav()
    tick(HEARTBEAT - (now() - nav_time))
    assert now() - nav_time == HEARTBEAT
    v.fulfil_deposit(v.alice, 1_500 * USDC)
    tick()
    with boa.reverts(reasons.VAULT_NAV_STALE):
        v.fulfil_deposit(v.alice, 1_500 * USDC)
    v.nav()
    assert v.fulfil_deposit(v.alice, 1_500 * USDC) == 100 * SHARE


def test_fulfilment_rounds_shares_down_by_less_than_one_unit(v):
    """shares = floor(assets * 1e26 / (nav * 1e6)): the vault keeps the remainder,
    less than one share unit per fulfilment."""
    nav = 1_333_333_337
    v.request_deposit(v.alice, 999_999_999)
    v.nav(nav)
    shares = v.fulfil_deposit(v.alice, 999_999_999)
    assert shares == shares_at(999_999_999, nav)
    assert 0 < 999_999_999 * 10**26 - shares * nav * 10**6 < nav * 10**6
    assert v.vault.maxMint(v.alice) == shares


def test_backing_cap_refuses_fulfilment_beyond_the_active_gpus(v):
    """The token refuses a mint beyond active GPUs x shares per GPU, so a fulfilment
    beyond the backing reverts and nothing moves; registering a GPU first makes it go
    through."""
    vault, token = v.vault, v.token
    assert token.backing()[0] == CAP
    v.request_deposit(v.alice, 60_000 * USDC + 15 * USDC)  # 4,001 shares at 15 USD
    v.nav()
    before = v.state()
    with boa.reverts(reasons.TOKEN_MINT_EXCEEDS_ACTIVE_GPUS):
        v.fulfil_deposit(v.alice, 60_000 * USDC + 15 * USDC)
    assert v.state() == before
    assert v.fulfil_deposit(v.alice, 60_000 * USDC) == CAP  # exactly the cap
    with boa.reverts(reasons.TOKEN_MINT_EXCEEDS_ACTIVE_GPUS):
        v.fulfil_deposit(v.alice, 15 * USDC)
    v.add_gpus(1)
    assert v.fulfil_deposit(v.alice, 15 * USDC) == SHARE
    assert token.totalSupply() == CAP + SHARE <= token.backing()[0]
    assert vault.maxMint(v.alice) == CAP + SHARE


@pytest.mark.parametrize("case, code", [
    ("unregistered", Restriction.RECEIVER_NOT_REGISTERED),
    ("expired", Restriction.RECEIVER_ELIGIBILITY_EXPIRED),
    ("frozen", Restriction.RECEIVER_FROZEN),
    ("blocked", Restriction.RECEIVER_JURISDICTION_BLOCKED),
    ("not accredited", Restriction.RECEIVER_NOT_ACCREDITED),
])
def test_request_deposit_refused_up_front_for_an_ineligible_controller(v, case, code):
    """requestDeposit is refused with the registry's message when the controller could
    not receive newly issued shares, whoever pays; no stablecoin moves."""
    controller = boa.env.generate_address(f"v7540-{case}")
    kyc = v.w.compliance_admin
    if case == "expired":
        register(v.w.registry, kyc, controller, expires_at=now() + 10)
        tick(11)
    elif case == "frozen":
        controller = v.carol
        v.freeze(controller)
    elif case == "blocked":
        register(v.w.registry, kyc, controller, jurisdiction=KP)
    elif case == "not accredited":
        register(v.w.registry, kyc, controller, jurisdiction=CH, accredited=False)
    assert v.token.detectTransferRestriction(ZERO, controller, 0) == code
    v.w.fund(controller, 100 * USDC)
    with boa.env.prank(v.alice):  # paying with Alice's stablecoin, as her operator
        v.vault.setOperator(controller, True)
    before = v.state()
    with boa.reverts(message(code)):
        v.request_deposit(controller, 100 * USDC)
    with boa.reverts(message(code)):
        v.request_deposit(v.alice, 100 * USDC, controller=controller, sender=controller)
    assert v.state() == before


def test_request_redeem_refused_for_a_frozen_owner(v):
    """Escrow is a transfer: a frozen owner is refused with the token's message, whole
    or partly frozen."""
    v.give(v.alice, 10 * SHARE)
    v.freeze(v.alice)
    before = v.state()
    with boa.reverts(message(Restriction.SENDER_FROZEN)):
        v.request_redeem(v.alice, SHARE)
    assert v.state() == before
    v.freeze(v.alice, False)
    with boa.env.prank(v.operator):
        v.token.grantRole(keccak(text="FREEZER_ROLE"), v.operator)
        v.token.setFrozenTokens(v.alice, 6 * SHARE)
    with boa.reverts(message(Restriction.AMOUNT_FROZEN)):
        v.request_redeem(v.alice, 5 * SHARE)
    v.request_redeem(v.alice, 4 * SHARE)
    assert v.vault.pendingRedeemRequest(0, v.alice) == 4 * SHARE


def test_notice_period(v):
    """fulfil_redeem waits `notice_period` after the latest redeem request: one second
    early it is refused, at exactly the end it goes through."""
    v.give(v.alice, 10 * SHARE)
    v.request_redeem(v.alice, 10 * SHARE)
    requested = now()
    v.fund(1_000 * USDC)
    tick(NOTICE - 2)
    v.nav()  # fresh and after the request, at requested + NOTICE - 1
    with boa.reverts(reasons.VAULT_NOTICE_NOT_OVER):
        v.fulfil_redeem(v.alice, 10 * SHARE)
    tick()
    assert now() == requested + NOTICE
    v.fulfil_redeem(v.alice, 10 * SHARE)
    assert v.vault.maxRedeem(v.alice) == 10 * SHARE


@pytest.mark.parametrize("shares, gross, fee", [
    (1_501 * 10**12, 1_501, 8),  # 7.505 rounds up to 8
    (200 * 10**12, 200, 1),  # exactly 1
    (10**12, 1, 1),  # one unit: all fee
    (10**12 - 1, 0, 0),  # worth nothing
    (1_000 * SHARE, 1_000 * USDC, 5 * USDC),
])
def test_redemption_fee_rounds_up(v, shares, gross, fee):
    """fee = ceil(gross * fee_bps / 1e4) of gross = floor(shares * nav * 1e6 / 1e26);
    the controller's claim is gross - fee, the fee stays with the SPV (in the funds it
    never set aside)."""
    nav = 10**8  # 1 USD
    assert gross_at(shares, nav) == gross and fee_of(gross) == fee
    v.give(v.alice, shares)
    v.request_redeem(v.alice, shares)
    tick(NOTICE)
    nav_time = v.nav(nav)
    v.fund(10_000 * USDC)
    assert v.fulfil_redeem(v.alice, shares) == gross - fee
    event = one(v.vault, "RedeemFulfilled")
    assert (event.controller, event.shares, event.assets, event.fee, event.nav,
            event.nav_time, event.operator) == (v.alice, shares, gross - fee, fee, nav,
                                                nav_time, v.operator)
    assert v.vault.redemption_funds() == 10_000 * USDC - (gross - fee)
    assert v.vault.maxWithdraw(v.alice) == gross - fee
    assert v.vault.maxRedeem(v.alice) == shares


def test_redemption_funds_short(v):
    """fulfil_redeem sets the net proceeds aside from the funded stablecoin: one unit
    short is refused, exactly enough goes through and leaves nothing."""
    v.give(v.alice, 100 * SHARE)
    v.request_redeem(v.alice, 100 * SHARE)
    tick(NOTICE)
    v.nav()
    net = 1_500 * USDC - fee_of(1_500 * USDC)
    v.fund(net - 1)
    with boa.reverts(reasons.VAULT_REDEMPTION_FUNDS_SHORT):
        v.fulfil_redeem(v.alice, 100 * SHARE)
    v.fund(1)
    with boa.env.prank(v.operator):
        v.vault.fulfil_redeem(v.alice, 100 * SHARE)
    assert v.vault.redemption_funds() == 0


def test_redemption_funds_events_and_withdrawal_of_unallocated_funds_only(v):
    """fund_redemptions pulls from the operator and logs the new funds;
    withdraw_redemption_funds sends at most the unallocated funds, to the treasury."""
    vault, stable = v.vault, v.stable
    operator_cash = stable.balanceOf(v.operator)
    v.fund(5_000 * USDC)
    event = one(vault, "RedemptionFundsChanged")
    assert (event.operator, event.added, event.withdrawn, event.funds) == (
        v.operator, 5_000 * USDC, 0, 5_000 * USDC)
    assert stable.balanceOf(v.operator) == operator_cash - 5_000 * USDC
    net = v.redeemed(v.alice, 100 * SHARE)  # funds exactly its own net on top
    assert vault.redemption_funds() == 5_000 * USDC
    with boa.env.prank(v.operator):
        with boa.reverts(reasons.VAULT_EXCEEDS_REDEMPTION_FUNDS):
            vault.withdraw_redemption_funds(5_000 * USDC + 1)
        vault.withdraw_redemption_funds(2_000 * USDC)
        event = one(vault, "RedemptionFundsChanged")
    assert (event.operator, event.added, event.withdrawn, event.funds) == (
        v.operator, 0, 2_000 * USDC, 3_000 * USDC)
    assert stable.balanceOf(v.treasury) == 2_000 * USDC
    assert stable.balanceOf(vault.address) == 3_000 * USDC + net


def test_cancel_deposit_returns_exactly_what_was_escrowed(v):
    """Cancelled `cancel_after` after the request: the whole pending amount goes back to
    the receiver, with an event, and the controller may request again."""
    vault, stable = v.vault, v.stable
    alice_cash = stable.balanceOf(v.alice)
    v.request_deposit(v.alice, 123 * USDC + 5)
    tick(CANCEL_AFTER)
    with boa.env.prank(v.alice):
        assert vault.cancelDepositRequest(v.carol, v.alice) == 123 * USDC + 5
        event = one(vault, "DepositRequestCancelled")
    assert (event.controller, event.receiver, event.assets) == (v.alice, v.carol, 123 * USDC + 5)
    assert stable.balanceOf(v.alice) == alice_cash - 123 * USDC - 5
    assert stable.balanceOf(v.carol) == FUNDS + 123 * USDC + 5
    assert vault.request(v.alice)[:2] == (0, 0)
    assert vault.total_pending_deposit_assets() == 0
    assert stable.balanceOf(vault.address) == 0
    v.request_deposit(v.alice, USDC)
    assert vault.pendingDepositRequest(0, v.alice) == USDC


def test_cancel_redeem_returns_exactly_the_escrowed_shares(v):
    vault, token = v.vault, v.token
    v.give(v.alice, 10 * SHARE + 3)
    v.request_redeem(v.alice, 10 * SHARE + 3)
    tick(CANCEL_AFTER)
    with boa.env.prank(v.alice):
        assert vault.cancelRedeemRequest(v.bob, v.alice) == 10 * SHARE + 3
        event = one(vault, "RedeemRequestCancelled")
    assert (event.controller, event.receiver, event.shares) == (v.alice, v.bob, 10 * SHARE + 3)
    assert token.balanceOf(v.bob) == 10 * SHARE + 3
    assert vault.request(v.alice)[4:6] == (0, 0)
    assert vault.total_pending_redeem_shares() == 0 and token.balanceOf(vault.address) == 0
    with boa.env.prank(v.alice), boa.reverts(reasons.VAULT_NOTHING_PENDING):
        vault.cancelRedeemRequest(v.alice, v.alice)


@pytest.mark.parametrize("kind", ["deposit", "redeem"])
def test_a_request_is_binding_until_cancel_after(v, kind):
    """A request cannot be cancelled (VAULT_REQUEST_LOCKED) until `cancel_after` has
    passed since it, NAV or no NAV since, nor topped up (VAULT_REQUEST_PENDING); from
    then on it cancels (never stuck), unless fulfilled meanwhile."""
    vault = v.vault
    if kind == "deposit":
        request = lambda amount: v.request_deposit(v.alice, amount * USDC)  # noqa: E731
        cancel = vault.cancelDepositRequest
        unit = USDC
    else:
        v.give(v.alice, 20 * SHARE)
        request = lambda amount: v.request_redeem(v.alice, amount * SHARE)  # noqa: E731
        cancel = vault.cancelRedeemRequest
        unit = SHARE
    request(10)
    requested = now()
    with boa.env.prank(v.alice), boa.reverts(LOCKED):
        cancel(v.alice, v.alice)  # no NAV since the request: still binding
    tick(3_600)
    with boa.reverts(PENDING):
        request(5)
    v.nav(14 * 10**8)
    tick(requested + CANCEL_AFTER - 1 - now())
    with boa.env.prank(v.alice), boa.reverts(LOCKED):
        cancel(v.alice, v.alice)
    tick()
    with boa.env.prank(v.alice):
        assert cancel(v.alice, v.alice) == 10 * unit


def test_a_request_made_before_the_first_nav_cancels_after_cancel_after(
        registry, factory, stablecoin, admin, operator, oracle_admin, compliance_admin):
    """The feed has never reported: the request is never stuck either."""
    w = vault_world(registry, factory, stablecoin, admin, operator, oracle_admin,
                    compliance_admin, label="VNONAV")
    alice = w.investor("vnonav-alice")
    w.fund(alice, 1_000 * USDC)
    with boa.env.prank(alice):
        w.vault.requestDeposit(1_000 * USDC, alice, alice)
        tick(CANCEL_AFTER - 1)
        with boa.reverts(LOCKED):
            w.vault.cancelDepositRequest(alice, alice)
        tick()
        assert w.vault.cancelDepositRequest(alice, alice) == 1_000 * USDC


def test_only_the_operator_role_fulfils_funds_and_withdraws(v):
    """fulfil_deposit, fulfil_redeem, fund_redemptions, withdraw_redemption_funds: only
    OPERATOR_ROLE of the vault (not the controller, not the token's roles); a holder the
    admin grants the role may."""
    vault = v.vault
    v.request_deposit(v.alice, 1_500 * USDC)
    v.give(v.bob, 10 * SHARE)
    v.request_redeem(v.bob, 10 * SHARE)
    tick(NOTICE)
    v.nav()
    v.fund(1_000 * USDC)
    calls = {
        "fulfil_deposit": lambda: vault.fulfil_deposit(v.alice, 1_500 * USDC),
        "fulfil_redeem": lambda: vault.fulfil_redeem(v.bob, 10 * SHARE),
        "fund_redemptions": lambda: vault.fund_redemptions(USDC),
        "withdraw_redemption_funds": lambda: vault.withdraw_redemption_funds(USDC),
    }
    before = v.state()
    for intruder in (v.alice, v.bob, v.mallory, v.stranger, v.treasury):
        for call in calls.values():
            with boa.env.prank(intruder), boa.reverts(MISSING_ROLE):
                call()
    assert v.state() == before
    with boa.env.prank(v.operator):
        vault.grantRole(OPERATOR_ROLE, v.carol)
    with boa.env.prank(v.carol):
        v.stable.approve(vault.address, MAX)
        for call in calls.values():
            call()


def test_escrowed_and_unclaimed_shares_earn_income_for_their_controller(v):
    """Income distributed while the vault holds shares for controllers (Alice's 100
    issued and unclaimed, Bob's 300 escrowed for redemption) is theirs pro rata, as for
    Carol's 600 in her wallet; each claims exactly its part, once; after Alice claims 40
    shares and Bob's redemption is half burnt, the next distribution follows the new
    holdings."""
    vault, token, stable = v.vault, v.token, v.stable
    v.deposited(v.alice, 1_500 * USDC)
    v.give(v.bob, 300 * SHARE)
    v.request_redeem(v.bob, 300 * SHARE)
    v.give(v.carol, 600 * SHARE)
    v.distribute(1_000 * USDC)
    assert vault.income_owed(v.alice) == 100 * USDC
    assert vault.income_owed(v.bob) == 300 * USDC
    assert token.claimable(v.carol) == 600 * USDC
    with boa.env.prank(v.alice):
        assert vault.claim_income(v.alice) == 100 * USDC
        event = one(vault, "IncomeClaimed")
    assert (event.controller, event.receiver, event.amount) == (v.alice, v.alice, 100 * USDC)
    with boa.env.prank(v.alice), boa.reverts(reasons.VAULT_NO_INCOME):
        vault.claim_income(v.alice)
    with boa.env.prank(v.alice):
        vault.mint(40 * SHARE, v.alice)
    tick(NOTICE)
    v.nav()
    v.fund(10_000 * USDC)
    v.fulfil_redeem(v.bob, 150 * SHARE)
    # Held now: Alice 60, Bob 150; wallets: Alice 40, Carol 600; supply 850.
    v.distribute(1_700 * USDC)
    assert vault.income_owed(v.alice) == 120 * USDC
    assert vault.income_owed(v.bob) == 300 * USDC + 300 * USDC
    assert token.claimable(v.alice) == 80 * USDC
    bob_cash = stable.balanceOf(v.bob)
    with boa.env.prank(v.bob):
        assert vault.claim_income(v.carol, v.bob) == 600 * USDC
    assert stable.balanceOf(v.carol) == FUNDS + 600 * USDC and stable.balanceOf(v.bob) == bob_cash
    with boa.env.prank(v.alice):
        assert vault.claim_income(v.alice) == 120 * USDC
    assert vault.total_income_owed() == 0


def test_income_is_split_pro_rata_with_rounding_in_the_vaults_favour(v):
    """Odd amounts: each controller's income is floor(held * floor(received * 1e36 /
    held_total) / 1e36); the remainder stays in the vault, unallocated, below one unit
    per controller."""
    vault, token, stable = v.vault, v.token, v.stable
    v.deposited(v.alice, 1_000 * USDC + 1)  # 66.666... shares
    v.give(v.bob, 7 * SHARE + 5)
    v.request_redeem(v.bob, 7 * SHARE + 5)
    v.give(v.carol, 333 * SHARE)
    v.distribute(1_234_567)
    held = {v.alice: vault.maxMint(v.alice), v.bob: 7 * SHARE + 5}
    received = token.claimable(vault.address)
    per_share = received * MAGNITUDE // sum(held.values())
    for who, shares in held.items():
        assert vault.income_owed(who) == shares * per_share // MAGNITUDE
    paid = 0
    for who in held:
        with boa.env.prank(who):
            paid += vault.claim_income(who)
    dust = stable.balanceOf(vault.address)
    assert dust == received - paid and 0 <= dust < len(held)


@pytest.mark.parametrize("claim", ["redeem", "withdraw", "claim_income"])
def test_payee_checks_frozen_or_blocked_controller_or_receiver(v, claim):
    """Stablecoin is paid for a controller to a receiver only when the registry's
    income_code of both is 0: a frozen controller, a frozen receiver, a receiver
    resident where the rules block holders are refused with the restriction's message,
    a zero receiver with VAULT_ZERO_ADDRESS, and nothing changes; unfrozen, it pays."""
    vault = v.vault
    v.redeemed(v.bob, 100 * SHARE)
    v.give(v.bob, 100 * SHARE)
    v.request_redeem(v.bob, 100 * SHARE)  # escrowed: earns income
    v.distribute(1_000 * USDC)
    blocked = boa.env.generate_address("v7540-kp")
    register(v.w.registry, v.w.compliance_admin, blocked, jurisdiction=KP)
    amount = {"redeem": 10 * SHARE, "withdraw": 10 * USDC, "claim_income": None}[claim]

    def call(receiver):
        with boa.env.prank(v.bob):
            if claim == "claim_income":
                return vault.claim_income(receiver, v.bob)
            return getattr(vault, claim)(amount, receiver, v.bob)

    before = v.state()
    v.freeze(v.bob)
    for receiver in (v.bob, v.carol):
        with boa.reverts(message(Restriction.RECEIVER_FROZEN)):
            call(receiver)
    v.freeze(v.bob, False)
    v.freeze(v.carol)
    with boa.reverts(message(Restriction.RECEIVER_FROZEN)):
        call(v.carol)
    with boa.reverts(message(Restriction.RECEIVER_JURISDICTION_BLOCKED)):
        call(blocked)
    with boa.reverts(reasons.VAULT_ZERO_ADDRESS):
        call(ZERO)
    v.freeze(v.carol, False)
    assert v.state() == before
    assert call(v.carol) > 0


def test_claim_shares_to_an_ineligible_receiver_is_refused_by_the_token(v):
    """Claiming shares is a token transfer from the vault: the receiver must be able to
    hold them."""
    v.deposited(v.alice, 1_500 * USDC)
    before = v.state()
    with boa.env.prank(v.alice), boa.reverts(message(Restriction.RECEIVER_NOT_REGISTERED)):
        v.vault.deposit(USDC, v.stranger)
    v.freeze(v.carol)
    with boa.env.prank(v.alice), boa.reverts(message(Restriction.RECEIVER_FROZEN)):
        v.vault.mint(SHARE, v.carol)
    v.freeze(v.carol, False)
    assert v.state() == before


def test_zero_amounts_are_refused(v):
    vault = v.vault
    v.deposited(v.alice, 1_500 * USDC)
    v.redeemed(v.alice, SHARE)
    v.request_deposit(v.alice, USDC)
    v.give(v.alice, SHARE)
    v.request_redeem(v.alice, SHARE)
    before = v.state()
    with boa.env.prank(v.alice):
        with boa.reverts(reasons.VAULT_ZERO_AMOUNT):
            vault.requestDeposit(0, v.alice, v.alice)
        with boa.reverts(reasons.VAULT_ZERO_AMOUNT):
            vault.requestRedeem(0, v.alice, v.alice)
        for claim in ("deposit", "mint"):
            with boa.reverts(EXCEEDS_CLAIMABLE):
                getattr(vault, claim)(0, v.alice)
        for claim in ("redeem", "withdraw"):
            with boa.reverts(EXCEEDS_CLAIMABLE):
                getattr(vault, claim)(0, v.alice, v.alice)
    with boa.env.prank(v.operator):
        with boa.reverts(reasons.VAULT_EXCEEDS_PENDING):
            vault.fulfil_deposit(v.alice, 0)
        with boa.reverts(reasons.VAULT_EXCEEDS_PENDING):
            vault.fulfil_redeem(v.alice, 0)
        with boa.reverts(reasons.VAULT_ZERO_AMOUNT):
            vault.fund_redemptions(0)
        with boa.reverts(reasons.VAULT_EXCEEDS_REDEMPTION_FUNDS):
            vault.withdraw_redemption_funds(0)
    assert v.state() == before


def test_fulfilment_beyond_the_pending_amount_is_refused(v):
    v.request_deposit(v.alice, 100 * USDC)
    v.give(v.alice, 10 * SHARE)
    v.request_redeem(v.alice, 10 * SHARE)
    tick(NOTICE)
    v.nav()
    v.fund(1_000 * USDC)
    with boa.reverts(reasons.VAULT_EXCEEDS_PENDING):
        v.fulfil_deposit(v.alice, 100 * USDC + 1)
    with boa.reverts(reasons.VAULT_EXCEEDS_PENDING):
        v.fulfil_redeem(v.alice, 10 * SHARE + 1)
    with boa.reverts(reasons.VAULT_EXCEEDS_PENDING):
        v.fulfil_deposit(v.bob, 1)


def test_no_claim_twice(v):
    """Everything claimed once: the next claim of any kind, or cancellation, is refused
    and the vault keeps nothing of the controller's."""
    vault = v.vault
    v.deposited(v.alice, 1_500 * USDC)
    v.redeemed(v.alice, 100 * SHARE)
    with boa.env.prank(v.alice):
        vault.deposit(1_000 * USDC, v.alice)
        vault.mint(vault.maxMint(v.alice), v.alice)
        vault.withdraw(1_000 * USDC, v.alice, v.alice)
        vault.redeem(vault.maxRedeem(v.alice), v.alice, v.alice)
        for claim, args in (("deposit", (1, v.alice)), ("mint", (1, v.alice)),
                            ("redeem", (1, v.alice, v.alice)),
                            ("withdraw", (1, v.alice, v.alice))):
            with boa.reverts(EXCEEDS_CLAIMABLE):
                getattr(vault, claim)(*args)
        with boa.reverts(reasons.VAULT_NOTHING_PENDING):
            vault.cancelDepositRequest(v.alice, v.alice)
        with boa.reverts(reasons.VAULT_NOTHING_PENDING):
            vault.cancelRedeemRequest(v.alice, v.alice)
    assert v.token.balanceOf(v.alice) == 100 * SHARE
    assert v.stable.balanceOf(vault.address) == 0
    assert vault.request(v.alice)[2:4] + vault.request(v.alice)[6:] == (0, 0, 0, 0)


def test_request_view_reports_everything(v):
    """`request(controller)`: pending deposit and its time, claimable deposit assets and
    shares, pending redeem and its time, claimable redeem shares and assets."""
    v.request_deposit(v.alice, 3_000 * USDC)
    deposit_time = now()
    v.give(v.alice, 20 * SHARE)
    v.request_redeem(v.alice, 20 * SHARE)
    redeem_time = now()
    tick(NOTICE)
    v.nav()
    v.fulfil_deposit(v.alice, 1_500 * USDC)
    v.fund(1_000 * USDC)
    assets = v.fulfil_redeem(v.alice, 5 * SHARE)
    assert v.vault.request(v.alice) == (1_500 * USDC, deposit_time, 1_500 * USDC, 100 * SHARE,
                                        15 * SHARE, redeem_time, 5 * SHARE, assets)


# =================================================================================
# Exploits, as the attacker would try them
# =================================================================================


def test_exploit_a_requester_who_knows_the_next_nav_cannot_buy_at_the_published_one(v):
    """Mallory knows the next report moves the NAV from 15 to 20 USD. Requesting in the
    second the 15 USD NAV is published, or any time after it, she cannot be filled at
    15: the operator's fulfilment is refused until the 20 USD NAV is out, and then she
    pays 20."""
    tick(100)
    v.request_deposit(v.mallory, 30_000 * USDC)
    v.w.publish_nav(NAV_15)  # same second as the request
    with boa.reverts(reasons.VAULT_NAV_NOT_AFTER_REQUEST):
        v.fulfil_deposit(v.mallory, 30_000 * USDC)
    tick(30)
    with boa.reverts(PENDING):  # nor can she re-request after it, at it
        v.request_deposit(v.mallory, 1)
    v.nav(20 * 10**8)
    assert v.fulfil_deposit(v.mallory, 30_000 * USDC) == shares_at(30_000 * USDC, 20 * 10**8)
    assert v.vault.maxMint(v.mallory) < 30_000 * USDC * 10**12 // 15


def test_exploit_a_requester_cannot_cancel_after_seeing_a_bad_nav(v):
    """Mallory subscribes; the next NAV comes out at 18 USD instead of the 15 she hoped
    for. Neither she nor her operator can pull the request back before cancel_after."""
    v.request_deposit(v.mallory, 30_000 * USDC)
    v.nav(18 * 10**8)
    with boa.env.prank(v.mallory):
        v.vault.setOperator(v.bob, True)
    for sender in (v.mallory, v.bob):
        with boa.env.prank(sender), boa.reverts(LOCKED):
            v.vault.cancelDepositRequest(sender, v.mallory)
    assert v.fulfil_deposit(v.mallory, 30_000 * USDC) == shares_at(30_000 * USDC, 18 * 10**8)


@pytest.mark.parametrize("kind", ["deposit", "redeem"])
def test_exploit_a_top_up_does_not_unlock_a_priced_request(v, kind):
    """Mallory's request is priced by a NAV bad for her; she would top it up by one unit
    to make it look new: refused, and the request stays binding."""
    vault = v.vault
    if kind == "deposit":
        v.request_deposit(v.mallory, 30_000 * USDC)
        v.nav(18 * 10**8)  # bad for a buyer
        top_up = lambda: v.request_deposit(v.mallory, 1)  # noqa: E731
        cancel = vault.cancelDepositRequest
    else:
        v.give(v.mallory, 1_000 * SHARE + 1)
        v.request_redeem(v.mallory, 1_000 * SHARE)
        v.nav(12 * 10**8)  # bad for a seller
        top_up = lambda: v.request_redeem(v.mallory, 1)  # noqa: E731
        cancel = vault.cancelRedeemRequest
    with boa.env.prank(v.mallory), boa.reverts(LOCKED):
        cancel(v.mallory, v.mallory)
    tick()
    with boa.reverts(PENDING):
        top_up()
    with boa.env.prank(v.mallory), boa.reverts(LOCKED):
        cancel(v.mallory, v.mallory)


def test_exploit_a_stranger_cannot_restart_someone_elses_notice_period(v):
    """Mallory holds a few share units and would add one to Alice's redemption just
    before its notice period ends, restarting it: refused, Alice is fulfilled on time."""
    v.give(v.alice, 100 * SHARE)
    v.give(v.mallory, 10)
    v.request_redeem(v.alice, 100 * SHARE)
    tick(NOTICE - 10)
    with boa.reverts(NOT_CONTROLLER):
        v.request_redeem(v.mallory, 1, controller=v.alice)
    tick(10)
    v.nav()
    v.fund(10_000 * USDC)
    v.fulfil_redeem(v.alice, 100 * SHARE)
    assert v.vault.maxRedeem(v.alice) == 100 * SHARE


def test_exploit_a_stranger_cannot_hold_back_someone_elses_fulfilment(v):
    """Mallory would add one unit to Alice's subscription in the second of each NAV, so
    that no NAV is ever after Alice's latest request: refused."""
    v.request_deposit(v.alice, 1_500 * USDC)
    v.nav()
    with boa.reverts(NOT_CONTROLLER):
        v.request_deposit(v.mallory, 1, controller=v.alice)
    assert v.fulfil_deposit(v.alice, 1_500 * USDC) == 100 * SHARE


@pytest.mark.parametrize("kind", ["deposit", "redeem"])
def test_exploit_a_top_up_cannot_reject_a_nav_in_flight(v, kind):
    """Mallory sees the next NAV report (signed off-chain, in the mempool) and dislikes
    it; a one-unit top-up landing first, in the same block, would move her request time
    past the report, so the operator could not fulfil at it (a free option on which NAV
    prices the order): refused, and the order fills at that NAV."""
    if kind == "deposit":
        v.request_deposit(v.mallory, 30_000 * USDC)
        top_up = lambda: v.request_deposit(v.mallory, 1)  # noqa: E731
        tick(3_600)
    else:
        v.give(v.mallory, 1_000 * SHARE + 1)
        v.request_redeem(v.mallory, 1_000 * SHARE)
        top_up = lambda: v.request_redeem(v.mallory, 1)  # noqa: E731
        tick(NOTICE)
        v.fund(20_000 * USDC)
    with boa.reverts(PENDING):
        top_up()
    v.w.publish_nav(18 * 10**8)  # the report lands in the same second
    if kind == "deposit":
        assert v.fulfil_deposit(v.mallory, 30_000 * USDC) == shares_at(30_000 * USDC,
                                                                       18 * 10**8)
    else:
        gross = gross_at(1_000 * SHARE, 18 * 10**8)
        assert v.fulfil_redeem(v.mallory, 1_000 * SHARE) == gross - fee_of(gross)


def test_exploit_the_operator_cannot_move_escrowed_subscriptions(v):
    """The SPV operator, holding every role of the vault, tries to get at 60,000 USDC of
    escrowed subscriptions: without the shares minted (the backing is full) fulfilment
    reverts and nothing moves; withdraw_redemption_funds sees no funds; it cannot cancel
    or claim for the investors. Minting within the backing, the stablecoin goes to the
    treasury only, exactly the fulfilled amount, and the shares exist."""
    vault, token, stable = v.vault, v.token, v.stable
    v.give(v.carol, 3_000 * SHARE)  # 1,000 shares of room left
    v.request_deposit(v.alice, 30_000 * USDC)
    v.request_deposit(v.bob, 30_000 * USDC)
    with boa.env.prank(v.operator):
        with boa.reverts(reasons.VAULT_NAV_NOT_AFTER_REQUEST):
            vault.fulfil_deposit(v.alice, 30_000 * USDC)
        with boa.reverts(reasons.VAULT_EXCEEDS_REDEMPTION_FUNDS):
            vault.withdraw_redemption_funds(1)
        with boa.reverts(NOT_CONTROLLER):
            vault.cancelDepositRequest(v.operator, v.alice)
        with boa.reverts(EXCEEDS_CLAIMABLE):
            vault.deposit(1, v.operator, v.alice)
    v.nav()
    before = v.state()
    with boa.env.prank(v.operator):
        with boa.reverts(reasons.TOKEN_MINT_EXCEEDS_ACTIVE_GPUS):
            vault.fulfil_deposit(v.alice, 30_000 * USDC)
        vault.fund_redemptions(USDC)
        with boa.reverts(reasons.VAULT_EXCEEDS_REDEMPTION_FUNDS):
            vault.withdraw_redemption_funds(USDC + 1)
        vault.withdraw_redemption_funds(USDC)
    after = v.state()
    assert stable.balanceOf(v.treasury) == USDC  # its own unit back, to the treasury
    assert stable.balanceOf(vault.address) == 60_000 * USDC
    assert after[:4] == before[:4]
    operator_cash = stable.balanceOf(v.operator)
    assert v.fulfil_deposit(v.alice, 15_000 * USDC) == 1_000 * SHARE
    assert stable.balanceOf(v.treasury) == USDC + 15_000 * USDC
    assert stable.balanceOf(v.operator) == operator_cash
    assert token.balanceOf(vault.address) == 1_000 * SHARE == token.totalSupply() - 3_000 * SHARE
    assert stable.balanceOf(vault.address) == 45_000 * USDC == vault.total_pending_deposit_assets()


def _functions(source: str) -> dict[str, str]:
    """Top-level functions of a Vyper source: name -> body."""
    out = {}
    for block in re.split(r"\n(?=\S)", source):
        if match := re.match(r"def (\w+)\(", block):
            out[match[1]] = block
    return out


def test_exploit_stablecoin_leaves_only_to_the_treasury_or_a_controllers_receiver():
    """In the source: the stablecoin leaves the vault only through `_pay`, and every
    `_pay` goes to the treasury, or to `receiver` in a function that checked the caller
    is the controller or its operator before (so the operator's only destination is the
    treasury); `fulfil_deposit` pays the treasury only after minting the shares."""
    functions = _functions(SOURCE.read_text())
    direct = {name for name, body in functions.items() if "IERC20(asset).transfer(" in body}
    assert direct == {"_pay"}
    outflows = {name: re.findall(r"self\._pay\((\w+),", body)
                for name, body in functions.items()}
    outflows = {name: dests for name, dests in outflows.items() if dests}
    assert outflows == {
        "fulfil_deposit": ["treasury"], "cancelDepositRequest": ["receiver"],
        "withdraw_redemption_funds": ["treasury"], "claim_income": ["receiver"],
        "_claim_assets": ["receiver"],
    }
    for name, dests in outflows.items():
        body = functions[name]
        if dests == ["receiver"]:
            check = body.find("self._check_controller(controller)")
            assert 0 <= check < body.find("self._pay("), name
    body = functions["fulfil_deposit"]
    assert 0 <= body.find("IShareToken(share).mint(self, shares)") < body.find(
        "self._pay(treasury")
    assert "transferFrom(" not in body


def test_exploit_withdraw_redemption_funds_cannot_take_claimable_money_or_income(v):
    """The operator funds redemptions, fulfils one, income accrues on escrowed shares,
    subscriptions are pending: withdraw_redemption_funds reaches only what was never
    set aside, and afterwards every investor is paid in full."""
    vault, stable = v.vault, v.stable
    v.fund(7_000 * USDC)
    net = v.redeemed(v.bob, 200 * SHARE)
    v.give(v.carol, 100 * SHARE)
    v.request_redeem(v.carol, 100 * SHARE)
    v.distribute(3_000 * USDC)  # supply 100 (all escrowed for Carol): all hers
    v.request_deposit(v.alice, 5_000 * USDC)
    tick(CANCEL_AFTER)
    assert vault.redemption_funds() == 7_000 * USDC
    with boa.env.prank(v.operator):
        with boa.reverts(reasons.VAULT_EXCEEDS_REDEMPTION_FUNDS):
            vault.withdraw_redemption_funds(7_000 * USDC + 1)
        vault.withdraw_redemption_funds(7_000 * USDC)
    with boa.env.prank(v.bob):
        assert vault.redeem(200 * SHARE, v.bob, v.bob) == net
    with boa.env.prank(v.carol):
        assert vault.claim_income(v.carol) == 3_000 * USDC
    with boa.env.prank(v.alice):
        assert vault.cancelDepositRequest(v.alice, v.alice) == 5_000 * USDC
    assert stable.balanceOf(vault.address) == 0


def test_exploit_a_third_party_cannot_use_someone_elses_funds_shares_or_claims(v):
    """Alice approved the vault for her stablecoin and shares and has a pending
    subscription, claimable shares, claimable proceeds, escrowed shares and income.
    Mallory, not her operator, can request with none of it, add to none of Alice's
    requests, claim none of it, cancel none of it; making herself Alice's operator is
    impossible; Alice's operator Bob can, until revoked."""
    vault = v.vault
    v.deposited(v.alice, 1_500 * USDC)
    v.redeemed(v.alice, 100 * SHARE)
    v.give(v.alice, 200 * SHARE)
    v.request_redeem(v.alice, 100 * SHARE)
    v.request_deposit(v.alice, 700 * USDC)
    v.distribute(1_000 * USDC)
    tick(CANCEL_AFTER)  # Alice's requests may be cancelled
    attempts = {
        NOT_OWNER: [lambda me: vault.requestDeposit(USDC, me, v.alice),
                    lambda me: vault.requestRedeem(SHARE, me, v.alice)],
        NOT_CONTROLLER: [lambda me: vault.deposit(USDC, me, v.alice),
                         lambda me: vault.mint(SHARE, me, v.alice),
                         lambda me: vault.redeem(SHARE, me, v.alice),
                         lambda me: vault.withdraw(USDC, me, v.alice),
                         lambda me: vault.cancelDepositRequest(me, v.alice),
                         lambda me: vault.cancelRedeemRequest(me, v.alice),
                         lambda me: vault.claim_income(me, v.alice),
                         lambda me: vault.requestDeposit(USDC, v.alice, me),
                         lambda me: vault.requestRedeem(SHARE, v.alice, me)],
    }
    v.give(v.mallory, SHARE)
    v.give(v.bob, SHARE)
    before = v.state()
    for reason, calls in attempts.items():
        for call in calls:
            with boa.env.prank(v.mallory), boa.reverts(reason):
                call(v.mallory)
    with boa.env.prank(v.mallory), boa.reverts(reasons.VAULT_OPERATOR_IS_SELF):
        vault.setOperator(v.mallory, True)
    assert v.state() == before
    with boa.env.prank(v.alice):
        vault.setOperator(v.bob, True)
    with boa.env.anchor(), boa.env.prank(v.bob):
        for calls in attempts.values():
            for call in calls:
                call(v.bob)
    with boa.env.prank(v.alice):
        vault.setOperator(v.bob, False)
    with boa.env.prank(v.bob), boa.reverts(NOT_CONTROLLER):
        vault.claim_income(v.bob, v.alice)


# =================================================================================
# Reentrancy through the stablecoin's transfer hook
# =================================================================================


class HookVault:
    """A vault whose stablecoin (the token's income token) is a HookToken: once armed,
    its transfer / transferFrom calls the vault with the hook's calldata, msg.sender the
    hook token. The hook token's address is a complete participant (registered, holding
    stablecoin and shares, both approved to the vault, Erin's ERC-7540 operator, a
    cancellable subscription,
    claimable shares and proceeds, an escrowed redemption ready to fulfil or cancel,
    income owed, the vault's OPERATOR_ROLE), so each re-entry succeeds on its own: only
    the vault's lock stops it. The token owes the vault income, so the outer calls that
    collect it fire the hook inside the token's claim."""

    def __init__(self, registry, factory, admin, operator, oracle_admin, compliance_admin):
        self.hook = deployers.HOOK_TOKEN.deploy()
        w = self.w = vault_world(registry, factory, self.hook, admin, operator, oracle_admin,
                                 compliance_admin, label="VHOOK")
        vault, token, h = w.vault, w.token, self.hook.address
        self.h = h
        register(registry, compliance_admin, h, accredited=True)
        self.alice, self.bob, self.carol, self.dave, self.erin, self.frank = (
            w.investor(f"vhook-{n}") for n in ("alice", "bob", "carol", "dave", "erin", "frank"))
        for who in (self.alice, self.bob, self.carol, self.dave, self.frank, operator, h):
            w.fund(who, FUNDS)
        with boa.env.prank(self.erin):  # h requests for Erin (it has requests pending)
            vault.setOperator(h, True)
        with boa.env.prank(h):
            token.approve(vault.address, MAX)
        with boa.env.prank(operator):
            self.hook.approve(token.address, MAX)
            vault.grantRole(OPERATOR_ROLE, h)
            token.mint(h, 200 * SHARE)
            token.mint(self.bob, 400 * SHARE)
        for who, assets in ((h, 1_500 * USDC), (self.carol, 1_500 * USDC),
                            (self.dave, 3_000 * USDC), (self.alice, 100 * USDC)):
            with boa.env.prank(who):
                vault.requestDeposit(assets, who, who)
        for who, shares in ((h, 100 * SHARE), (self.bob, 300 * SHARE)):
            with boa.env.prank(who):
                vault.requestRedeem(shares, who, who)
        tick(NOTICE)
        w.publish_nav(NAV_15)
        with boa.env.prank(operator):
            vault.fund_redemptions(20_000 * USDC)
            vault.fulfil_deposit(h, 1_400 * USDC)  # 100 USDC stay pending
            vault.fulfil_deposit(self.carol, 1_500 * USDC)
            vault.fulfil_redeem(h, 50 * SHARE)  # 50 shares stay escrowed
            vault.fulfil_redeem(self.bob, 300 * SHARE)
            token.distribute(1_000 * USDC)
        with boa.env.prank(h):
            vault.claim_income(h)  # collected: h and Carol are owed income
        with boa.env.prank(operator):
            token.distribute(1_000 * USDC)  # and the token owes the vault more
        tick(CANCEL_AFTER - NOTICE)  # the pending requests may be cancelled
        w.publish_nav(NAV_15)  # a fresh NAV after them: they may be fulfilled too
        assert token.claimable(vault.address) > 0
        assert vault.income_owed(h) > 0 and vault.income_owed(self.carol) > 0
        assert vault.maxMint(h) > 0 and vault.maxRedeem(h) > 0
        assert vault.pendingRedeemRequest(0, h) == 50 * SHARE

    def outer(self, name: str):
        vault, w = self.w.vault, self.w
        calls = {
            "requestDeposit": (self.frank, lambda: vault.requestDeposit(USDC, self.frank,
                                                                        self.frank)),
            "cancelDepositRequest": (self.alice,
                                     lambda: vault.cancelDepositRequest(self.alice, self.alice)),
            "fulfil_deposit": (w.operator, lambda: vault.fulfil_deposit(self.dave, 100 * USDC)),
            "fund_redemptions": (w.operator, lambda: vault.fund_redemptions(USDC)),
            "withdraw_redemption_funds": (w.operator,
                                          lambda: vault.withdraw_redemption_funds(USDC)),
            "redeem": (self.bob, lambda: vault.redeem(SHARE, self.bob, self.bob)),
            "withdraw": (self.bob, lambda: vault.withdraw(USDC, self.bob, self.bob)),
            "claim_income": (self.carol, lambda: vault.claim_income(self.carol)),
            "requestRedeem": (self.bob, lambda: vault.requestRedeem(SHARE, self.bob, self.bob)),
            "deposit": (self.carol, lambda: vault.deposit(USDC, self.carol)),
        }
        sender, fn = calls[name]

        def run():
            with boa.env.prank(sender):
                return fn()

        return run

    def inner(self) -> dict[str, bytes]:
        vault, h = self.w.vault, self.h
        return {
            "requestDeposit": vault.requestDeposit.prepare_calldata(USDC, self.erin, h),
            "cancelDepositRequest": vault.cancelDepositRequest.prepare_calldata(h, h),
            "fulfil_deposit": vault.fulfil_deposit.prepare_calldata(self.dave, USDC),
            "deposit": vault.deposit.prepare_calldata(USDC, h, h),
            "mint": vault.mint.prepare_calldata(SHARE, h, h),
            "requestRedeem": vault.requestRedeem.prepare_calldata(SHARE, self.erin, h),
            "cancelRedeemRequest": vault.cancelRedeemRequest.prepare_calldata(h, h),
            "fulfil_redeem": vault.fulfil_redeem.prepare_calldata(h, SHARE),
            "redeem": vault.redeem.prepare_calldata(SHARE, h, h),
            "withdraw": vault.withdraw.prepare_calldata(USDC, h, h),
            "fund_redemptions": vault.fund_redemptions.prepare_calldata(USDC),
            "withdraw_redemption_funds": vault.withdraw_redemption_funds.prepare_calldata(USDC),
            "claim_income": vault.claim_income.prepare_calldata(h, h),
        }

    def reenter_alone(self, payload: bytes) -> bool:
        with boa.env.anchor():
            try:
                boa.env.raw_call(self.w.vault.address, sender=self.h, data=payload)
            except BoaError:
                return False
            return True

    def state(self) -> tuple:
        w, vault = self.w, self.w.vault
        people = (self.h, self.alice, self.bob, self.carol, self.dave, self.erin, self.frank)
        accounts = (*people, w.operator, w.treasury, vault.address, w.token.address)
        return (
            tuple(vault.request(p) for p in people),
            tuple(vault.income_owed(p) for p in people),
            vault.redemption_funds(), vault.total_income_owed(), vault.income_per_held_share(),
            vault.total_pending_deposit_assets(), vault.total_claimable_redeem_assets(),
            tuple(w.token.balanceOf(a) for a in accounts),
            tuple(self.hook.balanceOf(a) for a in accounts),
            w.token.totalSupply(),
        )


OUTER = ["requestDeposit", "cancelDepositRequest", "fulfil_deposit", "fund_redemptions",
         "withdraw_redemption_funds", "redeem", "withdraw", "claim_income", "requestRedeem",
         "deposit"]
INNER = ["requestDeposit", "cancelDepositRequest", "fulfil_deposit", "deposit", "mint",
         "requestRedeem", "cancelRedeemRequest", "fulfil_redeem", "redeem", "withdraw",
         "fund_redemptions", "withdraw_redemption_funds", "claim_income"]


@pytest.fixture(scope="module")
def hv(registry, factory, admin, operator, oracle_admin, compliance_admin) -> HookVault:
    return HookVault(registry, factory, admin, operator, oracle_admin, compliance_admin)


def _deepest_error(frame):
    while True:
        failed = [child for child in frame.children if child.is_error]
        if not failed:
            return frame
        frame = failed[-1]


def test_every_locked_function_is_tried_as_a_reentry_and_every_outflow_as_an_outer_call():
    """The lists above against the source: every @nonreentrant function is a re-entry,
    every function moving the stablecoin (directly, or through the token's claim) an
    outer call."""
    source = SOURCE.read_text()
    locked = set(re.findall(r"@nonreentrant\ndef (\w+)\(", source))
    assert locked == set(INNER)
    functions = _functions(source)

    def moves(name, seen=()):
        body = functions[name]
        if re.search(r"IERC20\(asset\)\.transfer(From)?\(|IShareToken\(share\)\.claim\(", body):
            return True
        return any(moves(callee, (*seen, name)) for callee in re.findall(r"self\.(_\w+)\(", body)
                   if callee in functions and callee not in seen)

    movers = {name for name in locked if moves(name)}
    assert set(OUTER) <= movers
    # The rest reach the stablecoin only through the same internal paths.
    assert movers - set(OUTER) <= {"mint", "cancelRedeemRequest", "fulfil_redeem"}


@pytest.mark.parametrize("inner", INNER)
@pytest.mark.parametrize("outer", OUTER)
def test_reentry_through_the_stablecoin_hook_is_refused(hv, outer, inner):
    """The hook re-enters the vault from inside the outer call's stablecoin transfer:
    the re-entry reverts at the vault's entry without a reason (the lock), the hook
    bubbles it, the outer call reverts as a whole and nothing moves."""
    vault, hook = hv.w.vault, hv.hook
    payload = hv.inner()[inner]
    assert hv.reenter_alone(payload), inner
    before = hv.state()
    with boa.env.anchor():
        hook.arm(vault.address, payload)
        try:
            hv.outer(outer)()
        except BoaError as error:
            deepest = _deepest_error(error.call_trace)
            assert str(deepest.address) == str(vault.address)
            assert deepest.selector == payload[:4]
            assert deepest.children == [] and deepest.output == b""
        else:
            raise AssertionError(f"{outer}: re-entrant {inner} did not revert")
        assert hook.armed()
        assert hv.state() == before


@pytest.mark.parametrize("outer", OUTER)
def test_the_hook_fires_in_every_outer_call(hv, outer):
    """Control: armed with a view, the hook fires inside each outer call, which goes
    through with the same result as without it."""
    vault, hook = hv.w.vault, hv.hook
    run = hv.outer(outer)
    with boa.env.anchor():
        expected = run()
        after = hv.state()
    with boa.env.anchor():
        hook.arm(vault.address, vault.total_income_owed.prepare_calldata())
        assert run() == expected
        assert not hook.armed()
        assert hv.state() == after
