"""Deploy the GPU share suite: the ComplianceRegistry, the GPUShareToken blueprint and
the SPVFactory, the OracleHub (with its FeedAdapter blueprint), the
LendingPoolFactory (with its LendingPool blueprint) and the PerpMarketFactory (with
its PerpMarket blueprint), plus a 6-decimals mock stablecoin on local chains. Writes the
deployments file for the chain. The deployer becomes the registry's admin (KYC
provider, freezer and rules admin until it grants those roles to others).

    ape run deploy --network ethereum:local:foundry --account TEST::0 \
        [--operator ADDR] [--kyc-provider ADDR]

Then load the jurisdiction table from the rules data: `ape run jurisdictions apply`.
"""

from __future__ import annotations

import click
from ape import project
from ape.cli import ConnectedProviderCommand

from gpushares import deployments as deployments_file
from scripts._lib import account_option, deployments_path, report, require_account

LOCAL_NETWORKS = {"local"}
# Mock stablecoin each operator receives on a local chain: 1,000,000.00 mUSDC.
MOCK_FUNDING = 1_000_000 * 10**6


@click.command(cls=ConnectedProviderCommand)
@account_option()
@click.option(
    "--operator",
    "operators",
    multiple=True,
    help="Address to grant the factory's OPERATOR_ROLE (repeatable).",
)
@click.option(
    "--kyc-provider",
    "kyc_providers",
    multiple=True,
    help="Address to grant the registry's KYC_PROVIDER_ROLE (repeatable).",
)
@click.option(
    "--income-token",
    default=None,
    help="Stablecoin for new SPVs. Required off local chains; local chains get a mock.",
)
def cli(network, provider, account, operators, kyc_providers, income_token):
    """Deploy registry, SPV factory, oracle hub, lending and perp factories (+ local mock)."""
    deployer = require_account(account)
    local = network.name in LOCAL_NETWORKS
    click.echo(
        f"Deploying to {network.choice} (chain {provider.chain_id}) as {deployer.address}"
    )

    mock = False
    if income_token is None:
        if not local:
            raise click.UsageError("--income-token is required on a public network")
        stable = deployer.deploy(project.MockStablecoin)
        report(
            f"MockStablecoin (mUSDC, 6 decimals) at {stable.address}",
            provider.get_receipt(stable.txn_hash),
        )
        income_token = stable.address
        mock = True
    elif not provider.get_code(income_token):
        raise click.BadParameter(f"--income-token {income_token} has no contract on this chain")
    else:
        stable = None

    registry = deployer.deploy(project.ComplianceRegistry, deployer.address)
    report(f"ComplianceRegistry at {registry.address}", provider.get_receipt(registry.txn_hash))
    for kyc in kyc_providers:
        receipt = registry.grantRole(registry.KYC_PROVIDER_ROLE(), kyc, sender=deployer)
        report(f"granted KYC_PROVIDER_ROLE to {kyc}", receipt)

    blueprint_receipt = deployer.declare(project.GPUShareToken)
    blueprint = blueprint_receipt.contract_address
    report(f"GPUShareToken blueprint at {blueprint}", blueprint_receipt)

    factory = deployer.deploy(project.SPVFactory, blueprint, registry.address)
    report(f"SPVFactory at {factory.address}", provider.get_receipt(factory.txn_hash))

    role = factory.OPERATOR_ROLE()
    for operator in operators:
        receipt = factory.grantRole(role, operator, sender=deployer)
        report(f"granted OPERATOR_ROLE to {operator}", receipt)
        if mock:
            receipt = stable.mint(operator, MOCK_FUNDING, sender=deployer)
            report(f"minted {MOCK_FUNDING // 10**6:,} mUSDC to {operator} (local mock)", receipt)

    adapter_receipt = deployer.declare(project.FeedAdapter)
    adapter_blueprint = adapter_receipt.contract_address
    report(f"FeedAdapter blueprint at {adapter_blueprint}", adapter_receipt)
    hub = deployer.deploy(project.OracleHub, deployer.address, adapter_blueprint)
    report(f"OracleHub at {hub.address} (no signer set yet: `ape run oracle set-signers`)",
           provider.get_receipt(hub.txn_hash))

    pool_receipt = deployer.declare(project.LendingPool)
    pool_blueprint = pool_receipt.contract_address
    report(f"LendingPool blueprint at {pool_blueprint}", pool_receipt)
    lending = deployer.deploy(project.LendingPoolFactory, pool_blueprint)
    report(f"LendingPoolFactory at {lending.address} (markets: `ape run pool create`)",
           provider.get_receipt(lending.txn_hash))

    perp_receipt = deployer.declare(project.PerpMarket)
    perp_blueprint = perp_receipt.contract_address
    report(f"PerpMarket blueprint at {perp_blueprint}", perp_receipt)
    perps = deployer.deploy(project.PerpMarketFactory, perp_blueprint)
    report(f"PerpMarketFactory at {perps.address} (markets: `ape run perp create`)",
           provider.get_receipt(perps.txn_hash))

    path = deployments_path(provider)
    deployments_file.save(
        path,
        deployments_file.Deployments(
            chain_id=provider.chain_id,
            network=f"{network.choice}:{provider.name}",
            deployed_at=deployments_file.block_time(provider.get_block("latest").timestamp),
            deployer=deployer.address,
            share_token_blueprint=blueprint,
            spv_factory=factory.address,
            compliance_registry=registry.address,
            income_token=income_token,
            mock_stablecoin=mock,
            oracle_hub=hub.address,
            feed_adapter_blueprint=adapter_blueprint,
            lending_pool_blueprint=pool_blueprint,
            lending_pool_factory=lending.address,
            perp_market_blueprint=perp_blueprint,
            perp_market_factory=perps.address,
        ),
    )
    click.echo(f"Wrote {path}")
    click.echo("Next: load the jurisdiction table with `ape run jurisdictions apply`.")
