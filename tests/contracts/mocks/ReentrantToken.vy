# pragma version ~=0.4.3
"""
@title Re-entering ERC-20 (test only)
@notice On `transfer` it calls back into the share token (`claim`, or `distribute`),
        like a token with transfer hooks controlled by an attacker. The share token's
        lock must make the inner call revert, which reverts the outer claim too.
"""

interface IShareToken:
    def claim() -> uint256: nonpayable
    def distribute(amount: uint256): nonpayable

balanceOf: public(HashMap[address, uint256])
allowance: public(HashMap[address, HashMap[address, uint256]])
decimals: public(constant(uint8)) = 6
target: public(address)
armed: public(bool)


@external
def mint(to: address, amount: uint256):
    self.balanceOf[to] += amount


@external
def arm(target: address):
    self.target = target
    self.armed = True


@external
def approve(spender: address, amount: uint256) -> bool:
    self.allowance[msg.sender][spender] = amount
    return True


@external
def transfer(to: address, amount: uint256) -> bool:
    self.balanceOf[msg.sender] -= amount
    self.balanceOf[to] += amount
    if self.armed:
        self.armed = False
        extcall IShareToken(self.target).claim()
    return True


@external
def transferFrom(owner: address, to: address, amount: uint256) -> bool:
    self.allowance[owner][msg.sender] -= amount
    self.balanceOf[owner] -= amount
    self.balanceOf[to] += amount
    return True
