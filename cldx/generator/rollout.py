"""The roll-out of the brief: service lines, providers, contracts, funding and submission history.

Wave 1 is the memo's table exactly (75 providers, $77.60m from 1 July 2016); wave 2 is the
rest of the Community Investment Strategy (about 250 further providers and $260m, joining by
1 July 2017), so wave 1 is 23% of spend.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

import numpy as np

from cldx.standard import SEED_SERVICE_LINES, ServiceLine, code_set
from cldx.standard.registry import WAVE_1_START, WAVE_2_BY


@dataclass(frozen=True)
class LineProfile:
    """How a service line's clients and engagements behave, for generating realistic records."""

    group: str  # "parent", "child", "youth" or "adult": who the client is
    age: tuple[int, int]  # client age at start, years
    months: float  # median engagement length
    session_days: int  # days between planned sessions
    cost_per_client: int  # NZD a year; turns funding into caseload
    instrument: str | None
    domains: tuple[str, ...]
    measures: tuple[str, ...]
    dependants: float  # mean dependants per client


PARENT_MEASURES = ("parenting_knowledge", "safe_sleep_knowledge", "confidence_parenting", "positive_parenting", "immunisation", "enrolled_services", "housing_stable")
FSTAR_DOMAINS = ("keeping_safe", "emotional_needs", "boundaries_behaviour", "home_money", "wellbeing")

PROFILES: dict[str, LineProfile] = {
    "FS": LineProfile("parent", (15, 45), 12, 21, 4200, "FSTAR", FSTAR_DOMAINS, PARENT_MEASURES, 1.6),
    "ES": LineProfile("parent", (15, 45), 12, 21, 4200, "FSTAR", FSTAR_DOMAINS, PARENT_MEASURES, 1.6),
    "SWIS": LineProfile("child", (5, 12), 5, 14, 1800, "SDQ", ("total", "prosocial"), ("attitude_to_school", "social_skills", "school_attendance", "child_behaviour"), 0),
    "YWSS": LineProfile("youth", (12, 18), 6, 14, 1500, "SDQ", ("total", "prosocial"), ("attitude_to_school", "school_attendance", "help_seeking", "substance_use"), 0),
    "MASS": LineProfile("youth", (13, 18), 3, 10, 1400, "SDQ", ("total", "emotional"), ("attitude_to_school", "school_attendance", "help_seeking"), 0),
    "STAND": LineProfile("child", (5, 12), 3, 7, 14000, "SDQ", ("total", "conduct", "emotional"), ("child_behaviour", "social_skills", "school_attendance"), 0.3),
    "BFC": LineProfile("adult", (18, 75), 3, 21, 1100, "K10", ("distress",), ("budgeting", "income_stable", "services_knowledge"), 0.4),
    "FVS": LineProfile("adult", (16, 70), 4, 14, 2600, "K10", ("distress",), ("help_seeking", "services_knowledge", "housing_stable"), 0.8),
    "SF": LineProfile("parent", (16, 60), 6, 21, 2400, "FSTAR", FSTAR_DOMAINS[:3], ("positive_parenting", "confidence_parenting", "housing_stable"), 1.4),
    "PAR": LineProfile("parent", (16, 55), 3, 7, 1300, "FSTAR", FSTAR_DOMAINS[1:3], ("positive_parenting", "confidence_parenting", "parenting_knowledge"), 1.5),
    "CFS": LineProfile("parent", (16, 60), 5, 14, 2200, "FSTAR", FSTAR_DOMAINS[:3], ("positive_parenting", "housing_stable", "enrolled_services"), 1.5),
    "YDS": LineProfile("youth", (12, 21), 6, 14, 1600, "SDQ", ("total", "prosocial"), ("help_seeking", "substance_use", "attitude_to_school"), 0),
    "CSS": LineProfile("adult", (16, 80), 3, 14, 1500, "K10", ("distress",), ("help_seeking",), 0.3),
    "EAR": LineProfile("adult", (60, 95), 3, 21, 2500, None, (), ("help_seeking", "services_knowledge", "housing_stable"), 0),
}

# Wave 2: the rest of the CIS, as service lines of the ministry's registry (not in the standard's seed).
WAVE_2_LINES: tuple[tuple[ServiceLine, int, Decimal], ...] = (
    (ServiceLine("BFC", "Building Financial Capability", "Budgeting and financial mentoring for households.", 16, 90), 45, Decimal("45000000")),
    (ServiceLine("FVS", "Family Violence Services", "Support for adults and families affected by family violence.", 16, 90), 60, Decimal("70000000")),
    (ServiceLine("SF", "Strengthening Families", "Coordinated support plans for families working with several agencies.", 16, 70), 25, Decimal("25000000")),
    (ServiceLine("PAR", "Parenting Programmes", "Group and home-based parenting education.", 16, 65), 30, Decimal("30000000")),
    (ServiceLine("CFS", "Child and Family Support Services", "Social work support for families with children.", 16, 70), 40, Decimal("40000000")),
    (ServiceLine("YDS", "Youth Development Services", "Community youth work for young people.", 12, 24), 20, Decimal("20000000")),
    (ServiceLine("CSS", "Counselling Services", "Community counselling for adults.", 16, 95), 20, Decimal("20000000")),
    (ServiceLine("EAR", "Elder Abuse Response Services", "Response and support for older people at risk of abuse.", 55, 110), 10, Decimal("10000000")),
)

