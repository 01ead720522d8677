"""The rules data (`jurisdictions/rules/*.toml`) and its loader."""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jurisdictions.codes import HolderPolicyCode, TitleStatus
from jurisdictions.rules import (
    RULES_DIR,
    Citation,
    CounterArgument,
    HolderPolicy,
    JurisdictionRules,
    RuleBook,
    RulesError,
    SubdivisionRules,
    TitleRecognition,
    load_file,
    load_rules,
)
from tests.jurisdictions.helpers import (
    LEI_A,
    LEI_B,
    SHA_B,
    make_rule,
    override,
    rule_data,
    to_toml,
)

# ISO 3166-1 numeric codes of the shipped alpha-2 codes.
ISO_NUMERIC = {
    "DE": 276, "NL": 528, "CH": 756, "LI": 438, "GB": 826, "US": 840, "FR": 250, "LU": 442,
    "SG": 702, "AE": 784, "KP": 408, "IR": 364, "CU": 192, "RU": 643, "BY": 112, "SY": 760,
    "UA": 804,
}
REQUIRED = {"DE", "NL", "CH", "LI", "GB", "US", "FR", "LU", "SG", "AE"}
SANCTIONED = {"KP", "IR", "CU", "RU", "BY"}


@pytest.fixture(scope="module")
def shipped() -> RuleBook:
    return load_rules()


# --- the shipped data -----------------------------------------------------------------------


def test_shipped_rules_load(shipped: RuleBook) -> None:
    assert len(shipped) == len(list(RULES_DIR.glob("*.toml")))
    assert list(shipped) == sorted(shipped)
    for numeric, rule in shipped.items():
        assert rule.numeric == numeric
        assert shipped.by_alpha2(rule.alpha2) is rule


def test_required_jurisdictions_present(shipped: RuleBook) -> None:
    present = {rule.alpha2 for rule in shipped.values()}
    assert REQUIRED | SANCTIONED <= present


@pytest.mark.parametrize("alpha2", ["DE", "NL"])
def test_de_nl_not_recognised(shipped: RuleBook, alpha2: str) -> None:
    assert shipped.by_alpha2(alpha2).title_recognition is TitleRecognition.NOT_RECOGNISED


@pytest.mark.parametrize("alpha2", sorted(SANCTIONED))
def test_sanctioned_are_blocked(shipped: RuleBook, alpha2: str) -> None:
    rule = shipped.by_alpha2(alpha2)
    assert rule.sanctioned is True
    assert rule.holder_policy is HolderPolicy.BLOCKED
    assert rule.citations


def test_every_sanctioned_rule_is_blocked(shipped: RuleBook) -> None:
    for rule in shipped.values():
        if rule.sanctioned:
            assert rule.holder_policy is HolderPolicy.BLOCKED, rule.alpha2


@pytest.mark.parametrize("path", sorted(RULES_DIR.glob("*.toml")), ids=lambda p: p.name)
def test_file_name_is_alpha2(path: Path) -> None:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    assert path.name == f"{data['alpha2']}.toml"


def test_numeric_codes_unique_and_iso(shipped: RuleBook) -> None:
    numerics = [rule.numeric for rule in shipped.values()]
    assert len(numerics) == len(set(numerics))
    for rule in shipped.values():
        assert rule.alpha2 in ISO_NUMERIC, f"add {rule.alpha2}'s ISO numeric code to the test"
        assert rule.numeric == ISO_NUMERIC[rule.alpha2], rule.alpha2


def test_unclear_have_unknowns_and_others_citations(shipped: RuleBook) -> None:
    for rule in shipped.values():
        if rule.title_recognition is TitleRecognition.UNCLEAR:
            assert rule.unknowns and rule.unknowns.strip(), rule.alpha2
        else:
            assert rule.citations, rule.alpha2


