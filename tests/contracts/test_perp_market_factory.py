"""PerpMarketFactory: who may create a market, every input refusal with its reason, the
market's own parameter refusals bubbling up through `create_market`, one market per
(margin asset, index feed), the registry views (`market_id_of`, `market_of`,
`market_at`, `list_markets` paging), the MarketCreated event, market roles that belong
to the named admin and never to the factory, the feed's move limit checked against the
maintenance margin at creation, and the market constructor's own checks when the
blueprint is used without the factory (the factory checks contract-ness and decimals;
the constructor only the addresses)."""

from __future__ import annotations

from dataclasses import replace

import boa
import pytest
from eth_abi import encode
from eth_utils import keccak

from gpushares import reasons
from tests.contracts import deployers
from tests.contracts.perp_helpers import (
    DAY,
    DEFAULT_ADMIN_ROLE,
    GUARDIAN_ROLE,
    INDEX_FEED_ID,
    MARKET_CREATOR_ROLE,
    MISSING_ROLE,
    MOVE_NOT_COVERED,
    RISK_ADMIN_ROLE,
    WAD,
    PerpWorld,
    build_perp_world,
    restoring,
)

ZERO = "0x" + "00" * 20
ALREADY = reasons.PERP_FACTORY_MARKET_ALREADY_EXISTS
ASSET_NOT_CONTRACT = reasons.PERP_FACTORY_MARGIN_ASSET_NOT_CONTRACT
FEED_NOT_CONTRACT = reasons.PERP_FACTORY_INDEX_FEED_NOT_CONTRACT
BAD_ADMIN = reasons.PERP_FACTORY_ADMIN_ACCOUNT_OTHER_FACTORY
ZERO_FEE_RECIPIENT = reasons.PERP_FACTORY_FEE_RECIPIENT_ZERO_ADDRESS
ASSET_DECIMALS = reasons.PERP_FACTORY_MARGIN_ASSET_MORE_18
FEED_DECIMALS = reasons.PERP_FACTORY_INDEX_FEED_MORE_18

NO_PARAMS = reasons.PERP_RISK_PARAMETERS_NOT_SET
BAD_SCALE = reasons.PERP_SKEW_SCALE_1_2
BAD_MARGINS = reasons.PERP_NEED_0_MAINTENANCE_LIQUIDATION
BAD_FEES = reasons.PERP_FEES_ABOVE_THEIR_CAPS
BAD_KEEPER_OR_FUNDING = reasons.PERP_KEEPER_FEE_FUNDING_PARAMETER


@pytest.fixture(scope="module")
def _world() -> PerpWorld:
    return build_perp_world(label="pf")


@pytest.fixture
def world(_world):
    yield from restoring(_world)


@pytest.fixture
def asset18():
    """A margin asset no market uses yet, so a market on it is new."""
    return deployers.TEST_STABLE.deploy(18)


def _market_id(asset, feed) -> bytes:
    return keccak(encode(["address", "address"], [asset, feed]))


def _inputs(world: PerpWorld, asset, **overrides) -> dict:
    inputs = {
        "asset": asset.address if hasattr(asset, "address") else asset,
        "index_feed": world.feed.address,
        "params": world.params.as_tuple(),
        "fee_recipient": world.fee_recipient,
        "admin": world.admin,
    }
    inputs.update(overrides)
    return inputs


def _create(world: PerpWorld, inputs: dict, sender=None):
    with boa.env.prank(sender or world.admin):
        return world.factory.create_market(*inputs.values())


# ---------------------------------------------------------------------------------
# Deployment and roles
# ---------------------------------------------------------------------------------


def test_factory_constructor_refuses_a_blueprint_that_is_not_a_contract():
    with boa.reverts(reasons.PERP_FACTORY_BLUEPRINT_NOT_CONTRACT):
        deployers.PERP_MARKET_FACTORY.deploy(boa.env.generate_address("eoa"))


