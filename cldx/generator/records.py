"""One provider's six record files, generated from its members of the client population.

Everything is vectorised with NumPy: a provider is a few thousand rows at a time, and a
million clients are a few hundred providers. Values are produced as text exactly as the
provider's system writes them (its date style, its coding level), then `faults` may spoil some.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import polars as pl

from cldx.standard import RECORD_TYPES, code_set, load_instruments

from .people import GIVEN_NAMES, POOLS
from .persons import Persons, day
from .rollout import PROFILES, ProviderPlan, Rollout

LOWER_IS_BETTER_MEASURES = {"substance_use", "child_behaviour"}
YES_NO_MEASURES = {"housing_stable", "income_stable", "immunisation", "enrolled_services"}
PERCENT_MEASURES = {"school_attendance"}
END_REASONS_NOT_COMPLETED = np.array(["withdrew", "moved", "transferred", "no_contact", "ineligible", "other"], dtype=object)
RELATIONSHIPS = (("child", 0.85), ("stepchild", 0.04), ("grandchild", 0.04), ("whangai", 0.03), ("foster", 0.02), ("other", 0.02))


@dataclass
class ProviderFiles:
    """Text frames, one per record type, with the standard's columns in order."""

    provider: ProviderPlan
    frames: dict[str, pl.DataFrame]


def _text_dates(values: np.ndarray, style: str) -> np.ndarray:
    """Dates as the provider's system writes them: ISO, or New Zealand day-first; blank for none."""
    iso = np.datetime_as_string(values.astype("datetime64[D]"), unit="D").astype("<U10")
    if style == "nz":
        cut = np.strings.slice
        iso = np.strings.add(np.strings.add(np.strings.add(np.strings.add(cut(iso, 8, 10), "/"), cut(iso, 5, 7)), "/"), cut(iso, 0, 4))
    return np.where(np.isnat(values), "", iso).astype(object)


def _frame(record: str, columns: dict[str, np.ndarray], n: int) -> pl.DataFrame:
    """A text frame in the standard's column order; columns not given are blank."""
    data = {}
    for name in RECORD_TYPES[record].columns:
        value = columns.get(name)
        data[name] = pl.Series(name, [""] * n if value is None else np.asarray(value).astype(str), dtype=pl.String)
    return pl.DataFrame(data)


def provider_files(rollout: Rollout, persons: Persons, provider: ProviderPlan, end: date, seed: int) -> ProviderFiles:
    rng = np.random.default_rng([seed, 2, provider.index])
    contract_ids = [i for i, c in enumerate(rollout.contracts) if c.provider_index == provider.index]
    # Members: (person, contract, start of their first engagement here).
    members, member_contract, member_start = [], [], []
    for c in contract_ids:
        home = np.flatnonzero(persons.home == c)
        second = np.flatnonzero(persons.second == c)
        members += [home, second]
        member_contract += [np.full(len(home), c), np.full(len(second), c)]
        member_start += [persons.first_start[home], persons.second_start[second]]
    person = np.concatenate(members) if members else np.array([], dtype=np.int64)
    contract = np.concatenate(member_contract).astype(np.int64) if members else np.array([], dtype=np.int64)
    start = np.concatenate(member_start).astype("datetime64[D]") if members else np.array([], dtype="datetime64[D]")
    # A person served under two contracts of one provider is one client there.
    person, first = np.unique(person, return_index=True)
    contract, start = contract[first], start[first]
    order = rng.permutation(len(person))  # client refs are given in order of arrival, not of person id
    person, contract, start = person[order], contract[order], start[order]
    order = np.argsort(start, kind="stable")
    person, contract, start = person[order], contract[order], start[order]

    n = len(person)
    style = provider.date_style
    ref_prefix = "C-" if provider.index % 3 else f"{provider.code}-"
    client_ref = np.array([f"{ref_prefix}{i + 1:06d}" for i in range(n)], dtype=object)
    consent = persons.consents[person]
    # Clients are told at intake that their data is shared; a missing date is a planted fault.
    notified = start - rng.integers(0, 4, size=n).astype("timedelta64[D]")
    notified_text = _text_dates(notified, style)
    area = persons.sa2[person].copy()
    ta_only = rng.random(n) < 0.05
    area[ta_only] = np.array([code_set("sa2").get(a).parent for a in area[ta_only]], dtype=object)
    ethnicity = persons.ethnicity[person].copy()
    if provider.index % 4 == 1:  # some case systems record ethnicity at level 4
        ethnicity = np.array([_level4(code) for code in ethnicity], dtype=object)
    gender = persons.gender[person].copy()
    if provider.index % 5 == 2:  # and some only male/female at level 1
        gender = np.array([g if g.startswith("9") else g[0] for g in gender], dtype=object)
    clients = _frame(
        "client",
        {
            "client_ref": client_ref,
            "family_name": np.where(consent, persons.family_name[person], ""),
            "given_names": np.where(consent, persons.given_names[person], ""),
            "date_of_birth": np.where(consent, _text_dates(persons.dob[person], style), ""),
            "gender": gender,
            "primary_ethnicity": ethnicity,
            "iwi_1": persons.iwi[person, 0],
            "iwi_2": persons.iwi[person, 1],
            "iwi_3": persons.iwi[person, 2],
            "area": area,
            "notified_of_sharing_on": notified_text,
            "identity_consent": np.where(consent, "y", "n").astype(object),
        },
        n,
    )

    engagements, eng = _engagements(rng, rollout, provider, client_ref, contract, start, end, style)
    return ProviderFiles(
        provider,
        {
            "client": clients,
            "dependant": _dependants(rng, persons, provider, person, client_ref, contract, start, end, rollout, style),
            "engagement": engagements,
            "attendance": _attendance(rng, provider, eng, end, style),
            "assessment": _assessments(rng, provider, eng, style),
            "outcome": _outcomes(rng, provider, eng, style),
        },
    )


