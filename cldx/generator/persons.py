"""The client population: every person once, with the contracts that serve them.

Persons are drawn for the whole roll-out at once (so the same person can appear at two
providers with the same name, birth date and gender, as linkage will need), then each
provider's records are generated from its own members.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np

from cldx.standard import code_set

from .people import LOCAL_IWI_REGIONS, POOL_CODES, POOLS, choose_names, ethnic_pool_probabilities
from .rollout import PROFILES, Rollout

MIN_WAVE_1_CLIENTS = 20  # whenever N >= 2000, every wave-1 provider gets at least this many
CROSS_PROVIDER_SHARE = 0.06  # persons also served by a second provider


def day(d: date) -> np.datetime64:
    return np.datetime64(d, "D")


@dataclass
class Persons:
    """Column arrays, one entry per person."""

    home: np.ndarray  # contract index of the first service
    first_start: np.ndarray  # datetime64[D]
    second: np.ndarray  # contract index of a second provider's service, -1 when none
    second_start: np.ndarray
    dob: np.ndarray
    gender: np.ndarray  # level-2 SCGI code
    ethnicity: np.ndarray  # level-2 ETHNIC05 code
    pool: np.ndarray  # index into people.POOLS
    iwi: np.ndarray  # (n, 3) four-digit iwi codes, "" when none
    sa2: np.ndarray
    family_name: np.ndarray
    given_names: np.ndarray
    consents: np.ndarray  # False: the client declined identification


def allocate_clients(rollout: Rollout, n_clients: int) -> np.ndarray:
    """Clients per contract: in proportion to funding over the service's cost per client."""
    weights = np.array([float(c.funding_nzd) / PROFILES[c.service_code].cost_per_client for c in rollout.contracts])
    floor = np.zeros(len(weights), dtype=np.int64)
    if n_clients >= 2000:
        floor[[i for i, c in enumerate(rollout.contracts) if c.wave == 1]] = MIN_WAVE_1_CLIENTS
    rest = n_clients - int(floor.sum())
    exact = weights / weights.sum() * rest
    counts = np.floor(exact).astype(np.int64)
    # Largest remainders get the last few, so the total is exactly N and the result is stable.
    remainder = rest - int(counts.sum())
    counts[np.argsort(-(exact - counts), kind="stable")[:remainder]] += 1
    return floor + counts


def _random_days(rng: np.random.Generator, first: np.ndarray, last: np.ndarray) -> np.ndarray:
    span = np.maximum((last - first).astype(np.int64), 0)
    return first + (rng.random(len(first)) * (span + 1)).astype(np.int64).astype("timedelta64[D]")


def plan_persons(rollout: Rollout, n_clients: int, start: date, end: date, seed: int) -> Persons:
    rng = np.random.default_rng([seed, 1])
    contracts = rollout.contracts
    providers = rollout.providers
    counts = allocate_clients(rollout, n_clients)
    home = np.repeat(np.arange(len(contracts)), counts)
    n = len(home)

    collection = np.array([day(max(c.collection_start, start)) for c in contracts])
    last_start = day(end) - np.timedelta64(45, "D")
    first_start = _random_days(rng, collection[home], np.full(n, last_start))

    groups = np.array([PROFILES[c.service_code].group for c in contracts])
    age_lo = np.array([PROFILES[c.service_code].age[0] for c in contracts])[home]
    age_hi = np.array([PROFILES[c.service_code].age[1] for c in contracts])[home]
    age = rng.triangular(age_lo, age_lo + (age_hi - age_lo) * 0.3, age_hi + 0.999)
    dob = first_start - (age * 365.25).astype(np.int64).astype("timedelta64[D]")

    region_of_contract = np.array([providers[c.provider_index].region_code for c in contracts])
    ta_of_contract = np.array([providers[c.provider_index].ta_code for c in contracts])
    region = region_of_contract[home]

    # Ethnicity: a pool by region and service group, then a level-2 code within the pool.
    # Sorted, not a set: set order follows PYTHONHASHSEED and would change the draws per process.
    pool = np.empty(n, dtype=np.int8)
    for key in sorted({(str(r), str(g)) for r, g in zip(region_of_contract, groups)}):
        where = np.flatnonzero((region == key[0]) & (groups[home] == key[1]))
        pool[where] = rng.choice(len(POOLS), size=len(where), p=ethnic_pool_probabilities(*key))
    ethnicity = np.empty(n, dtype=object)
    for k, name in enumerate(POOLS):
        where = np.flatnonzero(pool == k)
        codes, p = zip(*POOL_CODES[name])
        ethnicity[where] = np.array(codes, dtype=object)[rng.choice(len(codes), size=len(where), p=np.array(p) / sum(p))]
    unstated = rng.random(n) < 0.012
    ethnicity[unstated] = np.where(rng.random(int(unstated.sum())) < 0.7, "99", "94")

    iwi = _iwi(rng, pool, region)
    gender = _gender(rng, groups[home], np.array([c.service_code for c in contracts])[home])
    sa2 = _areas(rng, region, ta_of_contract[home])
    family, given = choose_names(pool, rng)
    consents = rng.random(n) > 0.02

    second, second_start = _second_services(rng, rollout, home, first_start, dob, groups, region_of_contract, end)
    return Persons(home, first_start, second, second_start, dob, gender, ethnicity, pool, iwi, sa2, family, given, consents)


