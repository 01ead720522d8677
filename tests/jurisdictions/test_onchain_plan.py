"""`jurisdictions.onchain`: compiling the rules and planning registry updates."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jurisdictions.codes import HolderPolicyCode, TitleStatus
from jurisdictions.onchain import (
    BATCH,
    ZERO32,
    ChangeKind,
    JurisdictionSetting,
    Plan,
    compile_overrides,
    compile_rules,
    describe,
    plan,
    tokens_by_lei,
)
from jurisdictions.rules import HolderPolicy, JurisdictionRules, RuleBook, load_rules
from tests.jurisdictions.helpers import LEI_A, LEI_B, SHA_A, SHA_B, book, make_rule, override

TOKEN_A = "0x" + "aa" * 20


class FakeRegistry:
    """The registry's jurisdiction table and title overrides, as the contract keeps them."""

    MAX_BATCH = 64

    def __init__(self) -> None:
        self.rows: dict[int, tuple[int, int, bytes]] = {}
        self.listed: list[int] = []
        self.overrides: dict[tuple[str, int], bytes] = {}
        # The contract's title epoch per code (bumped when the title status changes) and
        # the epoch + 1 each override was recorded under.
        self.epochs: dict[int, int] = {}
        self.override_epochs: dict[tuple[str, int], int] = {}
        self.batch_sizes: list[int] = []
        # The subdivision table, keyed like the contract's list (code << 24 | subdivision).
        self.subdivision_rows: dict[int, tuple[int, int, bytes]] = {}

    # views
    def jurisdiction(self, code: int) -> tuple[int, int, bytes]:
        return self.rows.get(code, (0, 0, ZERO32))

    def listed_jurisdictions(self) -> list[int]:
        return list(self.listed)  # unordered, like the contract's swap-and-pop list

    def subdivision(self, code: int, subdivision: int) -> tuple[int, int, bytes]:
        return self.subdivision_rows.get(code << 24 | subdivision, (0, 0, ZERO32))

    def listed_subdivisions(self) -> list[int]:
        return list(self.subdivision_rows)

    def title_override(self, token: str, code: int) -> bytes:
        return self.overrides.get((token, code), ZERO32)

    def title_override_in_force(self, token: str, code: int) -> bool:
        return (
            self.jurisdiction(code)[0] == TitleStatus.UNCLEAR
            and self.override_epochs.get((token, code), 0) == self.epochs.get(code, 0) + 1
        )

    # writes (with the contract's checks)
    def set_jurisdictions(self, batch: list[tuple[int, int, int, bytes]]) -> None:
        assert 0 < len(batch) <= self.MAX_BATCH
        self.batch_sizes.append(len(batch))
        for code, title, policy, rules_hash in batch:
            assert 1 <= code <= 999
            assert title <= TitleStatus.SANCTIONED and policy <= HolderPolicyCode.BLOCKED
            assert (title == 0) == (policy == 0)
            assert (title == 0) == (rules_hash == ZERO32)
            assert isinstance(rules_hash, bytes) and len(rules_hash) == 32
            assert code in self.rows or title != 0, "nothing to remove"
            assert title != 0 or not any(k >> 24 == code for k in self.subdivision_rows), (
                "remove its subdivisions first")
            if self.jurisdiction(code)[0] != title:
                self.epochs[code] = self.epochs.get(code, 0) + 1
            if title == 0:
                if code in self.rows:
                    del self.rows[code]
                    position = self.listed.index(code)
                    last = self.listed.pop()
                    if last != code:
                        self.listed[position] = last
            else:
                if code not in self.rows:
                    self.listed.append(code)
                self.rows[code] = (title, policy, rules_hash)

    def set_subdivisions(self, batch: list[tuple[int, int, int, int, bytes]]) -> None:
        assert 0 < len(batch) <= self.MAX_BATCH
        for code, subdivision, title, policy, rules_hash in batch:
            assert 0 < subdivision < 2**24
            assert (title == 0) == (policy == 0) == (rules_hash == ZERO32)
            key = code << 24 | subdivision
            if title == 0:
                del self.subdivision_rows[key]  # KeyError: nothing to remove
            else:
                assert key in self.subdivision_rows or code in self.rows, "list the country first"
                self.subdivision_rows[key] = (title, policy, rules_hash)

    def set_title_override(self, token: str, code: int, opinion_hash: bytes) -> None:
        epoch = 0
        if opinion_hash != ZERO32:
            assert self.rows.get(code, (0,))[0] == TitleStatus.UNCLEAR
            epoch = self.epochs.get(code, 0) + 1
        assert (
            self.title_override(token, code) != opinion_hash
            or self.override_epochs.get((token, code), 0) != epoch
        ), "title override unchanged"
        self.overrides[(token, code)] = opinion_hash
        self.override_epochs[(token, code)] = epoch

    def apply(self, p: Plan) -> None:
        for name, batch in p.table_calls():
            getattr(self, name)(batch)
        for change in p.overrides:
            if change.token is not None:
                self.set_title_override(
                    change.token, change.setting.jurisdiction, change.setting.legal_opinion_hash
                )


