"""Helpers shared by the ape scripts (a leading underscore: not a script itself)."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import click
from ape import project
from ape.api import ReceiptAPI
from ape.cli import account_option as ape_account_option
from ape.exceptions import ContractLogicError
from eth_utils import is_address, to_checksum_address

from gpushares import deployments as deployments_file

ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"

# ape-vyper's settings model trips a pydantic-settings warning the first time a script
# touches the compiled project: noise to an operator (it changes nothing), so hidden.
warnings.filterwarnings("ignore", message=r"Field '\w+' has an incomplete definition")


def account_option() -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """`--account ALIAS` (TEST::N on local chains); never prompts, so scripts run in CI."""
    return ape_account_option(prompt=False)


def checksum_address(value: str, what: str) -> str:
    """`value` as a checksummed address, or a clear error naming the option `what`."""
    if not is_address(value):
        raise click.BadParameter(f"{what}: {value!r} is not an address")
    return to_checksum_address(value)


def require_account(account: Any) -> Any:
    """The signer, or a clear error telling how to pass one."""
    if account is None:
        raise click.UsageError(
            "pass --account ALIAS (an ape account alias, or TEST::N for the local test accounts)"
        )
    return account


def deployments_path(provider: Any) -> Path:
    """Deployments file of the chain `provider` is connected to."""
    network = provider.network
    return deployments_file.deployments_path(
        network.ecosystem.name, network.name, provider.chain_id
    )


def load_deployments(provider: Any) -> deployments_file.Deployments:
    """Load this chain's deployments and check that its contracts exist on the chain."""
    path = deployments_path(provider)
    try:
        deployed = deployments_file.load(path)
    except deployments_file.DeploymentsError as exc:
        raise click.ClickException(str(exc)) from exc
    if deployed.chain_id != provider.chain_id:
        raise click.ClickException(
            f"{path} is for chain {deployed.chain_id}, but the node is chain {provider.chain_id}"
        )
    if not provider.get_code(deployed.spv_factory):
        raise click.ClickException(
            f"{path} names SPVFactory {deployed.spv_factory}, but the chain has no contract "
            "there (was the local node restarted?). Run `ape run deploy` again."
        )
    return deployed


def factory(deployed: deployments_file.Deployments) -> Any:
    """The SPVFactory contract."""
    return project.SPVFactory.at(deployed.spv_factory)


def share_token(deployed: deployments_file.Deployments, spv_id: int) -> Any:
    """The GPUShareToken of SPV `spv_id`, or a clear error if there is no such SPV."""
    spv_factory = factory(deployed)
    count = spv_factory.spv_count()
    if spv_id < 1 or spv_id > count:
        listing = f"ids 1..{count}" if count else "none yet"
        raise click.ClickException(
            f"unknown SPV id {spv_id}: this factory has {count} SPV(s) ({listing}); "
            "see `ape run spv status`"
        )
    return project.GPUShareToken.at(spv_factory.spvs(spv_id).token)


def registry(deployed: deployments_file.Deployments) -> Any:
    """The ComplianceRegistry contract."""
    return project.ComplianceRegistry.at(deployed.compliance_registry)


def restriction(token: Any, sender: str, receiver: str, amount: int) -> tuple[int, str]:
    """The token's ERC-1404 code and message for a movement, as a wallet would show it."""
    code = int(token.detectTransferRestriction(sender, receiver, amount))
    return code, str(token.messageForTransferRestriction(code))


def erc20(address: str) -> Any:
    """An ERC-20 (the income stablecoin) through the mock's ABI, which is plain ERC-20."""
    return project.MockStablecoin.at(address)


def to_base_units(amount: str, decimals: int, what: str) -> int:
    """Parse a decimal amount ('1234.5') into base units, refusing excess precision."""
    try:
        value = Decimal(amount)
    except InvalidOperation as exc:
        raise click.BadParameter(f"{what}: {amount!r} is not a number") from exc
    if not value.is_finite() or value <= 0:
        raise click.BadParameter(f"{what}: must be a positive amount, got {amount}")
    scaled = value.scaleb(decimals)
    if scaled != scaled.to_integral_value():
        raise click.BadParameter(f"{what}: {amount} has more than {decimals} decimals")
    return int(scaled)


