"""The GPU-hour price index: methodology `gpu-hour-index`, version 1.

One defined good per feed: one hour of one GPU of a given model and memory size, priced in
USD (the flagship is `H100-SXM-80GB/USD/GPUh`, one H100 SXM 80GB GPU-hour). The
methodology turns the quotes of one source run (`oracle.sources.quote.Quote`) into a
value, a confidence band and honest counts, or withholds the value with a reason:

1. **Match and normalise** each quote: its listed GPU name must name the feed's model
   (`MODELS`), its memory must fall in one of the model's memory classes, and the class's
   published factor (`MemoryClass.factor`) converts its per-GPU price into the defined
   good. A factor with `|ln(factor)| > MAX_ABS_LN_FACTOR` is too much adjustment: the
   quote is dropped. Quotes that are stale, observed after the snapshot, below
   `MIN_RELIABILITY`, or duplicates of an offer are dropped too (`DROP_REASONS`).
2. **Reduce** each contributor (provider + host) to one value: only its strongest tier
   counts; the slices of one machine fold into one observation (the median of their
   normalised prices); the contributor's value is the median of its observations.
3. **Screen** outliers in log space: keep a contributor when
   `|ln v - median(ln v)| <= SCREEN_K * max(MAD_CONSTANT * MAD(ln v), MIN_LOG_SCALE)`.
4. **Weight** each accepted contributor `TIER_WEIGHTS[tier] * sqrt(observations)`, then
   cap every share at `MAX_SHARE` of the total (water-filling, `cap_shares`).
5. **Estimate** the weighted median; the band is the pair of weighted quantiles at
   `0.5 -/+ BAND_Z / (2 sqrt(n_eff))` (n_eff: Kish's effective number of contributors).
6. **Publish** only with at least `MIN_CONTRIBUTORS` accepted contributors,
   `MIN_OBSERVATIONS` observations, and a dispersion (`MAD_CONSTANT * MAD(ln v)` of the
   accepted values) at most `MAX_DISPERSION`; otherwise withhold with the reason.

Everything is Decimal arithmetic under `methodology.CONTEXT`, with deterministic ordering
and tie-breaking, so the same snapshot gives the same result bit for bit on any machine.
The parameters are constants of version 1, not inputs: changing one is a new version.
`docs/index-methodology.md` is the specification for an auditor.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from oracle import attest, methodology
from oracle.reports import feed_id as make_feed_id
from oracle.sources.quote import Quote, SourceResult, SourceTier

METHODOLOGY = "gpu-hour-index"
VERSION = 2
VERSIONS = (1, 2)

# ------------------------------------------------------------ parameters of version 1

#: A normalisation factor is published for a memory variant; a quote needing a factor
#: with |ln(factor)| above this (about -22% .. +28%) is dropped, not adjusted.
MAX_ABS_LN_FACTOR = Decimal("0.25")
#: Quotes whose source states a reliability below this are dropped (none stated: kept).
MIN_RELIABILITY = Decimal("0.90")
#: Quotes observed more than this many seconds before the snapshot time are stale.
MAX_QUOTE_AGE_S = 86_400
#: Weight of a contributor per source tier (a paid price binds more than an offer, an
#: offer more than a list price), times the square root of its observation count.
TIER_WEIGHTS: dict[SourceTier, Decimal] = {
    SourceTier.TRADE: Decimal(3),
    SourceTier.EXECUTABLE_OFFER: Decimal(2),
    SourceTier.RATE_CARD: Decimal(1),
}
_TIER_RANK = {SourceTier.TRADE: 0, SourceTier.EXECUTABLE_OFFER: 1, SourceTier.RATE_CARD: 2}
#: No accepted contributor carries more than this share of the total weight.
MAX_SHARE = Decimal("0.20")
#: Scales a median absolute deviation to the standard deviation of a normal sample.
MAD_CONSTANT = Decimal("1.4826")
#: Outlier screen: a contributor is kept within this many robust scales of the median.
SCREEN_K = Decimal(3)
#: Floor of the robust log scale used by the screen (so a tight cluster, MAD ~ 0, does
#: not screen out contributors a few per cent away): anything within
#: SCREEN_K * MIN_LOG_SCALE = 0.45 in ln (about -36% .. +57%) of the median is kept.
MIN_LOG_SCALE = Decimal("0.15")
#: Publication gates.
MIN_CONTRIBUTORS = 5
MIN_OBSERVATIONS = 10
MAX_DISPERSION = Decimal("0.40")
#: Normal quantile of the two-sided 95% band.
BAND_Z = Decimal("1.96")

#: Why a quote did not count, in the order the checks run (a quote counts once, under
#: the first reason that applies).
DROP_REASONS: tuple[str, ...] = (
    "other_model",                  # its name does not name the feed's model
    "observed_after_snapshot",      # observedAt later than the snapshot's observedAt
    "stale",                        # observed more than MAX_QUOTE_AGE_S before it
    "memory_unknown",               # no memory stated and the model has several sizes
    "memory_not_in_table",          # a memory size the model table does not list
    "adjustment_too_large",         # the memory variant's factor exceeds the limit
    "low_reliability",              # reliability below MIN_RELIABILITY
    "duplicate_offer",              # the same (provider, offerId) seen again
    "superseded_by_stronger_tier",  # its contributor also has a stronger-tier quote
)


# --------------------------------------------------------------------- model table


@dataclass(frozen=True)
class MemoryClass:
    """A memory size of a model: listed sizes `lo_gb..hi_gb` (inclusive) are this class,
    and a per-GPU price times `factor` is the price of the defined good."""

    nominal_gb: int
    lo_gb: int
    hi_gb: int
    factor: Decimal
    rationale: str

    def admitted(self) -> bool:
        """Whether the factor is within the adjustment limit."""
        with localcontext(methodology.CONTEXT):
            return abs(self.factor.ln()) <= MAX_ABS_LN_FACTOR


@dataclass(frozen=True)
class GpuModel:
    """One defined good: a GPU model and memory size, matched by listed name."""

    key: str  # canonical key, e.g. "H100-SXM-80GB"
    description: str
    names: tuple[str, ...]  # normalised names (`normalise_gpu_name`) that match
    memory: tuple[MemoryClass, ...]  # the first class is the defined good (factor 1)

    @property
    def feed(self) -> str:
        """The feed name, e.g. "H100-SXM-80GB/USD/GPUh"."""
        return f"{self.key}/USD/GPUh"

    @property
    def nominal_gb(self) -> int:
        return self.memory[0].nominal_gb

    def memory_class(self, gb: int | None) -> MemoryClass | None | Literal["unknown"]:
        """The class of a listed memory size; "unknown" if none is stated and the model
        has several sizes (with one size, an unstated memory is that size)."""
        if gb is None:
            return self.memory[0] if len(self.memory) == 1 else "unknown"
        for cls in self.memory:
            if cls.lo_gb <= gb <= cls.hi_gb:
                return cls
        return None


_ONE = Decimal(1)
_SAME = "the defined good (GiB as reported, so 80 GB may list as 79..82)"


def _nominal(gb: int, lo: int, hi: int, why: str = _SAME) -> MemoryClass:
    return MemoryClass(gb, lo, hi, _ONE, why)


#: The model table of version 1. Names are compared after `normalise_gpu_name`.
MODELS: dict[str, GpuModel] = {m.key: m for m in (
    GpuModel("H100-SXM-80GB", "NVIDIA H100 SXM5 80GB HBM3",
             ("H100 SXM", "H100 SXM5", "H100 HBM3"),
             (_nominal(80, 76, 84),)),
    GpuModel("H100-PCIE-80GB", "NVIDIA H100 PCIe 80GB",
             ("H100 PCIE",),
             (_nominal(80, 76, 84),)),
    GpuModel("H200-141GB", "NVIDIA H200 SXM 141GB HBM3e",
             ("H200", "H200 SXM"),
             (_nominal(141, 134, 148, "the defined good (141 GB lists as 140 GiB)"),)),
    GpuModel("H200-NVL-141GB", "NVIDIA H200 NVL (PCIe) 141GB HBM3e",
             ("H200 NVL",),
             (_nominal(141, 134, 148, "the defined good (141 GB lists as 140 GiB)"),)),
    GpuModel("A100-SXM-80GB", "NVIDIA A100 SXM4 80GB",
             ("A100 SXM", "A100 SXM4"),
             (_nominal(80, 76, 84),
              MemoryClass(40, 38, 42, Decimal("2.68"),
                          "40 GB variant; no SXM 40 GB offers observed, the A100 PCIe "
                          "40->80 GB ratio is used; beyond the limit, so dropped"))),
    GpuModel("A100-PCIE-80GB", "NVIDIA A100 PCIe 80GB",
             ("A100 PCIE",),
             (_nominal(80, 76, 84),
              MemoryClass(40, 38, 42, Decimal("2.68"),
                          "40 GB variant; median over the five shipped days of the daily "
                          "ratio of median 80 GB to median 40 GB contributor prices (2.29 "
                          "..13.2); beyond the limit, so dropped"))),
    GpuModel("L40S-48GB", "NVIDIA L40S 48GB",
             ("L40S",),
             (_nominal(48, 44, 50, "the defined good (48 GB lists as 45 GiB with ECC on, "
                                   "48 GiB with ECC off)"),)),
    GpuModel("RTX4090-24GB", "NVIDIA GeForce RTX 4090 24GB",
             ("RTX 4090",),
             (_nominal(24, 22, 26, "the defined good (some hosts list 22 GiB usable)"),
              MemoryClass(48, 46, 50, Decimal("0.61"),
                          "48 GB after-market memory upgrade; median over the five "
                          "shipped days of the daily ratio of median 24 GB to median "
                          "48 GB contributor prices (0.56..0.65); beyond the limit, so "
                          "dropped"))),
    GpuModel("V100-32GB", "NVIDIA Tesla V100 32GB (SXM2 or PCIe)",
             ("V100", "V100 SXM2", "V100 PCIE"),
             (_nominal(32, 30, 34),
              MemoryClass(16, 15, 17, Decimal("1.24"),
                          "16 GB variant; median over the five shipped days of the daily "
                          "ratio of median 32 GB to median 16 GB contributor prices "
                          "(1.00..1.26); within the limit, so adjusted"))),
)}


@dataclass(frozen=True)
class Feed:
    """A price feed of the index."""

    name: str  # e.g. "H100-SXM-80GB/USD/GPUh" (<= 32 bytes)
    feed_id: str  # `oracle.reports.feed_id(name)`
    model: str  # the `MODELS` key


#: The index feeds, by feed name.
FEEDS: dict[str, Feed] = {
    m.feed: Feed(m.feed, make_feed_id(m.feed), m.key) for m in MODELS.values()
}
_FEEDS_BY_ID = {f.feed_id: f for f in FEEDS.values()}


def feed_name_for(model: str) -> str:
    """The feed name of a model key ("H100-SXM-80GB" -> "H100-SXM-80GB/USD/GPUh")."""
    if model not in MODELS:
        raise ValueError(f"unknown GPU model {model!r}; the index knows {', '.join(MODELS)}")
    return MODELS[model].feed


_SEPARATORS = re.compile(r"[\s\-_/]+")
_MEMORY_TOKEN = re.compile(r"([0-9]+)GB")
_NOISE = frozenset({"NVIDIA", "GEFORCE", "TESLA"})


def normalise_gpu_name(name: str) -> tuple[str, int | None]:
    """A listed GPU name as the model table compares it, and the memory it states:
    upper case, `-`/`_`/`/` as spaces, the words NVIDIA, GEFORCE and TESLA and any
    `<n>GB` token removed. "NVIDIA A100-SXM4-80GB" -> ("A100 SXM4", 80)."""
    words: list[str] = []
    memory: int | None = None
    for word in _SEPARATORS.split(name.upper()):
        if not word or word in _NOISE:
            continue
        match = _MEMORY_TOKEN.fullmatch(word)
        if match:
            memory = int(match.group(1))
            continue
        words.append(word)
    return " ".join(words), memory


_BY_NAME: dict[str, GpuModel] = {n: m for m in MODELS.values() for n in m.names}


def model_for_name(name: str) -> GpuModel | None:
    """The model a listed GPU name names (any memory size), or None."""
    return _BY_NAME.get(normalise_gpu_name(name)[0])


# ----------------------------------------------------------------------- snapshots


def _canonical_bytes(item: dict[str, Any]) -> bytes:
    return attest.canonical_json(item)


def build_snapshot(feed_name: str, quotes: Sequence[Quote], observed_at: int,
                   sources: Sequence[dict[str, Any]] = (), *,
                   version: int = VERSION) -> dict[str, Any]:
    """The canonical input snapshot of one feed: the quotes (canonical dicts, sorted by
    their canonical JSON bytes, so the snapshot is the same whatever the input order) and
    the source runs that produced them (sorted likewise). `attest.inputs_hash(
    attest.canonical_json(snapshot))` is the report's inputsHash."""
    feed = FEEDS.get(feed_name)
    if feed is None:
        raise ValueError(f"unknown index feed {feed_name!r}; feeds: {', '.join(FEEDS)}")
    for source in sources:
        if not isinstance(source, dict):
            raise ValueError(f"a source description is a JSON object, got {source!r}")
    if version not in VERSIONS:
        raise ValueError(f"gpu-hour-index has versions {VERSIONS}, not {version}")
    return {
        "methodology": METHODOLOGY,
        "version": version,
        "feedId": feed.feed_id,
        "model": feed.model,
        "observedAt": observed_at,
        "sources": sorted((dict(s) for s in sources), key=_canonical_bytes),
        "quotes": sorted((q.canonical() for q in quotes), key=_canonical_bytes),
    }


