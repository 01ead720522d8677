"""The one place that deploys the suite and wires its roles.

`deploy_suite` is what `ape run deploy` does on any network; the titanoboa test worlds,
the benchmark and the demo use the same parts (`deploy_registry`, `deploy_spv_factory`,
`deploy_oracle`, `deploy_lending`, `deploy_perps`, `deploy_perp_lens`, `deploy_lens`,
`deploy_mock_stablecoin`), each with the admin the world wants, so a constructor
argument or a role grant changes in one place only.

    receipts: list[Receipt] = []
    deployed = deploy_suite(chain, deployer, operators=[op], on_receipt=receipts.append)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from eth_utils import keccak

from gpushares import deployments as deployments_file
from gpushares.client.chain import Chain, Receipt

OPERATOR_ROLE = keccak(text="OPERATOR_ROLE")
KYC_PROVIDER_ROLE = keccak(text="KYC_PROVIDER_ROLE")
FREEZER_ROLE = keccak(text="FREEZER_ROLE")
# Mock stablecoin each operator receives on a local chain: 1,000,000.00 mUSDC.
MOCK_FUNDING = 1_000_000 * 10**6

OnReceipt = Callable[[Receipt], None]


def _quiet(_receipt: Receipt) -> None:
    return None


def _deployed(chain: Chain, name: str, args: Sequence[Any], sender: Any, what: str,
              on_receipt: OnReceipt) -> str:
    receipt = chain.deploy(name, args, sender)
    assert receipt.contract_address is not None
    on_receipt(Receipt(receipt.tx_hash, receipt.block_number, receipt.gas_used, receipt.logs,
                       what.format(address=receipt.contract_address),
                       receipt.contract_address))
    return receipt.contract_address


def _declared(chain: Chain, name: str, sender: Any, on_receipt: OnReceipt) -> str:
    receipt = chain.declare(name, sender)
    assert receipt.contract_address is not None
    on_receipt(Receipt(receipt.tx_hash, receipt.block_number, receipt.gas_used, receipt.logs,
                       f"{name} blueprint at {receipt.contract_address}",
                       receipt.contract_address))
    return receipt.contract_address


def deploy_mock_stablecoin(chain: Chain, admin: Any, on_receipt: OnReceipt = _quiet) -> str:
    """The local chains' stablecoin (mUSDC, 6 decimals; `mint` by its deployer)."""
    return _deployed(chain, "MockStablecoin", [], admin,
                     "MockStablecoin (mUSDC, 6 decimals) at {address}", on_receipt)


def deploy_registry(chain: Chain, admin: Any, kyc_providers: Sequence[str] = (),
                    on_receipt: OnReceipt = _quiet) -> str:
    """The ComplianceRegistry; `admin` holds every role (KYC provider, freezer, rules
    admin) until it grants them; `kyc_providers` get KYC_PROVIDER_ROLE."""
    address = _deployed(chain, "ComplianceRegistry", [chain.address_of(admin)], admin,
                        "ComplianceRegistry at {address}", on_receipt)
    registry = chain.contract("ComplianceRegistry", address)
    for kyc in kyc_providers:
        on_receipt(chain.send(registry.grantRole.tx(
            KYC_PROVIDER_ROLE, kyc, what=f"granted KYC_PROVIDER_ROLE to {kyc}"), admin))
    return address


def deploy_spv_factory(chain: Chain, admin: Any, registry: str, operators: Sequence[str] = (),
                       on_receipt: OnReceipt = _quiet) -> tuple[str, str]:
    """The GPUShareToken blueprint and the SPVFactory over `registry`; `operators` get
    OPERATOR_ROLE. Returns (blueprint, factory)."""
    blueprint = _declared(chain, "GPUShareToken", admin, on_receipt)
    factory = _deployed(chain, "SPVFactory", [blueprint, registry], admin,
                        "SPVFactory at {address}", on_receipt)
    contract = chain.contract("SPVFactory", factory)
    for operator in operators:
        on_receipt(chain.send(contract.grantRole.tx(
            OPERATOR_ROLE, operator, what=f"granted OPERATOR_ROLE to {operator}"), admin))
    return blueprint, factory


def deploy_oracle(chain: Chain, admin: Any, on_receipt: OnReceipt = _quiet) -> tuple[str, str]:
    """The FeedAdapter blueprint and the OracleHub (no signer set yet). Returns
    (adapter blueprint, hub)."""
    blueprint = _declared(chain, "FeedAdapter", admin, on_receipt)
    hub = _deployed(chain, "OracleHub", [chain.address_of(admin), blueprint], admin,
                    "OracleHub at {address} (no signer set yet: `ape run oracle set-signers`)",
                    on_receipt)
    return blueprint, hub


def _market_factory(chain: Chain, admin: Any, market: str, script: str,
                    on_receipt: OnReceipt) -> tuple[str, str]:
    blueprint = _declared(chain, market, admin, on_receipt)
    factory = _deployed(chain, f"{market}Factory", [blueprint], admin,
                        f"{market}Factory at {{address}} (markets: `ape run {script} create`)",
                        on_receipt)
    return blueprint, factory


