"""An integrator's view (issue 23): against a real anvil with the suite deployed as
`ape run deploy` deploys it, every view of the standards the pool, the NAV feed adapter
and the share token implement is called through web3 with ONLY that standard's own
minimal ABI (written here, not the project's ABIs), and the ERC-165 ids computed from
those ABIs are answered true. Setup (an SPV, a NAV feed with three published rounds, a
lending market with one lender) goes through the project's client layer; the checks
never do. An EIP-2612 permit signed with a dev key's eth_account is sent through the
EIP-2612 ABI and spent through the ERC-20 ABI."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import reduce
from typing import Any

import pytest
from eth_abi import encode
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractLogicError

from gpushares import reasons
from gpushares.client import pool as lend
from gpushares.client.context import Client
from gpushares.client.suite import SuiteOptions, deploy_suite
from gpushares.client.web3_chain import Web3Chain
from gpushares.devnode import AnvilNode, dev_key
from oracle import attest
from oracle.reports import feed_id
from tests.contracts.helpers import FAR_FUTURE, SHARES_PER_GPU, TEST_TABLE, US, make_lei, table_rows

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("chain-standard-abis")]

# ---------------------------------------------------------------------------------
# The standards' own ABIs (minimal: functions only, as each standard specifies them)
# ---------------------------------------------------------------------------------


def _fn(name: str, inputs: list[str], outputs: list[str], mutability: str = "view"
        ) -> dict[str, Any]:
    return {"type": "function", "name": name, "stateMutability": mutability,
            "inputs": [{"name": f"a{i}", "type": t} for i, t in enumerate(inputs)],
            "outputs": [{"name": f"r{i}", "type": t} for i, t in enumerate(outputs)]}


ERC165_ABI = [_fn("supportsInterface", ["bytes4"], ["bool"])]
# ERC-20 with its OPTIONAL name / symbol / decimals.
ERC20_ABI = [
    _fn("name", [], ["string"]),
    _fn("symbol", [], ["string"]),
    _fn("decimals", [], ["uint8"]),
    _fn("totalSupply", [], ["uint256"]),
    _fn("balanceOf", ["address"], ["uint256"]),
    _fn("transfer", ["address", "uint256"], ["bool"], "nonpayable"),
    _fn("transferFrom", ["address", "address", "uint256"], ["bool"], "nonpayable"),
    _fn("approve", ["address", "uint256"], ["bool"], "nonpayable"),
    _fn("allowance", ["address", "address"], ["uint256"]),
]
ERC20_REQUIRED = ("totalSupply", "balanceOf", "transfer", "transferFrom", "approve", "allowance")
ERC4626_ABI = [
    _fn("asset", [], ["address"]),
    _fn("totalAssets", [], ["uint256"]),
    _fn("convertToShares", ["uint256"], ["uint256"]),
    _fn("convertToAssets", ["uint256"], ["uint256"]),
    _fn("maxDeposit", ["address"], ["uint256"]),
    _fn("previewDeposit", ["uint256"], ["uint256"]),
    _fn("deposit", ["uint256", "address"], ["uint256"], "nonpayable"),
    _fn("maxMint", ["address"], ["uint256"]),
    _fn("previewMint", ["uint256"], ["uint256"]),
    _fn("mint", ["uint256", "address"], ["uint256"], "nonpayable"),
    _fn("maxWithdraw", ["address"], ["uint256"]),
    _fn("previewWithdraw", ["uint256"], ["uint256"]),
    _fn("withdraw", ["uint256", "address", "address"], ["uint256"], "nonpayable"),
    _fn("maxRedeem", ["address"], ["uint256"]),
    _fn("previewRedeem", ["uint256"], ["uint256"]),
    _fn("redeem", ["uint256", "address", "address"], ["uint256"], "nonpayable"),
]
EIP2612_ABI = [
    _fn("permit", ["address", "address", "uint256", "uint256", "uint8", "bytes32", "bytes32"],
        [], "nonpayable"),
    _fn("nonces", ["address"], ["uint256"]),
    _fn("DOMAIN_SEPARATOR", [], ["bytes32"]),
]
EIP5267_ABI = [_fn("eip712Domain", [],
                   ["bytes1", "string", "string", "uint256", "address", "bytes32", "uint256[]"])]
# Chainlink's AggregatorInterface (V2) and AggregatorV3Interface; AggregatorV2V3Interface
# is both.
AGGREGATOR_V2_ABI = [
    _fn("latestAnswer", [], ["int256"]),
    _fn("latestTimestamp", [], ["uint256"]),
    _fn("latestRound", [], ["uint256"]),
    _fn("getAnswer", ["uint256"], ["int256"]),
    _fn("getTimestamp", ["uint256"], ["uint256"]),
]
ROUND = ["uint80", "int256", "uint256", "uint256", "uint80"]
AGGREGATOR_V3_ABI = [
    _fn("decimals", [], ["uint8"]),
    _fn("description", [], ["string"]),
    _fn("version", [], ["uint256"]),
    _fn("getRoundData", ["uint80"], ROUND),
    _fn("latestRoundData", [], ROUND),
]
AGGREGATOR_V2V3_ABI = AGGREGATOR_V2_ABI + AGGREGATOR_V3_ABI


def interface_id(abi: list[dict[str, Any]], only: tuple[str, ...] | None = None) -> bytes:
    """ERC-165 id of `abi`'s functions (those named in `only`): XOR of the selectors."""
    selectors = [keccak(text=f"{f['name']}({','.join(i['type'] for i in f['inputs'])})")[:4]
                 for f in abi if only is None or f["name"] in only]
    return reduce(lambda a, b: bytes(x ^ y for x, y in zip(a, b, strict=True)), selectors)


