"""LendingPoolFactory: who may create a market, every parameter refusal with its reason,
one pool per market id, the registry views (`market_id_of`, `pool_of`, `market_at`,
`list_markets` paging), the MarketCreated event, pool roles that belong to the creator
and never to the factory, the pool constructor's bare checks when the blueprint is used
without the factory, and the liquidation incentive formula."""

from __future__ import annotations

from fractions import Fraction

import boa
import pytest
from eth_abi import encode
from eth_utils import keccak

from gpushares import lending, reasons
from tests.contracts import deployers
from tests.contracts.helpers import DEFAULT_ADMIN_ROLE, ZERO
from tests.contracts.pool_helpers import (
    GUARDIAN_ROLE,
    MARKET_CREATOR_ROLE,
    MISSING_ROLE,
    RISK_ADMIN_ROLE,
    WAD,
    build_world,
)

F = "LendingPoolFactory: "
ALREADY = F + "market already exists"
EMPTY_NAME = F + "empty vault name or symbol"
ASSET_NOT_CONTRACT = F + "loan asset is not a contract"
COLLATERAL_NOT_CONTRACT = F + "collateral token is not a contract"
FEED_NOT_CONTRACT = F + "price feed is not a contract"
MODEL_NOT_CONTRACT = F + "rate model is not a contract"
BAD_LLTV = F + "liquidation LTV must be above 0 and at most 95 %"
BAD_MAX_LTV = F + "max LTV must be above 0 and below the liquidation LTV"
BAD_RESERVE = F + "reserve factor above 50 %"
ZERO_TREASURY = F + "treasury is the zero address"
ASSET_DECIMALS = F + "loan asset has more than 18 decimals"
COLLATERAL_DECIMALS = F + "collateral is not an 18-decimal share token"
FEED_DECIMALS = F + "price feed has more than 18 decimals"

LLTV = 80 * WAD // 100
MAX_LTV = 70 * WAD // 100

BLUEPRINT_DEPLOYER = """
# pragma version ~=0.4.3

@external
def deploy(
    blueprint: address, name: String[25], symbol: String[5], asset: address,
    collateral: address, feed: address, model: address, lltv: uint256, max_ltv: uint256,
    reserve_factor_bps: uint256, treasury: address, admin: address,
) -> address:
    return create_from_blueprint(
        blueprint, name, symbol, asset, collateral, feed, model, lltv, max_ltv,
        reserve_factor_bps, treasury, admin, code_offset=3,
    )
"""


def _events(contract, name):
    return [log for log in contract.get_logs() if type(log).__name__ == name]


@pytest.fixture
def world():
    return build_world()


