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
FREEZER_ROLE = keccak(text="FREEZER_ROLE")
FORCED_TRANSFER_ROLE = keccak(text="FORCED_TRANSFER_ROLE")
RECOVERY_ROLE = keccak(text="RECOVERY_ROLE")
KYC_PROVIDER_ROLE = keccak(text="KYC_PROVIDER_ROLE")
RULES_ADMIN_ROLE = keccak(text="RULES_ADMIN_ROLE")
# Far enough in the future for any test's time travel.
FAR_FUTURE = 2**40

# On-chain encodings (jurisdictions.codes.TitleStatus / HolderPolicyCode).
RECOGNISED, NOT_RECOGNISED, UNCLEAR = 1, 2, 3
ALLOWED, ACCREDITED_ONLY, BLOCKED = 1, 2, 3
US, CH, DE, FR, LI, KP = 840, 756, 276, 250, 438, 408
# A TEST table (deliberately not the real rules data, which counsel may revise):
# jurisdiction -> (title status, holder policy).
TEST_TABLE = {
    US: (RECOGNISED, ALLOWED),
    CH: (RECOGNISED, ACCREDITED_ONLY),
    DE: (NOT_RECOGNISED, ACCREDITED_ONLY),
    FR: (UNCLEAR, ALLOWED),
    LI: (RECOGNISED, ALLOWED),
    KP: (UNCLEAR, BLOCKED),
}


def table_rows(table: dict[int, tuple[int, int]]) -> list[tuple]:
    """`JurisdictionSetting` tuples for `set_jurisdictions` (rules hash: a label)."""
    return [(code, title, policy, keccak(text=f"rules-{code}-{title}-{policy}"))
            for code, (title, policy) in table.items()]


def make_lei(base18: str) -> str:
    """Append ISO 7064 MOD 97-10 check digits to an 18-character LEI prefix."""
    number = int("".join(str(int(c, 36)) for c in base18 + "00"))
    return f"{base18}{98 - number % 97:02d}"


def bytes32(text: str) -> bytes:
    return text.encode().ljust(32, b"\0")


def gpu(serial: str, *, location: int = 840, commissioned_at: int = 1, cost: int = 27_500 * 10**8,
        model: str = "H100-SXM5-80GB", datacenter: str = "US-TX-DFW-01",
        subdivision: int = 0) -> tuple:
    """A `GPUInput` tuple for `add_gpus` (`subdivision`: the registry's encoding of an
    ISO 3166-2 region, `jurisdictions.rules.encode_subdivision`; 0 for none)."""
    return (keccak(text=serial), bytes32(model), location, bytes32(datacenter), cost,
            commissioned_at, subdivision)


def register(registry, kyc, *accounts, jurisdiction: int = US, accredited: bool = False,
             expires_at: int = FAR_FUTURE) -> None:
    """Write eligibility records for `accounts` as KYC provider `kyc`."""
    import boa

    with boa.env.prank(kyc):
        for account in accounts:
            registry.set_investor(account, jurisdiction, accredited, expires_at)


# EIP-2612's typed data (EIP-712 domain and Permit struct), for signing permits.
PERMIT_TYPES = {
    "EIP712Domain": [
        {"name": "name", "type": "string"},
        {"name": "version", "type": "string"},
        {"name": "chainId", "type": "uint256"},
        {"name": "verifyingContract", "type": "address"},
    ],
    "Permit": [
        {"name": "owner", "type": "address"},
        {"name": "spender", "type": "address"},
        {"name": "value", "type": "uint256"},
        {"name": "nonce", "type": "uint256"},
        {"name": "deadline", "type": "uint256"},
    ],
}


def write_rules_table(registry, admin, rules) -> None:
    """Make the registry's jurisdiction and subdivision tables hold `rules` (a RuleBook),
    without diffing: every country row in one batch, then every regional row (those the
    rules leave out removed), then the countries the rules leave out removed (the order
    the registry accepts: a region's country first, its regions removed before it).
    The rows are `jurisdictions.onchain.compile_rules` / `compile_subdivisions`."""
    import boa

    from jurisdictions import onchain

    wanted = {s.jurisdiction: s for s in onchain.compile_rules(rules)}
    listed = {int(c) for c in registry.listed_jurisdictions()}
    regions = {s.key: s for s in onchain.compile_subdivisions(rules)}
    listed_regions = {(int(k) >> 24, int(k) & (2**24 - 1)) for k in registry.listed_subdivisions()}
    region_rows = [regions[k].as_tuple() if k in regions
                   else onchain.SubdivisionSetting.removal(*k).as_tuple()
                   for k in sorted(set(regions) | listed_regions)]
    removed = [onchain.JurisdictionSetting.removal(c).as_tuple()
               for c in sorted(listed - set(wanted))]
    with boa.env.prank(admin):
        if wanted:
            registry.set_jurisdictions([s.as_tuple() for s in wanted.values()])
        if region_rows:
            registry.set_subdivisions(region_rows)
        if removed:
            registry.set_jurisdictions(removed)