# ---------------------------------------------------------------------------------
# The deployed market
# ---------------------------------------------------------------------------------

NAV_FEED = "NAV/LSH1/USD"
HEARTBEAT = 86_400
USDC = 10**6
SUPPLY = 25_000 * USDC
NAVS = (15 * 10**8, 15 * 10**8 + 4_321, 14 * 10**8 + 99)  # three published rounds
SIGNER_KEYS = sorted((keccak(text=f"standard-abis-signer-{i}") for i in range(3)),
                     key=lambda k: int(Account.from_key(k).address, 16))
LENDER = 2  # dev account index: the lender, whose key signs the permit
SPENDER = 3


@dataclass
class Market:
    web3: Web3
    pool: str
    adapter: str
    token: str
    asset: str
    lender: str
    spender: str
    rounds: list[tuple[int, int]]  # (answer, observed) of rounds 1..n


def _advance(web3: Web3, seconds: int) -> None:
    web3.provider.make_request("evm_increaseTime", [seconds])  # type: ignore[arg-type]
    web3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def market(node: AnvilNode) -> Market:
    chain = Web3Chain.at(node.url)
    web3 = chain.web3
    deployer, operator, lender, spender = web3.eth.accounts[:4]
    client = Client(chain, deploy_suite(chain, deployer, SuiteOptions(operators=(operator,))))
    registry = client.registry()
    chain.send(registry.set_jurisdictions.tx(table_rows(TEST_TABLE)), deployer)
    for who in (operator, lender, spender):
        chain.send(registry.set_investor.tx(who, US, True, FAR_FUTURE), deployer)
    chain.send(client.spv_factory().create_spv.tx(
        "Lone Star GPU Fleet I LLC", 840, make_lei("STDABITEST00000001"), b"\x01" * 32,
        "Lone Star H100 Shares", "LSH1", SHARES_PER_GPU, client.deployed.income_token), operator)
    hub = client.hub()
    fid = bytes.fromhex(feed_id(NAV_FEED)[2:])
    chain.send(hub.set_signers.tx([Account.from_key(k).address for k in SIGNER_KEYS], 2),
               deployer)
    chain.send(hub.add_feed.tx(fid, NAV_FEED, 1, 10**15, 0, HEARTBEAT), deployer)
    domain = attest.Domain(chain_id=chain.chain_id, hub=hub.address)
    rounds = []
    for value in NAVS:
        _advance(web3, 60)
        observed = chain.now()
        report = attest.PriceReport(
            feed_id=feed_id(NAV_FEED), value=value, confidence=50, observed_at=observed,
            methodology_version=1, inputs_hash="0x" + keccak(text=f"in-{value}").hex(),
            log_size=0, log_root="0x" + keccak(text="standard-abis-log").hex(),
            config_version=int(hub.config_version()))
        sigs = attest.cosign(report, domain, SIGNER_KEYS[:2]).signature_structs()
        chain.send(hub.submit_price.tx(report.as_tuple(), sigs), deployer)
        rounds.append((value, observed))
    made = lend.create_market(client, deployer, lend.market_terms(client, deployer, 1))
    for plan in (lend.plan_mint_mock(client, deployer, lender, 2 * SUPPLY),):
        for tx in plan.checked().txs:
            chain.send(tx, deployer)
    for tx in lend.plan_supply(client, lender, made.number, SUPPLY).checked().txs:
        chain.send(tx, lender)
    return Market(web3=web3, pool=made.pool, adapter=made.terms.feed_adapter,
                  token=client.token(1).address, asset=client.deployed.income_token,
                  lender=lender, spender=spender, rounds=rounds)


