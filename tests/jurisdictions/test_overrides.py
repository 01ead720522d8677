"""An SPV's own file of title overrides (`with_overrides`, `--overrides`): merged into
the rules data exactly as if the override sat in the jurisdiction's file."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from gpushares.devnode import PROJECT_ROOT
from jurisdictions.rules import RulesError, load_rules, with_overrides

EXAMPLE = PROJECT_ROOT / "examples" / "lone-star-title-override.toml"
OPINION = PROJECT_ROOT / "examples" / "legal-opinion-us-demo.txt"
ENTRY = """
[[title_overrides]]
jurisdiction = "{where}"
spv_lei = "{lei}"
legal_opinion_sha256 = "0x{digest}"
opinion_reference = "Counsel, title opinion"
recorded_by = "Test SPV"
as_of = 2026-11-21
"""


def write(tmp_path: Path, *entries: tuple[str, str]) -> Path:
    path = tmp_path / "overrides.toml"
    path.write_text("".join(ENTRY.format(where=w, lei=lei, digest="ab" * 32)
                            for w, lei in entries))
    return path


def test_the_example_override_records_the_example_opinions_hash():
    rules = with_overrides(load_rules(), EXAMPLE)
    (override,) = rules.resolve("US").title_overrides
    assert override.legal_opinion_sha256 == "0x" + hashlib.sha256(OPINION.read_bytes()).hexdigest()
    # everything else is the shipped data, and the rule's on-chain hash is unchanged
    shipped = load_rules()
    assert rules.resolve("US").rules_hash() == shipped.resolve("US").rules_hash()
    assert all(rules[n] == shipped[n] for n in shipped if n != 840)


def test_overrides_by_numeric_code_and_several_spvs(tmp_path: Path):
    path = write(tmp_path, ("840", "5493001KJTIIGC8Y1R12"), ("SG", "5493001KJTIIGC8Y1R12"))
    rules = with_overrides(load_rules(), path)
    assert len(rules.resolve("US").title_overrides) == 1
    assert len(rules.resolve("SG").title_overrides) == 1


@pytest.mark.parametrize(("entries", "message"), [
    ((("DE", "5493001KJTIIGC8Y1R12"),), "apply only to 'unclear' jurisdictions"),
    ((("US", "5493001KJTIIGC8Y1R12"), ("US", "5493001KJTIIGC8Y1R12")), "one override per SPV"),
    ((("XX", "5493001KJTIIGC8Y1R12"),), "no rules for 'XX'"),
    ((("US", "NOT-A-LEI"),), "spv_lei"),
])
def test_a_bad_override_is_refused_naming_the_file(tmp_path: Path, entries, message):
    path = write(tmp_path, *entries)
    with pytest.raises(RulesError, match=message) as caught:
        with_overrides(load_rules(), path)
    assert str(path) in str(caught.value)


def test_a_file_with_anything_else_is_refused(tmp_path: Path):
    path = tmp_path / "o.toml"
    path.write_text('alpha2 = "US"\n')
    with pytest.raises(RulesError, match="expected only"):
        with_overrides(load_rules(), path)