def test_deployer_is_admin_and_market_creator(world):
    factory = world.factory
    assert factory.hasRole(DEFAULT_ADMIN_ROLE, world.admin)
    assert factory.hasRole(MARKET_CREATOR_ROLE, world.admin)
    assert not factory.hasRole(MARKET_CREATOR_ROLE, world.stranger)
    assert factory.MARKET_CREATOR_ROLE() == MARKET_CREATOR_ROLE
    assert len(boa.env.get_code(factory.market_blueprint())) > 0
    assert factory.market_count() == 1
    assert factory.market_at(1) == world.market.address
    assert factory.market_of(_market_id(world.asset.address, world.feed.address)) == (
        world.market.address
    )


def test_create_market_needs_the_market_creator_role(world, asset18):
    inputs = _inputs(world, asset18)
    with boa.reverts(MISSING_ROLE):
        _create(world, inputs, world.stranger)
    with boa.env.prank(world.admin):
        world.factory.grantRole(MARKET_CREATOR_ROLE, world.stranger)
    with boa.env.anchor():
        assert _create(world, inputs, world.stranger) != ZERO
    with boa.env.prank(world.admin):
        world.factory.revokeRole(MARKET_CREATOR_ROLE, world.stranger)
    with boa.reverts(MISSING_ROLE):
        _create(world, inputs, world.stranger)


def test_create_market_registers_the_market_and_emits_market_created(world, asset18):
    factory, admin2, fees2 = world.factory, world.traders[0], world.traders[1]
    params = replace(world.params, min_keeper_fee=5 * WAD, taker_fee_bps=20)
    address = _create(world, _inputs(world, asset18, params=params.as_tuple(),
                                     fee_recipient=fees2, admin=admin2))
    market = deployers.PERP_MARKET.at(address)  # so boa decodes the market's logs
    logs = factory.get_logs()  # the whole transaction: the factory's and the market's
    (event,) = [log for log in logs if type(log).__name__ == "MarketCreated"]
    (changed,) = [log for log in logs if type(log).__name__ == "RiskParametersChanged"]
    # MarketCreated records the fee recipient; the market's constructor does not log it.
    assert not [log for log in logs if type(log).__name__ == "FeeRecipientChanged"]
    assert changed.address == address
    assert changed.params == params.as_tuple() and changed.admin == factory.address
    market_id = _market_id(asset18.address, world.feed.address)
    assert (event.market_id, event.market, event.creator, event.asset, event.index_feed,
            event.admin, event.fee_recipient) == (
        market_id, address, world.admin, asset18.address, world.feed.address, admin2, fees2,
    )
    assert factory.market_count() == 2
    assert factory.market_at(2) == address
    assert factory.market_of(market_id) == address
    assert factory.market_id_of(asset18.address, world.feed.address) == market_id

    assert market.asset() == asset18.address
    assert market.index_feed() == world.feed.address
    assert market.factory() == factory.address
    assert market.fee_recipient() == fees2
    assert tuple(market.risk_params()) == params.as_tuple()
    assert market.paused() is False and market.deficit() == 0 and market.cash() == 0


def test_market_roles_belong_to_the_admin_and_never_to_the_factory(world, asset18):
    """The named admin gets the admin, risk admin and guardian roles; the factory
    (which set the first parameters) and the creator keep none, so neither can change
    parameters or pause."""
    factory, admin2 = world.factory, world.traders[0]
    market = deployers.PERP_MARKET.at(_create(world, _inputs(world, asset18, admin=admin2)))
    for role in (DEFAULT_ADMIN_ROLE, RISK_ADMIN_ROLE, GUARDIAN_ROLE):
        assert market.hasRole(role, admin2)
        assert not market.hasRole(role, factory.address)
        assert not market.hasRole(role, world.admin)
    for account in (factory.address, world.admin):
        with boa.env.prank(account):
            with boa.reverts(MISSING_ROLE):
                market.set_risk_params(world.params.as_tuple())
            with boa.reverts(MISSING_ROLE):
                market.pause()
            with boa.reverts(MISSING_ROLE):
                market.grantRole(RISK_ADMIN_ROLE, account)
    with boa.env.prank(admin2):
        market.pause()
        market.set_risk_params(world.params.as_tuple())
        market.grantRole(GUARDIAN_ROLE, world.stranger)
    assert market.paused() and market.hasRole(GUARDIAN_ROLE, world.stranger)