@pytest.fixture(scope="module")
def shipped() -> RuleBook:
    return load_rules()


def replace(rules: RuleBook, rule: JurisdictionRules) -> RuleBook:
    return RuleBook([rule if r.numeric == rule.numeric else r for r in rules.values()])


# --- compile --------------------------------------------------------------------------------------


def test_compile_shipped_rules(shipped: RuleBook) -> None:
    rows = compile_rules(shipped)
    assert [r.jurisdiction for r in rows] == sorted(shipped)
    for row in rows:
        rule = shipped[row.jurisdiction]
        # A sanctioned jurisdiction compiles to SANCTIONED, whatever its title text says.
        assert row.title is (TitleStatus.SANCTIONED if rule.sanctioned
                             else rule.title_recognition.code)
        assert row.policy is rule.holder_policy.code
        assert row.rules_hash == rule.rules_hash()
        assert row.title is not TitleStatus.UNLISTED and row.policy is not HolderPolicyCode.UNLISTED
    de = next(r for r in rows if r.jurisdiction == 276)
    assert de.as_tuple() == (276, 2, 2, shipped[276].rules_hash())
    kp = next(r for r in rows if r.jurisdiction == 408)
    assert (kp.title, kp.policy) == (TitleStatus.SANCTIONED, HolderPolicyCode.BLOCKED)
    overrides = compile_overrides(shipped)
    assert len(overrides) == sum(len(r.title_overrides) for r in shipped.values())


def test_compile_overrides() -> None:
    rules = book(
        make_rule("XA", 900, title_recognition="unclear",
                  title_overrides=[override(LEI_A, SHA_A), override(LEI_B, SHA_B)]),
        make_rule("XB", 901),
    )
    settings = compile_overrides(rules)
    assert [(s.spv_lei, s.jurisdiction, s.legal_opinion_hash) for s in settings] == [
        (LEI_A, 900, bytes.fromhex(SHA_A[2:])),
        (LEI_B, 900, bytes.fromhex(SHA_B[2:])),
    ]


# --- plan -----------------------------------------------------------------------------------------


def test_plan_apply_plan_is_empty(shipped: RuleBook) -> None:
    registry = FakeRegistry()
    first = plan(shipped, registry)
    assert len(first.rows) == len(shipped)
    assert all(c.kind is ChangeKind.ADD and c.before is None for c in first.rows)
    assert "DE (276)" in {c.label for c in first.rows}
    registry.apply(first)
    assert registry.rows == {s.jurisdiction: s.as_tuple()[1:] for s in compile_rules(shipped)}
    second = plan(shipped, registry)
    assert second.empty and second.rows == () and second.overrides == ()
    assert second.row_batches() == []
    lines = list(describe(second, len(shipped)))
    assert len(lines) == 1
    assert "nothing to change" in lines[0] and f"({len(shipped)} jurisdictions)" in lines[0]


