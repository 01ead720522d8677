# pragma version ~=0.4.3
# pragma optimize gas
"""
@title Mock USD Stablecoin (local chains only)
@custom:contract-name MockStablecoin
@license GNU Affero General Public License v3.0 only
@notice A 6-decimals ERC-20 standing in for a USD stablecoin on local development
        chains. The deployer is the owner and sole minter. `scripts/deploy.py` only
        deploys it on local chains; on a public chain the SPV uses a real stablecoin.
"""


from snekmate.auth import ownable
initializes: ownable

from snekmate.tokens import erc20
initializes: erc20[ownable := ownable]

exports: erc20.__interface__


@deploy
@payable
def __init__():
    """
    @notice Deploys "Mock USD Coin" (mUSDC, 6 decimals); the deployer may mint.
    """
    ownable.__init__()
    erc20.__init__("Mock USD Coin", "mUSDC", 6, "Mock USD Coin", "1")
