# pragma version ~=0.4.3
"""
@title ERC-20 that can answer `False` (test only)
@notice While `failing` is set, `transfer` / `transferFrom` return `False` without
        moving tokens, so tests can check that the share token refuses a transfer
        that reports failure.
"""

balanceOf: public(HashMap[address, uint256])
allowance: public(HashMap[address, HashMap[address, uint256]])
decimals: public(constant(uint8)) = 6
failing: public(bool)


@external
def mint(to: address, amount: uint256):
    self.balanceOf[to] += amount


@external
def set_failing(failing: bool):
    self.failing = failing


@external
def approve(spender: address, amount: uint256) -> bool:
    self.allowance[msg.sender][spender] = amount
    return True


@external
def transfer(to: address, amount: uint256) -> bool:
    if self.failing:
        return False
    self.balanceOf[msg.sender] -= amount
    self.balanceOf[to] += amount
    return True


@external
def transferFrom(owner: address, to: address, amount: uint256) -> bool:
    if self.failing:
        return False
    self.allowance[owner][msg.sender] -= amount
    self.balanceOf[owner] -= amount
    self.balanceOf[to] += amount
    return True