def test_the_creator_as_admin_also_leaves_the_factory_without_roles(world):
    """The world's market was created with its creator as admin."""
    market, factory = world.market, world.factory
    for role in (DEFAULT_ADMIN_ROLE, RISK_ADMIN_ROLE, GUARDIAN_ROLE):
        assert market.hasRole(role, world.admin)
        assert not market.hasRole(role, factory.address)


# ---------------------------------------------------------------------------------
# Refusals
# ---------------------------------------------------------------------------------


def test_duplicate_market_is_refused_whatever_the_other_inputs(world):
    """One market per (asset, feed): the check comes first, so even otherwise invalid
    inputs get this reason."""
    for overrides in ({}, {"admin": world.traders[0], "fee_recipient": world.traders[1]},
                      {"params": replace(world.params, taker_fee_bps=50).as_tuple()},
                      {"admin": ZERO}):
        with boa.reverts(ALREADY):
            _create(world, _inputs(world, world.asset, **overrides))
    assert world.factory.market_count() == 1


def _bad_inputs(world: PerpWorld, case: str) -> dict:
    fresh = deployers.TEST_STABLE.deploy(6)
    eoa = boa.env.generate_address("not-a-contract")
    return {
        "asset is an account": _inputs(world, eoa),
        "feed is an account": _inputs(world, fresh, index_feed=eoa),
        "zero admin": _inputs(world, fresh, admin=ZERO),
        "factory as admin": _inputs(world, fresh, admin=world.factory.address),
        "zero fee recipient": _inputs(world, fresh, fee_recipient=ZERO),
        "asset with 19 decimals": _inputs(world, deployers.TEST_STABLE.deploy(19)),
        # Anything with decimals() stands in for a feed here.
        "feed with 19 decimals": _inputs(
            world, fresh, index_feed=deployers.TEST_STABLE.deploy(19).address
        ),
    }[case]


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("asset is an account", ASSET_NOT_CONTRACT),
        ("feed is an account", FEED_NOT_CONTRACT),
        ("zero admin", BAD_ADMIN),
        ("factory as admin", BAD_ADMIN),
        ("zero fee recipient", ZERO_FEE_RECIPIENT),
        ("asset with 19 decimals", ASSET_DECIMALS),
        ("feed with 19 decimals", FEED_DECIMALS),
    ],
)
def test_create_market_refuses_each_bad_input_with_its_reason(world, case, reason):
    inputs = _bad_inputs(world, case)
    with boa.reverts(reason):
        _create(world, inputs)
    assert world.factory.market_count() == 1
    assert world.factory.market_of(_market_id(inputs["asset"], inputs["index_feed"])) == ZERO


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"skew_scale": 0}, BAD_SCALE),
        ({"max_short_oi": 2**64}, BAD_SCALE),
        ({"max_long_oi": 2**40 + 1}, BAD_SCALE),
        ({"initial_margin_bps": 150}, BAD_MARGINS),
        # The parameters are validated before the feed's move limit: a zero
        # maintenance margin, which no move limit could cover, gets its own reason.
        ({"maintenance_margin_bps": 0}, BAD_MARGINS),
        ({"taker_fee_bps": 101, "maintenance_margin_bps": 600}, BAD_FEES),
        # 4 % x 1.005 + 0.1 % reaches 4.12 % of the notional: a maintenance margin of
        # 4.12 % or less is refused.
        ({"maintenance_margin_bps": 412}, MOVE_NOT_COVERED),
        ({"taker_fee_bps": 100}, MOVE_NOT_COVERED),
        ({"maker_fee_bps": 11}, BAD_FEES),
        ({"max_funding_rate": WAD + 1}, BAD_KEEPER_OR_FUNDING),
        ({"min_keeper_fee": 2**96}, BAD_KEEPER_OR_FUNDING),
    ],
    ids=lambda value: "-".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, dict) else None,
)
def test_invalid_risk_params_bubble_up_the_markets_reason(world, asset18, changes, reason):
    """The factory does not check the parameters itself: the new market's
    `set_risk_params` refuses them inside `create_market` and boa shows the market's
    own reason; the whole creation is undone."""
    params = replace(world.params, **changes).as_tuple()
    with boa.reverts(reason):
        _create(world, _inputs(world, asset18, params=params))
    assert world.factory.market_count() == 1
    assert world.factory.market_of(_market_id(asset18.address, world.feed.address)) == ZERO


