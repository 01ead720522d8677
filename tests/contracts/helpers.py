"""Constants and small builders shared by the contract tests."""

from __future__ import annotations

from eth_utils import keccak

SHARE = 10**18
USDC = 10**6
SHARES_PER_GPU = 1_000 * SHARE
MAGNITUDE = 10**36
MAX_SUPPLY = 2**96 - 1
MAX_INCOME_PER_SHARE = 2**159 - 1
ACTIVE, IMPAIRED, RETIRED = 1, 2, 4
ZERO = "0x0000000000000000000000000000000000000000"
OPERATOR_ROLE = keccak(text="OPERATOR_ROLE")
PAUSER_ROLE = keccak(text="PAUSER_ROLE")
DEFAULT_ADMIN_ROLE = b"\0" * 32
VALID_LEI = "5493001KJTIIGC8Y1R12"


def make_lei(base18: str) -> str:
    """Append ISO 7064 MOD 97-10 check digits to an 18-character LEI prefix."""
    number = int("".join(str(int(c, 36)) for c in base18 + "00"))
    return f"{base18}{98 - number % 97:02d}"


def bytes32(text: str) -> bytes:
    return text.encode().ljust(32, b"\0")


def gpu(serial: str, *, location: int = 840, commissioned_at: int = 1, cost: int = 27_500 * 10**8,
        model: str = "H100-SXM5-80GB", datacenter: str = "US-TX-DFW-01") -> tuple:
    """A `GPUInput` tuple for `add_gpus`."""
    return (keccak(text=serial), bytes32(model), location, bytes32(datacenter), cost,
            commissioned_at)
