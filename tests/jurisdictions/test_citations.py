"""Every citation in the shipped rules data names a findable source (issue 22).

A citation must say what the source is (`title`), who issued or published it
(`publisher`), when (`date`) and where to find it (`url` or `official_reference`), and
must not be a placeholder ("to be recorded by counsel", "referenced in the project brief",
"TBD", ...). The schema accepts a bare `reference` so that in-memory rules stay short;
these tests refuse any shipped rules file whose citations fall short.
"""

from __future__ import annotations

import re
import tomllib
from datetime import date
from pathlib import Path

import pytest
from pydantic import ValidationError

from jurisdictions.rules import (
    PLACEHOLDER_PATTERNS,
    RULES_DIR,
    Citation,
    JurisdictionRules,
    RuleBook,
    citation_problems,
    load_file,
    load_rules,
)
from tests.jurisdictions.helpers import rule_data

FILES = sorted(RULES_DIR.glob("*.toml"))

# The citation DE.toml and NL.toml carried before issue 22: the verdicts' only basis, and
# no source at all.
OLD_PLACEHOLDER = (
    "Legal analysis referenced in the project brief (issue 3): Germany and the Netherlands "
    "do not recognise tokenized title to physical assets; MiCA does not cover such tokens. "
    "Exact publication reference to be recorded by counsel."
)

FINDABLE = {
    "reference": "Sale of Goods Act 1979 ss. 16-18",
    "title": "Sale of Goods Act 1979",
    "publisher": "Parliament of the United Kingdom",
    "date": "1979-12-06",
    "official_reference": "1979 c. 54",
}


@pytest.fixture(scope="module")
def shipped() -> RuleBook:
    return load_rules()


# --- the shipped data ---------------------------------------------------------------------


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_citation_names_a_findable_source(path: Path) -> None:
    rule = load_file(path)
    assert rule.citation_problems() == [], f"{path.name}: {rule.citation_problems()}"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_no_placeholder_text_anywhere_in_a_file(path: Path) -> None:
    """The basis and unknowns may say what is not verified, but may not lean on an
    unnamed source ("the analysis referenced in the project brief")."""
    rule = load_file(path)
    texts = [rule.basis, rule.unknowns or ""]
    texts += [t for c in rule.counter_arguments for t in (c.argument, c.response)]
    texts += [t for s in rule.subdivisions for t in (s.basis, s.unknowns or "")]
    for pattern in (r"referenced in the (project )?brief", r"\bto be recorded\b",
                    r"\bTBD\b", r"\bTODO\b", r"\bplaceholder\b"):
        for text in texts:
            assert not re.search(pattern, text, re.IGNORECASE), (path.name, pattern)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_citation_dates_not_after_the_review(path: Path) -> None:
    rule = load_file(path)
    for where, citation in rule.all_citations():
        if citation.date and citation.date != "undated":
            year, _, rest = citation.date.partition("-")
            month, _, day = rest.partition("-")
            earliest = date(int(year), int(month or 1), int(day or 1))
            assert earliest <= rule.as_of, (path.name, where, citation.date)


def test_no_duplicate_citations_within_a_list(shipped: RuleBook) -> None:
    for rule in shipped.values():
        lists = [rule.citations, *(c.sources for c in rule.counter_arguments),
                 *(s.citations for s in rule.subdivisions)]
        for citations in lists:
            references = [c.reference for c in citations]
            assert len(references) == len(set(references)), rule.alpha2


def test_urls_are_https_and_not_examples(shipped: RuleBook) -> None:
    for rule in shipped.values():
        for where, citation in rule.all_citations():
            if citation.url:
                assert citation.url.startswith("https://"), (rule.alpha2, where)
                assert "example." not in citation.url, (rule.alpha2, where)


def test_undated_only_with_a_url(shipped: RuleBook) -> None:
    undated = [(r.alpha2, w) for r in shipped.values() for w, c in r.all_citations()
               if c.date == "undated"]
    assert undated, "the data has undated web pages; this test checks they have a url"
    for rule in shipped.values():
        for _, citation in rule.all_citations():
            if citation.date == "undated":
                assert citation.url


def test_the_old_placeholder_is_gone(shipped: RuleBook) -> None:
    for rule in shipped.values():
        for _, citation in rule.all_citations():
            assert "project brief" not in citation.reference
            assert "to be recorded" not in citation.reference


# --- the check refuses what it should ---------------------------------------------------------


def test_findable_citation_passes() -> None:
    assert citation_problems(Citation(**FINDABLE)) == []
    with_url = {k: v for k, v in FINDABLE.items() if k != "official_reference"}
    assert citation_problems(
        Citation(**with_url, url="https://www.legislation.gov.uk/ukpga/1979/54")) == []


def test_old_placeholder_citation_is_refused() -> None:
    problems = citation_problems(Citation(reference=OLD_PLACEHOLDER))
    text = "; ".join(problems)
    assert "placeholder" in text
    assert "no title" in text and "no publisher" in text and "no date" in text
    assert "neither a url nor an official_reference" in text


