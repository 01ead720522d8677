"""Smoke tests of `ape run jurisdictions` and `ape run kyc` against a real anvil.

The rules diff, apply, overrides and refusals are tested in-process through the client
(`tests/client/test_jurisdictions.py`, `test_kyc.py`); here the commands run as an
operator types them: `diff` and `kyc register` as real `ape` processes, `apply` twice
(the second sends nothing), `apply` by an account without the role, and `show`.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from web3.contract import Contract

from gpushares import reasons
from gpushares.demo import test_account as account_address
from jurisdictions.onchain import compile_rules
from jurisdictions.rules import RULES_DIR, load_rules

from .conftest import ApeRunner, Chain
from .test_operator_scripts import Run, assert_mined, assert_nothing_sent, run

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("chain-jurisdictions")]

DEPLOYER, OPERATOR, ALICE = (account_address(i) for i in range(3))
KYIV = account_address(12)
PEOPLE = {"deployer": DEPLOYER, "operator": OPERATOR}
SHIPPED_ROWS = {s.jurisdiction: s.as_tuple()[1:] for s in compile_rules(load_rules())}
US = 840


def diff_rows(output: str) -> list[tuple[str, str]]:
    """(kind, label) of each row line `jurisdictions diff` prints."""
    return re.findall(r"^(add|update|remove) +(\S+ \(\d+\)|\d+) ", output, re.MULTILINE)


@pytest.fixture(scope="module")
def registry(ape: ApeRunner, chain: Chain, deployments_dir: Path) -> Contract:
    """`ape run deploy` by TEST::0 (registry admin, rules admin, KYC provider)."""
    result = ape("deploy", "--account", "TEST::0", "--operator", OPERATOR)
    assert result.returncode == 0, str(result)
    (path,) = deployments_dir.glob("*.json")
    deployed: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return chain.contract("ComplianceRegistry", deployed["compliance_registry"])


@pytest.fixture(scope="module")
def changed_rules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the shipped rules without Syria."""
    rules = tmp_path_factory.mktemp("changed") / "rules"
    shutil.copytree(RULES_DIR, rules)
    (rules / "SY.toml").unlink()
    return rules


@pytest.fixture(scope="module")
def steps(ape: ApeRunner, chain: Chain, registry: Contract, changed_rules: Path
          ) -> dict[str, Run]:
    """diff (a real process), apply, apply again, the operator (no RULES_ADMIN_ROLE)
    applies changed rules, show DE, the KYC provider registers Alice (a real process)."""
    return {
        "diff": run(ape, chain, PEOPLE, "jurisdictions", "diff", subprocess=True),
        "apply": run(ape, chain, PEOPLE, "jurisdictions", "apply", "--account", "TEST::0"),
        "again": run(ape, chain, PEOPLE, "jurisdictions", "apply", "--account", "TEST::0"),
        "no role": run(ape, chain, PEOPLE, "jurisdictions", "apply", "--account", "TEST::1",
                       "--rules", str(changed_rules)),
        "show": run(ape, chain, PEOPLE, "jurisdictions", "show", "DE"),
        "kyc": run(ape, chain, PEOPLE, "kyc", "register", "--account", "TEST::0",
                   "--investor", ALICE, "--jurisdiction", "US", "--accredited", subprocess=True),
        "kyc no region": run(ape, chain, PEOPLE, "kyc", "register", "--account", "TEST::0",
                             "--investor", KYIV, "--jurisdiction", "UA", "--accredited"),
        "kyc kyiv": run(ape, chain, PEOPLE, "kyc", "register", "--account", "TEST::0",
                        "--investor", KYIV, "--jurisdiction", "UA-30", "--accredited"),
        "show ua": run(ape, chain, PEOPLE, "jurisdictions", "show", "UA"),
    }