@pytest.mark.parametrize(("max_move_bps", "created"), [(487, True), (488, False), (0, False)],
                         ids=["4.87%", "4.88%", "no-limit"])
def test_create_market_checks_the_feeds_move_limit(world, asset18, max_move_bps, created):
    """With the default parameters (maintenance 5 %, liquidation fee 0.5 %, taker fee
    0.1 %) one accepted update of m bps must stay below the maintenance margin, m x
    1.005 + 0.1 % < 5 %: 487 bps is the widest move limit a market is created on; 488
    and a feed without a limit (0) are refused with the market's reason, the whole
    creation undone."""
    (feed,) = _hub_feeds(world, 1, max_move_bps)
    inputs = _inputs(world, asset18, index_feed=feed.address)
    if created:
        market = deployers.PERP_MARKET.at(_create(world, inputs))
        assert tuple(market.risk_params()) == world.params.as_tuple()
    else:
        with boa.reverts(MOVE_NOT_COVERED):
            _create(world, inputs)
        assert world.factory.market_count() == 1


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"skew_scale": 0}, BAD_SCALE),
        ({"maintenance_margin_bps": 0}, BAD_MARGINS),
        ({"initial_margin_bps": 150}, BAD_MARGINS),
        ({"maker_fee_bps": 11}, BAD_FEES),
        ({"max_funding_rate": WAD + 1}, BAD_KEEPER_OR_FUNDING),
    ],
    ids=lambda value: "-".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, dict) else None,
)
def test_invalid_risk_params_get_their_own_reason_on_a_feed_without_a_move_limit(
        world, asset18, changes, reason):
    """On a feed no parameters pass (no move limit covers nothing), invalid parameters
    are still refused with their own reason: the market validates them before the
    feed's move limit. The creation is undone."""
    (feed,) = _hub_feeds(world, 1, 0)
    params = replace(world.params, **changes).as_tuple()
    with boa.reverts(reason):
        _create(world, _inputs(world, asset18, index_feed=feed.address, params=params))
    with boa.reverts(MOVE_NOT_COVERED):  # the valid ones: the move limit
        _create(world, _inputs(world, asset18, index_feed=feed.address))
    assert world.factory.market_count() == 1


def test_create_market_needs_a_maintenance_margin_the_feed_covers(world, asset18):
    """On the world's feed (4 % per update) 4.13 % maintenance is the least a market is
    created with (4 x 1.005 + 0.1 = 4.12 is reached)."""
    params = replace(world.params, maintenance_margin_bps=412).as_tuple()
    with boa.reverts(MOVE_NOT_COVERED):
        _create(world, _inputs(world, asset18, params=params))
    params = replace(world.params, maintenance_margin_bps=413).as_tuple()
    market = deployers.PERP_MARKET.at(_create(world, _inputs(world, asset18, params=params)))
    assert market.risk_params()[4] == 413


# ---------------------------------------------------------------------------------
# Registry views
# ---------------------------------------------------------------------------------


def test_market_id_of_is_the_hash_of_the_ordered_pair(world, asset18):
    factory = world.factory
    assert factory.market_id_of(asset18.address, world.feed.address) == _market_id(
        asset18.address, world.feed.address
    )
    assert factory.market_id_of(world.feed.address, asset18.address) != (
        factory.market_id_of(asset18.address, world.feed.address)
    )
    assert factory.market_of(_market_id(asset18.address, world.feed.address)) == ZERO
    assert factory.market_at(2) == ZERO


def _hub_feeds(world: PerpWorld, n: int, max_move_bps: int = 400) -> list:
    """`n` more feeds on the world's hub (no reports yet): a market reads its hub and
    feed id through the adapter, and checks the move limit when its parameters are
    set."""
    feeds = []
    with boa.env.prank(world.oracle_admin):
        for i in range(n):
            feeds.append(deployers.FEED_ADAPTER.at(world.hub.add_feed(
                keccak(text=f"factory-test-feed-{i}"), f"feed {i}", 1, 10**12,
                max_move_bps, DAY)))
    return feeds