_LEVEL4: dict[str, str] = {}


def _level4(code: str) -> str:
    """The first level-4 code under a level-2 code (11 -> 11111 New Zealand European)."""
    if code not in _LEVEL4:
        ethnicity = code_set("ethnicity")
        _LEVEL4[code] = next((c.code for c in ethnicity.at_levels((4,)) if ethnicity.ancestor(c.code, 2) and ethnicity.ancestor(c.code, 2).code == code), code)
    return _LEVEL4[code]


@dataclass
class Engagements:
    """Engagement facts kept as arrays for the files that hang off engagements."""

    ref: np.ndarray
    line: np.ndarray
    start: np.ndarray
    end: np.ndarray  # NaT while open
    completed: np.ndarray


def _engagements(rng, rollout, provider, client_ref, contract, start, end, style):
    lines = np.array([rollout.contracts[c].service_code for c in contract], dtype=object)
    months = np.array([PROFILES[s].months for s in lines], dtype=float)
    last_start = day(end) - np.timedelta64(30, "D")
    # Clients come back: a school child is seen again next term, a family re-referred. Each
    # client has a first engagement and then more, one after another, while the period lasts.
    wanted = 1 + np.minimum(rng.poisson(4.0, size=len(start)), 8)
    idx_parts, start_parts = [np.arange(len(start))], [start]
    current, who = start, np.arange(len(start))
    for round_ in range(1, int(wanted.max(initial=1))):
        gap = np.maximum(rng.lognormal(np.log(months[who] * 30.4), 0.45), 14) + rng.integers(7, 60, size=len(who))
        current = current + gap.astype(np.int64).astype("timedelta64[D]")
        keep = (wanted[who] > round_) & (current <= last_start)
        who, current = who[keep], current[keep]
        idx_parts.append(who)
        start_parts.append(current)
    idx = np.concatenate(idx_parts)
    e_start = np.concatenate(start_parts)
    e_length = np.maximum(rng.lognormal(np.log(months[idx] * 30.4), 0.45), 14).astype(np.int64)
    # An engagement ends before the client's next one begins.
    e_end = e_start + e_length.astype("timedelta64[D]")
    following = np.full(len(idx), np.datetime64("NaT"), dtype="datetime64[D]")
    offset = len(idx_parts[0])
    for part_a, part_b in zip(idx_parts, idx_parts[1:]):
        # part_b is a subset of part_a in the same client order; map each next start back.
        position = np.searchsorted(part_a, part_b)
        following[offset - len(part_a) + position] = e_start[offset: offset + len(part_b)]
        offset += len(part_b)
    e_end = np.where(~np.isnat(following) & (e_end >= following), following - np.timedelta64(1, "D"), e_end)
    open_ = e_end > day(end)
    e_end = np.where(open_, np.datetime64("NaT"), e_end)
    completed = ~open_ & (rng.random(len(idx)) < provider.completion_rate)
    reason = np.where(open_, "", np.where(completed, "completed", END_REASONS_NOT_COMPLETED[rng.integers(len(END_REASONS_NOT_COMPLETED), size=len(idx))])).astype(object)
    order = np.argsort(e_start, kind="stable")
    idx, e_start, e_end, completed, reason = idx[order], e_start[order], e_end[order], completed[order], reason[order]
    refs = np.array([f"E-{i + 1:06d}" for i in range(len(idx))], dtype=object)
    frame = _frame(
        "engagement",
        {
            "engagement_ref": refs,
            "client_ref": client_ref[idx],
            "service_code": lines[idx],
            "start_date": _text_dates(e_start, style),
            "end_date": _text_dates(e_end, style),
            "end_reason": reason,
        },
        len(idx),
    )
    return frame, Engagements(refs, lines[idx], e_start, e_end, completed)


