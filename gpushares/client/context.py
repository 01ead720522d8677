"""`Client`: a chain plus the suite deployed on it (the deployments file), and the
contracts every part of the client starts from."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gpushares import deployments as deployments_file
from gpushares.client.chain import Chain, ChainError, Contract, checksum
from gpushares.client.units import BadInput


@dataclass
class Client:
    """What the client knows about one deployment. Every function of the client takes
    one; the scripts, the tests and the web app build it the same way."""

    chain: Chain
    deployed: deployments_file.Deployments

    @classmethod
    def load(cls, chain: Chain, path: Path) -> Client:
        """The deployments file at `path`, checked against `chain` (its id, and code at
        the factory's address: a restarted local node has none)."""
        try:
            deployed = deployments_file.load(path)
        except deployments_file.DeploymentsError as exc:
            raise ChainError(str(exc)) from exc
        if deployed.chain_id != chain.chain_id:
            raise ChainError(f"{path} is for chain {deployed.chain_id}, but the node is chain "
                             f"{chain.chain_id}")
        if not chain.code(deployed.spv_factory):
            raise ChainError(
                f"{path} names SPVFactory {deployed.spv_factory}, but the chain has no contract "
                "there (was the local node restarted?). Run `ape run deploy` again.")
        return cls(chain, deployed)

    # ------------------------------------------------------------------ contracts

    def registry(self) -> Contract:
        return self.chain.contract("ComplianceRegistry", self.deployed.compliance_registry)

    def spv_factory(self) -> Contract:
        return self.chain.contract("SPVFactory", self.deployed.spv_factory)

    def hub(self) -> Contract:
        return self.chain.contract("OracleHub", self._required("oracle_hub", "OracleHub"))

    def lending_factory(self) -> Contract:
        return self.chain.contract("LendingPoolFactory",
                                   self._required("lending_pool_factory", "LendingPoolFactory"))

    def perp_factory(self) -> Contract:
        return self.chain.contract("PerpMarketFactory",
                                   self._required("perp_market_factory", "PerpMarketFactory"))

    def lens(self) -> Contract:
        """The Lens (the app's page reads: portfolio, SPV page, vaults, oracle)."""
        return self.chain.contract("Lens", self._required("lens", "Lens"))

    def market_lens(self) -> Contract:
        """The MarketLens (the app's page reads: lending pools, perp markets)."""
        return self.chain.contract("MarketLens", self._required("market_lens", "MarketLens"))

    def erc20(self, address: str) -> Contract:
        """An ERC-20 (a stablecoin) through the mock's ABI, which is plain ERC-20."""
        return self.chain.contract("MockStablecoin", address)

    def token(self, spv_id: int) -> Contract:
        """The GPUShareToken of SPV `spv_id`; BadInput naming the known ids otherwise."""
        factory = self.spv_factory()
        count = int(factory.spv_count())
        if spv_id < 1 or spv_id > count:
            listing = f"ids 1..{count}" if count else "none yet"
            raise BadInput(f"unknown SPV id {spv_id}: this factory has {count} SPV(s) "
                           f"({listing}); see `ape run spv status`")
        return self.chain.contract("GPUShareToken", factory.spvs(spv_id).token)

    def _required(self, field: str, name: str) -> str:
        address = getattr(self.deployed, field)
        if address is None:
            raise ChainError(f"the deployments file has no {name}: run `ape run deploy` again "
                             "(it deploys the whole suite)")
        return checksum(address)

    # ------------------------------------------------------------------ helpers

    def has_role(self, contract: Contract, role: bytes, who: str) -> bool:
        return bool(contract.hasRole(role, who))