def test_as_of_not_in_future(shipped: RuleBook) -> None:
    # One day of slack for the time zone of whoever reviewed the file.
    latest = date.today() + timedelta(days=1)
    for rule in shipped.values():
        assert rule.as_of <= latest, rule.alpha2
        for o in rule.title_overrides:
            assert o.as_of <= latest, (rule.alpha2, o.spv_lei)


def test_citation_urls_are_https(shipped: RuleBook) -> None:
    for rule in shipped.values():
        for citation in rule.citations:
            assert citation.url is None or citation.url.startswith("https://")


def test_readme_table_matches_files(shipped: RuleBook) -> None:
    readme = (RULES_DIR / "README.md").read_text(encoding="utf-8")
    rows = re.findall(
        r"^\| ([A-Z]{2}) \| (\d+) \| ([^|]+) \| (\w+) \| (\w+) \| (yes|no) \|$", readme, re.M
    )
    table = {
        a2: (int(num), name.strip(), title, policy, sanctioned == "yes")
        for a2, num, name, title, policy, sanctioned in rows
    }
    files = {
        r.alpha2: (r.numeric, r.name, str(r.title_recognition), str(r.holder_policy), r.sanctioned)
        for r in shipped.values()
    }
    assert table == files


# --- validation errors ----------------------------------------------------------------------