def test_describe_non_empty_plan(shipped: RuleBook) -> None:
    lines = list(describe(plan(shipped, FakeRegistry()), len(shipped)))
    regions = sum(len(r.subdivisions) for r in shipped.values())
    assert regions == 6  # Ukraine's embargoed regions
    assert len(lines) == len(shipped) + regions
    assert not any("nothing to change" in line for line in lines)
    assert all(line.startswith("add") for line in lines)
    assert any("DE (276)" in line and "title=not_recognised" in line for line in lines)
    assert any("UA-43" in line and "title=sanctioned policy=blocked" in line for line in lines)


def test_subdivision_rows_are_planned_in_an_order_the_registry_accepts(shipped: RuleBook) -> None:
    registry = FakeRegistry()
    first = plan(shipped, registry)
    calls = [name for name, _ in first.table_calls()]
    assert calls == ["set_jurisdictions", "set_subdivisions"]  # the country before its regions
    registry.apply(first)
    ua = shipped.by_alpha2("UA")
    assert set(registry.subdivision_rows) == {804 << 24 | s.encoded for s in ua.subdivisions}
    assert plan(shipped, registry).empty
    # A changed region is one update of its row only.
    crimea = ua.subdivision("UA-43")
    edited = ua.model_copy(update={"subdivisions": tuple(
        s.model_copy(update={"basis": "Edited."}) if s is crimea else s
        for s in ua.subdivisions)})
    changed = replace(shipped, edited)
    p = plan(changed, registry)
    assert [c.label for c in p.subdivision_rows] == ["UA-43"]
    assert [c.kind for c in p.subdivision_rows] == [ChangeKind.UPDATE]
    assert [c.label for c in p.rows] == ["UA (804)"]  # the country's hash covers its regions
    registry.apply(p)
    assert plan(changed, registry).empty
    # Dropping Ukraine removes its regions first, then the country.
    without = RuleBook([r for r in shipped.values() if r.alpha2 != "UA"])
    p = plan(without, registry)
    assert [name for name, _ in p.table_calls()] == ["set_subdivisions", "set_jurisdictions"]
    assert {c.kind for c in p.subdivision_rows} == {ChangeKind.REMOVE}
    registry.apply(p)
    assert not registry.subdivision_rows and 804 not in registry.rows
    assert plan(without, registry).empty


def test_one_changed_rule_is_one_update(shipped: RuleBook) -> None:
    registry = FakeRegistry()
    registry.apply(plan(shipped, registry))
    de = shipped.by_alpha2("DE")
    assert de.holder_policy is not HolderPolicy.ALLOWED
    changed = replace(shipped, de.model_copy(update={"holder_policy": HolderPolicy.ALLOWED}))
    p = plan(changed, registry)
    assert len(p.rows) == 1 and not p.overrides
    (row,) = p.rows
    assert row.kind is ChangeKind.UPDATE
    assert row.label == "DE (276)"
    assert row.before is not None and row.before.policy is HolderPolicyCode.ACCREDITED_ONLY
    assert row.after.policy is HolderPolicyCode.ALLOWED
    assert row.after.rules_hash != row.before.rules_hash
    assert row.describe().startswith("update")
    registry.apply(p)
    assert plan(changed, registry).empty
    assert not plan(shipped, registry).empty


def test_text_only_change_is_an_update(shipped: RuleBook) -> None:
    registry = FakeRegistry()
    registry.apply(plan(shipped, registry))
    ch = shipped.by_alpha2("CH")
    changed = replace(shipped, ch.model_copy(update={"basis": ch.basis + " Amended."}))
    p = plan(changed, registry)
    assert [(c.kind, c.label) for c in p.rows] == [(ChangeKind.UPDATE, "CH (756)")]
    assert p.rows[0].after.title == p.rows[0].before.title