def describe_source(result: SourceResult) -> dict[str, Any]:
    """A source run as the snapshot's `sources` records it (for the auditor; it does not
    enter the computation): name, observation time and the honest row counts."""
    out: dict[str, Any] = {
        "source": result.source,
        "observedAt": result.observed_at,
        "rowsSeen": result.rows_seen,
        "rowsAccepted": result.rows_accepted,
        "rowsRejected": result.rows_rejected,
        "rejectedReasons": dict(sorted(result.rejected_reasons.items())),
        "lowRowCount": result.low_row_count,
    }
    if result.note is not None:
        out["note"] = result.note
    return out


def index_feed_snapshots(quotes: Iterable[Quote], observed_at: int,
                         sources: Sequence[dict[str, Any]] = (), *,
                         version: int = VERSION) -> dict[str, dict[str, Any]]:
    """One source run's quotes grouped into one snapshot per feed (every feed, so a
    model without quotes is evaluated and withheld, not silently skipped). A quote goes
    to the feed whose model its name names, whatever its memory size (the methodology
    counts a memory variant it cannot use as a drop); quotes naming no model are left
    out."""
    groups: dict[str, list[Quote]] = {name: [] for name in FEEDS}
    for quote in quotes:
        model = model_for_name(quote.gpu_name)
        if model is not None:
            groups[model.feed].append(quote)
    return {name: build_snapshot(name, qs, observed_at, sources, version=version)
            for name, qs in groups.items()}