def test_jurisdictions_diff_then_apply_once(steps: dict[str, Run], chain: Chain,
                                            registry: Contract) -> None:
    diff = steps["diff"]
    assert diff.result.returncode == 0, str(diff.result)
    assert len(diff_rows(diff.output)) == 17 and {k for k, _ in diff_rows(diff.output)} == {"add"}
    regions = re.findall(r"^add +(UA-\d+) +unlisted -> title=sanctioned policy=blocked",
                         diff.output, re.MULTILINE)
    assert sorted(regions) == ["UA-09", "UA-14", "UA-23", "UA-40", "UA-43", "UA-65"]
    assert_nothing_sent(diff)
    apply = steps["apply"]
    assert_mined(chain, apply, DEPLOYER, registry, ["set_jurisdictions", "set_subdivisions"])
    assert "set 17 jurisdiction row(s)" in apply.output
    assert "set 6 subdivision row(s)" in apply.output
    assert re.search(r"^add +UA-43 ", apply.output, re.MULTILINE)  # the changed rows shown
    assert apply.output.strip().splitlines()[-1].strip() == (
        "registry now matches the rules data (17 jurisdictions)")
    fn = registry.functions
    assert {int(c): tuple(fn.jurisdiction(c).call())
            for c in fn.listed_jurisdictions().call()} == SHIPPED_ROWS
    again = steps["again"]
    assert again.result.returncode == 0, str(again.result)
    assert "registry matches the rules data (17 jurisdictions): nothing to change" in (
        again.output)
    assert_nothing_sent(again)


def test_jurisdictions_refusals_and_show(steps: dict[str, Run]) -> None:
    refused = steps["no role"]
    assert refused.result.returncode == 1, str(refused.result)
    assert "remove 760 " in refused.output
    assert (f"set 1 jurisdiction row(s) refused, nothing sent: "
            f"{reasons.ACCESS_CONTROL_MISSING_ROLE} ({OPERATOR} lacks the registry's "
            "RULES_ADMIN_ROLE") in refused.output, str(refused.result)
    assert "Traceback" not in refused.output
    assert_nothing_sent(refused)
    show = steps["show"]
    assert show.result.returncode == 0, str(show.result)
    assert show.output.startswith("Germany (DE, 276) as of ")
    assert "on-chain: title=not_recognised policy=accredited_only (in sync)" in show.output
    assert "(EGBGB) Art. 43(1)" in show.output
    assert_nothing_sent(show)


def test_kyc_register_as_a_shell_runs_it(steps: dict[str, Run], chain: Chain,
                                         registry: Contract) -> None:
    step = steps["kyc"]
    assert_mined(chain, step, DEPLOYER, registry, ["set_investor"])
    assert f"register {ALICE}: US (accredited_only), accredited" in step.output
    jurisdiction, accredited, expires_at, frozen, registered, region = (
        registry.functions.investor(ALICE).call())
    assert (jurisdiction, accredited, frozen, registered, region) == (US, True, False, True, 0)
    now = chain.web3.eth.get_block("latest")["timestamp"]
    assert now + 364 * 86_400 < expires_at <= now + 365 * 86_400


def test_kyc_register_needs_the_region_where_the_country_lists_regions(
        steps: dict[str, Run], chain: Chain, registry: Contract) -> None:
    """Ukraine lists embargoed regions: a record without a region would be refused on
    every transfer, so the command refuses to write it; with Kyiv (UA-30) it is written."""
    refused = steps["kyc no region"]
    assert refused.result.returncode == 1, str(refused.result)
    assert "give the investor's ISO 3166-2 region of residence" in refused.output
    assert "UA-43" in refused.output and "Traceback" not in refused.output
    assert_nothing_sent(refused)
    kyiv = steps["kyc kyiv"]
    assert_mined(chain, kyiv, DEPLOYER, registry, ["set_investor"])
    assert f"register {KYIV}: UA-30 (accredited_only), accredited" in kyiv.output
    record = registry.functions.investor(KYIV).call()
    assert (record[0], record[5]) == (804, 0x3330)
    assert registry.functions.check_receiver(KYIV).call() == 0
    show = steps["show ua"]
    assert show.result.returncode == 0, str(show.result)
    assert "region UA-43 Autonomous Republic of Crimea" in show.output
    assert "Executive Order 13685" in show.output
