# pragma version ~=0.4.3
"""
@title Test stablecoin with configurable decimals (test only)
@notice A plain ERC-20 (snekmate) whose decimals are chosen at deployment, so the
        lending pool can be tested with 6- and 18-decimal loan assets. Anyone mints.
"""

from snekmate.auth import ownable
initializes: ownable

from snekmate.tokens import erc20
initializes: erc20[ownable := ownable]

exports: (
    erc20.balanceOf,
    erc20.allowance,
    erc20.totalSupply,
    erc20.name,
    erc20.symbol,
    erc20.decimals,
    erc20.approve,
    erc20.transfer,
    erc20.transferFrom,
)


@deploy
def __init__(decimals_: uint8):
    ownable.__init__()
    erc20.__init__("Test USD", "tUSD", decimals_, "Test USD", "1")


@external
def mint(to: address, amount: uint256):
    erc20._mint(to, amount)