class IndexInputs(BaseModel):
    """A `gpu-hour-index` v1 snapshot as `build_snapshot` writes it."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    methodology: Literal["gpu-hour-index"]
    version: Literal[1, 2]
    feed_id: Annotated[attest.Hex32, Field(alias="feedId")]
    model: str
    observed_at: Annotated[int, Field(alias="observedAt", ge=0, lt=2**64)]
    sources: list[dict[str, Any]]
    quotes: list[Quote]


# -------------------------------------------------------------------------- result


class ContributorValue(BaseModel):
    """One contributor's reduced value and what became of it."""

    model_config = ConfigDict(frozen=True)

    provider: str
    host: str
    tier: SourceTier  # the strongest tier it quoted; only those quotes count
    quotes: int  # quotes used
    observations: int  # distinct machines (or offers without a machine)
    gpus: int | None = None  # version 2: the GPUs of its machines (each machine once)
    value: Decimal  # USD per GPU-hour of the defined good
    log_deviation: Decimal | None  # (ln value - screen centre) / screen scale
    accepted: bool  # passed the outlier screen
    weight: Decimal  # v1: TIER_WEIGHTS[tier] * sqrt(observations); v2: * GPUs; uncapped
    share: Decimal | None  # capped share of the total weight (accepted only)

    @property
    def key(self) -> str:
        return f"{self.provider}/{self.host}"


