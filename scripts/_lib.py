"""What every ape script shares (a leading underscore: not a script itself): the
`--account` and address options, the client for the chain ape is connected to, and
sending a client `Plan` with one printed line per transaction. The logic of each
command is in `gpushares.client`; a script parses arguments, calls it and prints."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from ape.cli import account_option as ape_account_option

from gpushares import deployments as deployments_file

# ape-vyper's settings model trips a pydantic-settings warning the first time a script
# touches the compiled project: noise to an operator (it changes nothing), so hidden.
warnings.filterwarnings("ignore", message=r"Field '\w+' has an incomplete definition")

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def account_option() -> Decorator:
    """`--account ALIAS` (TEST::N on local chains); never prompts, so scripts run in CI."""
    return ape_account_option(prompt=False)


def require_account(account: Any) -> Any:
    """The signer, or a clear error telling how to pass one."""
    if account is None:
        raise click.UsageError(
            "pass --account ALIAS (an ape account alias, or TEST::N for the local test accounts)"
        )
    return account


def _checked_address(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """An address option, checked as it is parsed: a usage error naming the option."""
    from gpushares.client.units import BadInput, address

    try:
        if isinstance(value, tuple):
            return tuple(address(v, param.opts[0]) for v in value)
        return None if value is None else address(value, param.opts[0])
    except BadInput as exc:
        raise click.UsageError(str(exc), ctx) from exc


def address_option(*names: str, **kwargs: Any) -> Decorator:
    """`click.option` for an address: a malformed one (`0x7099...79C8` copied from a
    document) is refused before the command connects or sends anything."""
    return click.option(*names, callback=_checked_address, **kwargs)


def deployments_path(provider: Any) -> Path:
    """Deployments file of the chain `provider` is connected to."""
    network = provider.network
    return deployments_file.deployments_path(
        network.ecosystem.name, network.name, provider.chain_id
    )


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