def test_row_not_in_rules_is_removed(shipped: RuleBook) -> None:
    registry = FakeRegistry()
    registry.apply(plan(shipped, registry))
    registry.set_jurisdictions([(4, 1, 1, b"\x01" * 32)])  # 4: Afghanistan, not in the rules
    p = plan(shipped, registry)
    assert len(p.rows) == 1
    (row,) = p.rows
    assert row.kind is ChangeKind.REMOVE and row.label == "4"
    assert row.after == JurisdictionSetting.removal(4)
    assert row.after.as_tuple() == (4, 0, 0, ZERO32)
    assert "remove" in row.describe() and "-> unlisted" in row.describe()
    registry.apply(p)
    assert 4 not in registry.listed and 4 not in registry.rows
    assert plan(shipped, registry).empty


def test_removed_rule_file_is_removed(shipped: RuleBook) -> None:
    registry = FakeRegistry()
    registry.apply(plan(shipped, registry))
    fewer = RuleBook([r for r in shipped.values() if r.alpha2 != "SY"])
    p = plan(fewer, registry)
    assert [(c.kind, c.label) for c in p.rows] == [(ChangeKind.REMOVE, "760")]
    registry.apply(p)
    assert sorted(registry.listed) == sorted(fewer)


def test_override_with_known_token() -> None:
    rules = book(
        make_rule("XA", 900, title_recognition="unclear", title_overrides=[override(LEI_A)]),
        make_rule("XB", 901),
    )
    registry = FakeRegistry()
    p = plan(rules, registry, {LEI_A: TOKEN_A})
    assert len(p.overrides) == 1
    (change,) = p.overrides
    assert change.token == TOKEN_A
    assert change.current == ZERO32
    assert change.setting.jurisdiction == 900
    assert change.setting.legal_opinion_hash == bytes.fromhex(SHA_A[2:])
    assert TOKEN_A in change.describe()
    registry.apply(p)
    assert registry.title_override(TOKEN_A, 900) == bytes.fromhex(SHA_A[2:])
    assert plan(rules, registry, {LEI_A: TOKEN_A}).empty


def test_override_with_changed_opinion_is_planned_again() -> None:
    def rules_with(sha: str) -> RuleBook:
        return book(make_rule("XA", 900, title_recognition="unclear",
                              title_overrides=[override(LEI_A, sha)]))

    registry = FakeRegistry()
    registry.apply(plan(rules_with(SHA_A), registry, {LEI_A: TOKEN_A}))
    p = plan(rules_with(SHA_B), registry, {LEI_A: TOKEN_A})
    assert p.rows == ()  # overrides are not part of the jurisdiction's rules hash
    (change,) = p.overrides
    assert change.current == bytes.fromhex(SHA_A[2:])
    assert change.setting.legal_opinion_hash == bytes.fromhex(SHA_B[2:])


def test_adding_an_override_changes_no_row() -> None:
    plain = book(make_rule("XA", 900, title_recognition="unclear"))
    with_override = book(
        make_rule("XA", 900, title_recognition="unclear", title_overrides=[override(LEI_A)])
    )
    registry = FakeRegistry()
    registry.apply(plan(plain, registry, {LEI_A: TOKEN_A}))
    p = plan(with_override, registry, {LEI_A: TOKEN_A})
    assert p.rows == () and len(p.overrides) == 1
    registry.apply(p)
    assert plan(with_override, registry, {LEI_A: TOKEN_A}).empty


def test_withdrawn_override_is_planned_for_clearing() -> None:
    plain = book(make_rule("XA", 900, title_recognition="unclear"))
    with_override = book(
        make_rule("XA", 900, title_recognition="unclear", title_overrides=[override(LEI_A)])
    )
    registry = FakeRegistry()
    registry.apply(plan(with_override, registry, {LEI_A: TOKEN_A}))
    assert registry.title_override(TOKEN_A, 900) != ZERO32
    p = plan(plain, registry, {LEI_A: TOKEN_A})
    assert not p.empty
    registry.apply(p)
    assert registry.title_override(TOKEN_A, 900) == ZERO32