class IndexResult(BaseModel):
    """The outcome of one evaluation. A withheld result has `value=None` and says why."""

    model_config = ConfigDict(frozen=True)

    methodology: str = METHODOLOGY
    version: int = VERSION
    feed: str
    feed_id: str
    model: str
    observed_at: int
    value: Decimal | None  # weighted median, USD per GPU-hour (unrounded)
    band_lower: Decimal | None
    band_upper: Decimal | None
    confidence: Decimal | None  # max(value - band_lower, band_upper - value)
    withheld_reason: str | None
    quotes_in: int
    quotes_used: int
    dropped: dict[str, int]  # reason -> count, every reason of DROP_REASONS
    contributors: int  # before the screen
    contributors_accepted: int
    outliers_screened: int
    observations: int  # of the accepted contributors
    effective_contributors: Decimal | None  # Kish: (sum s)^2 / sum s^2
    dispersion: Decimal | None  # MAD_CONSTANT * MAD(ln v) of the accepted values
    screen_centre: Decimal | None  # median ln v of all contributors
    screen_scale: Decimal | None  # max(MAD_CONSTANT * MAD(ln v), MIN_LOG_SCALE)
    contributor_values: list[ContributorValue]  # by (value, provider, host)

    @property
    def published(self) -> bool:
        return self.value is not None