def deploy_lending(chain: Chain, admin: Any, on_receipt: OnReceipt = _quiet) -> tuple[str, str]:
    """The LendingPool blueprint and the LendingPoolFactory (`admin` creates markets).
    Returns (blueprint, factory)."""
    return _market_factory(chain, admin, "LendingPool", "pool", on_receipt)


def deploy_perps(chain: Chain, admin: Any, on_receipt: OnReceipt = _quiet) -> tuple[str, str]:
    """The PerpMarket blueprint and the PerpMarketFactory (`admin` creates markets).
    Returns (blueprint, factory)."""
    return _market_factory(chain, admin, "PerpMarket", "perp", on_receipt)


def deploy_subscriptions(chain: Chain, admin: Any, on_receipt: OnReceipt = _quiet
                         ) -> tuple[str, str]:
    """The SubscriptionVault blueprint and the SubscriptionVaultFactory (an operator of a
    share token opens its ERC-7540 vault). Returns (blueprint, factory)."""
    blueprint = _declared(chain, "SubscriptionVault", admin, on_receipt)
    factory = _deployed(chain, "SubscriptionVaultFactory", [blueprint], admin,
                        "SubscriptionVaultFactory at {address} (an SPV's vault: `ape run spv "
                        "subscriptions open`)", on_receipt)
    return blueprint, factory


def deploy_perp_lens(chain: Chain, deployer: Any, on_receipt: OnReceipt = _quiet) -> str:
    """The stateless PerpLens (equity, liquidation price, order status of any market)."""
    return _deployed(chain, "PerpLens", [], deployer, "PerpLens at {address}", on_receipt)


def deploy_lens(chain: Chain, deployer: Any, on_receipt: OnReceipt = _quiet) -> tuple[str, str]:
    """The stateless Lens and MarketLens (the app's page reads, one `eth_call` per page
    section). Returns (lens, market lens)."""
    return (_deployed(chain, "Lens", [], deployer, "Lens at {address}", on_receipt),
            _deployed(chain, "MarketLens", [], deployer, "MarketLens at {address}", on_receipt))


@dataclass(frozen=True)
class SuiteOptions:
    """What `deploy_suite` wires besides the contracts."""

    operators: tuple[str, ...] = ()
    kyc_providers: tuple[str, ...] = ()
    #: the stablecoin new SPVs pay income in; None deploys the mock (local chains only)
    income_token: str | None = None
    network: str = "local"


def deploy_suite(chain: Chain, deployer: Any, options: SuiteOptions = SuiteOptions(),
                 on_receipt: OnReceipt = _quiet) -> deployments_file.Deployments:
    """Deploy everything, grant the roles `options` names, fund the operators with the
    mock stablecoin on a local chain, and return what the deployments file records."""
    me = chain.address_of(deployer)
    mock = options.income_token is None
    income_token = (deploy_mock_stablecoin(chain, deployer, on_receipt) if mock
                    else options.income_token)
    assert income_token is not None
    registry = deploy_registry(chain, deployer, options.kyc_providers, on_receipt)
    blueprint, factory = deploy_spv_factory(chain, deployer, registry, options.operators,
                                            on_receipt)
    if mock:
        stable = chain.contract("MockStablecoin", income_token)
        for operator in options.operators:
            on_receipt(chain.send(stable.mint.tx(operator, MOCK_FUNDING, what=(
                f"minted {MOCK_FUNDING // 10**6:,} mUSDC to {operator} (local mock)")),
                deployer))
    adapter_blueprint, hub = deploy_oracle(chain, deployer, on_receipt)
    pool_blueprint, lending = deploy_lending(chain, deployer, on_receipt)
    perp_blueprint, perps = deploy_perps(chain, deployer, on_receipt)
    lens = deploy_perp_lens(chain, deployer, on_receipt)
    vault_blueprint, vaults = deploy_subscriptions(chain, deployer, on_receipt)
    page_lens, market_lens = deploy_lens(chain, deployer, on_receipt)
    return deployments_file.Deployments(
        chain_id=chain.chain_id,
        network=options.network,
        deployed_at=deployments_file.block_time(chain.now()),
        deployer=me,
        share_token_blueprint=blueprint,
        spv_factory=factory,
        compliance_registry=registry,
        income_token=income_token,
        mock_stablecoin=mock,
        oracle_hub=hub,
        feed_adapter_blueprint=adapter_blueprint,
        lending_pool_blueprint=pool_blueprint,
        lending_pool_factory=lending,
        perp_market_blueprint=perp_blueprint,
        perp_market_factory=perps,
        perp_lens=lens,
        subscription_vault_blueprint=vault_blueprint,
        subscription_vault_factory=vaults,
        lens=page_lens,
        market_lens=market_lens,
    )