# The memo's table: (service line, providers, annual funding).
WAVE_1_TABLE: tuple[tuple[str, int, Decimal], ...] = (
    ("FS", 32, Decimal("36720000")),
    ("ES", 1, Decimal("1210000")),
    ("SWIS", 28, Decimal("21450000")),
    ("YWSS", 6, Decimal("2310000")),
    ("MASS", 7, Decimal("2010000")),
    ("STAND", 1, Decimal("13900000")),
)
# Some wave-1 organisations also hold a wave-2 contract, so a provider can send two service lines.
SECOND_CONTRACTS = 10
WAVE_2_PROVIDERS = sum(count for _, count, _ in WAVE_2_LINES)

PROVIDER_WORDS = (
    ("Te Whare", "Te Puna", "Te Rūnanga o", "Whānau", "Ngā Kākano", "Te Kōhanga", "Tūranga", "Kia Ora", "Ōtautahi", "Aroha"),
    ("Family", "Community", "Youth", "Social", "Kaupapa", "Pasifika", "Trust", "Whānau", "Health", "Support"),
    ("Services", "Trust", "Charitable Trust", "Society", "Incorporated", "Network", "Foundation", "Centre"),
)


@dataclass(frozen=True)
class ProviderPlan:
    index: int
    code: str
    name: str
    region_code: str
    ta_code: str
    sends_identity: bool
    date_style: str  # "iso" or "nz": how the provider's system writes dates
    quality: float  # the provider's true effect on outcomes (the generator's ground truth)
    attendance_rate: float
    completion_rate: float
    on_time_rate: float
    miss_rate: float


@dataclass(frozen=True)
class ContractPlan:
    contract_ref: str
    provider_index: int
    service_code: str
    funding_nzd: Decimal
    wave: int
    collection_start: date
    period_start: date
    period_end: date


@dataclass(frozen=True)
class Rollout:
    service_lines: tuple[ServiceLine, ...]
    providers: tuple[ProviderPlan, ...]
    contracts: tuple[ContractPlan, ...]


def split_exactly(total: Decimal, parts: int, rng: np.random.Generator) -> list[Decimal]:
    """Split `total` dollars into `parts` uneven amounts (in cents) that add up exactly."""
    cents = int(total * 100)
    shares = rng.dirichlet(np.full(parts, 4.0))
    amounts = np.floor(shares * cents).astype(np.int64)
    amounts[: cents - int(amounts.sum())] += 1  # hand out the rounding remainder a cent at a time
    return [Decimal(int(a)) / 100 for a in amounts]


def _region_weights() -> tuple[list[str], np.ndarray, dict[str, list[str]], dict[str, np.ndarray]]:
    """Regions and their TAs weighted by their number of SA2s (a fair proxy for population)."""
    sa2 = code_set("sa2")
    ta_set = code_set("territorial_authority")
    ta_counts: dict[str, int] = {}
    for c in sa2:
        ta_counts[c.parent] = ta_counts.get(c.parent, 0) + 1
    region_tas: dict[str, list[str]] = {}
    for ta in ta_set:
        # Not the residual "Area Outside Territorial Authority" (999) nor the Chatham Islands (region 99).
        if ta.parent and ta.parent != "99" and ta.code != "999" and ta.code in ta_counts:
            region_tas.setdefault(ta.parent, []).append(ta.code)
    regions = sorted(region_tas)
    region_w = np.array([sum(ta_counts[t] for t in region_tas[r]) for r in regions], dtype=float)
    ta_w = {r: np.array([ta_counts[t] for t in region_tas[r]], dtype=float) for r in regions}
    return regions, region_w / region_w.sum(), region_tas, {r: w / w.sum() for r, w in ta_w.items()}