# ---------------------------------------------------------------------- arithmetic


def cap_shares(weights: Sequence[Decimal], cap: Decimal = MAX_SHARE) -> list[Decimal]:
    """Shares proportional to `weights` with none above `cap` (water-filling): the final
    share of i is min(lambda * w_i, cap) with lambda chosen so the shares sum to 1.
    Computed by repeatedly fixing at `cap` every share the proportional split of the
    remaining room puts above it (a share above the cap stays above it as the room
    grows, so the order of fixing does not matter). If `len(weights) * cap <= 1` no
    split can respect the cap better than equal shares, which are returned."""
    n = len(weights)
    if n == 0:
        return []
    if any(w <= 0 for w in weights):
        raise ValueError("weights must be positive")
    with localcontext(methodology.CONTEXT):
        if n * cap <= 1:
            return [_ONE / n] * n
        capped: set[int] = set()
        while True:
            free = sum((w for i, w in enumerate(weights) if i not in capped), Decimal(0))
            room = _ONE - cap * len(capped)
            shares = [cap if i in capped else room * w / free for i, w in enumerate(weights)]
            over = {i for i, s in enumerate(shares) if i not in capped and s > cap}
            if not over:
                return shares
            capped |= over


def weighted_quantile(points: Sequence[tuple[Decimal, Decimal]], p: Decimal, *,
                      side: Literal["lower", "upper"]) -> Decimal:
    """The weighted quantile at level p of (value, weight) points, sorted by value.
    With T the total weight and C_j the cumulative weight of the j smallest values:
    "lower" is the first value with C_j >= p * T, "upper" the first with C_j > p * T
    (the largest value if there is none). The weighted median is their mean at p = 1/2;
    the two differ only when some C_j equals T / 2 exactly."""
    if not points:
        raise ValueError("no points")
    with localcontext(methodology.CONTEXT):
        ordered = sorted(points, key=lambda vw: vw[0])
        total = sum((w for _, w in ordered), Decimal(0))
        target = p * total
        cumulative = Decimal(0)
        for value, weight in ordered:
            cumulative += weight
            if cumulative > target or (side == "lower" and cumulative == target):
                return value
        return ordered[-1][0]


def weighted_median(points: Sequence[tuple[Decimal, Decimal]]) -> Decimal:
    """The mean of the lower and upper weighted quantiles at 1/2 (`weighted_quantile`);
    with equal weights, the ordinary median."""
    half = Decimal("0.5")
    with localcontext(methodology.CONTEXT):
        return (weighted_quantile(points, half, side="lower")
                + weighted_quantile(points, half, side="upper")) / 2


def _mad(values: Sequence[Decimal], centre: Decimal) -> Decimal:
    return methodology.median([abs(v - centre) for v in values])


# ----------------------------------------------------------------------- evaluation


@dataclass
class _Observation:
    quotes: list[tuple[Quote, Decimal]]  # (quote, normalised price)


def _inputs(snapshot: dict[str, Any]) -> tuple[IndexInputs, Feed]:
    try:
        inputs = IndexInputs.model_validate(snapshot)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise methodology.MethodologyError(f"snapshot field {where}: {err['msg']}") from exc
    feed = _FEEDS_BY_ID.get(inputs.feed_id)
    if feed is None:
        raise methodology.MethodologyError(
            f"feedId {inputs.feed_id} is not an index feed of gpu-hour-index v{inputs.version}")
    if inputs.model != feed.model:
        raise methodology.MethodologyError(
            f"snapshot model {inputs.model!r} is not the model of feed {feed.name} "
            f"({feed.model})")
    return inputs, feed