def _inline(value: Any) -> str:
    """A TOML value, nesting arrays and tables inline (the shared `to_toml` writes only
    flat arrays of tables; subdivisions and counter-arguments nest citations)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_inline(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_inline(v) for v in value) + "]"
    return to_toml({"v": value}).removeprefix("v = ").rstrip("\n")


def write(directory: Path, data: dict[str, Any], name: str | None = None) -> Path:
    path = directory / (name or f"{data['alpha2']}.toml")
    nested = any(isinstance(v, list | tuple) and any(
        isinstance(x, list | tuple | dict) for item in v if isinstance(item, dict)
        for x in item.values()) for v in data.values())
    text = ("".join(f"{k} = {_inline(v)}\n" for k, v in data.items()) if nested
            else to_toml(data))
    path.write_text(text, encoding="utf-8")
    return path


def load_error(directory: Path) -> str:
    with pytest.raises(RulesError) as info:
        load_rules(directory)
    return str(info.value)


def test_valid_tmp_file_loads(tmp_path: Path) -> None:
    write(tmp_path, rule_data("XA", 900))
    write(tmp_path, rule_data("XB", 901, title_recognition="unclear",
                              title_overrides=[override()]))
    book = load_rules(tmp_path)
    assert sorted(book) == [900, 901]
    assert book[901].override_for(LEI_A) is not None


# A valid subdivision of the test country XA: a sanctioned, blocked region.
SUB = {
    "code": "XA-43", "name": "Region 43", "title_recognition": "not_recognised",
    "holder_policy": "blocked", "sanctioned": True, "basis": "Embargoed region.",
    "citations": [{"reference": "XA Region Embargo Order"}],
}

BAD_FILES = {
    "missing field": (rule_data(basis=None), ["basis", "Field required"]),
    "unknown title value": (
        rule_data(title_recognition="maybe"), ["title_recognition", "'recognised'"]
    ),
    "unknown policy value": (rule_data(holder_policy="everyone"), ["holder_policy"]),
    "unclear without unknowns": (
        rule_data(title_recognition="unclear", unknowns=None), ["unclear", "unknowns"]
    ),
    "unclear with blank unknowns": (
        rule_data(title_recognition="unclear", unknowns="   "), ["unknowns"]
    ),
    "recognised without citations": (rule_data(citations=[]), ["recognised", "citations"]),
    "not_recognised without citations": (
        rule_data(title_recognition="not_recognised", citations=[]), ["citations"]
    ),
    "sanctioned but allowed": (rule_data(sanctioned=True), ["sanctioned", "blocked"]),
    "sanctioned without citations": (
        rule_data(title_recognition="unclear", holder_policy="blocked", sanctioned=True,
                  citations=[]),
        ["sanctioned", "citations"],
    ),
    "override on a non-unclear jurisdiction": (
        rule_data(title_overrides=[override()]), ["title_overrides", "unclear", "recognised"]
    ),
    "duplicate override LEI": (
        rule_data(title_recognition="unclear",
                  title_overrides=[override(LEI_A), override(LEI_A, SHA_B)]),
        ["title_overrides", "one override per SPV LEI"],
    ),
    "bad sha256 (uppercase hex)": (
        rule_data(title_recognition="unclear",
                  title_overrides=[override(sha="0x" + "AB" * 32)]),
        ["title_overrides.0.legal_opinion_sha256"],
    ),
    "bad sha256 (short)": (
        rule_data(title_recognition="unclear", title_overrides=[override(sha="0xabcd")]),
        ["legal_opinion_sha256"],
    ),
    "bad LEI": (
        rule_data(title_recognition="unclear", title_overrides=[override("not-a-lei")]),
        ["spv_lei"],
    ),
    "extra unknown field": (rule_data(colour="blue"), ["colour", "Extra inputs"]),
    "extra field in a citation": (
        rule_data(citations=[{"reference": "Act", "page": 3}]), ["citations.0.page", "Extra"]
    ),
    "http url": (
        rule_data(citations=[{"reference": "Act", "url": "http://example.org"}]),
        ["citations.0.url"],
    ),
    "bad citation date": (
        rule_data(citations=[{"reference": "Act", "date": "2025-02-30"}]),
        ["citations.0.date"],
    ),
    "counter-argument without sources": (
        rule_data(counter_arguments=[{"argument": "A", "response": "R", "sources": []}]),
        ["counter_arguments.0.sources"],
    ),
    "counter-argument without response": (
        rule_data(counter_arguments=[{"argument": "A", "sources": [{"reference": "Act"}]}]),
        ["counter_arguments.0.response", "Field required"],
    ),
    "subdivision code not ISO 3166-2": (
        rule_data(subdivisions=[{**SUB, "code": "XA43"}]), ["subdivisions.0.code"],
    ),
    "subdivision code lowercase": (
        rule_data(subdivisions=[{**SUB, "code": "xa-43"}]), ["subdivisions.0.code"],
    ),
    "subdivision code too long": (
        rule_data(subdivisions=[{**SUB, "code": "XA-1234"}]), ["subdivisions.0.code"],
    ),
    "subdivision of another country": (
        rule_data(subdivisions=[{**SUB, "code": "UA-43"}]),
        ["UA-43 is not a subdivision of XA", "'XA-'"],
    ),
    "duplicate subdivision": (
        rule_data(subdivisions=[SUB, SUB]), ["each ISO 3166-2 code at most once"],
    ),
    "subdivision more permissive holder policy": (
        rule_data(holder_policy="accredited_only",
                  subdivisions=[{**SUB, "holder_policy": "allowed", "sanctioned": False}]),
        ["XA-43", "holder_policy 'allowed'", "only tightens"],
    ),
    "subdivision more permissive title": (
        rule_data(title_recognition="not_recognised",
                  subdivisions=[{**SUB, "title_recognition": "unclear", "unknowns": "U."}]),
        ["XA-43", "title_recognition 'unclear'", "only tightens"],
    ),
    "unsanctioned subdivision of a sanctioned country": (
        rule_data(title_recognition="unclear", holder_policy="blocked", sanctioned=True,
                  subdivisions=[{**SUB, "sanctioned": False}]),
        ["XA-43 must be sanctioned"],
    ),
    "sanctioned subdivision not blocked": (
        rule_data(subdivisions=[{**SUB, "holder_policy": "accredited_only"}]),
        ["subdivisions.0", "holder_policy = 'blocked'"],
    ),
    "unclear subdivision without unknowns": (
        rule_data(subdivisions=[{**SUB, "title_recognition": "unclear"}]),
        ["subdivisions.0", "unknowns"],
    ),
    "subdivision extra field": (
        rule_data(subdivisions=[{**SUB, "numeric": 1}]), ["subdivisions.0.numeric", "Extra"],
    ),
    "numeric out of range": (rule_data(numeric=1000), ["numeric"]),
    "numeric zero": (rule_data(numeric=0), ["numeric"]),
    "lowercase alpha2": (rule_data(alpha2="xa"), ["alpha2"]),
    "empty name": (rule_data(name=" "), ["name"]),
    "bad date": (rule_data(as_of="yesterday"), ["as_of"]),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_invalid_file_is_rejected(tmp_path: Path, case: str) -> None:
    data, fragments = BAD_FILES[case]
    path = write(tmp_path, data, name="XA.toml")
    message = load_error(tmp_path)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message
    with pytest.raises(RulesError):
        load_file(path)


def test_file_name_differs_from_alpha2(tmp_path: Path) -> None:
    path = write(tmp_path, rule_data("XA", 900), name="XB.toml")
    message = load_error(tmp_path)
    assert str(path) in message
    assert "file name must be the alpha-2 code XA.toml" in message


def test_invalid_toml(tmp_path: Path) -> None:
    path = tmp_path / "XA.toml"
    path.write_text('alpha2 = "XA\nnumeric = = 1\n', encoding="utf-8")
    message = load_error(tmp_path)
    assert str(path) in message and "cannot read rules" in message


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "XA.toml"
    path.write_bytes(to_toml(rule_data()).encode("utf-8").replace(b"Testland", b"\xff\xfe"))
    message = load_error(tmp_path)
    assert str(path) in message and "cannot read rules" in message


def test_one_bad_file_among_good_ones_is_named(tmp_path: Path) -> None:
    write(tmp_path, rule_data("XA", 900))
    bad = write(tmp_path, rule_data("XB", 901, citations=[]))
    write(tmp_path, rule_data("XC", 902))
    message = load_error(tmp_path)
    assert str(bad) in message
    assert "XA.toml" not in message and "XC.toml" not in message


@pytest.mark.parametrize("name", ["xa.toml", "XAA.toml", "rules.toml"])
def test_stray_file_names_rejected(tmp_path: Path, name: str) -> None:
    write(tmp_path, rule_data("XA", 900))
    write(tmp_path, rule_data("XA", 900), name=name)
    message = load_error(tmp_path)
    assert name in message and "XX.toml" in message


def test_missing_and_empty_directory(tmp_path: Path) -> None:
    assert str(tmp_path / "nope") in load_error(tmp_path / "nope")
    message = load_error(tmp_path)
    assert str(tmp_path) in message and "no XX.toml" in message


def test_duplicate_numeric_across_files(tmp_path: Path) -> None:
    write(tmp_path, rule_data("XA", 900))
    write(tmp_path, rule_data("XB", 900))
    assert "900" in load_error(tmp_path)


def test_rulebook_rejects_duplicates() -> None:
    with pytest.raises(RulesError, match="numeric code 900"):
        RuleBook([make_rule("XA", 900), make_rule("XB", 900)])
    with pytest.raises(RulesError, match="XA"):
        RuleBook([make_rule("XA", 900), make_rule("XA", 901)])


def test_loaded_file_equals_in_memory_model(tmp_path: Path) -> None:
    data = rule_data("XA", 900, title_recognition="unclear", title_overrides=[override()])
    path = write(tmp_path, data)
    assert load_file(path) == JurisdictionRules.model_validate(data)


def test_enum_codes() -> None:
    assert TitleRecognition.RECOGNISED.code is TitleStatus.RECOGNISED
    assert TitleRecognition.NOT_RECOGNISED.code is TitleStatus.NOT_RECOGNISED
    assert TitleRecognition.UNCLEAR.code is TitleStatus.UNCLEAR
    assert HolderPolicy.ALLOWED.code is HolderPolicyCode.ALLOWED
    assert HolderPolicy.ACCREDITED_ONLY.code is HolderPolicyCode.ACCREDITED_ONLY
    assert HolderPolicy.BLOCKED.code is HolderPolicyCode.BLOCKED


def test_citation_str() -> None:
    assert str(Citation(reference="Act")) == "Act"
    assert str(Citation(reference="Act", url="https://x.org/a")) == "Act <https://x.org/a>"


def test_override_for() -> None:
    rule = make_rule(title_recognition="unclear", title_overrides=[override(LEI_A)])
    assert rule.override_for(LEI_A) is rule.title_overrides[0]
    assert rule.override_for(LEI_B) is None


# --- rules_hash ---------------------------------------------------------------------------------


def test_rules_hash_is_sha256_of_canonical_json(shipped: RuleBook) -> None:
    rule = shipped.by_alpha2("DE")
    canonical = json.dumps(
        rule.model_dump(mode="json", exclude={"title_overrides"}),
        sort_keys=True, separators=(",", ":"), ensure_ascii=False,
    )
    assert rule.rules_hash() == hashlib.sha256(canonical.encode()).digest()
    assert len(rule.rules_hash()) == 32


def test_rules_hash_stable(shipped: RuleBook) -> None:
    again = load_rules()
    for numeric, rule in shipped.items():
        assert again[numeric].rules_hash() == rule.rules_hash()
        rebuilt = JurisdictionRules.model_validate(rule.model_dump())
        assert rebuilt.rules_hash() == rule.rules_hash()
    hashes = [rule.rules_hash() for rule in shipped.values()]
    assert len(set(hashes)) == len(hashes)


def test_rules_hash_independent_of_file_layout(tmp_path: Path) -> None:
    data = rule_data("XA", 900, title_recognition="unclear", title_overrides=[override()])
    path = write(tmp_path, data)
    shuffled = dict(reversed(list(data.items())))
    other = tmp_path / "other"
    other.mkdir()
    path2 = write(other, shuffled)
    assert path.read_text() != path2.read_text()
    assert load_file(path).rules_hash() == load_file(path2).rules_hash()


def _changes() -> list[tuple[str, Any]]:
    return [
        ("name", "Other name"),
        ("numeric", 901),
        ("alpha2", "XB"),
        ("title_recognition", TitleRecognition.NOT_RECOGNISED),
        ("holder_policy", HolderPolicy.BLOCKED),
        ("basis", "Other basis."),
        ("unknowns", "Something."),
        ("sanctioned", True),
        ("citations", (Citation(reference="Test Act of XA"),)),  # url dropped
        ("citations", ()),
        ("citations", (Citation(reference="Test Act of XA", url="https://example.org/act",
                                title="Test Act"),)),
        ("counter_arguments", (CounterArgument(argument="A", response="R",
                                               sources=(Citation(reference="S"),)),)),
        ("subdivisions", (SubdivisionRules.model_validate(SUB),)),
        ("as_of", date(2026, 1, 16)),
        ("reviewed_by", "someone else"),
    ]


@pytest.mark.parametrize(("field", "value"), _changes(), ids=lambda v: str(v)[:20])
def test_rules_hash_changes_with_any_field(field: str, value: Any) -> None:
    rule = make_rule("XA", 900)
    changed = rule.model_copy(update={field: value})
    assert changed.rules_hash() != rule.rules_hash()


def test_rules_hash_ignores_overrides() -> None:
    """Overrides are recorded on-chain per SPV token, not in the jurisdiction's row."""
    rule = make_rule(title_recognition="unclear", title_overrides=[override(LEI_A)])
    other_sha = make_rule(title_recognition="unclear", title_overrides=[override(LEI_A, SHA_B)])
    two = make_rule(title_recognition="unclear",
                    title_overrides=[override(LEI_A), override(LEI_B, SHA_B)])
    none = make_rule(title_recognition="unclear")
    assert len({r.rules_hash() for r in (rule, other_sha, two, none)}) == 1