def plan_rollout(seed: int, outlier_share: float = 0.05) -> Rollout:
    rng = np.random.default_rng([seed, 0])
    regions, region_p, region_tas, ta_p = _region_weights()

    lines = list(SEED_SERVICE_LINES) + [line for line, _, _ in WAVE_2_LINES]
    contract_specs: list[tuple[str, Decimal, int]] = []  # (service line, funding, wave) per new provider
    for code, count, total in WAVE_1_TABLE:
        contract_specs += [(code, amount, 1) for amount in split_exactly(total, count, rng)]
    wave2 = []
    for line, count, total in WAVE_2_LINES:
        # Each line's share of the SECOND_CONTRACTS extra contracts, in proportion to its providers.
        extra = round(SECOND_CONTRACTS * count / WAVE_2_PROVIDERS)
        wave2 += [(line.code, amount) for amount in split_exactly(total, count + extra, rng)]
    assert len(wave2) == WAVE_2_PROVIDERS + SECOND_CONTRACTS
    # The first SECOND_CONTRACTS wave-2 contracts (spread over lines) go to wave-1 organisations.
    order = rng.permutation(len(wave2))
    second = sorted(order[:SECOND_CONTRACTS].tolist())
    new_wave2 = [wave2[i] for i in sorted(order[SECOND_CONTRACTS:].tolist())]
    contract_specs += [(code, amount, 2) for code, amount in new_wave2]

    providers: list[ProviderPlan] = []
    contracts: list[ContractPlan] = []
    n = len(contract_specs)
    # Ground truth for comparisons: most providers near average, a few clearly better or worse.
    quality = rng.normal(0, 0.35, n)
    outliers = rng.permutation(n)[: max(2, int(round(n * outlier_share * 2)))]
    quality[outliers[: len(outliers) // 2]] = 1.6
    quality[outliers[len(outliers) // 2 :]] = -1.6
    region_of = rng.choice(len(regions), size=n, p=region_p)
    months_wave2 = [date(2016, m, 1) for m in range(10, 13)] + [date(2017, m, 1) for m in range(1, 8)]
    for i, (code, amount, wave) in enumerate(contract_specs):
        region = regions[region_of[i]]
        ta = region_tas[region][rng.choice(len(region_tas[region]), p=ta_p[region])]
        words = [w[rng.integers(len(w))] for w in PROVIDER_WORDS]
        providers.append(
            ProviderPlan(
                index=i,
                code=f"P{i + 1:04d}",
                name=f"{words[0]} {words[1]} {words[2]}",
                region_code=region,
                ta_code=ta,
                # Every provider sends identity until standard 1.1 adds the de-identified form.
                sends_identity=True,
                date_style="nz" if rng.random() < 0.3 else "iso",
                quality=float(quality[i]),
                attendance_rate=float(np.clip(0.82 + 0.05 * quality[i] + rng.normal(0, 0.04), 0.5, 0.98)),
                completion_rate=float(np.clip(0.68 + 0.08 * quality[i] + rng.normal(0, 0.05), 0.3, 0.95)),
                on_time_rate=float(np.clip(rng.normal(0.8, 0.12), 0.3, 1.0)),
                miss_rate=float(np.clip(rng.exponential(0.03), 0, 0.2)),
            )
        )
        start = WAVE_1_START if wave == 1 else months_wave2[rng.integers(len(months_wave2))]
        contracts.append(_contract(len(contracts), i, code, amount, wave, start))
    wave1_orgs = [p.index for p in providers[:75]]
    for j, spec_index in enumerate(second):
        code, amount = wave2[spec_index]
        start = months_wave2[rng.integers(len(months_wave2))]
        contracts.append(_contract(len(contracts), wave1_orgs[(j * 7) % 75], code, amount, 2, start))
    assert max(c.collection_start for c in contracts) <= WAVE_2_BY
    return Rollout(tuple(lines), tuple(providers), tuple(contracts))


def _contract(n: int, provider_index: int, code: str, amount: Decimal, wave: int, start: date) -> ContractPlan:
    return ContractPlan(
        contract_ref=f"CIS-{start.year}-{n + 1:04d}",
        provider_index=provider_index,
        service_code=code,
        funding_nzd=amount,
        wave=wave,
        collection_start=start,
        period_start=start if wave == 2 else WAVE_1_START,
        period_end=date(2019, 6, 30),
    )


def month_starts(first: date, last: date) -> list[date]:
    months, current = [], first.replace(day=1)
    while current <= last:
        months.append(current)
        current = (current + timedelta(days=32)).replace(day=1)
    return months


def schedule_rows(rollout: Rollout, start: date, end: date, seed: int) -> list[tuple[str, str, str]]:
    """Each provider's monthly submissions: (provider, period, received date or blank when missed).

    Data for a month is due on the 20th of the next; most providers send on time, some late,
    a few miss months (their records then arrive with the next month's submission).
    """
    rows = []
    first_collection = {}
    for c in rollout.contracts:
        first_collection[c.provider_index] = min(first_collection.get(c.provider_index, c.collection_start), c.collection_start)
    for p in rollout.providers:
        rng = np.random.default_rng([seed, 3, p.index])
        last = date.min
        for month in month_starts(max(first_collection[p.index], start), end):
            next_month = (month + timedelta(days=32)).replace(day=1)
            if rng.random() < p.miss_rate:
                rows.append((p.code, f"{month:%Y-%m}", ""))
                continue
            if rng.random() < p.on_time_rate:
                received = next_month + timedelta(days=int(rng.integers(2, 19)))
            else:
                received = next_month + timedelta(days=int(19 + rng.integers(1, 41)))
            # A late month holds up the next: a provider's system sends its months in order.
            last = max(received, last)
            rows.append((p.code, f"{month:%Y-%m}", last.isoformat()))
    return rows