def evaluate(snapshot: dict[str, Any]) -> IndexResult:
    """The index of one feed from its canonical snapshot (pure; the order of the
    snapshot's quotes does not matter). Raises `methodology.MethodologyError` when the
    snapshot is malformed; a value that may not be published is withheld (`value=None`,
    `withheld_reason`)."""
    inputs, feed = _inputs(snapshot)
    with localcontext(methodology.CONTEXT):
        return _evaluate(inputs, feed)


def _evaluate(inputs: IndexInputs, feed: Feed) -> IndexResult:
    model = MODELS[feed.model]
    dropped = dict.fromkeys(DROP_REASONS, 0)
    quotes = sorted(inputs.quotes, key=lambda q: _canonical_bytes(q.canonical()))

    # 1. match and normalise
    eligible: list[tuple[Quote, Decimal]] = []
    for quote in quotes:
        reason, price = _normalise(quote, model, inputs.observed_at)
        if reason is not None:
            dropped[reason] += 1
        else:
            assert price is not None
            eligible.append((quote, price))
    newest: dict[tuple[str, str], tuple[Quote, Decimal]] = {}
    for quote, price in eligible:  # canonical order: the first of equals wins
        key = (quote.provider, quote.offer_id)
        kept = newest.get(key)
        if kept is None or quote.observed_at > kept[0].observed_at:
            if kept is not None:
                dropped["duplicate_offer"] += 1
            newest[key] = (quote, price)
        else:
            dropped["duplicate_offer"] += 1

    # 2. reduce each contributor
    v2 = inputs.version >= 2
    by_contributor: dict[tuple[str, str], list[tuple[Quote, Decimal]]] = defaultdict(list)
    for quote, price in newest.values():
        by_contributor[(quote.provider, quote.host)].append((quote, price))
    rows: list[dict[str, Any]] = []
    quotes_used = 0
    for (provider, host), items in sorted(by_contributor.items()):
        tier = min((q.tier for q, _ in items), key=_TIER_RANK.__getitem__)
        used = [(q, p) for q, p in items if q.tier == tier]
        dropped["superseded_by_stronger_tier"] += len(items) - len(used)
        quotes_used += len(used)
        machines: dict[str, list[tuple[Quote, Decimal]]] = defaultdict(list)
        for q, p in used:
            machines[f"machine:{q.machine}" if q.machine is not None
                     else f"offer:{q.offer_id}"].append((q, p))
        observations = [methodology.median([p for _, p in qs]) for qs in machines.values()]
        row: dict[str, Any] = {"provider": provider, "host": host, "tier": tier,
                               "quotes": len(used), "observations": len(observations)}
        if v2:
            # Voice by capacity: each machine's GPUs once (its largest slice's whole
            # machine), so splitting a machine or a fleet into more hosts gains nothing.
            sizes = [max(_machine_size(q) for q, _ in qs) for qs in machines.values()]
            row["gpus"] = sum(sizes)
            row["value"] = weighted_median([(price, Decimal(size)) for price, size
                                            in zip(observations, sizes, strict=True)])
            row["weight"] = TIER_WEIGHTS[tier] * row["gpus"]
        else:
            row["value"] = methodology.median(observations)
            row["weight"] = TIER_WEIGHTS[tier] * Decimal(len(observations)).sqrt()
        rows.append(row)

    # 3. screen outliers in log space (v2: centre and scale weighted by capped capacity
    # shares, so a crowd of small made-up hosts cannot move the centre)
    centre = scale = None
    if rows:
        logs = [r["value"].ln() for r in rows]
        if v2:
            # capped shares: no contributor holds more than MAX_SHARE of the screen either
            pts = list(zip(logs, cap_shares([r["weight"] for r in rows]), strict=True))
            centre = weighted_median(pts)
            spread = weighted_median([(abs(x - centre), w) for x, w in pts])
        else:
            centre = methodology.median(logs)
            spread = _mad(logs, centre)
        scale = max(MAD_CONSTANT * spread, MIN_LOG_SCALE)
        for row, log_value in zip(rows, logs, strict=True):
            row["log_deviation"] = (log_value - centre) / scale
            row["accepted"] = abs(log_value - centre) <= SCREEN_K * scale
    accepted = [r for r in rows if r["accepted"]]

    # 4. weights with a cap
    shares = cap_shares([r["weight"] for r in accepted]) if accepted else []
    for row, share in zip(accepted, shares, strict=True):
        row["share"] = share
    for row in rows:
        row.setdefault("share", None)

    observations = sum(r["observations"] for r in accepted)
    dispersion = n_eff = None
    if accepted:
        accepted_logs = [r["value"].ln() for r in accepted]
        if v2:
            pts = list(zip(accepted_logs, shares, strict=True))
            mid = weighted_median(pts)
            dispersion = MAD_CONSTANT * weighted_median([(abs(x - mid), w) for x, w in pts])
        else:
            dispersion = MAD_CONSTANT * _mad(accepted_logs, methodology.median(accepted_logs))
        total = sum(shares, Decimal(0))
        n_eff = total * total / sum((s * s for s in shares), Decimal(0))

    # 6. publication gates
    reason: str | None = None
    if len(accepted) < MIN_CONTRIBUTORS:
        reason = (f"too_few_contributors: {len(accepted)} accepted contributor(s) of "
                  f"{len(rows)}, need {MIN_CONTRIBUTORS}")
    elif observations < MIN_OBSERVATIONS:
        reason = (f"too_few_observations: {observations} observation(s) from accepted "
                  f"contributors, need {MIN_OBSERVATIONS}")
    elif dispersion is not None and dispersion > MAX_DISPERSION:
        reason = (f"dispersion_too_high: {_short(dispersion)} (1.4826 * MAD of ln price) "
                  f"exceeds {MAX_DISPERSION}")

    # 5. estimate and band
    value = lower = upper = confidence = None
    if reason is None:
        assert n_eff is not None
        points = [(r["value"], r["share"]) for r in accepted]
        value = weighted_median(points)
        h = BAND_Z / (2 * n_eff.sqrt())
        half = Decimal("0.5")
        lower = weighted_quantile(points, half - h, side="lower")
        upper = weighted_quantile(points, half + h, side="upper")
        confidence = max(value - lower, upper - value)

    contributor_values = [
        ContributorValue(
            provider=r["provider"], host=r["host"], tier=r["tier"], quotes=r["quotes"],
            observations=r["observations"], gpus=r.get("gpus"), value=r["value"],
            log_deviation=r.get("log_deviation"), accepted=r["accepted"],
            weight=r["weight"], share=r["share"])
        for r in sorted(rows, key=lambda r: (r["value"], r["provider"], r["host"]))
    ]
    return IndexResult(
        version=inputs.version, feed=feed.name, feed_id=feed.feed_id, model=feed.model,
        observed_at=inputs.observed_at, value=value, band_lower=lower, band_upper=upper,
        confidence=confidence, withheld_reason=reason, quotes_in=len(quotes),
        quotes_used=quotes_used, dropped=dropped, contributors=len(rows),
        contributors_accepted=len(accepted), outliers_screened=len(rows) - len(accepted),
        observations=observations, effective_contributors=n_eff, dispersion=dispersion,
        screen_centre=centre, screen_scale=scale, contributor_values=contributor_values,
    )