@given(
    basis=st.text(min_size=1).filter(lambda s: s.strip()),
    other=st.text(min_size=1).filter(lambda s: s.strip()),
)
def test_rules_hash_injective_on_basis(basis: str, other: str) -> None:
    a = make_rule(basis=basis)
    b = make_rule(basis=other)
    assert (a.rules_hash() == b.rules_hash()) == (a.basis == b.basis)


# --- RuleBook lookups ----------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["DE", "de", 276, "276"])
def test_resolve(shipped: RuleBook, key: str | int) -> None:
    assert shipped.resolve(key).alpha2 == "DE"


def test_resolve_unknown_alpha2_lists_known_codes(shipped: RuleBook) -> None:
    with pytest.raises(RulesError) as info:
        shipped.resolve("ZZ")
    message = str(info.value)
    assert "'ZZ'" in message
    for rule in shipped.values():
        assert rule.alpha2 in message


def test_by_alpha2_unknown(shipped: RuleBook) -> None:
    with pytest.raises(RulesError, match="known jurisdictions: AE, BY"):
        shipped.by_alpha2("XX")


@pytest.mark.parametrize("key", [999, "999"])
def test_resolve_unknown_numeric(shipped: RuleBook, key: str | int) -> None:
    with pytest.raises(RulesError, match="numeric code 999"):
        shipped.resolve(key)


