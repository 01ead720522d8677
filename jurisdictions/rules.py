"""The legal rules as data: one TOML file per jurisdiction under `jurisdictions/rules/`.

Each file is named after the ISO 3166-1 alpha-2 code (`DE.toml`) and holds the numeric
code inside. It says, for assets located there, whether the law recognises title carried
by a token (`title_recognition`), and, for investors resident there, who may hold shares
(`holder_policy`), with the legal basis, citations, an as-of date and who reviewed it.

`unclear` means no source establishing recognition was found; the file must then say what
is unknown (`unknowns`). It is treated as not recognised unless an SPV operator records an
override backed by a legal opinion (`[[title_overrides]]`, the opinion's SHA-256), which
is also recorded on-chain.

Every citation names a findable source: what it is (`title`), who issued or published it
(`publisher`), when (`date`) and where to find it (`url` or `official_reference`), next to
the sentence saying what it is cited for (`reference`). `citation_problems` lists what a
citation lacks, and the tests refuse shipped data with any problem. A verdict a reviewer
disputes records the other side in `[[counter_arguments]]`, each with its sources.

A jurisdiction may list sub-national areas (`[[subdivisions]]`, ISO 3166-2 codes such as
`UA-43`) with rules of their own, for embargoes that cover a region and not the whole
country. A subdivision only ever tightens its country's rule: its holder policy and title
status are never more permissive than the country's, and a sanctioned country's
subdivisions are sanctioned too. For an investor resident, or a GPU located, in a listed
subdivision, the subdivision's rule is the one that applies (`JurisdictionRules.subdivision`,
`RuleBook.subdivision`); elsewhere in the country, the country's rule.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from collections.abc import Iterator, Mapping
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StringConstraints,
    ValidationError,
    model_serializer,
    model_validator,
)

from jurisdictions.codes import HolderPolicyCode, TitleStatus

RULES_DIR = Path(__file__).resolve().parent / "rules"

Alpha2 = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
# ISO 3166-2: the country's alpha-2 code, a hyphen, then one to three letters or digits.
SUBDIVISION_PATTERN = r"^[A-Z]{2}-[A-Z0-9]{1,3}$"
SubdivisionCode = Annotated[str, StringConstraints(pattern=SUBDIVISION_PATTERN)]


def encode_subdivision(code: str) -> int:
    """The registry's encoding of an ISO 3166-2 code (`uint24`): the part after the
    hyphen in ASCII, right-aligned (`UA-43` -> 0x3433, `GB-ENG` -> 0x454e47). The country
    travels separately as its ISO 3166-1 numeric code."""
    text = code.strip().upper()
    if not re.fullmatch(SUBDIVISION_PATTERN, text):
        raise RulesError(f"{code!r} is not an ISO 3166-2 subdivision code (e.g. 'UA-43')")
    return int.from_bytes(text[3:].encode("ascii"), "big")


def decode_subdivision(alpha2: str, value: int) -> str | None:
    """The ISO 3166-2 code of a registry subdivision (`"UA", 0x3433` -> `UA-43`), or
    None for 0 (no region recorded)."""
    if value == 0:
        return None
    suffix = int(value).to_bytes(3, "big").lstrip(b"\0").decode("ascii")
    code = f"{alpha2}-{suffix}"
    if not re.fullmatch(SUBDIVISION_PATTERN, code):
        raise RulesError(f"{value:#x} does not encode an ISO 3166-2 subdivision of {alpha2}")
    return code
Sha256Hex = Annotated[str, StringConstraints(pattern=r"^0x[0-9a-f]{64}$")]
Lei = Annotated[str, StringConstraints(pattern=r"^[0-9A-Z]{18}[0-9]{2}$")]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
HttpsUrl = Annotated[str, StringConstraints(pattern=r"^https://\S+$")]


# A web page that carries no date of its own: allowed only with its `url`, so that the
# page can still be found (`citation_problems`).
UNDATED = "undated"

def _date_as_text(value: Any) -> Any:
    """A TOML date (`2025-05-22`) as its ISO text; anything else unchanged."""
    return value.isoformat() if isinstance(value, date) else value


def _calendar_date(value: str) -> str:
    if value == UNDATED:
        return value
    year, _, rest = value.partition("-")
    month, _, day = rest.partition("-")
    date(int(year), int(month or 1), int(day or 1))  # refuses 2025-02-30
    return value


# The date of a source, as precise as the source gives it: `2025-05-22`, `2025-05` or
# `2025` (a TOML date literal is accepted too and kept as its ISO text), or `undated`.
SourceDate = Annotated[
    str,
    BeforeValidator(_date_as_text),
    StringConstraints(
        pattern=r"^([12][0-9]{3}(-(0[1-9]|1[0-2])(-(0[1-9]|[12][0-9]|3[01]))?)?|undated)$"
    ),
    AfterValidator(_calendar_date),
]


class TitleRecognition(StrEnum):
    """Whether a token can carry title to a movable asset located in the jurisdiction."""

    RECOGNISED = "recognised"
    NOT_RECOGNISED = "not_recognised"
    UNCLEAR = "unclear"

    @property
    def code(self) -> TitleStatus:
        return TitleStatus[self.name]

    @property
    def strictness(self) -> int:
        """0 for the most permissive status; a subdivision may not go below its country."""
        return _TITLE_STRICTNESS[self]


class HolderPolicy(StrEnum):
    """Who among the investors resident in the jurisdiction may hold shares."""

    ALLOWED = "allowed"
    ACCREDITED_ONLY = "accredited_only"
    BLOCKED = "blocked"

    @property
    def code(self) -> HolderPolicyCode:
        return HolderPolicyCode[self.name]

    @property
    def strictness(self) -> int:
        """0 for the most permissive policy; a subdivision may not go below its country."""
        return _POLICY_STRICTNESS[self]


_TITLE_STRICTNESS = {
    TitleRecognition.RECOGNISED: 0, TitleRecognition.UNCLEAR: 1,
    TitleRecognition.NOT_RECOGNISED: 2,
}
_POLICY_STRICTNESS = {
    HolderPolicy.ALLOWED: 0, HolderPolicy.ACCREDITED_ONLY: 1, HolderPolicy.BLOCKED: 2,
}


def _drop(data: dict[str, Any], keys: tuple[str, ...], *, empty: bool = False) -> dict[str, Any]:
    """`data` without those of `keys` whose value is None (or, with `empty`, falsy)."""
    for key in keys:
        if key in data and (not data[key] if empty else data[key] is None):
            del data[key]
    return data


class Citation(BaseModel):
    """A statute, regulation, judgment or publication the rule relies on.

    `reference` says what is cited and for what (the sentence a wallet shows). The other
    fields make the source findable: its `title`, its `publisher` (the legislature,
    authority, court, journal or author that issued it), its `date`, and a `url` (only an
    address known to be right) or an `official_reference` (an EUR-Lex CELEX number or
    ELI, an SI number, a Federal Register or CFR citation, a gazette number, a statute
    section with its official consolidated-law site). All but `reference` are optional in
    the schema so that the engine's and the tests' in-memory rules stay short; the shipped
    data must have them (`citation_problems`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Added after the first rules were hashed: left out of the canonical JSON while unset,
    # so a citation without them hashes as before.
    _SOURCE_FIELDS: ClassVar[tuple[str, ...]] = (
        "title", "publisher", "date", "official_reference",
    )

    reference: Text
    url: HttpsUrl | None = None
    title: Text | None = None
    publisher: Text | None = None
    date: SourceDate | None = None
    official_reference: Text | None = None

    @model_serializer(mode="wrap")
    def _serialize(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return _drop(handler(self), self._SOURCE_FIELDS)

    def __str__(self) -> str:
        """The line a refusal shows: the reference, then its date and official reference
        and its URL where known (the title and publisher stay in the data)."""
        source = "; ".join(p for p in (self.date, self.official_reference) if p)
        text = f"{self.reference} ({source})" if source else self.reference
        return f"{text} <{self.url}>" if self.url else text


# Phrases that mark a citation as a placeholder rather than a source. Matched
# case-insensitively against every text field of a citation.
PLACEHOLDER_PATTERNS: tuple[str, ...] = (
    r"\bto be (recorded|confirmed|added|determined|supplied|checked)\b",
    r"\breferenced in the (project )?brief\b",
    r"\bproject brief\b",
    r"\bTBD\b",
    r"\bTBC\b",
    r"\bTODO\b",
    r"\bFIXME\b",
    r"\bXXX\b",
    r"\bplaceholder\b",
    r"\bcounsel\b",
    r"\blorem ipsum\b",
    r"\bunknown (source|publication)\b",
    r"\bsee (the )?issue\b",
    r"\bexample\.(org|com)\b",
)


def citation_problems(citation: Citation) -> list[str]:
    """What keeps `citation` from naming a findable source (empty when nothing does):
    a placeholder phrase, or a missing title, publisher, date, or URL / official
    reference (an `undated` source needs its URL)."""
    problems = []
    for name in ("reference", "title", "publisher", "official_reference", "url"):
        value = getattr(citation, name)
        for pattern in PLACEHOLDER_PATTERNS:
            if value and re.search(pattern, value, re.IGNORECASE):
                problems.append(f"{name} is a placeholder ({value!r} matches {pattern!r})")
    for name in ("title", "publisher", "date"):
        if not getattr(citation, name):
            problems.append(f"no {name}")
    if not citation.url and not citation.official_reference:
        problems.append("neither a url nor an official_reference to find it by")
    if citation.date == UNDATED and not citation.url:
        problems.append("undated, so it needs the url of the page it is on")
    return problems


class CounterArgument(BaseModel):
    """An argument against the rule's verdict, why the verdict stands (or what would
    change it), and the sources the argument rests on."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    argument: Text
    response: Text
    sources: Annotated[tuple[Citation, ...], Field(min_length=1)]


class TitleOverride(BaseModel):
    """An SPV's override of an `unclear` title status, backed by a legal opinion."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    spv_lei: Lei
    legal_opinion_sha256: Sha256Hex
    opinion_reference: Text
    recorded_by: Text
    as_of: date


class _Rule(BaseModel):
    """What a country and a subdivision of it both state: title status, holder policy,
    sanctions, the basis and its sources."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Fields added after the first rules were hashed: left out of the canonical JSON while
    # empty, so a rule that does not use them hashes as before.
    _OMIT_WHEN_EMPTY: ClassVar[tuple[str, ...]] = ("counter_arguments",)

    title_recognition: TitleRecognition
    holder_policy: HolderPolicy
    basis: Text
    unknowns: Text | None = None
    sanctioned: bool = False
    citations: tuple[Citation, ...] = ()
    counter_arguments: tuple[CounterArgument, ...] = ()

    @model_serializer(mode="wrap")
    def _serialize(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return _drop(handler(self), self._OMIT_WHEN_EMPTY, empty=True)

    @model_validator(mode="after")
    def _consistent(self) -> _Rule:
        if self.title_recognition is TitleRecognition.UNCLEAR and not self.unknowns:
            raise ValueError("title_recognition is 'unclear': say what is unknown in `unknowns`")
        if self.title_recognition is not TitleRecognition.UNCLEAR and not self.citations:
            raise ValueError(
                f"title_recognition is '{self.title_recognition}': cite the source in "
                "[[citations]] (or say 'unclear')"
            )
        if self.sanctioned and self.holder_policy is not HolderPolicy.BLOCKED:
            raise ValueError("a sanctioned jurisdiction must have holder_policy = 'blocked'")
        if self.sanctioned and not self.citations:
            raise ValueError("sanctioned = true: cite the sanctions instrument in [[citations]]")
        return self

    @property
    def title_code(self) -> TitleStatus:
        """The title status the registry holds: a sanctioned jurisdiction compiles to
        SANCTIONED (never recognised, no override accepted) whatever its
        `title_recognition` says."""
        return TitleStatus.SANCTIONED if self.sanctioned else self.title_recognition.code

    def all_citations(self) -> Iterator[tuple[str, Citation]]:
        """Every citation of the rule with where it sits (`citations.0`,
        `counter_arguments.1.sources.0`, ...)."""
        for n, citation in enumerate(self.citations):
            yield f"citations.{n}", citation
        for n, counter in enumerate(self.counter_arguments):
            for m, citation in enumerate(counter.sources):
                yield f"counter_arguments.{n}.sources.{m}", citation

    def citation_problems(self) -> list[str]:
        """`citation_problems` of every citation, each prefixed with where it sits."""
        return [f"{where}: {problem}" for where, citation in self.all_citations()
                for problem in citation_problems(citation)]

    def _canonical_json(self, exclude: set[str] | None = None) -> bytes:
        return json.dumps(
            self.model_dump(mode="json", exclude=exclude),
            sort_keys=True, separators=(",", ":"), ensure_ascii=False,
        ).encode()


class SubdivisionRules(_Rule):
    """The rules of one ISO 3166-2 subdivision (a region under an embargo its country is
    not under, for example), listed in its country's file."""

    code: SubdivisionCode
    name: Text

    @property
    def alpha2(self) -> str:
        """The country's ISO 3166-1 alpha-2 code (`UA` for `UA-43`)."""
        return self.code[:2]

    @property
    def encoded(self) -> int:
        """The registry's `uint24` for this subdivision (`encode_subdivision`)."""
        return encode_subdivision(self.code)

    def rules_hash(self) -> bytes:
        """SHA-256 of the canonical JSON of this subdivision's rule, for a registry that
        records subdivisions in rows of their own (the country's `rules_hash` covers it
        too)."""
        return hashlib.sha256(self._canonical_json()).digest()


class JurisdictionRules(_Rule):
    """The rules of one jurisdiction, as reviewed on `as_of`."""

    _OMIT_WHEN_EMPTY: ClassVar[tuple[str, ...]] = ("counter_arguments", "subdivisions")

    alpha2: Alpha2
    numeric: Annotated[int, Field(ge=1, le=999)]
    name: Text
    as_of: date
    reviewed_by: Text
    subdivisions: tuple[SubdivisionRules, ...] = ()
    title_overrides: tuple[TitleOverride, ...] = ()

    @model_validator(mode="after")
    def _overrides_and_subdivisions(self) -> JurisdictionRules:
        if self.sanctioned and self.title_overrides:
            raise ValueError("sanctioned = true: no legal opinion lifts sanctions; remove the "
                             "title_overrides")
        if self.title_overrides and self.title_recognition is not TitleRecognition.UNCLEAR:
            raise ValueError(
                "title_overrides apply only to 'unclear' jurisdictions; "
                f"this one is '{self.title_recognition}'"
            )
        leis = [o.spv_lei for o in self.title_overrides]
        if len(set(leis)) != len(leis):
            raise ValueError("title_overrides: one override per SPV LEI")
        codes = [s.code for s in self.subdivisions]
        if len(set(codes)) != len(codes):
            raise ValueError("subdivisions: each ISO 3166-2 code at most once")
        for sub in self.subdivisions:
            if sub.alpha2 != self.alpha2:
                raise ValueError(f"subdivisions: {sub.code} is not a subdivision of "
                                 f"{self.alpha2} (its code must start with '{self.alpha2}-')")
            if self.sanctioned and not sub.sanctioned:
                raise ValueError(f"subdivisions: {sub.code} must be sanctioned: its country "
                                 "is, and a subdivision never lifts its country's sanctions")
            if sub.holder_policy.strictness < self.holder_policy.strictness:
                raise ValueError(
                    f"subdivisions: {sub.code} has holder_policy '{sub.holder_policy}', more "
                    f"permissive than its country's '{self.holder_policy}'; a subdivision "
                    "only tightens its country's rule")
            if sub.title_recognition.strictness < self.title_recognition.strictness:
                raise ValueError(
                    f"subdivisions: {sub.code} has title_recognition "
                    f"'{sub.title_recognition}', more permissive than its country's "
                    f"'{self.title_recognition}'; a subdivision only tightens its country's "
                    "rule")
        return self

    def override_for(self, spv_lei: str) -> TitleOverride | None:
        """The SPV's recorded override of an unclear status, if any."""
        for override in self.title_overrides:
            if override.spv_lei == spv_lei:
                return override
        return None

    def subdivision(self, code: str) -> SubdivisionRules | None:
        """The rules of the subdivision `code` (ISO 3166-2, e.g. `UA-43`) if this file
        lists it, else None (the country's own rule applies there). A code that is not
        ISO 3166-2 or belongs to another country is a RulesError, not None: a caller
        asking Ukraine about `RU-MOW` has a bug."""
        code = code.strip().upper()
        if not re.fullmatch(SUBDIVISION_PATTERN, code):
            raise RulesError(f"{code!r} is not an ISO 3166-2 subdivision code (e.g. 'UA-43')")
        if code[:2] != self.alpha2:
            raise RulesError(f"{code} is not a subdivision of {self.alpha2}")
        for sub in self.subdivisions:
            if sub.code == code:
                return sub
        return None

    def all_citations(self) -> Iterator[tuple[str, Citation]]:
        yield from super().all_citations()
        for n, sub in enumerate(self.subdivisions):
            for where, citation in sub.all_citations():
                yield f"subdivisions.{n}({sub.code}).{where}", citation

    def rules_hash(self) -> bytes:
        """SHA-256 of the canonical JSON of this rule (what the registry stores on-chain).

        SPVs' `title_overrides` are left out: each is recorded on-chain by itself (keyed
        by the SPV's token), so recording one never changes the jurisdiction's row. The
        subdivisions are in it: changing a region's rule changes its country's row.
        Fields added later (citations' source fields, `counter_arguments`,
        `subdivisions`) are left out while unset, so a rule that does not use them hashes
        as it did before they existed."""
        return hashlib.sha256(self._canonical_json(exclude={"title_overrides"})).digest()


class RulesError(ValueError):
    """A rules file is missing, unreadable or invalid; the message names the file."""


class RuleBook(Mapping[int, JurisdictionRules]):
    """All jurisdictions' rules, keyed by ISO 3166-1 numeric code."""

    def __init__(self, rules: list[JurisdictionRules] | tuple[JurisdictionRules, ...]) -> None:
        by_numeric: dict[int, JurisdictionRules] = {}
        by_alpha2: dict[str, JurisdictionRules] = {}
        for rule in rules:
            if rule.numeric in by_numeric:
                raise RulesError(
                    f"{by_numeric[rule.numeric].alpha2}.toml and {rule.alpha2}.toml both use "
                    f"numeric code {rule.numeric}"
                )
            if rule.alpha2 in by_alpha2:
                raise RulesError(f"two rules for {rule.alpha2}")
            by_numeric[rule.numeric] = rule
            by_alpha2[rule.alpha2] = rule
        self._by_numeric = dict(sorted(by_numeric.items()))
        self._by_alpha2 = by_alpha2

    def __getitem__(self, numeric: int) -> JurisdictionRules:
        return self._by_numeric[numeric]

    def __iter__(self) -> Iterator[int]:
        return iter(self._by_numeric)

    def __len__(self) -> int:
        return len(self._by_numeric)

    def by_alpha2(self, alpha2: str) -> JurisdictionRules:
        """The rules of `alpha2` (e.g. `DE`), or a RulesError listing the known codes."""
        try:
            return self._by_alpha2[alpha2.upper()]
        except KeyError:
            known = ", ".join(sorted(self._by_alpha2))
            raise RulesError(f"no rules for {alpha2!r}; known jurisdictions: {known}") from None

    def resolve(self, jurisdiction: str | int) -> JurisdictionRules:
        """Rules by alpha-2 code (`"DE"`) or numeric code (`276` or `"276"`)."""
        if isinstance(jurisdiction, int) or str(jurisdiction).isdigit():
            numeric = int(jurisdiction)
            if numeric not in self._by_numeric:
                known = ", ".join(f"{r.alpha2}={n}" for n, r in self._by_numeric.items())
                raise RulesError(
                    f"no rules for ISO 3166-1 numeric code {numeric}; known jurisdictions: {known}"
                )
            return self._by_numeric[numeric]
        return self.by_alpha2(str(jurisdiction))

    def subdivision(self, code: str) -> SubdivisionRules | None:
        """The rules of the ISO 3166-2 subdivision `code` (e.g. `UA-43`) if its country's
        file lists it; None if the country is listed but the subdivision is not (the
        country's rule applies there). A RulesError if the code is malformed or its
        country is not listed at all (then nothing applies: unlisted means blocked)."""
        code = code.strip().upper()
        if not re.fullmatch(SUBDIVISION_PATTERN, code):
            raise RulesError(f"{code!r} is not an ISO 3166-2 subdivision code (e.g. 'UA-43')")
        return self.by_alpha2(code[:2]).subdivision(code)


def load_file(path: Path) -> JurisdictionRules:
    """Load and validate one rules file; errors name the file and the field."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise RulesError(f"{path}: cannot read rules: {exc}") from exc
    try:
        rule = JurisdictionRules.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(file)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise RulesError(f"{path}: invalid rules: {problems}") from exc
    if path.stem != rule.alpha2:
        raise RulesError(f"{path}: file name must be the alpha-2 code {rule.alpha2}.toml")
    return rule


class OverrideEntry(TitleOverride):
    """A title override kept outside the rules folder (an SPV's own file): the override
    plus the jurisdiction it applies to."""

    jurisdiction: Annotated[str, StringConstraints(pattern=r"^([A-Z]{2}|[0-9]{1,3})$")]


def with_overrides(rules: RuleBook, path: Path) -> RuleBook:
    """`rules` plus the `[[title_overrides]]` of the file at `path` (each names its
    `jurisdiction`): an SPV records its legal opinion in its own file instead of editing
    the shipped rules data. Each override is validated as if it were in the jurisdiction's
    own file (only an `unclear` status takes one, one per SPV LEI)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise RulesError(f"{path}: cannot read overrides: {exc}") from exc
    entries = data.get("title_overrides")
    if set(data) != {"title_overrides"} or not isinstance(entries, list) or not entries:
        raise RulesError(f"{path}: expected only [[title_overrides]] tables, each with a "
                         "`jurisdiction` (alpha-2 or numeric) and the override's fields")
    added: dict[int, list[TitleOverride]] = {}
    for n, raw in enumerate(entries, start=1):
        try:
            entry = OverrideEntry.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
                                 for err in exc.errors())
            raise RulesError(f"{path}: override {n}: {problems}") from exc
        try:
            rule = rules.resolve(entry.jurisdiction)
        except RulesError as exc:
            raise RulesError(f"{path}: override {n}: {exc}") from exc
        added.setdefault(rule.numeric, []).append(
            TitleOverride.model_validate(entry.model_dump(exclude={"jurisdiction"})))
    merged = []
    for numeric, rule in rules.items():
        extra = added.get(numeric)
        if not extra:
            merged.append(rule)
            continue
        try:
            merged.append(JurisdictionRules.model_validate(
                rule.model_dump() | {"title_overrides": [*rule.title_overrides, *extra]}))
        except ValidationError as exc:
            problems = "; ".join(err["msg"] for err in exc.errors())
            raise RulesError(f"{path}: an override for {rule.alpha2}: {problems}") from exc
    return RuleBook(merged)


def load_rules(directory: Path = RULES_DIR) -> RuleBook:
    """Load every `XX.toml` in `directory` into a RuleBook."""
    if not directory.is_dir():
        raise RulesError(f"rules directory {directory} does not exist")
    files = sorted(p for p in directory.glob("*.toml") if re.fullmatch(r"[A-Z]{2}", p.stem))
    stray = sorted(p.name for p in directory.glob("*.toml") if p not in files)
    if stray:
        raise RulesError(f"{directory}: rules files must be named XX.toml (alpha-2): {stray}")
    if not files:
        raise RulesError(f"{directory} holds no XX.toml rules files")
    return RuleBook([load_file(p) for p in files])