def _normalise(quote: Quote, model: GpuModel,
               observed_at: int) -> tuple[str | None, Decimal | None]:
    """(drop reason, None) or (None, price of the defined good)."""
    name, named_gb = normalise_gpu_name(quote.gpu_name)
    if _BY_NAME.get(name) is not model:
        return "other_model", None
    if quote.observed_at > observed_at:
        return "observed_after_snapshot", None
    if quote.observed_at < observed_at - MAX_QUOTE_AGE_S:
        return "stale", None
    cls = model.memory_class(quote.gpu_ram_gb if quote.gpu_ram_gb is not None else named_gb)
    if cls == "unknown":
        return "memory_unknown", None
    if cls is None:
        return "memory_not_in_table", None
    assert isinstance(cls, MemoryClass)
    if not cls.admitted():
        return "adjustment_too_large", None
    if quote.reliability is not None and Decimal(quote.reliability) < MIN_RELIABILITY:
        return "low_reliability", None
    return None, quote.price() * cls.factor


def _short(value: Decimal) -> str:
    return str(value.quantize(Decimal("0.0001"), rounding=ROUND_HALF_EVEN))


def price_fields(data: dict[str, Any]) -> methodology.PriceFields:
    """The registry entry of `gpu-hour-index` v1: the report's value and confidence in
    `attest.PRICE_DECIMALS` (8) decimals, ROUND_HALF_EVEN. Raises
    `methodology.MethodologyError` when the value is withheld (with the reason) or the
    snapshot is malformed."""
    result = evaluate(data)
    if result.value is None:
        raise methodology.MethodologyError(f"{result.feed} withheld: {result.withheld_reason}")
    assert result.confidence is not None
    with localcontext(methodology.CONTEXT):
        return methodology.PriceFields(
            feed_id=result.feed_id,
            value=methodology.to_fixed(result.value, attest.PRICE_DECIMALS),
            confidence=methodology.to_fixed(result.confidence, attest.PRICE_DECIMALS),
            observed_at=result.observed_at,
            methodology_version=result.version,
        )


