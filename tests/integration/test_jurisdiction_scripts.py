"""The compliance scripts (`ape run jurisdictions ...`, `ape run kyc ...`, and the `spv`
commands the jurisdiction rules gate) against a real anvil.

One anvil and one deployment for the whole module. The story is a chain of
module-scoped fixtures, one per command, in the order an operator would type them:

    deploy -> jurisdictions diff / apply / apply again / diff -> spv create
    -> a changed rules copy: diff, apply refused (no RULES_ADMIN_ROLE), apply, restore
    -> the SPV operator records the US title override -> add-gpus DE refused, US added
    -> kyc register Alice, attest + submit Bob, submit again refused, register refused
    -> mint refused / done, transfer refused / --skip-checks / done
    -> the shipped rules applied by the operator clear the override

Each fixture reads the chain with web3 (independently of the scripts) right before and
right after its command, so each test checks one step whatever order the tests run in.
The override is cleared last, not in the middle of the story and then re-recorded: the
same coverage for one `ape run` less.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from web3.contract import Contract

from gpushares import reasons
from gpushares.demo import LEGAL_OPINION, SPV_LEI, rules_with_demo_override
from gpushares.demo import test_account as account_address
from gpushares.devnode import PROJECT_ROOT
from jurisdictions.codes import MESSAGES, HolderPolicyCode, Restriction, TitleStatus
from jurisdictions.onchain import compile_rules
from jurisdictions.rules import RULES_DIR, load_rules

from .conftest import ApeResult, ApeRunner, Chain

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("chain-jurisdictions")]

FLEET_US = PROJECT_ROOT / "examples" / "fleet-h100.csv"
FLEET_DE = PROJECT_ROOT / "examples" / "fleet-de.csv"
DOCUMENTS = PROJECT_ROOT / "examples" / "spv-legal-documents.txt"

DEPLOYER, OPERATOR, ALICE, BOB, OUTSIDER, STRANGER = (account_address(i) for i in range(6))
PEOPLE = {
    "deployer": DEPLOYER,  # TEST::0: registry admin, rules admin, KYC provider
    "operator": OPERATOR,  # TEST::1: factory operator, runs SPV 1
    "alice": ALICE,  # TEST::2: registered directly by the KYC provider
    "bob": BOB,  # TEST::3: onboards himself with a signed attestation
    "outsider": OUTSIDER,  # TEST::4: no role anywhere
    "stranger": STRANGER,  # TEST::5: never registered
}

SHIPPED = load_rules()
SHIPPED_ROWS = {s.jurisdiction: s.as_tuple()[1:] for s in compile_rules(SHIPPED)}
US, FR, DE, SY = 840, 250, 276, 760
ZERO32 = b"\0" * 32
OPINION_HASH = hashlib.sha256(LEGAL_OPINION.read_bytes()).digest()
SHARE = 10**18
NOT_REGISTERED = MESSAGES[Restriction.RECEIVER_NOT_REGISTERED]

# The line `scripts/_lib.py:report` prints for every transaction.
TX_LINE = re.compile(r"tx (0x[0-9a-fA-F]{64}) \(block (\d+), gas ([\d,]+)\)")


def diff_kinds(output: str) -> list[tuple[str, str]]:
    """(kind, label) of each row line `jurisdictions diff` prints."""
    rows = re.findall(r"^(add|update|remove) +(\S+ \(\d+\)|\d+) ", output, re.MULTILINE)
    return [(kind, label) for kind, label in rows]


# ---------------------------------------------------------------------------------
# Reading the chain
# ---------------------------------------------------------------------------------


def registry_of(chain: Chain, deployed: dict[str, Any]) -> Contract:
    return chain.contract("ComplianceRegistry", deployed["compliance_registry"])


def token_of(chain: Chain, deployed: dict[str, Any]) -> Contract | None:
    """SPV 1's share token, once it exists."""
    factory = chain.contract("SPVFactory", deployed["spv_factory"]).functions
    if factory.spv_count().call() == 0:
        return None
    return chain.contract("GPUShareToken", factory.spvs(1).call()[4])


def onchain_rows(registry: Contract) -> dict[int, tuple[int, int, bytes]]:
    """Every listed row of the jurisdiction table, as (title, policy, rules hash)."""
    fn = registry.functions
    return {
        int(code): tuple(fn.jurisdiction(code).call()) for code in fn.listed_jurisdictions().call()
    }


