# pragma version ~=0.4.3
"""
@title Fee-on-transfer ERC-20 (test only)
@notice Burns 1% of every transferFrom, like tokens that charge a transfer fee, so
        tests can check that the share token only distributes what it received.
"""

balanceOf: public(HashMap[address, uint256])
allowance: public(HashMap[address, HashMap[address, uint256]])
totalSupply: public(uint256)
decimals: public(constant(uint8)) = 6


@external
def mint(to: address, amount: uint256):
    self.balanceOf[to] += amount
    self.totalSupply += amount


@external
def approve(spender: address, amount: uint256) -> bool:
    self.allowance[msg.sender][spender] = amount
    return True


@external
def transfer(to: address, amount: uint256) -> bool:
    self.balanceOf[msg.sender] -= amount
    self.balanceOf[to] += amount
    return True


@external
def transferFrom(owner: address, to: address, amount: uint256) -> bool:
    self.allowance[owner][msg.sender] -= amount
    fee: uint256 = amount // 100
    self.balanceOf[owner] -= amount
    self.balanceOf[to] += amount - fee
    self.totalSupply -= fee
    return True