@pytest.mark.parametrize("tokens", [None, {}, {LEI_B: TOKEN_A}])
def test_override_with_absent_lei(tokens: dict[str, str] | None) -> None:
    rules = book(
        make_rule("XA", 900, title_recognition="unclear", title_overrides=[override(LEI_A)])
    )
    registry = FakeRegistry()
    p = plan(rules, registry, tokens)
    (change,) = p.overrides
    assert change.token is None and change.current is None
    assert "no SPV with this LEI on this chain" in change.describe()
    registry.apply(p)
    assert registry.overrides == {}
    assert not plan(rules, registry, tokens).rows


def synthetic(count: int) -> RuleBook:
    """`count` recognised/allowed rules AA (1), AB (2), ..."""
    return RuleBook([make_rule(f"{chr(65 + i // 26)}{chr(65 + i % 26)}", i + 1)
                     for i in range(count)])


def test_batches_at_most_64_rows() -> None:
    assert BATCH == FakeRegistry.MAX_BATCH == 64
    rules = synthetic(150)
    registry = FakeRegistry()
    p = plan(rules, registry)
    batches = p.row_batches()
    assert [len(b) for b in batches] == [64, 64, 22]
    assert [row for b in batches for row in b] == [s.as_tuple() for s in compile_rules(rules)]
    registry.apply(p)
    assert registry.batch_sizes == [64, 64, 22]
    assert plan(rules, registry).empty


def test_exactly_64_rows_is_one_batch() -> None:
    assert [len(b) for b in plan(synthetic(64), FakeRegistry()).row_batches()] == [64]
    assert [len(b) for b in plan(synthetic(65), FakeRegistry()).row_batches()] == [64, 1]


def test_tokens_by_lei() -> None:
    spvs = {1: SimpleNamespace(lei=LEI_A, token=TOKEN_A),
            2: SimpleNamespace(lei=LEI_B, token="0x" + "bb" * 20)}
    factory = SimpleNamespace(spv_count=lambda: 2, spvs=lambda i: spvs[i])
    assert tokens_by_lei(factory) == {LEI_A: TOKEN_A, LEI_B: "0x" + "bb" * 20}
    assert tokens_by_lei(SimpleNamespace(spv_count=lambda: 0, spvs=None)) == {}


# --- property: any starting table converges in one apply ------------------------------------------

POOL = [make_rule(f"X{chr(65 + i)}", 900 + i,
                  title_recognition=["recognised", "not_recognised", "unclear"][i % 3],
                  holder_policy=["allowed", "accredited_only", "blocked"][i % 3])
        for i in range(8)]
onchain_rows = st.dictionaries(
    st.sampled_from([900 + i for i in range(8)] + [1, 4, 276, 999]),
    st.tuples(st.integers(1, 3), st.integers(1, 3), st.binary(min_size=32, max_size=32)
              .filter(lambda b: b != ZERO32)),
    max_size=12,
)


@given(chosen=st.sets(st.integers(0, 7), min_size=1), onchain=onchain_rows)
def test_plan_converges(chosen: set[int], onchain: dict[int, tuple[int, int, bytes]]) -> None:
    rules = RuleBook([POOL[i] for i in sorted(chosen)])
    registry = FakeRegistry()
    if onchain:
        registry.set_jurisdictions([(c, t, p, h) for c, (t, p, h) in onchain.items()])
    wanted = {s.jurisdiction: s.as_tuple()[1:] for s in compile_rules(rules)}
    p = plan(rules, registry)
    differing = {c for c in set(wanted) | set(onchain) if wanted.get(c) != onchain.get(c)}
    assert sorted(c.after.jurisdiction for c in p.rows) == sorted(differing)
    for change in p.rows:
        code = change.after.jurisdiction
        expected = (ChangeKind.REMOVE if code not in wanted
                    else ChangeKind.UPDATE if code in onchain else ChangeKind.ADD)
        assert change.kind is expected
    registry.apply(p)
    assert registry.rows == wanted
    assert sorted(registry.listed) == sorted(wanted)
    assert plan(rules, registry).empty