@pytest.mark.parametrize("phrase", [
    "to be recorded by counsel", "Referenced in the project brief", "TBD", "TODO: find it",
    "exact citation to be confirmed", "opinion of counsel", "placeholder", "FIXME",
    "see issue 3", "https://example.org/act",
])
def test_placeholder_phrases_are_refused(phrase: str) -> None:
    for field in ("reference", "title", "publisher", "official_reference"):
        problems = citation_problems(Citation(**(FINDABLE | {field: phrase})))
        assert any("placeholder" in p for p in problems), (field, phrase)


@pytest.mark.parametrize("missing", ["title", "publisher", "date"])
def test_each_source_field_is_required(missing: str) -> None:
    data = {k: v for k, v in FINDABLE.items() if k != missing}
    assert citation_problems(Citation(**data)) == [f"no {missing}"]


def test_url_or_official_reference_is_required() -> None:
    data = {k: v for k, v in FINDABLE.items() if k != "official_reference"}
    assert citation_problems(Citation(**data)) == [
        "neither a url nor an official_reference to find it by"]


def test_undated_needs_a_url() -> None:
    assert citation_problems(Citation(**(FINDABLE | {"date": "undated"}))) == [
        "undated, so it needs the url of the page it is on"]
    assert citation_problems(Citation(**(FINDABLE | {
        "date": "undated", "url": "https://cms.law/en/int/expert-guides"}))) == []


def test_every_pattern_is_exercised() -> None:
    """Each placeholder pattern matches at least one phrase (no dead pattern)."""
    samples = ["to be recorded", "referenced in the project brief", "project brief", "TBD",
               "TBC", "TODO", "FIXME", "XXX", "placeholder", "counsel", "lorem ipsum",
               "unknown source", "see issue 3", "example.org"]
    for pattern in PLACEHOLDER_PATTERNS:
        assert any(re.search(pattern, s, re.IGNORECASE) for s in samples), pattern


def test_a_rules_file_with_the_old_placeholder_is_refused(tmp_path: Path) -> None:
    """The loader still reads it (the schema stays lenient), but the citation check names
    the file's problem, so the shipped-data test above would fail on it."""
    path = tmp_path / "XA.toml"
    path.write_text(
        'alpha2 = "XA"\nnumeric = 900\nname = "Testland"\ntitle_recognition = "not_recognised"\n'
        'holder_policy = "accredited_only"\nbasis = "Test."\nas_of = 2026-12-03\n'
        'reviewed_by = "tests"\n\n[[citations]]\n'
        f'reference = "{OLD_PLACEHOLDER}"\n', encoding="utf-8")
    problems = load_file(path).citation_problems()
    assert problems and all(p.startswith("citations.0: ") for p in problems)


def test_problems_name_where_the_citation_sits() -> None:
    bare = {"reference": "Bare Act"}
    rule = JurisdictionRules.model_validate(rule_data(
        "XA", 900, title_recognition="not_recognised", citations=[FINDABLE],
        counter_arguments=[{"argument": "A", "response": "R", "sources": [bare]}],
        subdivisions=[{"code": "XA-1", "name": "Region", "title_recognition": "not_recognised",
                       "holder_policy": "blocked", "basis": "B", "sanctioned": True,
                       "citations": [bare]}],
    ))
    wheres = {p.split(": ")[0] for p in rule.citation_problems()}
    assert wheres == {"counter_arguments.0.sources.0", "subdivisions.0(XA-1).citations.0"}


# --- the citation fields themselves -----------------------------------------------------------


@pytest.mark.parametrize("value", ["2025-05-22", "2025-05", "2025", "1804-03-21", "undated",
                                   date(2025, 5, 22)])
def test_source_date_forms(value: object) -> None:
    citation = Citation(reference="Act", date=value)
    assert citation.date == (value.isoformat() if isinstance(value, date) else value)


@pytest.mark.parametrize("value", ["2025-02-30", "2025-13", "25-05-22", "May 2025", "",
                                   "n.d.", "2025/05/22"])
def test_bad_source_dates_refused(value: str) -> None:
    with pytest.raises(ValidationError):
        Citation(reference="Act", date=value)


def test_toml_date_literal_is_accepted(tmp_path: Path) -> None:
    data = tomllib.loads('reference = "Act"\ndate = 2025-05-22\n')
    assert Citation.model_validate(data).date == "2025-05-22"


def test_citation_str_shows_the_source() -> None:
    citation = Citation(**FINDABLE, url="https://www.legislation.gov.uk/ukpga/1979/54")
    assert str(citation) == ("Sale of Goods Act 1979 ss. 16-18 (1979-12-06; 1979 c. 54) "
                             "<https://www.legislation.gov.uk/ukpga/1979/54>")
    assert str(Citation(reference="Act", date="2025")) == "Act (2025)"
    assert str(Citation(reference="Act")) == "Act"
