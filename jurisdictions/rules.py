"""The legal rules as data: one TOML file per jurisdiction under `jurisdictions/rules/`.

Each file is named after the ISO 3166-1 alpha-2 code (`DE.toml`) and holds the numeric
code inside. It says, for assets located there, whether the law recognises title carried
by a token (`title_recognition`), and, for investors resident there, who may hold shares
(`holder_policy`), with the legal basis, citations, an as-of date and who reviewed it.

`unclear` means no source establishing recognition was found; the file must then say what
is unknown (`unknowns`). It is treated as not recognised unless an SPV operator records an
override backed by a legal opinion (`[[title_overrides]]`, the opinion's SHA-256), which
is also recorded on-chain.
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
from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from jurisdictions.codes import HolderPolicyCode, TitleStatus

RULES_DIR = Path(__file__).resolve().parent / "rules"

Alpha2 = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
Sha256Hex = Annotated[str, StringConstraints(pattern=r"^0x[0-9a-f]{64}$")]
Lei = Annotated[str, StringConstraints(pattern=r"^[0-9A-Z]{18}[0-9]{2}$")]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class TitleRecognition(StrEnum):
    """Whether a token can carry title to a movable asset located in the jurisdiction."""

    RECOGNISED = "recognised"
    NOT_RECOGNISED = "not_recognised"
    UNCLEAR = "unclear"

    @property
    def code(self) -> TitleStatus:
        return TitleStatus[self.name]


class HolderPolicy(StrEnum):
    """Who among the investors resident in the jurisdiction may hold shares."""

    ALLOWED = "allowed"
    ACCREDITED_ONLY = "accredited_only"
    BLOCKED = "blocked"

    @property
    def code(self) -> HolderPolicyCode:
        return HolderPolicyCode[self.name]


class Citation(BaseModel):
    """A statute, regulation, judgment or publication the rule relies on."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reference: Text
    url: Annotated[str, StringConstraints(pattern=r"^https://\S+$")] | None = None

    def __str__(self) -> str:
        return f"{self.reference} <{self.url}>" if self.url else self.reference


class TitleOverride(BaseModel):
    """An SPV's override of an `unclear` title status, backed by a legal opinion."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    spv_lei: Lei
    legal_opinion_sha256: Sha256Hex
    opinion_reference: Text
    recorded_by: Text
    as_of: date


class JurisdictionRules(BaseModel):
    """The rules of one jurisdiction, as reviewed on `as_of`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    alpha2: Alpha2
    numeric: Annotated[int, Field(ge=1, le=999)]
    name: Text
    title_recognition: TitleRecognition
    holder_policy: HolderPolicy
    basis: Text
    unknowns: Text | None = None
    sanctioned: bool = False
    citations: tuple[Citation, ...] = ()
    as_of: date
    reviewed_by: Text
    title_overrides: tuple[TitleOverride, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> JurisdictionRules:
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
        return self

    @property
    def title_code(self) -> TitleStatus:
        """The title status the registry holds: a sanctioned jurisdiction compiles to
        SANCTIONED (never recognised, no override accepted) whatever its
        `title_recognition` says."""
        return TitleStatus.SANCTIONED if self.sanctioned else self.title_recognition.code

    def override_for(self, spv_lei: str) -> TitleOverride | None:
        """The SPV's recorded override of an unclear status, if any."""
        for override in self.title_overrides:
            if override.spv_lei == spv_lei:
                return override
        return None

    def rules_hash(self) -> bytes:
        """SHA-256 of the canonical JSON of this rule (what the registry stores on-chain).

        SPVs' `title_overrides` are left out: each is recorded on-chain by itself (keyed
        by the SPV's token), so recording one never changes the jurisdiction's row."""
        canonical = json.dumps(
            self.model_dump(mode="json", exclude={"title_overrides"}),
            sort_keys=True, separators=(",", ":"), ensure_ascii=False,
        )
        return hashlib.sha256(canonical.encode()).digest()


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
