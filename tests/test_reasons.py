"""One list of refusal messages (`gpushares/reasons.py`): the generated Vyper module is in
sync with it, every contract takes its messages from it, and no Python file keeps a copy
of one."""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import pytest

from gpushares import reasons
from gpushares.devnode import PROJECT_ROOT

CONTRACTS = PROJECT_ROOT / "contracts"
MESSAGE_LITERAL = re.compile('"(' + '|'.join(reasons.CONTRACTS) + r'): [^"]*"')


def _code(text: str) -> str:
    """Vyper source without its docstrings and comments."""
    text = re.sub(r'"""(?:.|\n)*?"""', "", text)
    return "\n".join(line.split("#", 1)[0] for line in text.splitlines())


def test_the_vyper_module_is_generated_from_the_python_list():
    assert reasons.main(["--check"]) == 0, "run `python -m gpushares.reasons`"


def test_every_contract_reverts_with_the_lists_constants_only():
    used: set[str] = set()
    modules = [p for p in sorted((CONTRACTS / "modules").glob("*.vy")) if p.name != "reasons.vy"]
    for path in sorted(CONTRACTS.glob("*.vy")) + modules:
        code = _code(path.read_text(encoding="utf-8"))
        literals = MESSAGE_LITERAL.findall(code)
        assert not literals, f"{path.name} reverts with a literal: use gpushares/reasons.py"
        used |= set(re.findall(r"\breasons\.(\w+)", code))
    unknown = used - set(reasons.messages())
    assert not unknown, f"contracts name messages the list lacks: {sorted(unknown)}"
    unused = set(reasons.messages()) - used
    assert not unused, f"messages no contract uses (remove them): {sorted(unused)}"


def _string_runs(source: str):
    tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    run: list[tokenize.TokenInfo] = []
    for token in [*tokens, None]:
        if token is not None and token.type == tokenize.STRING:
            run.append(token)
            continue
        if token is not None and token.type in (tokenize.NL, tokenize.COMMENT) and run:
            continue
        if run:
            try:
                values = [ast.literal_eval(t.string) for t in run]
            except (ValueError, SyntaxError):
                values = []
            if values and all(isinstance(v, str) for v in values):
                yield run[0].start[0], "".join(values)
            run = []


@pytest.mark.parametrize("folder", ["gpushares", "scripts", "tests", "bench", "oracle",
                                    "jurisdictions", "app"])
def test_no_python_file_keeps_a_copy_of_a_message(folder: str):
    messages = set(reasons.messages().values())
    copies = []
    for path in sorted((PROJECT_ROOT / folder).rglob("*.py")):
        if path == Path(reasons.__file__):
            continue
        for line, value in _string_runs(path.read_text(encoding="utf-8")):
            if value in messages:
                copies.append(f"{path.relative_to(PROJECT_ROOT)}:{line}")
    assert not copies, f"use gpushares.reasons instead of a copy: {copies}"


def test_messages_are_plain_ascii_and_name_their_contract():
    for name, text in reasons.messages().items():
        assert text.isascii() and '"' not in text, name
        owner = text.split(": ", 1)[0]
        assert owner in reasons.CONTRACTS, name