def test_resolve_unknown_numeric_lists_known_codes(shipped: RuleBook) -> None:
    with pytest.raises(RulesError) as info:
        shipped.resolve(999)
    message = str(info.value)
    assert all(str(n) in message for n in shipped) or all(
        r.alpha2 in message for r in shipped.values()
    )


def test_mapping_interface(shipped: RuleBook) -> None:
    assert 276 in shipped and 999 not in shipped
    assert shipped.get(999) is None
    with pytest.raises(KeyError):
        shipped[999]


# --- canonical JSON: fields added by issue 22 ------------------------------------------------

# The keys of a rule's canonical JSON before issue 22 (2026-11-21 schema).
OLD_RULE_KEYS = {"alpha2", "numeric", "name", "title_recognition", "holder_policy", "basis",
                 "unknowns", "sanctioned", "citations", "as_of", "reviewed_by"}


def _canonical(rule: JurisdictionRules) -> dict[str, Any]:
    return json.loads(json.dumps(rule.model_dump(mode="json", exclude={"title_overrides"})))


def test_canonical_json_of_an_old_style_rule_is_unchanged() -> None:
    """A rule that uses none of the new fields hashes exactly as under the old schema:
    same keys, citations with only `reference` and `url` (null when absent)."""
    rule = make_rule("XA", 900, citations=[{"reference": "Act"},
                                           {"reference": "B", "url": "https://x.org/b"}])
    data = _canonical(rule)
    assert set(data) == OLD_RULE_KEYS
    assert data["citations"] == [{"reference": "Act", "url": None},
                                 {"reference": "B", "url": "https://x.org/b"}]
    old_text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert rule.rules_hash() == hashlib.sha256(old_text.encode()).digest()