def _dependants(rng, persons, provider, person, client_ref, contract, start, end, rollout, style):
    lines = [rollout.contracts[c].service_code for c in contract]
    mean = np.array([PROFILES[s].dependants for s in lines], dtype=float)
    count = rng.poisson(mean)
    owner = np.repeat(np.arange(len(person)), count)
    nth = np.concatenate([np.arange(k) for k in count]) if len(count) else np.array([], dtype=np.int64)
    # The first dependant of a parent is the infant the service began around; others are older.
    infant = (nth == 0) & np.isin(np.array(lines, dtype=object)[owner], ["FS", "ES", "SF", "PAR", "CFS"])
    offset = np.where(infant, rng.integers(-200, 60, size=len(owner)), rng.integers(400, 4000, size=len(owner)))
    dob = start[owner] - offset.astype("timedelta64[D]")
    born = dob <= day(end)
    owner, nth, dob = owner[born], nth[born], dob[born]
    pool = persons.pool[person[owner]]
    given = np.empty(len(owner), dtype=object)
    for k, name in enumerate(POOLS):
        where = np.flatnonzero(pool == k)
        names = np.array(GIVEN_NAMES[name], dtype=object)
        given[where] = names[rng.integers(len(names), size=len(where))]
    same_family = rng.random(len(owner)) < 0.7
    all_family = persons.family_name[rng.integers(len(persons.family_name), size=len(owner))] if len(owner) else np.array([], dtype=object)
    family = np.where(same_family, persons.family_name[person[owner]], all_family)
    consent = persons.consents[person[owner]]
    codes, p = zip(*RELATIONSHIPS)
    relationship = np.array(codes, dtype=object)[rng.choice(len(codes), size=len(owner), p=np.array(p) / sum(p))]
    return _frame(
        "dependant",
        {
            "dependant_ref": np.array([f"D-{i + 1:06d}" for i in range(len(owner))], dtype=object),
            "client_ref": client_ref[owner],
            "family_name": np.where(consent, family, ""),
            "given_names": np.where(consent, given, ""),
            "date_of_birth": np.where(consent, _text_dates(dob, style), ""),
            "relationship": relationship,
        },
        len(owner),
    )