def read_state(chain: Chain, deployed: dict[str, Any]) -> dict[str, Any]:
    """What the compliance scripts can change, read through web3.

    `contracts` is the contract state; `sent` is the block height and the nonces of the
    test accounts, which move whenever a transaction is mined, even a reverted one.
    """
    registry = registry_of(chain, deployed)
    fn = registry.functions
    codes = sorted(set(SHIPPED_ROWS) | {int(c) for c in fn.listed_jurisdictions().call()})
    contracts: dict[str, Any] = {
        "listed": sorted(int(c) for c in fn.listed_jurisdictions().call()),
        "rows": {code: tuple(fn.jurisdiction(code).call()) for code in codes},
        "investors": {who: tuple(fn.investor(a).call()) for who, a in PEOPLE.items()},
        "eligibility_nonces": {who: fn.eligibility_nonce(a).call() for who, a in PEOPLE.items()},
    }
    token = token_of(chain, deployed)
    if token is not None:
        share = token.functions
        contracts["token"] = {
            "overrides": {code: fn.title_override(token.address, code).call() for code in codes},
            "locations": fn.asset_locations(token.address).call(),
            "gpu_count": share.gpu_count().call(),
            "supply": share.totalSupply().call(),
            "shares": {who: share.balanceOf(a).call() for who, a in PEOPLE.items()},
        }
    return {
        "contracts": contracts,
        "sent": {
            "block": chain.block_number,
            "nonces": {who: chain.web3.eth.get_transaction_count(a) for who, a in PEOPLE.items()},
        },
    }


@dataclass(frozen=True)
class Step:
    """One command and the chain state around it."""

    result: ApeResult
    before: dict[str, Any]
    after: dict[str, Any]

    @property
    def output(self) -> str:
        return self.result.output

    def contracts(self, when: str = "after") -> dict[str, Any]:
        return getattr(self, when)["contracts"]


def run_step(ape: ApeRunner, chain: Chain, deployed: dict[str, Any], *args: str,
             subprocess: bool = False) -> Step:
    """Run one command (success or not) and record the state around it; `subprocess`: as
    a real `ape` process (the smoke tests of a script)."""
    before = read_state(chain, deployed)
    result = ape.subprocess(*args) if subprocess else ape(*args)
    return Step(result, before, read_state(chain, deployed))


def assert_sent(
    chain: Chain, step: Step, sender: str, functions: list[str], contract: Contract
) -> None:
    """The command succeeded and mined exactly `functions` (in order) on `contract`,
    all from `sender`: one tx line each, one block each, the sender's nonce moved by
    as many, and nobody else's."""
    result = step.result
    assert result.returncode == 0, str(result)
    assert "Traceback" not in result.output, str(result)
    lines = TX_LINE.findall(result.output)
    assert len(lines) == len(functions), str(result)
    called = []
    for tx_hash, block, gas in lines:
        receipt = chain.web3.eth.get_transaction_receipt(tx_hash)
        assert receipt["status"] == 1, tx_hash
        assert receipt["blockNumber"] == int(block)
        assert receipt["gasUsed"] == int(gas.replace(",", ""))
        tx = chain.web3.eth.get_transaction(tx_hash)
        assert tx["from"] == sender
        assert tx["to"] == contract.address
        called.append(contract.decode_function_input(tx["input"])[0].fn_name)
    assert called == functions, str(result)
    before, after = step.before["sent"], step.after["sent"]
    assert after["block"] == before["block"] + len(functions)
    who = next(name for name, address in PEOPLE.items() if address == sender)
    expected = dict(before["nonces"])
    expected[who] += len(functions)
    assert after["nonces"] == expected


def assert_nothing_sent(step: Step) -> None:
    """No new block, no nonce used by any test account, no tx line printed."""
    assert not TX_LINE.search(step.output), str(step.result)
    assert step.after["sent"] == step.before["sent"], f"a transaction was sent\n{step.result}"