def test_canonical_json_includes_new_fields_when_set() -> None:
    rule = make_rule(
        "XA", 900,
        citations=[{"reference": "Act", "title": "T", "publisher": "P", "date": "2025",
                    "official_reference": "R"}],
        counter_arguments=[{"argument": "A", "response": "R",
                            "sources": [{"reference": "S"}]}],
        subdivisions=[SUB],
    )
    data = _canonical(rule)
    assert set(data) == OLD_RULE_KEYS | {"counter_arguments", "subdivisions"}
    assert data["citations"][0] == {"reference": "Act", "url": None, "title": "T",
                                    "publisher": "P", "date": "2025",
                                    "official_reference": "R"}
    assert data["subdivisions"][0]["code"] == "XA-43"
    assert "counter_arguments" not in data["subdivisions"][0]  # empty: omitted
    assert data["counter_arguments"][0]["sources"] == [{"reference": "S", "url": None}]


def test_round_trip_keeps_the_hash(shipped: RuleBook) -> None:
    for rule in shipped.values():
        again = JurisdictionRules.model_validate(rule.model_dump())
        assert again == rule and again.rules_hash() == rule.rules_hash()


def test_subdivision_change_changes_the_country_hash() -> None:
    rule = make_rule("XA", 900, subdivisions=[SUB])
    other = make_rule("XA", 900, subdivisions=[{**SUB, "basis": "Other basis."}])
    assert rule.rules_hash() != other.rules_hash()
    assert rule.subdivisions[0].rules_hash() != other.subdivisions[0].rules_hash()
    assert len(rule.subdivisions[0].rules_hash()) == 32