@pytest.fixture
def model():
    """A rate model no market uses yet, so a market built on it is new."""
    return deployers.KINKED_RATE_MODEL.deploy(0, WAD // 10, WAD, WAD // 2)


def _params(world, model, **overrides) -> dict:
    params = {
        "asset": world.asset.address,
        "collateral_token": world.token.address,
        "price_feed": world.feed.address,
        "rate_model": model.address,
        "lltv": LLTV,
        "max_ltv": MAX_LTV,
        "reserve_factor_bps": 1_000,
        "treasury": world.treasury,
        "name": "GPU Pool 2",
        "symbol": "gp2",
    }
    params.update(overrides)
    return params


def _create(world, params: dict, sender=None):
    with boa.env.prank(sender or world.admin):
        return world.factory.create_market(*params.values())


def _market_id(asset, collateral, feed, model, lltv) -> bytes:
    return keccak(encode(["address"] * 4 + ["uint256"], [asset, collateral, feed, model, lltv]))


# ---------------------------------------------------------------------------------
# Deployment and roles
# ---------------------------------------------------------------------------------


def test_factory_constructor_refuses_a_blueprint_that_is_not_a_contract():
    with boa.reverts(reasons.POOL_FACTORY_BLUEPRINT_NOT_CONTRACT):
        deployers.LENDING_POOL_FACTORY.deploy(boa.env.generate_address("eoa"))


def test_deployer_is_admin_and_market_creator(world):
    factory = world.factory
    assert factory.hasRole(DEFAULT_ADMIN_ROLE, world.admin)
    assert factory.hasRole(MARKET_CREATOR_ROLE, world.admin)
    assert factory.MARKET_CREATOR_ROLE() == MARKET_CREATOR_ROLE
    assert factory.pool_blueprint() != ZERO
    assert factory.market_count() == 1
    assert factory.market_at(1) == world.pool.address


def test_create_market_needs_the_market_creator_role(world, model):
    with boa.reverts(MISSING_ROLE):
        _create(world, _params(world, model), sender=world.stranger)
    assert world.factory.market_count() == 1
    with boa.env.prank(world.admin):
        world.factory.grantRole(MARKET_CREATOR_ROLE, world.stranger)
    pool = deployers.LENDING_POOL.at(_create(world, _params(world, model), sender=world.stranger))
    assert world.factory.market_count() == 2
    # The creator, not the factory's admin, owns the new pool.
    for role in (DEFAULT_ADMIN_ROLE, RISK_ADMIN_ROLE, GUARDIAN_ROLE):
        assert pool.hasRole(role, world.stranger)
        assert not pool.hasRole(role, world.admin)
        assert not pool.hasRole(role, world.factory.address)
    with boa.env.prank(world.admin):
        world.factory.revokeRole(MARKET_CREATOR_ROLE, world.stranger)
    with boa.reverts(MISSING_ROLE):
        _create(world, _params(world, model, lltv=LLTV + 1), sender=world.stranger)


def test_pool_roles_belong_to_the_creator_and_never_to_the_factory(world):
    pool, factory = world.pool, world.factory
    for role in (DEFAULT_ADMIN_ROLE, RISK_ADMIN_ROLE, GUARDIAN_ROLE):
        assert pool.hasRole(role, world.admin)
        assert not pool.hasRole(role, factory.address)
    assert pool.getRoleAdmin(RISK_ADMIN_ROLE) == DEFAULT_ADMIN_ROLE
    assert pool.getRoleAdmin(GUARDIAN_ROLE) == DEFAULT_ADMIN_ROLE
    assert pool.factory() == factory.address
    # The factory cannot act on the pool: it holds no role there.
    with boa.env.prank(factory.address), boa.reverts(MISSING_ROLE):
        pool.set_paused(True)
    with boa.env.prank(factory.address), boa.reverts(MISSING_ROLE):
        pool.grantRole(GUARDIAN_ROLE, factory.address)


def test_created_pool_has_the_market_parameters(world):
    pool = world.pool
    assert pool.asset() == world.asset.address
    assert pool.collateral_token() == world.token.address
    assert pool.price_feed() == world.feed.address
    assert pool.rate_model() == world.model.address
    assert pool.income_token() == world.asset.address
    assert (pool.lltv(), pool.max_ltv(), pool.reserve_factor_bps()) == (LLTV, MAX_LTV, 1_000)
    assert pool.treasury() == world.treasury
    assert (pool.name(), pool.symbol()) == ("GPU Pool tUSD/LSH1", "gpLSH")
    assert pool.decimals() == 6 + 6  # the asset's decimals plus the 6-decimal offset
    assert not pool.paused()
    assert pool.borrow_index() == WAD
    assert pool.market() == (0, 0, 0, 0)


# ---------------------------------------------------------------------------------
# Parameter refusals
# ---------------------------------------------------------------------------------


def _eoa():
    return boa.env.generate_address("not-a-contract")


REFUSALS = {
    "empty name": (lambda w: {"name": ""}, EMPTY_NAME),
    "empty symbol": (lambda w: {"symbol": ""}, EMPTY_NAME),
    "asset eoa": (lambda w: {"asset": _eoa()}, ASSET_NOT_CONTRACT),
    "collateral eoa": (lambda w: {"collateral_token": _eoa()}, COLLATERAL_NOT_CONTRACT),
    "feed eoa": (lambda w: {"price_feed": _eoa()}, FEED_NOT_CONTRACT),
    "model eoa": (lambda w: {"rate_model": _eoa()}, MODEL_NOT_CONTRACT),
    "lltv zero": (lambda w: {"lltv": 0, "max_ltv": 0}, BAD_LLTV),
    "lltv above 95 %": (lambda w: {"lltv": 95 * WAD // 100 + 1}, BAD_LLTV),
    "lltv 100 %": (lambda w: {"lltv": WAD}, BAD_LLTV),
    "max ltv zero": (lambda w: {"max_ltv": 0}, BAD_MAX_LTV),
    "max ltv equals lltv": (lambda w: {"max_ltv": LLTV}, BAD_MAX_LTV),
    "max ltv above lltv": (lambda w: {"max_ltv": LLTV + 1}, BAD_MAX_LTV),
    "reserve factor above 50 %": (lambda w: {"reserve_factor_bps": 5_001}, BAD_RESERVE),
    "zero treasury": (lambda w: {"treasury": ZERO}, ZERO_TREASURY),
    "asset 19 decimals": (
        lambda w: {"asset": deployers.TEST_STABLE.deploy(19).address}, ASSET_DECIMALS,
    ),
    "collateral 6 decimals": (
        lambda w: {"collateral_token": deployers.TEST_STABLE.deploy(6).address},
        COLLATERAL_DECIMALS,
    ),
    "feed 19 decimals": (
        # Any contract with `decimals()` stands in for a feed with too many decimals.
        lambda w: {"price_feed": deployers.TEST_STABLE.deploy(19).address}, FEED_DECIMALS,
    ),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_create_market_refuses_each_bad_parameter_with_its_reason(world, model, case):
    overrides, reason = REFUSALS[case]
    with boa.reverts(reason):
        _create(world, _params(world, model, **overrides(world)))
    assert world.factory.market_count() == 1


def test_create_market_accepts_the_boundaries(world, model):
    stable18 = deployers.TEST_STABLE.deploy(18)
    pool = deployers.LENDING_POOL.at(
        _create(
            world,
            _params(
                world, model, asset=stable18.address, lltv=95 * WAD // 100,
                max_ltv=95 * WAD // 100 - 1, reserve_factor_bps=5_000,
                name="x" * 25, symbol="y" * 5,
            ),
        )
    )
    assert pool.lltv() == 95 * WAD // 100 and pool.max_ltv() == 95 * WAD // 100 - 1
    assert pool.reserve_factor_bps() == 5_000
    assert pool.decimals() == 18 + 6
    assert (pool.name(), pool.symbol()) == ("x" * 25, "y" * 5)
    tiny = deployers.LENDING_POOL.at(_create(world, _params(world, model, lltv=2, max_ltv=1)))
    assert (tiny.lltv(), tiny.max_ltv()) == (2, 1)


def test_duplicate_market_is_refused_whatever_the_other_parameters(world, model):
    params = _params(world, model)
    _create(world, params)
    for overrides in (
        {},
        {"max_ltv": MAX_LTV - 1, "reserve_factor_bps": 0, "name": "other", "symbol": "o"},
        {"treasury": world.stranger},
    ):
        with boa.reverts(ALREADY):
            _create(world, {**params, **overrides})
    # The duplicate check comes first: even otherwise-invalid parameters get its reason.
    with boa.reverts(ALREADY):
        _create(world, {**params, "name": "", "max_ltv": 0})
    assert world.factory.market_count() == 2
    # Any one of the five defining parameters makes a new market.
    _create(world, {**params, "lltv": LLTV + 1})
    _create(world, {**params, "rate_model": world.model.address, "lltv": LLTV - 1})
    assert world.factory.market_count() == 4


# ---------------------------------------------------------------------------------
# Registry views and the event
# ---------------------------------------------------------------------------------


def test_market_id_of_and_pool_of(world, model):
    factory = world.factory
    existing = factory.market_id_of(
        world.asset.address, world.token.address, world.feed.address, world.model.address, LLTV
    )
    assert existing == _market_id(
        world.asset.address, world.token.address, world.feed.address, world.model.address, LLTV
    )
    assert factory.pool_of(existing) == world.pool.address
    params = _params(world, model)
    new_id = _market_id(
        params["asset"], params["collateral_token"], params["price_feed"], params["rate_model"],
        params["lltv"],
    )
    assert factory.pool_of(new_id) == ZERO
    pool = _create(world, params)
    assert factory.pool_of(new_id) == pool
    assert factory.market_at(2) == pool
    assert factory.market_at(3) == ZERO
    # Every defining parameter is part of the id.
    assert factory.market_id_of(
        params["asset"], params["collateral_token"], params["price_feed"], params["rate_model"],
        LLTV + 1,
    ) != new_id


def test_market_created_event(world, model):
    params = _params(world, model, reserve_factor_bps=250, treasury=world.stranger)
    pool = _create(world, params)
    (event,) = _events(world.factory, "MarketCreated")
    assert event.market_id == _market_id(
        params["asset"], params["collateral_token"], params["price_feed"], params["rate_model"],
        params["lltv"],
    )
    assert event.pool == pool and event.creator == world.admin
    assert (event.asset, event.collateral_token, event.price_feed, event.rate_model) == (
        params["asset"], params["collateral_token"], params["price_feed"], params["rate_model"],
    )
    assert (event.lltv, event.max_ltv, event.reserve_factor_bps) == (LLTV, MAX_LTV, 250)
    assert event.treasury == world.stranger


def test_list_markets_paging(world):
    factory = world.factory
    created = [world.pool.address]
    with boa.env.prank(world.admin):
        for i in range(100):
            created.append(
                factory.create_market(
                    world.asset.address, world.token.address, world.feed.address,
                    world.model.address, 10**17 + i, 10**16, 0, world.treasury, f"m{i}", "m",
                )
            )
    assert factory.market_count() == 101
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
    # Walking page by page sees every market once, in creation order.
    seen, start = [], 1
    while page := factory.list_markets(start, 7):
        seen += page
        start += len(page)
    assert seen == created


# ---------------------------------------------------------------------------------
# The pool constructor without the factory
# ---------------------------------------------------------------------------------


def _direct_args(world, **overrides):
    args = {
        "name": "direct",
        "symbol": "d",
        "asset": world.asset.address,
        "collateral": world.token.address,
        "feed": world.feed.address,
        "model": world.model.address,
        "lltv": LLTV,
        "max_ltv": MAX_LTV,
        "reserve_factor_bps": 1_000,
        "treasury": world.treasury,
        "admin": world.admin,
    }
    args.update(overrides)
    return args


BARE_REFUSALS = {
    "lltv above 95 %": {"lltv": 95 * WAD // 100 + 1},
    "max ltv zero": {"max_ltv": 0},
    "max ltv equals lltv": {"max_ltv": LLTV},
    "max ltv above lltv": {"max_ltv": LLTV + 1},
    "lltv zero": {"lltv": 0, "max_ltv": 0},
    "reserve factor above 50 %": {"reserve_factor_bps": 5_001},
    "zero treasury": {"treasury": ZERO},
    "zero admin": {"admin": ZERO},
}


@pytest.mark.parametrize("case", list(BARE_REFUSALS))
def test_pool_constructor_refuses_bad_parameters_from_the_blueprint(world, case):
    deployer = boa.loads(BLUEPRINT_DEPLOYER)
    blueprint = world.factory.pool_blueprint()
    good = _direct_args(world)
    # The same deployer with good parameters works, so the refusal is the constructor's.
    with boa.env.anchor():
        pool = deployers.LENDING_POOL.at(deployer.deploy(blueprint, *good.values()))
        assert pool.lltv() == LLTV and pool.factory() == deployer.address
        assert pool.hasRole(DEFAULT_ADMIN_ROLE, world.admin)
        assert not pool.hasRole(DEFAULT_ADMIN_ROLE, deployer.address)
    with boa.reverts():
        deployer.deploy(blueprint, *_direct_args(world, **BARE_REFUSALS[case]).values())
    # And a plain deployment of the source refuses the same parameters.
    with boa.reverts():
        deployers.LENDING_POOL.deploy(*_direct_args(world, **BARE_REFUSALS[case]).values())


def test_pool_constructor_refuses_a_feed_with_more_than_18_decimals(world):
    feed19 = deployers.TEST_STABLE.deploy(19)  # stands in for a feed: it has decimals()
    with boa.reverts():
        deployers.LENDING_POOL.deploy(*_direct_args(world, feed=feed19.address).values())
    with boa.reverts():
        deployers.LENDING_POOL.deploy(
            *_direct_args(world, asset=deployers.TEST_STABLE.deploy(19).address).values()
        )


def test_pool_deployed_directly_by_its_admin_keeps_the_admin_role(world):
    with boa.env.prank(world.admin):
        pool = deployers.LENDING_POOL.deploy(*_direct_args(world).values())
    for role in (DEFAULT_ADMIN_ROLE, RISK_ADMIN_ROLE, GUARDIAN_ROLE):
        assert pool.hasRole(role, world.admin)
    assert pool.factory() == world.admin


# ---------------------------------------------------------------------------------
# Liquidation incentive
# ---------------------------------------------------------------------------------


def _exact_incentive(lltv: int) -> Fraction:
    return min(Fraction(115, 100), 1 / (1 - Fraction(3, 10) * (1 - Fraction(lltv, WAD))))


@pytest.mark.parametrize(
    ("lltv_percent", "expected"),
    [
        (95, 1_015_228_426_395_939_086),  # 1 / 0.985
        (90, 1_030_927_835_051_546_391),  # 1 / 0.97
        (80, 1_063_829_787_234_042_553),  # 1 / 0.94
        (70, 1_098_901_098_901_098_901),  # 1 / 0.91
        (57, 1_148_105_625_717_566_016),  # 1 / 0.871, just under the cap
        (56, 115 * 10**16),  # 1 / 0.868 = 1.152: capped
        (50, 115 * 10**16),  # 1 / 0.85 = 1.176: capped
        (10, 115 * 10**16),
    ],
)
def test_liquidation_incentive_formula(world, model, lltv_percent, expected):
    lltv = lltv_percent * WAD // 100
    params = _params(world, model, lltv=lltv, max_ltv=lltv // 2)
    pool = deployers.LENDING_POOL.at(_create(world, params))
    incentive = pool.liquidation_incentive()
    assert incentive == expected
    assert incentive == lending.liquidation_incentive(lltv)
    assert incentive == int(_exact_incentive(lltv) * WAD)  # floor of the exact value


@pytest.mark.parametrize(
    "lltv", [80 * WAD // 100 + 7, 2, 95 * WAD // 100 - 3, 565_217_391_304_347_826]
)
def test_liquidation_incentive_for_odd_lltvs_is_a_few_wei_below_exact(world, model, lltv):
    pool = deployers.LENDING_POOL.at(_create(world, _params(world, model, lltv=lltv, max_ltv=1)))
    incentive = pool.liquidation_incentive()
    exact = _exact_incentive(lltv) * WAD
    assert incentive == lending.liquidation_incentive(lltv)
    # `3 * (1 - lltv) // 10` is floored before the division, which can take one more
    # wei (at most ~1.3, since the incentive is at most 1.15) off the exact floor; the
    # error always lowers the incentive (in the borrower's favour), never raises it.
    assert exact - 3 < incentive <= exact
    assert incentive <= 115 * 10**16