def assert_refused(step: Step, *fragments: str) -> None:
    """Non-zero exit, a clear message (no traceback), and no change on the chain at all."""
    result = step.result
    assert result.returncode != 0, str(result)
    for fragment in fragments:
        assert fragment in result.output, f"{fragment!r} missing from\n{result}"
    assert "Traceback" not in result.output, str(result)
    assert_nothing_sent(step)
    assert step.contracts() == step.contracts("before")


# ---------------------------------------------------------------------------------
# Setup: one deployment and the rules data copies
# ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def deployed(ape: ApeRunner, deployments_dir: Path) -> dict[str, Any]:
    """`ape run deploy` by TEST::0, making TEST::1 an operator."""
    result = ape("deploy", "--account", "TEST::0", "--operator", OPERATOR)
    assert result.returncode == 0, str(result)
    (path,) = deployments_dir.glob("*.json")
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def registry(chain: Chain, deployed: dict[str, Any]) -> Contract:
    return registry_of(chain, deployed)


@pytest.fixture(scope="module")
def changed_rules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the shipped rules where France blocks holders and Syria is gone."""
    rules = tmp_path_factory.mktemp("changed") / "rules"
    shutil.copytree(RULES_DIR, rules)
    fr = rules / "FR.toml"
    text = fr.read_text(encoding="utf-8")
    assert text.count('holder_policy = "accredited_only"') == 1
    fr.write_text(
        text.replace('holder_policy = "accredited_only"', 'holder_policy = "blocked"'),
        encoding="utf-8",
    )
    (rules / "SY.toml").unlink()
    return rules


@pytest.fixture(scope="module")
def override_rules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the shipped rules holding the demo SPV's US title override."""
    return rules_with_demo_override(tmp_path_factory.mktemp("override"))


# ---------------------------------------------------------------------------------
# The story, one fixture per command
# ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def diff_before(ape: ApeRunner, chain: Chain, deployed: dict[str, Any]) -> Step:
    return run_step(ape, chain, deployed, "jurisdictions", "diff", subprocess=True)


@pytest.fixture(scope="module")
def first_apply(ape: ApeRunner, chain: Chain, deployed: dict[str, Any], diff_before: Step) -> Step:
    return run_step(ape, chain, deployed, "jurisdictions", "apply", "--account", "TEST::0")


@pytest.fixture(scope="module")
def second_apply(ape: ApeRunner, chain: Chain, deployed: dict[str, Any], first_apply: Step) -> Step:
    return run_step(ape, chain, deployed, "jurisdictions", "apply", "--account", "TEST::0")


@pytest.fixture(scope="module")
def diff_after(ape: ApeRunner, chain: Chain, deployed: dict[str, Any], second_apply: Step) -> Step:
    return run_step(ape, chain, deployed, "jurisdictions", "diff")


@pytest.fixture(scope="module")
def token(ape: ApeRunner, chain: Chain, deployed: dict[str, Any], diff_after: Step) -> Contract:
    """The operator registers SPV 1 (the demo SPV's LEI) and deploys its share token."""
    result = ape(
        "spv", "create", "--account", "TEST::1",
        "--name", "Lone Star GPU Fleet I LLC", "--jurisdiction", "840", "--lei", SPV_LEI,
        "--documents", str(DOCUMENTS),
        "--token-name", "Lone Star H100 Shares", "--symbol", "LSH1", "--shares-per-gpu", "1000",
    )  # fmt: skip
    assert result.returncode == 0, str(result)
    share = token_of(chain, deployed)
    assert share is not None
    return share


@pytest.fixture(scope="module")
def changed_diff(
    ape: ApeRunner, chain: Chain, deployed: dict[str, Any], token: Contract, changed_rules: Path
) -> Step:
    return run_step(ape, chain, deployed, "jurisdictions", "diff", "--rules", str(changed_rules))


@pytest.fixture(scope="module")
def changed_refused(
    ape: ApeRunner,
    chain: Chain,
    deployed: dict[str, Any],
    changed_diff: Step,
    changed_rules: Path,
) -> Step:
    """The SPV operator (no RULES_ADMIN_ROLE) tries to apply the changed rules."""
    return run_step(ape, chain, deployed, "jurisdictions", "apply", "--account", "TEST::1",
                    "--rules", str(changed_rules))  # fmt: skip