def at(market: Market, address: str, abi: list[dict[str, Any]]) -> Contract:
    return market.web3.eth.contract(address=Web3.to_checksum_address(address), abi=abi)


# ---------------------------------------------------------------------------------
# ERC-165
# ---------------------------------------------------------------------------------


def test_erc165_ids_from_the_standard_abis(market: Market):
    pool = at(market, market.pool, ERC165_ABI).functions
    adapter = at(market, market.adapter, ERC165_ABI).functions
    token = at(market, market.token, ERC165_ABI).functions
    erc165 = interface_id(ERC165_ABI)
    assert erc165 == bytes.fromhex("01ffc9a7")
    for standard in (ERC165_ABI, ERC4626_ABI, EIP2612_ABI, EIP5267_ABI):
        assert pool.supportsInterface(interface_id(standard)).call() is True
    erc20 = interface_id(ERC20_ABI, ERC20_REQUIRED)
    metadata = interface_id(ERC20_ABI, ("name", "symbol", "decimals"))
    assert pool.supportsInterface(erc20).call() and pool.supportsInterface(metadata).call()
    for standard in (ERC165_ABI, AGGREGATOR_V2_ABI, AGGREGATOR_V3_ABI, AGGREGATOR_V2V3_ABI):
        assert adapter.supportsInterface(interface_id(standard)).call() is True
    for standard in (erc165, erc20, interface_id(EIP2612_ABI), interface_id(EIP5267_ABI)):
        assert token.supportsInterface(standard).call() is True
    for contract in (pool, adapter, token):
        assert contract.supportsInterface(b"\xff\xff\xff\xff").call() is False
    assert adapter.supportsInterface(erc20).call() is False
    assert pool.supportsInterface(interface_id(AGGREGATOR_V3_ABI)).call() is False


# ---------------------------------------------------------------------------------
# The pool's vault shares: ERC-20, ERC-4626, EIP-5267
# ---------------------------------------------------------------------------------


def test_vault_shares_through_erc20_and_erc4626(market: Market):
    erc20 = at(market, market.pool, ERC20_ABI).functions
    vault = at(market, market.pool, ERC4626_ABI).functions
    asset = at(market, market.asset, ERC20_ABI).functions
    lender = market.lender
    shares = erc20.balanceOf(lender).call()
    assert shares > 0 and erc20.totalSupply().call() == shares
    assert erc20.name().call() == "GPU Lend LSH1/mUSDC" and erc20.symbol().call() == "lLSH1"
    assert erc20.decimals().call() == asset.decimals().call() + 6  # virtual-share offset
    assert erc20.allowance(lender, market.spender).call() == 0
    assert vault.asset().call() == Web3.to_checksum_address(market.asset)
    assert vault.totalAssets().call() == SUPPLY  # nothing borrowed: no interest yet
    assert vault.convertToAssets(shares).call() in (SUPPLY - 1, SUPPLY)  # rounded down
    assert vault.convertToShares(SUPPLY).call() == shares
    assert vault.previewDeposit(SUPPLY).call() == shares
    assert vault.previewMint(shares).call() in (SUPPLY, SUPPLY + 1)  # rounded up
    assert vault.previewRedeem(shares).call() == vault.convertToAssets(shares).call()
    assert vault.previewWithdraw(vault.maxWithdraw(lender).call()).call() <= shares
    assert vault.maxRedeem(lender).call() == shares
    assert vault.maxWithdraw(lender).call() == vault.previewRedeem(shares).call()
    assert vault.maxDeposit(lender).call() > SUPPLY and vault.maxMint(lender).call() > shares


