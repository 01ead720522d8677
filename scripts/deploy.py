"""Deploy the GPU share suite: the ComplianceRegistry, the GPUShareToken blueprint and
the SPVFactory, the OracleHub (with its FeedAdapter blueprint), the
LendingPoolFactory (with its LendingPool blueprint), the PerpMarketFactory (with
its PerpMarket blueprint), the PerpLens, the SubscriptionVaultFactory (with its
SubscriptionVault blueprint) and the app's Lens and MarketLens, plus a 6-decimals mock
stablecoin on local chains. Writes the deployments file for the chain. The deployer
becomes the registry's admin (KYC provider, freezer and rules admin until it grants
those roles to others).

    ape run deploy --network ethereum:local:foundry --account TEST::0 \\
        [--operator ADDR] [--kyc-provider ADDR] [--income-token ADDR]

Every address is checked before anything is sent. The suite is deployed by
`gpushares.client.suite.deploy_suite`, the same builder the tests and the benchmark use.
Then load the jurisdiction table from the rules data: `ape run jurisdictions apply`.
"""

from __future__ import annotations

import click
from ape.cli import ConnectedProviderCommand

from gpushares import deployments as deployments_file
from gpushares.client.ape_chain import ApeChain
from gpushares.client.suite import SuiteOptions, deploy_suite
from gpushares.client.units import address
from scripts._lib import account_option, deployments_path, echo_receipt, handled, require_account

LOCAL_NETWORKS = {"local"}


@click.command(cls=ConnectedProviderCommand)
@account_option()
@click.option("--operator", "operators", multiple=True,
              help="Address to grant the factory's OPERATOR_ROLE (repeatable).")
@click.option("--kyc-provider", "kyc_providers", multiple=True,
              help="Address to grant the registry's KYC_PROVIDER_ROLE (repeatable).")
@click.option("--income-token", default=None,
              help="Stablecoin for new SPVs. Required off local chains; local chains get a mock.")
def cli(network, provider, account, operators, kyc_providers, income_token):
    """Deploy registry, SPV factory, oracle hub, lending, perp and vault factories (+ mock)."""
    deployer = require_account(account)
    with handled():
        options = SuiteOptions(
            operators=tuple(address(a, "--operator") for a in operators),
            kyc_providers=tuple(address(a, "--kyc-provider") for a in kyc_providers),
            income_token=address(income_token, "--income-token") if income_token else None,
            network=f"{network.choice}:{provider.name}",
        )
    if options.income_token is None and network.name not in LOCAL_NETWORKS:
        raise click.UsageError("--income-token is required on a public network")
    if options.income_token is not None and not provider.get_code(options.income_token):
        raise click.BadParameter(f"--income-token {options.income_token} has no contract on "
                                 "this chain")
    click.echo(f"Deploying to {network.choice} (chain {provider.chain_id}) as "
               f"{deployer.address}")
    with handled():
        deployed = deploy_suite(ApeChain(provider), deployer, options, echo_receipt)
    path = deployments_path(provider)
    deployments_file.save(path, deployed)
    click.echo(f"Wrote {path}")
    click.echo("Next: load the jurisdiction table with `ape run jurisdictions apply`.")