@pytest.fixture(scope="module")
def changed_apply(
    ape: ApeRunner,
    chain: Chain,
    deployed: dict[str, Any],
    changed_refused: Step,
    changed_rules: Path,
) -> Step:
    return run_step(ape, chain, deployed, "jurisdictions", "apply", "--account", "TEST::0",
                    "--rules", str(changed_rules))  # fmt: skip


@pytest.fixture(scope="module")
def restored(ape: ApeRunner, chain: Chain, deployed: dict[str, Any], changed_apply: Step) -> Step:
    """The rules admin applies the shipped rules again."""
    return run_step(ape, chain, deployed, "jurisdictions", "apply", "--account", "TEST::0")


@pytest.fixture(scope="module")
def override_recorded(
    ape: ApeRunner, chain: Chain, deployed: dict[str, Any], restored: Step, override_rules: Path
) -> Step:
    """The SPV operator applies the rules copy holding its US title override."""
    return run_step(ape, chain, deployed, "jurisdictions", "apply", "--account", "TEST::1",
                    "--rules", str(override_rules))  # fmt: skip


@pytest.fixture(scope="module")
def gpus_de(
    ape: ApeRunner, chain: Chain, deployed: dict[str, Any], override_recorded: Step
) -> Step:
    return run_step(ape, chain, deployed, "spv", "add-gpus", "--account", "TEST::1",
                    "--spv", "1", "--csv", str(FLEET_DE))  # fmt: skip


@pytest.fixture(scope="module")
def gpus_us(ape: ApeRunner, chain: Chain, deployed: dict[str, Any], gpus_de: Step) -> Step:
    return run_step(ape, chain, deployed, "spv", "add-gpus", "--account", "TEST::1",
                    "--spv", "1", "--csv", str(FLEET_US))  # fmt: skip


@pytest.fixture(scope="module")
def alice_registered(ape: ApeRunner, chain: Chain, deployed: dict[str, Any], gpus_us: Step) -> Step:
    return run_step(ape, chain, deployed, "kyc", "register", "--account", "TEST::0",
                    "--investor", ALICE, "--jurisdiction", "US", "--accredited",
                    subprocess=True)


