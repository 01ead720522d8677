# pragma version ~=0.4.3
# pragma optimize gas
"""
@title Baseline ERC-20 (benchmark only)
@custom:contract-name BaselineERC20
@license GNU Affero General Public License v3.0 only
@notice A plain snekmate ERC-20 with no income or compliance logic, compiled with the
        same settings as GPUShareToken, so `make bench` can report what the share
        token's income accounting and transfer hook cost on top of a bare transfer.
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
    @notice Deploys "Baseline Shares" (BASE, 18 decimals); the deployer may mint.
    """
    ownable.__init__()
    erc20.__init__("Baseline Shares", "BASE", 18, "Baseline Shares", "1")
