"""The README's operator block runs as written, top to bottom, against a real anvil.

The block is read from README.md (between its `operator-block` markers) and each
line is run the way a shell would: the `anvil ... &` line starts anvil (on a free port
instead of 8545, so tests never collide), `export` and `NAME=value` set variables,
and every `ape run ...` line runs, with the variables expanded, through ape's own
command line (in this process: see `gpushares/aperun.py`). A line of any other kind
fails the test, so the block cannot grow a step this harness would skip.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest

from gpushares.aperun import run_ape
from gpushares.client.context import Client
from gpushares.client.web3_chain import Web3Chain
from gpushares.devnode import PROJECT_ROOT, AnvilNode
from tests.integration.conftest import child_env

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("chain-readme")]

README = PROJECT_ROOT / "README.md"
BLOCK = re.compile(r"<!-- operator-block -->\n```sh\n(.*?)```\n<!-- /operator-block -->", re.S)
SHARE = 10**18


def logical_lines(block: str) -> Iterator[str]:
    """The block's commands: continuation lines joined, comments and blanks dropped."""
    pending = ""
    for raw in block.splitlines():
        line = raw.rstrip()
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        words = shlex.split(line, comments=True)
        if words:
            yield line


def expand(word: str, variables: dict[str, str]) -> list[str]:
    """A word with its `$NAME`s replaced; a bare `$NAME` splits on spaces, as an
    unquoted expansion does in a shell (`$N` is two words)."""
    if re.fullmatch(r"\$\w+", word):
        return variables[word[1:]].split()
    return [re.sub(r"\$(\w+)", lambda m: variables[m.group(1)], word)]


def test_the_operator_block_runs_as_written(ape_compiled, tmp_path: Path):
    block = BLOCK.search(README.read_text(encoding="utf-8"))
    assert block, "README.md lost its operator-block markers"
    variables: dict[str, str] = {}
    env = child_env(None, tmp_path / "deployments")
    node: AnvilNode | None = None
    ran: list[str] = []
    try:
        for line in logical_lines(block.group(1)):
            words = shlex.split(line, comments=True)
            if words[0] == "source":
                assert words[1] == ".venv/bin/activate", line  # the test runs in the venv
            elif words[0] == "anvil":
                assert words[-1] == "&" and node is None, line
                node = AnvilNode().start()
                variables["README_PORT"] = words[words.index("--port") + 1]
            elif words[0] == "export":
                name, _, value = words[1].partition("=")
                assert name == "APE_FOUNDRY_HOST" and node is not None, line
                assert value == f"http://127.0.0.1:{variables['README_PORT']}", line
                env[name] = node.url
            elif re.fullmatch(r"[A-Z]+=.*", words[0]) and len(words) == 1:
                name, _, value = words[0].partition("=")
                variables[name] = value
            elif words[:2] == ["ape", "run"]:
                args = [a for w in words[1:] for a in expand(w, variables)]
                args = [str(tmp_path / Path(a).name) if a.startswith("/tmp/") else a
                        for a in args]
                done = run_ape(args, env)
                assert done.returncode == 0, f"$ {line}\n{done.output}"
                assert "Traceback" not in done.output and "Warning" not in done.output, (
                    f"$ {line}\n{done.output}")
                ran.append(" ".join(words[2:4]))
            else:
                raise AssertionError(f"the README block has a line this test cannot run: {line}")
        assert node is not None and len(ran) >= 25
        # The state the block leaves, read independently of the scripts.
        client = Client.load(Web3Chain.at(node.url),
                             next((tmp_path / "deployments").glob("*.json")))
        token = client.token(1)
        alice, bob, agent = (variables[n] for n in ("ALICE", "BOB", "AGENT"))
        assert token.totalSupply() == 2_000 * SHARE  # 3,000 minted, 1,000 bought back and burnt
        assert token.balanceOf(alice) == (3_000 - 500 - 1_000 + 100) * SHARE
        assert token.balanceOf(bob) == 0  # forced 100 away, the rest recovered
        assert token.balanceOf(agent) == 400 * SHARE
        assert token.getFrozenTokens(agent) == 100 * SHARE  # the freeze moved with them
        assert token.active_gpus() == 7 and token.claimable(alice) == 0
    finally:
        if node is not None:
            node.stop()