# --- subdivisions ------------------------------------------------------------------------------


def test_subdivision_lookup() -> None:
    rule = make_rule("XA", 900, subdivisions=[SUB])
    sub = rule.subdivision("XA-43")
    assert sub is rule.subdivisions[0] and rule.subdivision(" xa-43 ") is sub
    assert sub.alpha2 == "XA" and sub.title_code is TitleStatus.SANCTIONED
    assert rule.subdivision("XA-44") is None  # listed country, unlisted region
    with pytest.raises(RulesError, match="not a subdivision of XA"):
        rule.subdivision("UA-43")
    with pytest.raises(RulesError, match="not an ISO 3166-2 subdivision code"):
        rule.subdivision("XA")


def test_rulebook_subdivision_lookup(pending: RuleBook, shipped: RuleBook) -> None:
    assert pending.subdivision("UA-43").name == "Autonomous Republic of Crimea"
    assert pending.subdivision("ua-40").code == "UA-40"
    assert pending.subdivision("UA-30") is None  # Kyiv: Ukraine's own rule applies
    assert shipped.subdivision("DE-BY") is None
    with pytest.raises(RulesError, match="no rules for 'ZZ'"):
        shipped.subdivision("ZZ-01")
    with pytest.raises(RulesError, match="not an ISO 3166-2"):
        shipped.subdivision("UA_43")


def test_subdivision_may_tighten_or_equal() -> None:
    for policy, title in [("accredited_only", "recognised"), ("blocked", "unclear"),
                          ("blocked", "not_recognised")]:
        sub = {**SUB, "holder_policy": policy, "title_recognition": title,
               "sanctioned": False, "unknowns": "U."}
        rule = make_rule("XA", 900, holder_policy="accredited_only", subdivisions=[sub])
        assert rule.subdivision("XA-43").holder_policy is HolderPolicy(policy)


def test_strictness_orders() -> None:
    assert [p.strictness for p in (HolderPolicy.ALLOWED, HolderPolicy.ACCREDITED_ONLY,
                                   HolderPolicy.BLOCKED)] == [0, 1, 2]
    assert [t.strictness for t in (TitleRecognition.RECOGNISED, TitleRecognition.UNCLEAR,
                                   TitleRecognition.NOT_RECOGNISED)] == [0, 1, 2]


def test_loaded_nested_file_equals_in_memory_model(tmp_path: Path) -> None:
    data = rule_data("XA", 900, subdivisions=[SUB],
                     counter_arguments=[{"argument": "A", "response": "R",
                                         "sources": [{"reference": "S", "date": "2025-05"}]}])
    assert load_file(write(tmp_path, data)) == JurisdictionRules.model_validate(data)


# --- Ukraine and its embargoed regions (issue 22) ------------------------------------------------
# Listed now that investor records, attestations, GPU locations, the registry and the
# engine carry ISO 3166-2 regions (tests/jurisdictions/test_regions.py,
# tests/contracts/test_regions.py).


@pytest.fixture(scope="module")
def pending() -> RuleBook:
    """The shipped rules (Ukraine waited in rules/pending/ until regions were enforced)."""
    return load_rules()


UA_EMBARGOED = {"UA-43", "UA-40", "UA-14", "UA-09", "UA-65", "UA-23"}