@pytest.fixture(scope="module")
def attestation(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("kyc") / "bob-eligibility.json"


@pytest.fixture(scope="module")
def bob_attested(
    ape: ApeRunner,
    chain: Chain,
    deployed: dict[str, Any],
    alice_registered: Step,
    attestation: Path,
) -> Step:
    return run_step(ape, chain, deployed, "kyc", "attest", "--account", "TEST::0",
                    "--investor", BOB, "--jurisdiction", "US", "--accredited",
                    "--out", str(attestation))  # fmt: skip


@pytest.fixture(scope="module")
def bob_submitted(
    ape: ApeRunner, chain: Chain, deployed: dict[str, Any], bob_attested: Step, attestation: Path
) -> Step:
    return run_step(ape, chain, deployed, "kyc", "submit", "--account", "TEST::3",
                    "--file", str(attestation))  # fmt: skip


@pytest.fixture(scope="module")
def bob_resubmitted(
    ape: ApeRunner,
    chain: Chain,
    deployed: dict[str, Any],
    bob_submitted: Step,
    attestation: Path,
) -> Step:
    return run_step(ape, chain, deployed, "kyc", "submit", "--account", "TEST::3",
                    "--file", str(attestation))  # fmt: skip


@pytest.fixture(scope="module")
def outsider_register(
    ape: ApeRunner, chain: Chain, deployed: dict[str, Any], bob_resubmitted: Step
) -> Step:
    """TEST::4 (no KYC_PROVIDER_ROLE) tries to register TEST::5."""
    return run_step(ape, chain, deployed, "kyc", "register", "--account", "TEST::4",
                    "--investor", STRANGER, "--jurisdiction", "US", "--accredited")  # fmt: skip


@pytest.fixture(scope="module")
def mint_stranger(
    ape: ApeRunner, chain: Chain, deployed: dict[str, Any], outsider_register: Step
) -> Step:
    return run_step(ape, chain, deployed, "spv", "mint", "--account", "TEST::1", "--spv", "1",
                    "--to", STRANGER, "--shares", "100")  # fmt: skip


@pytest.fixture(scope="module")
def mint_alice(ape: ApeRunner, chain: Chain, deployed: dict[str, Any], mint_stranger: Step) -> Step:
    return run_step(ape, chain, deployed, "spv", "mint", "--account", "TEST::1", "--spv", "1",
                    "--to", ALICE, "--shares", "3000")  # fmt: skip


@pytest.fixture(scope="module")
def transfer_stranger(
    ape: ApeRunner, chain: Chain, deployed: dict[str, Any], mint_alice: Step
) -> Step:
    return run_step(ape, chain, deployed, "spv", "transfer", "--account", "TEST::2", "--spv", "1",
                    "--to", STRANGER, "--shares", "100")  # fmt: skip


@pytest.fixture(scope="module")
def transfer_stranger_forced(
    ape: ApeRunner, chain: Chain, deployed: dict[str, Any], transfer_stranger: Step
) -> Step:
    """The same transfer with --skip-checks: the contract has the last word."""
    return run_step(ape, chain, deployed, "spv", "transfer", "--account", "TEST::2", "--spv", "1",
                    "--to", STRANGER, "--shares", "100", "--skip-checks")  # fmt: skip


@pytest.fixture(scope="module")
def transfer_bob(
    ape: ApeRunner, chain: Chain, deployed: dict[str, Any], transfer_stranger_forced: Step
) -> Step:
    return run_step(ape, chain, deployed, "spv", "transfer", "--account", "TEST::2", "--spv", "1",
                    "--to", BOB, "--shares", "500")  # fmt: skip


@pytest.fixture(scope="module")
def override_cleared(
    ape: ApeRunner, chain: Chain, deployed: dict[str, Any], transfer_bob: Step
) -> Step:
    """The SPV operator applies the shipped rules, which hold no override for its SPV."""
    return run_step(ape, chain, deployed, "jurisdictions", "apply", "--account", "TEST::1")


# ---------------------------------------------------------------------------------
# 1. Loading the shipped rules: diff, apply, idempotent apply
# ---------------------------------------------------------------------------------


def test_shipped_rules_are_the_sixteen_jurisdictions() -> None:
    assert len(SHIPPED_ROWS) == 16
    assert SHIPPED_ROWS[US][:2] == (TitleStatus.UNCLEAR, HolderPolicyCode.ACCREDITED_ONLY)
    assert SHIPPED_ROWS[DE][0] == TitleStatus.NOT_RECOGNISED
    assert SHIPPED_ROWS[408][1] == HolderPolicyCode.BLOCKED  # KP


def test_diff_before_any_apply_lists_sixteen_additions(diff_before: Step) -> None:
    result = diff_before.result
    assert result.returncode == 0, str(result)
    rows = diff_kinds(result.output)
    assert len(rows) == 16, str(result)
    assert {kind for kind, _ in rows} == {"add"}
    labels = {label for _, label in rows}
    assert labels == {f"{rule.alpha2} ({code})" for code, rule in SHIPPED.items()}
    assert "unlisted -> title=unclear policy=accredited_only" in result.output
    assert "nothing to change" not in result.output
    assert_nothing_sent(diff_before)
    assert diff_before.contracts()["listed"] == []


def test_apply_sends_one_set_jurisdictions(
    first_apply: Step, chain: Chain, registry: Contract
) -> None:
    assert_sent(chain, first_apply, DEPLOYER, ["set_jurisdictions"], registry)
    assert "set 16 jurisdiction row(s)" in first_apply.output
    assert len(diff_kinds(first_apply.output)) == 16
    last = first_apply.output.strip().splitlines()[-1]
    assert last.strip() == "registry now matches the rules data (16 jurisdictions)", last


def test_apply_writes_the_compiled_rules(first_apply: Step, registry: Contract) -> None:
    assert first_apply.result.returncode == 0, str(first_apply.result)
    assert first_apply.contracts()["listed"] == sorted(SHIPPED_ROWS)
    for setting in compile_rules(load_rules()):
        row = tuple(registry.functions.jurisdiction(setting.jurisdiction).call())
        assert row == setting.as_tuple()[1:], setting.jurisdiction
        assert registry.functions.rules_hash(setting.jurisdiction).call() == setting.rules_hash


def test_second_apply_sends_nothing(second_apply: Step) -> None:
    result = second_apply.result
    assert result.returncode == 0, str(result)
    assert "registry matches the rules data (16 jurisdictions): nothing to change" in result.output
    assert_nothing_sent(second_apply)
    assert second_apply.contracts() == second_apply.contracts("before")


def test_diff_after_apply_has_nothing_to_change(diff_after: Step) -> None:
    result = diff_after.result
    assert result.returncode == 0, str(result)
    assert "registry matches the rules data (16 jurisdictions): nothing to change" in result.output
    assert diff_kinds(result.output) == []
    assert_nothing_sent(diff_after)


# ---------------------------------------------------------------------------------
# 2. A changed rules copy: diff, refused apply, apply, restore
# ---------------------------------------------------------------------------------


def test_diff_of_changed_rules(changed_diff: Step) -> None:
    result = changed_diff.result
    assert result.returncode == 0, str(result)
    # SY is missing from the changed data, so its row is labelled by number alone
    assert sorted(diff_kinds(result.output)) == [("remove", "760"), ("update", "FR (250)")]
    assert "policy=accredited_only" in result.output and "policy=blocked" in result.output
    assert_nothing_sent(changed_diff)


def test_apply_without_rules_admin_role_is_refused(changed_refused: Step) -> None:
    assert_refused(
        changed_refused,
        f"{OPERATOR} lacks the registry's RULES_ADMIN_ROLE, nothing sent",
    )
    assert changed_refused.contracts()["rows"][FR] == SHIPPED_ROWS[FR]
    assert SY in changed_refused.contracts()["listed"]


def test_apply_changed_rules(
    changed_apply: Step, changed_rules: Path, chain: Chain, registry: Contract
) -> None:
    assert_sent(chain, changed_apply, DEPLOYER, ["set_jurisdictions"], registry)
    assert "set 2 jurisdiction row(s)" in changed_apply.output
    assert "registry now matches the rules data (15 jurisdictions)" in changed_apply.output
    listed = registry.functions.listed_jurisdictions().call()
    assert SY not in listed
    assert sorted(listed) == sorted(set(SHIPPED_ROWS) - {SY})
    assert tuple(registry.functions.jurisdiction(SY).call()) == (0, 0, ZERO32)
    wanted = {s.jurisdiction: s.as_tuple()[1:] for s in compile_rules(load_rules(changed_rules))}
    assert changed_apply.contracts()["rows"][FR] == wanted[FR]
    assert wanted[FR][1] == HolderPolicyCode.BLOCKED
    # every other row is untouched
    rows = changed_apply.contracts()["rows"]
    assert {c: r for c, r in rows.items() if c not in (FR, SY)} == {
        c: r for c, r in SHIPPED_ROWS.items() if c not in (FR, SY)
    }


def test_apply_shipped_rules_restores_the_table(
    restored: Step, chain: Chain, registry: Contract
) -> None:
    assert_sent(chain, restored, DEPLOYER, ["set_jurisdictions"], registry)
    assert "set 2 jurisdiction row(s)" in restored.output
    assert "registry now matches the rules data (16 jurisdictions)" in restored.output
    assert onchain_rows(registry) == SHIPPED_ROWS


# ---------------------------------------------------------------------------------
# 3. Title overrides: recorded by the SPV operator, cleared when the data drops them
# ---------------------------------------------------------------------------------


def test_operator_records_the_us_title_override(
    override_recorded: Step, chain: Chain, registry: Contract, token: Contract
) -> None:
    assert_sent(chain, override_recorded, OPERATOR, ["set_title_override"], registry)
    assert f"record title override for jurisdiction {US} on {token.address}" in (
        override_recorded.output
    )
    assert "registry now matches the rules data (16 jurisdictions)" in override_recorded.output
    assert registry.functions.title_override(token.address, US).call() == OPINION_HASH
    # the override is not part of the jurisdiction's row
    assert override_recorded.contracts()["rows"] == override_recorded.contracts("before")["rows"]


# ---------------------------------------------------------------------------------
# 4. GPU locations: Germany refused with its citations, the US fleet added
# ---------------------------------------------------------------------------------


def test_add_gpus_in_germany_is_refused_with_citations(gpus_de: Step) -> None:
    assert_refused(
        gpus_de,
        "Germany (DE)",
        "not_recognised",
        "EGBGB",
        "tokenized title to GPUs in location(s) 276 is not recognised (see above), nothing sent",
    )
    citation_lines = [
        line.strip() for line in gpus_de.output.splitlines() if line.strip().startswith("- ")
    ]
    assert any("(EGBGB) Art. 43(1)" in line for line in citation_lines), str(gpus_de.result)
    assert gpus_de.contracts()["token"]["gpu_count"] == 0


def test_add_gpus_in_the_us_after_the_override(
    gpus_us: Step, chain: Chain, token: Contract, registry: Contract
) -> None:
    assert_sent(chain, gpus_us, OPERATOR, ["add_gpus"], token)
    assert "8 GPUs registered, 8 active; mint cap now 8,000 shares" in gpus_us.output
    state = gpus_us.contracts()["token"]
    assert state["gpu_count"] == 8
    assert state["locations"] == [US]
    assert registry.functions.asset_location_gpus(token.address, US).call() == 8


# ---------------------------------------------------------------------------------
# 5. KYC: direct registration, attestation + self-onboarding, refusals
# ---------------------------------------------------------------------------------


def test_kyc_register_alice(alice_registered: Step, chain: Chain, registry: Contract) -> None:
    assert_sent(chain, alice_registered, DEPLOYER, ["set_investor"], registry)
    assert f"register {ALICE}: US (accredited_only), accredited" in alice_registered.output
    jurisdiction, accredited, expires_at, frozen, registered = registry.functions.investor(
        ALICE
    ).call()
    assert (jurisdiction, accredited, frozen, registered) == (US, True, False, True)
    now = chain.web3.eth.get_block("latest")["timestamp"]
    assert now + 364 * 86_400 < expires_at <= now + 365 * 86_400


def test_kyc_attest_writes_a_file_and_sends_nothing(
    bob_attested: Step, attestation: Path, deployed: dict[str, Any]
) -> None:
    result = bob_attested.result
    assert result.returncode == 0, str(result)
    assert f"signed eligibility for {BOB}: US (accredited_only), nonce 0" in result.output
    assert_nothing_sent(bob_attested)
    signed = json.loads(attestation.read_text(encoding="utf-8"))
    assert signed["attestation"]["investor"] == BOB
    assert signed["attestation"]["jurisdiction"] == US
    assert signed["attestation"]["accredited"] is True
    assert signed["attestation"]["nonce"] == 0
    assert signed["signer"] == DEPLOYER
    assert signed["registry"] == deployed["compliance_registry"]
    assert bob_attested.contracts()["investors"]["bob"][4] is False  # not registered yet


def test_kyc_submit_registers_bob(bob_submitted: Step, chain: Chain, registry: Contract) -> None:
    assert bob_submitted.contracts("before")["investors"]["bob"][4] is False
    assert_sent(chain, bob_submitted, BOB, ["submit_eligibility"], registry)
    jurisdiction, accredited, _expires, frozen, registered = registry.functions.investor(BOB).call()
    assert (jurisdiction, accredited, frozen, registered) == (US, True, False, True)
    assert registry.functions.eligibility_nonce(BOB).call() == 1


def test_kyc_submit_again_is_refused_before_sending(bob_resubmitted: Step) -> None:
    assert_refused(bob_resubmitted, "(this one is 0, the next is 1)")


def test_kyc_register_without_the_provider_role_is_refused(
    outsider_register: Step, registry: Contract
) -> None:
    assert_refused(outsider_register,
                   "refused, nothing sent: " + reasons.ACCESS_CONTROL_MISSING_ROLE,
                   f"({OUTSIDER} lacks KYC_PROVIDER_ROLE)")
    assert registry.functions.investor(STRANGER).call()[4] is False


# ---------------------------------------------------------------------------------
# 6. Share movements gated by the registry (ERC-1404 pre-checks, then the contract)
# ---------------------------------------------------------------------------------


def test_mint_to_an_unregistered_address_is_refused(mint_stranger: Step) -> None:
    assert_refused(
        mint_stranger,
        "ERC-1404 code 6 RECEIVER_NOT_REGISTERED",
        f"mint refused, nothing sent: {NOT_REGISTERED}",
    )


def test_mint_to_alice(mint_alice: Step, chain: Chain, token: Contract) -> None:
    assert_sent(chain, mint_alice, OPERATOR, ["mint"], token)
    assert f"{ALICE} holds 3,000 shares; supply 3,000 of 8,000" in mint_alice.output
    assert mint_alice.contracts()["token"]["shares"]["alice"] == 3000 * SHARE
    assert mint_alice.contracts()["token"]["supply"] == 3000 * SHARE


def test_transfer_to_an_unregistered_address_is_refused(transfer_stranger: Step) -> None:
    assert_refused(
        transfer_stranger,
        "ERC-1404 code 6 RECEIVER_NOT_REGISTERED",
        f"transfer refused, nothing sent: {NOT_REGISTERED}",
    )


def test_transfer_with_skip_checks_is_refused_by_the_contract(
    transfer_stranger_forced: Step, chain: Chain, token: Contract
) -> None:
    """--skip-checks sends the transaction: it is mined and reverts with the same words."""
    step = transfer_stranger_forced
    result = step.result
    assert result.returncode != 0, str(result)
    # the pre-check still explains, then the token itself refuses with the same words
    assert "ERC-1404 code 6 RECEIVER_NOT_REGISTERED" in result.output
    assert f"refused by the contract: {NOT_REGISTERED}" in result.output, str(result)
    assert "Traceback" not in result.output, str(result)
    assert not TX_LINE.search(result.output), str(result)
    # one reverted transaction from Alice, to the token's transfer()
    before, after = step.before["sent"], step.after["sent"]
    assert after["block"] == before["block"] + 1
    assert after["nonces"] == before["nonces"] | {"alice": before["nonces"]["alice"] + 1}
    block = chain.web3.eth.get_block(after["block"], full_transactions=True)
    (tx,) = block["transactions"]
    assert (tx["from"], tx["to"]) == (ALICE, token.address)
    function, args = token.decode_function_input(tx["input"])
    assert (function.fn_name, args["to"], args["amount"]) == ("transfer", STRANGER, 100 * SHARE)
    assert chain.web3.eth.get_transaction_receipt(tx["hash"])["status"] == 0
    # and nothing moved
    assert step.contracts() == step.contracts("before")
    shares = step.contracts()["token"]["shares"]
    assert (shares["alice"], shares["stranger"]) == (3000 * SHARE, 0)


def test_transfer_from_alice_to_bob(transfer_bob: Step, chain: Chain, token: Contract) -> None:
    assert_sent(chain, transfer_bob, ALICE, ["transfer"], token)
    assert f"{BOB} holds 500 shares" in transfer_bob.output
    assert token.functions.balanceOf(ALICE).call() == 2500 * SHARE
    assert token.functions.balanceOf(BOB).call() == 500 * SHARE
    assert token.functions.totalSupply().call() == 3000 * SHARE


# ---------------------------------------------------------------------------------
# 3 (end of the story). The shipped rules withdraw the override
# ---------------------------------------------------------------------------------


def test_shipped_rules_clear_the_override(
    override_cleared: Step, chain: Chain, registry: Contract, token: Contract
) -> None:
    """The shipped data holds no override for the SPV: applying it withdraws the one
    on-chain, and the shares stop moving (title `unclear` without an opinion)."""
    assert override_cleared.contracts("before")["token"]["overrides"][US] == OPINION_HASH
    assert_sent(chain, override_cleared, OPERATOR, ["set_title_override"], registry)
    assert "registry now matches the rules data (16 jurisdictions)" in override_cleared.output
    assert registry.functions.title_override(token.address, US).call() == ZERO32
    assert onchain_rows(registry) == SHIPPED_ROWS
    assert not registry.functions.asset_title_recognised(token.address).call()
    code = token.functions.detectTransferRestriction(ALICE, BOB, SHARE).call()
    assert code == Restriction.ASSET_TITLE_NOT_RECOGNISED


def test_clearing_the_override_says_so(override_cleared: Step) -> None:
    assert override_cleared.result.returncode == 0, str(override_cleared.result)
    lines = [line for line in override_cleared.output.splitlines() if "override" in line]
    assert lines, str(override_cleared.result)
    assert not any("record title override" in line for line in lines), str(override_cleared.result)
    assert any("clear" in line.lower() for line in lines), str(override_cleared.result)