def test_eip5267_domain_names_the_permit_domain(market: Market):
    pool = at(market, market.pool, EIP5267_ABI + EIP2612_ABI + ERC20_ABI).functions
    fields, name, version, chain_id, contract, salt, extensions = pool.eip712Domain().call()
    assert (fields, name, version, chain_id) == (b"\x0f", pool.name().call(), "1", 31337)
    assert contract == Web3.to_checksum_address(market.pool)
    assert (salt, extensions) == (b"\0" * 32, [])
    type_hash = keccak(text="EIP712Domain(string name,string version,uint256 chainId,"
                            "address verifyingContract)")
    assert pool.DOMAIN_SEPARATOR().call() == keccak(encode(
        ["bytes32", "bytes32", "bytes32", "uint256", "address"],
        [type_hash, keccak(text=name), keccak(text=version), chain_id, contract]))


def test_permit_through_eip2612_then_transfer_from_through_erc20(market: Market):
    permit = at(market, market.pool, EIP2612_ABI + EIP5267_ABI).functions
    erc20 = at(market, market.pool, ERC20_ABI).functions
    key = dev_key(LENDER)
    owner = Account.from_key(key).address
    assert owner == market.lender
    nonce = permit.nonces(owner).call()
    _fields, name, version, chain_id, contract, _salt, _ext = permit.eip712Domain().call()
    value = erc20.balanceOf(owner).call() // 4
    deadline = market.web3.eth.get_block("latest")["timestamp"] + 3_600
    typed = {
        "types": {
            "EIP712Domain": [{"name": "name", "type": "string"},
                             {"name": "version", "type": "string"},
                             {"name": "chainId", "type": "uint256"},
                             {"name": "verifyingContract", "type": "address"}],
            "Permit": [{"name": "owner", "type": "address"},
                       {"name": "spender", "type": "address"},
                       {"name": "value", "type": "uint256"},
                       {"name": "nonce", "type": "uint256"},
                       {"name": "deadline", "type": "uint256"}],
        },
        "primaryType": "Permit",
        "domain": {"name": name, "version": version, "chainId": chain_id,
                   "verifyingContract": contract},
        "message": {"owner": owner, "spender": market.spender, "value": value,
                    "nonce": nonce, "deadline": deadline},
    }
    sig = Account.sign_message(encode_typed_data(full_message=typed), key)
    args = (owner, market.spender, value, deadline, sig.v, sig.r.to_bytes(32, "big"),
            sig.s.to_bytes(32, "big"))
    web3 = market.web3
    tx = permit.permit(*args).transact({"from": market.spender})  # the spender relays it
    assert web3.eth.wait_for_transaction_receipt(tx)["status"] == 1
    assert erc20.allowance(owner, market.spender).call() == value
    assert permit.nonces(owner).call() == nonce + 1
    replay = re.escape(reasons.ERC20_INVALID_SIGNATURE)  # the nonce moved on
    with pytest.raises(ContractLogicError, match=replay):
        permit.permit(*args).call({"from": market.spender})
    before = erc20.balanceOf(market.spender).call()
    tx = erc20.transferFrom(owner, market.spender, value).transact({"from": market.spender})
    assert web3.eth.wait_for_transaction_receipt(tx)["status"] == 1
    assert erc20.balanceOf(market.spender).call() == before + value
    assert erc20.allowance(owner, market.spender).call() == 0


# ---------------------------------------------------------------------------------
# The NAV feed adapter: AggregatorV2V3Interface
# ---------------------------------------------------------------------------------


def test_aggregator_v2v3_views(market: Market):
    feed = at(market, market.adapter, AGGREGATOR_V2V3_ABI).functions
    assert feed.decimals().call() == 8
    assert feed.description().call() == NAV_FEED
    assert feed.version().call() == 1
    latest = len(market.rounds)
    answer, observed = market.rounds[-1]
    assert feed.latestRoundData().call() == [latest, answer, observed, observed, latest]
    assert feed.latestRound().call() == latest
    assert feed.latestAnswer().call() == answer
    assert feed.latestTimestamp().call() == observed
    for round_id, (value, when) in enumerate(market.rounds, start=1):
        assert feed.getRoundData(round_id).call() == [round_id, value, when, when, round_id]
        assert feed.getAnswer(round_id).call() == value
        assert feed.getTimestamp(round_id).call() == when
    # A round the feed does not hold: V2 answers 0, V3 reverts.
    for missing in (0, latest + 1, 2**80, 2**256 - 1):
        assert feed.getAnswer(missing).call() == 0
        assert feed.getTimestamp(missing).call() == 0
    with pytest.raises(ContractLogicError, match=re.escape(reasons.HUB_ROUND_NOT_YET)):
        feed.getRoundData(latest + 1).call()
