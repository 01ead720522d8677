# pragma version ~=0.4.3
"""
@title ERC-20 without return values (test only)
@notice `transfer` / `transferFrom` return nothing, like USDT on mainnet; when
        `fail_mode` is set they return `False` instead of moving tokens.
"""

balanceOf: public(HashMap[address, uint256])
allowance: public(HashMap[address, HashMap[address, uint256]])
decimals: public(constant(uint8)) = 6
fail_mode: public(bool)


@external
def mint(to: address, amount: uint256):
    self.balanceOf[to] += amount


@external
def set_fail_mode(fail: bool):
    self.fail_mode = fail


@external
def approve(spender: address, amount: uint256) -> bool:
    self.allowance[msg.sender][spender] = amount
    return True


@external
def transfer(to: address, amount: uint256):
    self.balanceOf[msg.sender] -= amount
    self.balanceOf[to] += amount


@external
def transferFrom(owner: address, to: address, amount: uint256):
    self.allowance[owner][msg.sender] -= amount
    self.balanceOf[owner] -= amount
    self.balanceOf[to] += amount