# -------------------------------------------------------------- market utilisation


class MarketUtilisation(BaseModel):
    """How much of a model's listed capacity is rented, estimated from the offers."""

    model_config = ConfigDict(frozen=True)

    model: str
    machines: int
    gpus_total: int  # sum over machines of round(gpuCount / gpuFraction)
    gpus_offered: int  # sum over machines of the largest unrented offer
    gpus_rented: int  # gpus_total - gpus_offered
    rented_quotes: int  # quotes that said rented=true
    utilisation_bps: int  # gpus_rented / gpus_total, basis points, ROUND_HALF_EVEN


def market_utilisation(quotes: Iterable[Quote]) -> dict[str, MarketUtilisation]:
    """Per model key (models with at least one quote), the share of offered GPUs that
    are rented. A marketplace lists a machine as slices (an 8-GPU box as 1, 2, 4 and 8
    GPUs with gpuFraction 0.125..1), so per machine (provider, host, machine; a quote
    without a machine is its own machine): total GPUs = the largest round(gpuCount /
    gpuFraction) of its quotes (gpuCount when no fraction is stated), offered = the
    largest gpuCount among its unrented quotes, and total is at least offered plus the
    GPUs of its rented=true quotes; rented = total - offered. Every memory size of the
    model counts; the same (provider, offerId) counts once."""
    seen: set[tuple[str, str]] = set()
    machines: dict[str, dict[tuple[str, str, str], list[Quote]]] = defaultdict(
        lambda: defaultdict(list))
    for quote in sorted(quotes, key=lambda q: _canonical_bytes(q.canonical())):
        model = model_for_name(quote.gpu_name)
        if model is None or (quote.provider, quote.offer_id) in seen:
            continue
        seen.add((quote.provider, quote.offer_id))
        unit = quote.machine if quote.machine is not None else f"offer:{quote.offer_id}"
        machines[model.key][(quote.provider, quote.host, unit)].append(quote)
    out: dict[str, MarketUtilisation] = {}
    with localcontext(methodology.CONTEXT):
        for key in sorted(machines):
            total = offered = rented_quotes = 0
            for group in machines[key].values():
                size = max(_machine_size(q) for q in group)
                free = max((q.gpu_count for q in group if not q.rented), default=0)
                busy = sum(q.gpu_count for q in group if q.rented)
                rented_quotes += sum(1 for q in group if q.rented)
                total += max(size, free + busy)
                offered += free
            bps = (methodology.to_fixed(Decimal(total - offered) / total, 4) if total else 0)
            out[key] = MarketUtilisation(
                model=key, machines=len(machines[key]), gpus_total=total,
                gpus_offered=offered, gpus_rented=total - offered,
                rented_quotes=rented_quotes, utilisation_bps=bps)
    return out


def _machine_size(quote: Quote) -> int:
    if quote.gpu_fraction is None:
        return quote.gpu_count
    size = (Decimal(quote.gpu_count) / Decimal(quote.gpu_fraction)).to_integral_value(
        rounding=ROUND_HALF_EVEN)
    return max(int(size), quote.gpu_count)