def fmt_units(value: int, decimals: int) -> str:
    """Base units as a decimal string with thousands separators."""
    text = f"{Decimal(value).scaleb(-decimals):,.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def report(what: str, receipt: ReceiptAPI) -> None:
    """Print one line per transaction: what it did, its hash and gas."""
    click.echo(
        f"  {what}: tx {receipt.txn_hash} "
        f"(block {receipt.block_number}, gas {receipt.gas_used:,})"
    )


def transact(what: str, call: Callable[..., ReceiptAPI], *args: Any, **kwargs: Any) -> ReceiptAPI:
    """Send a transaction; turn a revert into a clear error carrying the contract's reason."""
    try:
        receipt = call(*args, **kwargs)
    except ContractLogicError as exc:
        raise click.ClickException(f"{what} refused by the contract: {exc.message}") from exc
    report(what, receipt)
    return receipt


def checked_market_numbers(factory: Any, number: int | None, *, label: str,
                           create: str) -> list[int]:
    """`[number]` after checking the factory has it, or every market's number when None
    (`label` names the market kind in the error, `create` the script that makes one)."""
    count = int(factory.market_count())
    if number is None:
        return list(range(1, count + 1))
    if number > count:
        listing = f"markets 1..{count}" if count else f"no market yet: `ape run {create} create`"
        raise click.ClickException(f"unknown {label} {number}: the factory has {listing}")
    return [number]


# ---------------------------------------------------------------------------------
# The client layer (gpushares.client): scripts parse arguments, call it, print
# ---------------------------------------------------------------------------------


def connect(provider: Any) -> Any:
    """The client for the chain ape is connected to, with its deployments file."""
    from gpushares.client.ape_chain import ApeChain
    from gpushares.client.context import Client

    with handled():
        return Client.load(ApeChain(provider), deployments_path(provider))


@contextmanager
def handled() -> Iterator[None]:
    """Turn the client's errors into click's: bad input is a usage error (exit 2),
    a refusal before sending or by the contract an error (exit 1), both one sentence."""
    from gpushares.client.chain import ChainError
    from gpushares.client.units import BadInput

    try:
        yield
    except BadInput as exc:
        raise click.BadParameter(str(exc)) from exc
    except ChainError as exc:
        raise click.ClickException(str(exc)) from exc


def _checked_address(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """An address option, checked as it is parsed: a usage error naming the option."""
    from gpushares.client.units import BadInput, address

    try:
        if isinstance(value, tuple):
            return tuple(address(v, param.opts[0]) for v in value)
        return None if value is None else address(value, param.opts[0])
    except BadInput as exc:
        raise click.UsageError(str(exc), ctx) from exc


Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def address_option(*names: str, **kwargs: Any) -> Decorator:
    """`click.option` for an address: a malformed one (`0x7099...79C8` copied from a
    document) is refused before the command connects or sends anything."""
    return click.option(*names, callback=_checked_address, **kwargs)


def execute(client: Any, plan: Any, sender: Any, *, skip_checks: bool = False) -> list[Any]:
    """Send a plan's transactions in order, one printed line each. A plan the chain
    would refuse is refused here, nothing sent; `skip_checks` sends it anyway (to see
    the contract's own refusal)."""
    with handled():
        if plan.refusal is not None:
            if not skip_checks:
                raise plan.refusal
            click.echo(f"  pre-check refuses the {plan.what}: {plan.refusal.reason}")
            for line in getattr(plan.refusal, "lines", lambda: [])():
                click.echo(f"  {line}")
            click.echo("  --skip-checks: sending anyway")
        receipts = []
        for tx in plan.txs:
            receipt = client.chain.send(tx, sender)
            echo_receipt(receipt)
            receipts.append(receipt)
    for note in plan.notes:
        click.echo(f"  {note}")
    return receipts


def echo_receipt(receipt: Any) -> None:
    """One line per transaction: what it did, its hash, block and gas."""
    click.echo(f"  {receipt.what}: tx {receipt.tx_hash} "
               f"(block {receipt.block_number}, gas {receipt.gas_used:,})")
