# pragma version ~=0.4.3
"""
@title ERC-20 with an attacker-controlled transfer hook (test only)
@notice A 6-decimal stablecoin that, once armed, calls a target with arbitrary
        calldata from inside `transfer` or `transferFrom` (like an ERC-777 hook), so
        tests can try to re-enter the lending pool mid-operation. The hook's revert
        reason is bubbled up.
"""

balanceOf: public(HashMap[address, uint256])
allowance: public(HashMap[address, HashMap[address, uint256]])
totalSupply: public(uint256)
decimals: public(constant(uint8)) = 6
target: public(address)
payload: public(Bytes[1024])
armed: public(bool)


@external
def mint(to: address, amount: uint256):
    self.balanceOf[to] += amount
    self.totalSupply += amount


@external
def arm(target: address, payload: Bytes[1024]):
    self.target = target
    self.payload = payload
    self.armed = True


@internal
def _hook():
    if self.armed:
        self.armed = False
        raw_call(self.target, self.payload, revert_on_failure=True)


@external
def approve(spender: address, amount: uint256) -> bool:
    self.allowance[msg.sender][spender] = amount
    return True


@external
def transfer(to: address, amount: uint256) -> bool:
    self.balanceOf[msg.sender] -= amount
    self.balanceOf[to] += amount
    self._hook()
    return True


@external
def transferFrom(owner: address, to: address, amount: uint256) -> bool:
    if self.allowance[owner][msg.sender] != max_value(uint256):
        self.allowance[owner][msg.sender] -= amount
    self.balanceOf[owner] -= amount
    self.balanceOf[to] += amount
    self._hook()
    return True