def test_list_markets_paging(world):
    """101 markets (10 assets x 10 more hub feeds plus the world's): pages are cut at
    the market count and at 100, ids start at 1, and walking page by page sees every
    market once, in creation order."""
    factory = world.factory
    assets = [deployers.TEST_STABLE.deploy(6) for _ in range(10)]
    feeds = _hub_feeds(world, 10)
    created = [world.market.address]
    for asset in assets:
        for feed in feeds:
            created.append(_create(world, _inputs(world, asset, index_feed=feed.address)))
    assert factory.market_count() == 101
    assert created[1:] == [factory.market_at(i) for i in range(2, 102)]
    assert factory.list_markets(1, 3) == created[:3]
    assert factory.list_markets(2, 2) == created[1:3]
    assert factory.list_markets(99, 10) == created[98:]
    assert factory.list_markets(101, 1) == [created[100]]
    assert factory.list_markets(1, 1_000) == created[:100]  # one page is at most 100
    assert factory.list_markets(2, 100) == created[1:101]
    assert factory.list_markets(1, 0) == []
    assert factory.list_markets(0, 5) == []  # ids start at 1
    assert factory.list_markets(102, 5) == []
    assert factory.list_markets(10**9, 100) == []
    seen, start = [], 1
    while page := factory.list_markets(start, 7):
        seen += page
        start += len(page)
    assert seen == created


def test_list_markets_past_the_end_is_empty_for_any_start_and_count(world):
    """No start or count overflows: a start past the market count (up to 2**256-1) or
    0 gives an empty page, and a count up to 2**256-1 is cut at the market count."""
    factory, market = world.factory, world.market.address
    top = 2**256 - 1
    for start, count in ((top, 1), (top, top), (top - 99, 100), (2, top), (2, 1),
                         (0, top), (0, 1)):
        assert factory.list_markets(start, count) == [], (start, count)
    assert factory.list_markets(1, top) == [market]
    assert factory.list_markets(1, 1) == [market]


# ---------------------------------------------------------------------------------
# The market constructor without the factory
# ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("zero admin", reasons.PERP_ADMIN_ZERO_ADDRESS),
        ("zero fee recipient", reasons.PERP_FEE_RECIPIENT_ZERO_ADDRESS),
    ],
)
def test_market_constructor_refuses_each_bad_input(world, case, reason):
    args = {
        "asset": world.asset.address,
        "feed": world.feed.address,
        "fee_recipient": world.fee_recipient,
        "admin": world.admin,
    }
    args.update({
        "zero admin": {"admin": ZERO},
        "zero fee recipient": {"fee_recipient": ZERO},
    }[case])
    with boa.reverts(reason):
        deployers.PERP_MARKET.deploy(*args.values())


@pytest.mark.parametrize("case", ["asset is an account", "feed is an account",
                                  "asset with 19 decimals", "feed is not a hub adapter"])
def test_market_constructor_without_the_factorys_checks_cannot_deploy(world, case):
    """Contract-ness and decimals are the factory's checks (the market sits at the
    code size limit): used directly, the blueprint still cannot deploy on such an
    asset or feed, it only reverts without a reason (a call into an account, a
    decimals scale that underflows, a feed without a hub)."""
    eoa = boa.env.generate_address("not-a-contract")
    args = {
        "asset": world.asset.address,
        "feed": world.feed.address,
        "fee_recipient": world.fee_recipient,
        "admin": world.admin,
    }
    args.update({
        "asset is an account": {"asset": eoa},
        "feed is an account": {"feed": eoa},
        "asset with 19 decimals": {"asset": deployers.TEST_STABLE.deploy(19).address},
        "feed is not a hub adapter": {"feed": deployers.TEST_STABLE.deploy(8).address},
    }[case])
    with boa.reverts():
        deployers.PERP_MARKET.deploy(*args.values())