def _iwi(rng: np.random.Generator, pool: np.ndarray, region: np.ndarray) -> np.ndarray:
    iwi_codes = [c for c in code_set("iwi").at_levels((2,)) if c.parent not in ("44", "55", "77", "88", "99")]
    by_region: dict[str, np.ndarray] = {}
    for c in iwi_codes:
        by_region.setdefault(c.parent, []).append(c.code)  # type: ignore[arg-type]
    all_iwi = np.array([c.code for c in iwi_codes], dtype=object)
    n = len(pool)
    out = np.full((n, 3), "", dtype=object)
    maori = pool == POOLS.index("maori")
    has = np.where(maori, rng.random(n) < 0.75, rng.random(n) < 0.03)
    how_many = np.where(has, 1 + (rng.random(n) < 0.3) + (rng.random(n) < 0.09), 0)
    for slot in range(3):
        who = np.flatnonzero(how_many > slot)
        local = rng.random(len(who)) < 0.7
        choice = all_iwi[rng.integers(len(all_iwi), size=len(who))]
        for reg in np.unique(region[who]):
            options = [code for r in LOCAL_IWI_REGIONS.get(reg, ()) for code in by_region.get(r, [])]
            here = np.flatnonzero((region[who] == reg) & local)
            if options and len(here):
                choice[here] = np.array(options, dtype=object)[rng.integers(len(options), size=len(here))]
        out[who, slot] = choice
    # A few do not know or do not state their iwi.
    unknown = np.flatnonzero((how_many > 0) & (rng.random(n) < 0.04))
    out[unknown, 0] = np.where(rng.random(len(unknown)) < 0.5, "4444", "9999")
    out[unknown, 1:] = ""
    # The same iwi twice is a data-entry slip real files have, but not a planted fault here.
    duplicate = (out[:, 1] == out[:, 0]) & (out[:, 1] != "")
    out[duplicate, 1:] = ""
    duplicate = (out[:, 2] != "") & ((out[:, 2] == out[:, 0]) | (out[:, 2] == out[:, 1]))
    out[duplicate, 2] = ""
    return out


def _gender(rng: np.random.Generator, group: np.ndarray, line: np.ndarray) -> np.ndarray:
    female_share = np.select([group == "parent", line == "FVS", group == "adult"], [0.9, 0.8, 0.55], 0.48)
    gender = np.where(rng.random(len(group)) < female_share, "21", "11").astype(object)
    other = rng.random(len(group))
    gender[other < 0.006] = np.array(["30", "31", "32", "39"], dtype=object)[rng.integers(4, size=int((other < 0.006).sum()))]
    gender[(other >= 0.006) & (other < 0.01)] = "99"
    return gender


def _areas(rng: np.random.Generator, region: np.ndarray, ta: np.ndarray) -> np.ndarray:
    """Usual residence: mostly an SA2 in the provider's district, some elsewhere in its region."""
    sa2 = code_set("sa2")
    sa2_by_ta: dict[str, list[str]] = {}
    sa2_by_region: dict[str, list[str]] = {}
    for c in sa2:
        sa2_by_ta.setdefault(c.parent, []).append(c.code)  # type: ignore[arg-type]
    ta_region = {c.code: c.parent for c in code_set("territorial_authority")}
    for t, codes in sa2_by_ta.items():
        sa2_by_region.setdefault(ta_region[t], []).extend(codes)
    out = np.empty(len(region), dtype=object)
    in_district = rng.random(len(region)) < 0.82
    for t in np.unique(ta):
        where = np.flatnonzero((ta == t) & in_district)
        options = np.array(sa2_by_ta[t], dtype=object)
        out[where] = options[rng.integers(len(options), size=len(where))]
    for r in np.unique(region):
        where = np.flatnonzero((region == r) & ~in_district)
        options = np.array(sa2_by_region[r], dtype=object)
        out[where] = options[rng.integers(len(options), size=len(where))]
    return out


def _second_services(rng, rollout, home, first_start, dob, groups, region_of_contract, end):
    """A few persons are also served by a second provider in their region, in a service for the same kind of client."""
    contracts = rollout.contracts
    n = len(home)
    second = np.full(n, -1, dtype=np.int64)
    second_start = np.full(n, np.datetime64("NaT"), dtype="datetime64[D]")
    chosen = np.flatnonzero(rng.random(n) < CROSS_PROVIDER_SHARE)
    provider_of = np.array([c.provider_index for c in contracts])
    collection = np.array([day(c.collection_start) for c in contracts])
    candidates: dict[tuple[str, str], np.ndarray] = {}
    for i, (g, r) in enumerate(zip(groups, region_of_contract)):
        candidates.setdefault((g, r), []).append(i)  # type: ignore[arg-type]
    pick = rng.random(len(chosen))
    gap = rng.integers(30, 540, size=len(chosen)).astype("timedelta64[D]")
    ages = {line.code: (line.min_client_age, line.max_client_age) for line in rollout.service_lines}
    options_for: dict[int, list[int]] = {}
    for j, person in enumerate(chosen):
        c = int(home[person])
        if c not in options_for:
            options_for[c] = [o for o in candidates[(groups[c], region_of_contract[c])] if provider_of[o] != provider_of[c]]
        options = options_for[c]
        if not options:
            continue
        other = options[int(pick[j] * len(options))]
        begins = max(first_start[person] + gap[j], collection[other])
        lo, hi = ages[contracts[other].service_code]
        # Allow for the later engagements of the second service too: two years inside the range.
        age = (begins - dob[person]).astype(np.int64) / 365.25
        if begins <= day(end) - np.timedelta64(30, "D") and lo <= age <= hi - 2:
            second[person], second_start[person] = other, begins
    return second, second_start