def _attendance(rng, provider, eng: Engagements, end, style):
    spacing = np.array([PROFILES[s].session_days for s in eng.line], dtype=np.int64)
    last = np.where(np.isnat(eng.end), day(end), eng.end)
    span = (last - eng.start).astype(np.int64)
    sessions = np.clip(span // spacing, 1, 16)
    which = np.repeat(np.arange(len(eng.ref)), sessions)
    nth = np.concatenate([np.arange(k) for k in sessions]) if len(sessions) else np.array([], dtype=np.int64)
    jitter = (rng.random(len(which)) * np.minimum(spacing[which], 4)).astype(np.int64)
    when = eng.start[which] + (nth * spacing[which] + jitter).astype("timedelta64[D]")
    keep = when <= last[which]
    which, when = which[keep], when[keep]
    attended = rng.random(len(which)) < provider.attendance_rate
    minutes = np.array([30, 45, 60, 60, 90, 120])[rng.integers(6, size=len(which))]
    return _frame(
        "attendance",
        {
            "engagement_ref": eng.ref[which],
            "session_date": _text_dates(when, style),
            "attended": np.where(attended, "y", "n").astype(object),
            "duration_minutes": np.where(attended, minutes.astype(str), "").astype(object),
        },
        len(which),
    )


def _assessments(rng, provider, eng: Engagements, style):
    instruments = load_instruments()
    rows = {k: [] for k in ("engagement_ref", "phase", "instrument", "domain", "score", "assessed_on")}
    assessed = rng.random(len(eng.ref)) < 0.85
    for line in np.unique(eng.line):
        profile = PROFILES[line]
        if profile.instrument is None:
            continue
        instrument = instruments[profile.instrument]
        who = np.flatnonzero((eng.line == line) & assessed)
        pre_on = eng.start[who] + rng.integers(0, 15, size=len(who)).astype("timedelta64[D]")
        post = eng.completed[who] & (rng.random(len(who)) < 0.92)
        post_on = np.maximum(eng.end[who] - rng.integers(0, 11, size=len(who)).astype("timedelta64[D]"), pre_on)
        for domain_code in profile.domains:
            domain = instrument.domains[domain_code]
            width = domain.max_score - domain.min_score
            sign = 1 if domain.better == "higher" else -1
            # Start somewhere on the worse side; providers differ in how far clients move.
            worse_side = rng.beta(2.2, 3.0, size=len(who))
            pre = np.where(sign > 0, domain.min_score + worse_side * width, domain.max_score - worse_side * width)
            room = (domain.max_score - pre) if sign > 0 else (pre - domain.min_score)
            gain = room * np.clip(rng.normal(0.22 + 0.12 * provider.quality, 0.18, size=len(who)), -0.3, 0.9)
            post_score = pre + sign * gain
            pre_score = np.round(np.clip(pre, domain.min_score, domain.max_score)).astype(np.int64)
            post_score = np.round(np.clip(post_score, domain.min_score, domain.max_score)).astype(np.int64)
            for phase, mask, score, on in (("pre", np.ones(len(who), bool), pre_score, pre_on), ("post", post, post_score, post_on)):
                rows["engagement_ref"].append(eng.ref[who][mask])
                rows["phase"].append(np.full(int(mask.sum()), phase, dtype=object))
                rows["instrument"].append(np.full(int(mask.sum()), instrument.code, dtype=object))
                rows["domain"].append(np.full(int(mask.sum()), domain_code, dtype=object))
                rows["score"].append(score[mask].astype(str).astype(object))
                rows["assessed_on"].append(_text_dates(on[mask], style))
    return _sorted_frame("assessment", rows, ["engagement_ref", "phase", "domain"])


def _outcomes(rng, provider, eng: Engagements, style):
    dimension_of = {c.code: c.parent for c in code_set("outcome_measure")}
    rows = {k: [] for k in ("engagement_ref", "dimension", "measure", "baseline", "result", "better_off", "measured_on")}
    closed = ~np.isnat(eng.end)
    for line in np.unique(eng.line):
        measures = PROFILES[line].measures
        who = np.flatnonzero((eng.line == line) & closed)
        how_many = np.minimum(1 + (rng.random(len(who)) < 0.5), len(measures))
        first = rng.integers(len(measures), size=len(who))
        for k in range(2):
            chosen = who[how_many > k]
            measure_index = (first[how_many > k] + k) % len(measures)
            for m_i, measure in enumerate(measures):
                target = chosen[measure_index == m_i]
                if not len(target):
                    continue
                success = 0.3 + 0.25 * eng.completed[target] + 0.12 * provider.quality
                if measure in YES_NO_MEASURES:
                    baseline = (rng.random(len(target)) < 0.2).astype(np.int64)
                    result = np.maximum(baseline, rng.random(len(target)) < success + 0.1).astype(np.int64)
                    better = result > baseline
                elif measure in PERCENT_MEASURES:
                    baseline = rng.integers(40, 90, size=len(target))
                    result = np.clip(baseline + np.round(rng.normal(12 * (success - 0.35), 8)), 0, 100).astype(np.int64)
                    better = result > baseline
                else:
                    baseline = rng.integers(1, 4, size=len(target)) if measure not in LOWER_IS_BETTER_MEASURES else rng.integers(3, 6, size=len(target))
                    change = (rng.random(len(target)) < success).astype(np.int64) * rng.integers(1, 3, size=len(target))
                    result = np.clip(baseline + (change if measure not in LOWER_IS_BETTER_MEASURES else -change), 1, 5)
                    better = result != baseline
                rows["engagement_ref"].append(eng.ref[target])
                rows["dimension"].append(np.full(len(target), dimension_of[measure], dtype=object))
                rows["measure"].append(np.full(len(target), measure, dtype=object))
                rows["baseline"].append(baseline.astype(str).astype(object))
                rows["result"].append(result.astype(str).astype(object))
                rows["better_off"].append(np.where(better, "y", "n").astype(object))
                rows["measured_on"].append(_text_dates(eng.end[target], style))
    return _sorted_frame("outcome", rows, ["engagement_ref", "dimension", "measure"])


def _sorted_frame(record: str, rows: dict[str, list[np.ndarray]], by: list[str]) -> pl.DataFrame:
    columns = {k: (np.concatenate(v) if v else np.array([], dtype=object)) for k, v in rows.items()}
    n = len(columns[by[0]])
    return _frame(record, columns, n).sort(by, maintain_order=True)