@pytest.mark.parametrize("own_admin", [True, False], ids=["deployer-admin", "other-admin"])
def test_market_constructor_logs_only_its_role_grants(world, own_admin):
    """The constructor sets the fee recipient without a FeeRecipientChanged event (the
    factory's MarketCreated records it): it logs the role grants and nothing else -
    admin, risk admin and guardian to the admin, and, when the deployer is another
    account, the deployer's interim risk admin role and the revocation of its
    default admin role."""
    deployer = world.stranger
    admin = deployer if own_admin else world.traders[0]
    with boa.env.prank(deployer):
        market = deployers.PERP_MARKET.deploy(
            world.asset.address, world.feed.address, world.fee_recipient, admin
        )
    logs = [log for log in market.get_logs() if log.address == market.address]
    granted = [(log.role, log.account) for log in logs if type(log).__name__ == "RoleGranted"]
    revoked = [(log.role, log.account) for log in logs if type(log).__name__ == "RoleRevoked"]
    assert len(logs) == len(granted) + len(revoked)
    expected = [(DEFAULT_ADMIN_ROLE, deployer), (RISK_ADMIN_ROLE, admin), (GUARDIAN_ROLE, admin)]
    if not own_admin:
        expected += [(DEFAULT_ADMIN_ROLE, admin), (RISK_ADMIN_ROLE, deployer)]
    assert granted == expected
    assert revoked == ([] if own_admin else [(DEFAULT_ADMIN_ROLE, deployer)])
    assert market.fee_recipient() == world.fee_recipient


def test_market_deployed_directly_trades_only_once_its_parameters_are_set(world):
    """Without the factory the market starts with no parameters: trades are refused
    until the admin (its deployer here, holding every role) sets them."""
    admin, alice = world.admin, world.traders[0]
    with boa.env.prank(admin):
        market = deployers.PERP_MARKET.deploy(
            world.asset.address, world.feed.address, world.fee_recipient, admin
        )
    assert market.fee_recipient() == world.fee_recipient
    for role in (DEFAULT_ADMIN_ROLE, RISK_ADMIN_ROLE, GUARDIAN_ROLE):
        assert market.hasRole(role, admin)
    assert market.factory() == admin
    assert tuple(market.risk_params()) == (0,) * 11
    assert market.oracle_hub() == world.hub.address
    assert market.index_feed_id() == INDEX_FEED_ID
    world.asset.mint(alice, 1_000 * world.unit)
    with boa.env.prank(alice):
        world.asset.approve(market.address, 2**256 - 1)
        market.deposit_margin(1_000 * world.unit)  # deposits do not need parameters
        with boa.reverts(NO_PARAMS):
            market.commit_order(WAD, 2**256 - 1)
    with boa.env.prank(admin):
        market.set_risk_params(world.params.as_tuple())
    with boa.env.prank(alice):
        market.commit_order(100 * WAD, 2**256 - 1)
    boa.env.time_travel(seconds=1)
    assert world.next_round()  # the first round observed after the commit
    with boa.env.prank(world.keeper):
        assert market.execute_order(alice) == 0  # no keeper fee by default
    assert [type(e).__name__ for e in market.get_logs()][-1] == "OrderExecuted"
    assert market.position(alice)[0] == 100 * WAD


def test_market_deployed_for_another_admin_leaves_the_deployer_only_risk_admin(world):
    """What the factory relies on: a deployer other than the admin keeps only the
    risk admin role (to set the first parameters) and no admin role."""
    deployer, admin2 = world.stranger, world.traders[0]
    with boa.env.prank(deployer):
        market = deployers.PERP_MARKET.deploy(
            world.asset.address, world.feed.address, world.fee_recipient, admin2
        )
    assert market.hasRole(RISK_ADMIN_ROLE, deployer)
    assert not market.hasRole(DEFAULT_ADMIN_ROLE, deployer)
    assert not market.hasRole(GUARDIAN_ROLE, deployer)
    for role in (DEFAULT_ADMIN_ROLE, RISK_ADMIN_ROLE, GUARDIAN_ROLE):
        assert market.hasRole(role, admin2)
    with boa.env.prank(deployer):
        market.renounceRole(RISK_ADMIN_ROLE, deployer)
        with boa.reverts(MISSING_ROLE):
            market.set_risk_params(world.params.as_tuple())