def test_ukraine_lists_its_embargoed_regions(pending: RuleBook) -> None:
    ua = pending.by_alpha2("UA")
    assert ua.numeric == 804 and not ua.sanctioned
    assert ua.holder_policy is HolderPolicy.ACCREDITED_ONLY
    assert ua.title_recognition is TitleRecognition.UNCLEAR and ua.unknowns
    assert {s.code for s in ua.subdivisions} == UA_EMBARGOED
    for sub in ua.subdivisions:
        assert sub.sanctioned and sub.holder_policy is HolderPolicy.BLOCKED, sub.code
        assert sub.title_code is TitleStatus.SANCTIONED
        assert sub.citations and sub.basis, sub.code


@pytest.mark.parametrize(("code", "instruments"), [
    ("UA-43", ["13685", "692/2014"]), ("UA-40", ["13685", "692/2014"]),
    ("UA-14", ["14065", "2022/263"]), ("UA-09", ["14065", "2022/263"]),
    ("UA-65", ["2022/263", "2022/1903"]), ("UA-23", ["2022/263", "2022/1903"]),
])
def test_each_region_cites_its_embargo(pending: RuleBook, code: str,
                                       instruments: list[str]) -> None:
    sub = pending.subdivision(code)
    assert sub is not None
    cited = " ".join(f"{c.reference} {c.title} {c.official_reference}" for c in sub.citations)
    for instrument in instruments:
        assert instrument in cited, (code, instrument)


def test_ukraine_is_the_listed_jurisdiction_with_subdivisions(shipped: RuleBook) -> None:
    assert [r.alpha2 for r in shipped.values() if r.subdivisions] == ["UA"]
    assert not (RULES_DIR / "pending").exists()


# --- the shipped data: the corrections of issue 22 -----------------------------------------------


def _cited(rule: JurisdictionRules) -> str:
    return " ".join(f"{c.reference} {c.title} {c.official_reference or ''} {c.url or ''}"
                    for _, c in rule.all_citations())


@pytest.mark.parametrize(("alpha2", "fragments"), [
    ("DE", ["Auffenberg", "Verstappen", "§ 931"]),
    ("NL", ["Verstappen", "3:115"]),
    ("GB", ["SI 2024/301", "s. 238", "SI 2001/1060", "para. (8)"]),
    ("IR", ["2025/1975", "2271/96", "2018/1100"]),
    ("SY", ["Caesar", "Fiscal Year 2026", "1 June 2026", "90 FR 46056"]),
    ("BY", ["2025/392", "2025/391"]),
    ("AE", ["VARA", "Asset-Referenced Virtual Assets"]),
    ("CH", ["Art. 106", "Art. 1153", "Art. 1153a"]),
    ("FR", ["Art. 1198"]),
    ("US", ["230.144", "4(a)(7)", "230.502(d)"]),
])
def test_corrections_cited(shipped: RuleBook, alpha2: str, fragments: list[str]) -> None:
    cited = _cited(shipped.by_alpha2(alpha2))
    for fragment in fragments:
        assert fragment in cited, (alpha2, fragment)


@pytest.mark.parametrize("alpha2", ["DE", "NL", "CH"])
def test_arguable_verdicts_record_counter_arguments(shipped: RuleBook, alpha2: str) -> None:
    rule = shipped.by_alpha2(alpha2)
    assert rule.counter_arguments
    for counter in rule.counter_arguments:
        assert counter.argument and counter.response and counter.sources


def test_ae_says_adgm_was_not_reviewed(shipped: RuleBook) -> None:
    ae = shipped.by_alpha2("AE")
    assert "ADGM" in (ae.unknowns or "") and "not reviewed" in (ae.unknowns or "")


def test_sy_says_what_is_not_verified(shipped: RuleBook) -> None:
    sy = shipped.by_alpha2("SY")
    assert "Not verified" in (sy.unknowns or "") and "1 June 2026" in (sy.unknowns or "")


def test_every_file_reviewed_for_issue_22(shipped: RuleBook) -> None:
    for rule in shipped.values():
        assert rule.as_of == date(2026, 12, 3), rule.alpha2
        assert "2026-12-03" in rule.reviewed_by, rule.alpha2
