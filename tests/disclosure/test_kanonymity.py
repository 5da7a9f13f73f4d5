"""k-anonymity of person-level extracts: generalisation along hierarchies, then local suppression.

The data are synthetic but shaped like the ministry's: ten age bands, four genders, skewed level-1
ethnicity, iwi mostly missing, territorial authorities and their regions (read from the code sets'
CSV files, not through cldx.standard). Results are checked with the module's own check, with
pycanon's k_anonymity (an independent implementation on pandas) and, on small frames, against a
brute-force walk over the whole lattice.
"""

from __future__ import annotations

import time
from fractions import Fraction
from itertools import product
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cldx.disclosure.kanonymity import (
    ALL,
    MISSING,
    Hierarchy,
    band_levels,
    equivalence_class_sizes,
    is_k_anonymous,
    k_anonymise,
    mapping_levels,
)

CODESETS = Path(__file__).resolve().parents[2] / "cldx" / "standard" / "codesets"
AGE_BANDS = ["00-04", "05-09", "10-14", "15-19", "20-24", "25-29", "30-39", "40-49", "50-64", "65+"]


def _codes(name: str) -> pl.DataFrame:
    return pl.read_csv(CODESETS / name, infer_schema=False)


TA = _codes("territorial_authority.csv").filter(pl.col("region_code").is_not_null())
TA_REGION = dict(zip(TA["code"], TA["region_code"]))
IWI = _codes("iwi.csv").filter(pl.col("level") == "2")
IWI_REGION = dict(zip(IWI["code"], IWI["parent_code"]))


def hierarchies() -> list[Hierarchy]:
    return [
        Hierarchy(
            "age_band",
            band_levels([
                [("00-04", "05-09"), ("10-14", "15-19"), ("20-24", "25-29"), ("30-39", "40-49")],
                [("00-04", "05-09", "10-14", "15-19"), ("20-24", "25-29", "30-39", "40-49"), ("50-64", "65+")],
            ]),
            names=["age band", "10-year band", "20-year band", "all"],
        ),
        Hierarchy("gender", [ALL], names=["gender", "all"]),
        Hierarchy("ethnicity", [ALL], names=["ethnicity (level 1)", "all"]),
        Hierarchy("iwi", mapping_levels(IWI_REGION), names=["iwi", "iwi region", "all"]),
        Hierarchy("area", mapping_levels(TA_REGION), names=["territorial authority", "region", "all"]),
    ]


QIS = ["age_band", "gender", "ethnicity", "iwi", "area"]


def people(n: int, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    tas = TA["code"].to_list()
    weights = rng.pareto(1.2, len(tas)) + 0.2
    iwi = IWI["code"].to_list()
    iwi_weights = rng.pareto(1.0, len(iwi)) + 0.1
    iwi_values = rng.choice(iwi, n, p=iwi_weights / iwi_weights.sum())
    return pl.DataFrame({
        "person": np.arange(n),
        "age_band": rng.choice(AGE_BANDS, n, p=[.08, .09, .1, .12, .12, .11, .15, .11, .08, .04]),
        "gender": rng.choice(["1", "2", "3", "9"], n, p=[.46, .5, .02, .02]),
        "ethnicity": rng.choice(["1", "2", "3", "4", "5", "6", "9"], n, p=[.48, .27, .09, .1, .02, .01, .03]),
        "iwi": pl.Series([v if m else None for v, m in zip(iwi_values, rng.random(n) < 0.2)], dtype=pl.String),
        "area": rng.choice(tas, n, p=weights / weights.sum()),
        "outcome": rng.integers(0, 10, n),
    })


def classes_ok(frame: pl.DataFrame, columns: list[str], k: int) -> bool:
    """An independent check: every combination of values occurs at least k times."""
    counts: dict[tuple, int] = {}
    for row in frame.select(columns).iter_rows():
        counts[row] = counts.get(row, 0) + 1
    return all(c >= k for c in counts.values())


def suppressed_stars(result, hs: list[Hierarchy]) -> int:
    """Stars in the output that are not there because the whole column was generalised to ALL."""
    total = 0
    for h in hs:
        column = result.frame[h.column]
        if result.levels[h.column] == h.height and h.levels and h.levels[-1] == ALL:
            continue
        total += int((column == ALL).sum())
    return total


# --- Synthetic extract: own check and pycanon ---------------------------------------------------


@pytest.fixture(scope="module")
def extract() -> pl.DataFrame:
    return people(20_000, seed=7)


@pytest.mark.parametrize("k", [2, 5, 10])
def test_extract_is_k_anonymous(extract: pl.DataFrame, k: int) -> None:
    hs = hierarchies()
    result = k_anonymise(extract, hs, k=k)
    out = result.frame

    assert is_k_anonymous(out, QIS, k)
    assert classes_ok(out, QIS, k)
    assert result.min_class_size >= k
    assert out.columns == extract.columns
    assert out[QIS].null_count().sum_horizontal().item() == 0  # missing iwi reads as "none"
    assert result.suppressed_rows == extract.height - out.height
    assert suppressed_stars(result, hs) == result.suppressed_cells
    sizes = equivalence_class_sizes(out, QIS)
    assert result.equivalence_classes == sizes.height
    assert result.min_class_size == sizes["size"].min()
    assert sizes["size"].sum() == out.height
    # The non-quasi-identifying columns are kept as they were, in order.
    kept = extract.join(out.select("person"), on="person", how="semi", maintain_order="left")
    assert out["outcome"].equals(kept["outcome"])

    anonymity = pytest.importorskip("pycanon.anonymity", reason="pycanon (installed with --no-deps) cross-checks k")
    import pandas as pd

    as_pandas = pd.DataFrame(out.select(QIS).to_dict(as_series=False))
    assert anonymity.k_anonymity(as_pandas, QIS) >= k
    assert anonymity.k_anonymity(as_pandas, QIS) == result.min_class_size


def test_report_says_levels_and_counts(extract: pl.DataFrame) -> None:
    result = k_anonymise(extract, hierarchies(), k=5)
    lines = result.report
    for h in hierarchies():
        level = result.levels[h.column]
        assert f"{h.column}: {h.names[level]} (level {level} of {h.height})" in lines
    assert any(line.startswith(f"rows suppressed (removed): {result.suppressed_rows:,} of 20,000 (") for line in lines)
    assert any(line.startswith(f"cells suppressed (set to *): {result.suppressed_cells:,} of ") for line in lines)
    classes = f"equivalence classes: {result.equivalence_classes:,}; smallest class: {result.min_class_size:,}"
    assert f"{classes} (k = 5)" in lines


def test_missing_values_are_a_value_of_their_own() -> None:
    frame = pl.DataFrame({"iwi": [None] * 5 + ["0101"] * 5}, schema={"iwi": pl.String})
    result = k_anonymise(frame, [Hierarchy("iwi", mapping_levels(IWI_REGION))], k=5)
    assert result.levels == {"iwi": 0}
    assert result.frame["iwi"].to_list() == [MISSING] * 5 + ["0101"] * 5


# --- Minimal generalisation in cases worked by hand ---------------------------------------------


def test_already_anonymous_data_is_returned_unchanged() -> None:
    frame = pl.DataFrame({
        "age_band": ["00-04"] * 5 + ["05-09"] * 6,
        "area": ["001"] * 5 + ["002"] * 6,
        "outcome": list(range(11)),
    })
    hs = [Hierarchy("age_band", band_levels([[("00-04", "05-09")]])), Hierarchy("area", mapping_levels(TA_REGION))]
    result = k_anonymise(frame, hs, k=5)
    assert result.levels == {"age_band": 0, "area": 0}
    assert result.frame.equals(frame)
    assert (result.suppressed_rows, result.suppressed_cells) == (0, 0)
    assert (result.equivalence_classes, result.min_class_size) == (2, 5)


def _two_by_two(age_height: int) -> tuple[pl.DataFrame, list[Hierarchy]]:
    # 001 and 002 are both in Northland (01). Ages 00-04 / 05-09 merge into 00-09 at level 1.
    frame = pl.DataFrame({
        "age_band": ["00-04"] * 5 + ["05-09"] * 5 + ["00-04"] * 3 + ["05-09"] * 2,
        "area": ["001"] * 10 + ["002"] * 5,
    })
    bands = [[("00-04", "05-09")], [("00-04", "05-09", "10-14")]][:age_height - 1]
    hs = [Hierarchy("age_band", band_levels(bands)), Hierarchy("area", mapping_levels(TA_REGION))]
    return frame, hs


def test_least_generalisation_is_chosen_when_nothing_may_be_suppressed() -> None:
    # Level 0: the five rows of area 002 are in classes of 3 and 2. Age to 00-09 (loss 1/3) makes
    # classes of 10 and 5; area to region (loss 1/2) makes 8 and 7: age is generalised.
    frame, hs = _two_by_two(age_height=3)
    result = k_anonymise(frame, hs, k=5, max_suppression=0)
    assert result.levels == {"age_band": 1, "area": 0}
    assert result.frame["age_band"].unique().to_list() == ["00-09"]
    assert (result.suppressed_rows, result.suppressed_cells) == (0, 0)
    assert (result.equivalence_classes, result.min_class_size) == (2, 5)
    assert "age_band: generalised 1x (level 1 of 3)" in result.report


def test_prefer_breaks_ties_between_equal_losses() -> None:
    frame, hs = _two_by_two(age_height=2)  # both heights 2: age level 1 and area level 1 tie at 1/2
    assert k_anonymise(frame, hs, k=5, max_suppression=0, prefer=["age_band"]).levels == {"age_band": 0, "area": 1}
    assert k_anonymise(frame, hs, k=5, max_suppression=0, prefer=["area"]).levels == {"age_band": 1, "area": 0}


def test_suppression_within_budget_keeps_detail_else_the_search_moves_up() -> None:
    frame, hs = _two_by_two(age_height=3)
    # 5 of 15 rows are in small classes: a third.
    stay = k_anonymise(frame, hs, k=5, max_suppression=0.34)
    assert stay.levels == {"age_band": 0, "area": 0}
    # Both columns have two values; age comes first among equals: the five rows of 002 become
    # (*, 002), a class of five, and area keeps its detail.
    assert stay.suppressed_cells == 5 and stay.suppressed_rows == 0
    assert stay.frame.tail(5).rows() == [(ALL, "002")] * 5
    assert "rows touched by suppression: 5 (33.33%; at most 34.00% allowed)" in stay.report
    up = k_anonymise(frame, hs, k=5, max_suppression=0.33)
    assert up.levels == {"age_band": 1, "area": 0}


def test_cells_are_suppressed_before_rows_most_specific_column_first() -> None:
    frame = pl.DataFrame({"a": ["a", "a", "b", "c", "d", "d"], "b": ["p", "p", "p", "p", "q", "q"], "id": range(6)})
    hs = [Hierarchy("a", [ALL]), Hierarchy("b", [ALL])]
    result = k_anonymise(frame, hs, k=2, max_suppression=0.5)
    assert result.levels == {"a": 0, "b": 0}
    assert result.frame.rows() == [
        ("a", "p", 0), ("a", "p", 1), (ALL, "p", 2), (ALL, "p", 3), ("d", "q", 4), ("d", "q", 5),
    ]
    assert (result.suppressed_cells, result.suppressed_rows) == (2, 0)


def test_a_row_that_no_cell_suppression_fixes_is_removed() -> None:
    frame = pl.DataFrame({"a": ["a", "a", "b"], "b": ["p", "p", "q"]})
    result = k_anonymise(frame, [Hierarchy("a", [ALL]), Hierarchy("b", [ALL])], k=2, max_suppression=0.5)
    assert result.levels == {"a": 0, "b": 0}
    assert result.frame.rows() == [("a", "p"), ("a", "p")]
    assert (result.suppressed_rows, result.suppressed_cells) == (1, 0)
    assert "rows suppressed (removed): 1 of 3 (33.33%)" in result.report


def test_too_few_rows_for_k_are_all_removed() -> None:
    frame = pl.DataFrame({"a": ["x", "y", "z"]})
    result = k_anonymise(frame, [Hierarchy("a", [ALL])], k=5)
    assert result.frame.height == 0 and result.suppressed_rows == 3
    assert result.min_class_size == 0 and result.equivalence_classes == 0
    assert any("the one that touched fewest rows was used" in line for line in result.report)


# --- Helpers and validation ---------------------------------------------------------------------


def test_band_levels_merge_labels_and_refuse_splits() -> None:
    levels = band_levels([[("00-04", "05-09")], [("00-04", "05-09", "10-14")], [("50-64", "65+")]], to_all=False)
    assert levels[0] == {"00-04": "00-09", "05-09": "00-09"}
    assert levels[1] == {"00-09": "00-14", "10-14": "00-14"}
    assert levels[2] == {"50-64": "50+", "65+": "50+"}
    assert band_levels([[("a", "b")]]) == [{"a": "a/b", "b": "a/b"}, ALL]
    with pytest.raises(ValueError, match="splits"):
        band_levels([[("a", "b")], [("a", "c")]])


def test_equivalence_class_sizes_and_check() -> None:
    frame = pl.DataFrame({"a": ["x", "x", None, "y"], "b": ["p", "p", "p", "p"]})
    sizes = equivalence_class_sizes(frame, ["a", "b"])
    assert sizes.rows() == [("y", "p", 1), (None, "p", 1), ("x", "p", 2)]
    assert is_k_anonymous(frame, ["b"], 4) and not is_k_anonymous(frame, ["a", "b"], 2)
    assert is_k_anonymous(frame.head(0), ["a"], 5)


def test_bad_arguments_are_refused() -> None:
    frame = pl.DataFrame({"a": ["x"]})
    with pytest.raises(ValueError, match="no such columns"):
        k_anonymise(frame, [Hierarchy("b", [ALL])])
    with pytest.raises(ValueError, match="k must be"):
        k_anonymise(frame, [Hierarchy("a", [ALL])], k=0)
    with pytest.raises(ValueError, match="prefer"):
        k_anonymise(frame, [Hierarchy("a", [ALL])], prefer=["b"])
    with pytest.raises(ValueError, match="names"):
        Hierarchy("a", [ALL], names=["only one"])


def test_100k_rows_with_five_quasi_identifiers_is_quick() -> None:
    frame = people(100_000, seed=3)
    start = time.perf_counter()
    result = k_anonymise(frame, hierarchies(), k=5)
    elapsed = time.perf_counter() - start
    assert is_k_anonymous(result.frame, QIS, 5)
    assert elapsed < 10, f"took {elapsed:.1f} s"


# --- Property: small random frames against a brute-force walk of the lattice --------------------

LETTERS = "abcdef"
GROUP = {"a": "ab", "b": "ab", "c": "cd", "d": "cd", "e": "ef", "f": "ef"}


def _hierarchy(name: str, height: int) -> Hierarchy:
    return Hierarchy(name, [GROUP, ALL][2 - height:])


def _generalised(value: str | None, height: int, level: int) -> str:
    value = MISSING if value is None else value
    steps = [lambda v: GROUP.get(v, v), lambda v: ALL][2 - height:]
    for step in steps[:level]:
        value = step(value)
    return value


@st.composite
def small_frames(draw):
    n_qis = draw(st.integers(1, 3))
    heights = draw(st.lists(st.integers(0, 2), min_size=n_qis, max_size=n_qis))
    n = draw(st.integers(0, 40))
    columns = {
        f"q{i}": draw(st.lists(st.one_of(st.none(), st.sampled_from(LETTERS)), min_size=n, max_size=n))
        for i in range(n_qis)
    }
    frame = pl.DataFrame({**columns, "id": list(range(n))}, schema={**{c: pl.String for c in columns}, "id": pl.Int64})
    return frame, heights


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=small_frames(), k=st.integers(1, 6), max_suppression=st.sampled_from([0.0, 0.1, 0.3, 1.0]))
def test_property_k_anonymous_and_least_loss(data, k: int, max_suppression: float) -> None:
    frame, heights = data
    names = [c for c in frame.columns if c != "id"]
    hs = [_hierarchy(c, h) for c, h in zip(names, heights)]
    result = k_anonymise(frame, hs, k=k, max_suppression=max_suppression)
    out = result.frame

    assert out.height <= frame.height
    assert out.height == 0 or classes_ok(out, names, k)
    assert result.suppressed_rows == frame.height - out.height
    assert result.equivalence_classes == (equivalence_class_sizes(out, names).height if out.height else 0)

    # Every kept row is its original row generalised to the chosen levels, or ALL.
    original = {row[-1]: row[:-1] for row in frame.iter_rows()}
    cells = 0
    for row in out.iter_rows():
        for value, source, h in zip(row[:-1], original[row[-1]], hs):
            expected = _generalised(source, h.height, result.levels[h.column])
            assert value in (expected, ALL)
            cells += value == ALL and expected != ALL
    assert cells == result.suppressed_cells

    # Brute force: rows in small classes at every node; the chosen node has the least loss.
    def touched(node: tuple[int, ...]) -> int:
        counts: dict[tuple, int] = {}
        keys = [
            tuple(_generalised(v, h.height, l) for v, h, l in zip(row[:-1], hs, node)) for row in frame.iter_rows()
        ]
        for key in keys:
            counts[key] = counts.get(key, 0) + 1
        return sum(1 for key in keys if counts[key] < k)

    def loss(node: tuple[int, ...]) -> Fraction:
        return sum((Fraction(l, h) for l, h in zip(node, heights) if h), Fraction(0))

    nodes = list(product(*(range(h + 1) for h in heights)))
    ok = [node for node in nodes if touched(node) <= max_suppression * frame.height]
    chosen = tuple(result.levels[c] for c in names)
    if ok:
        assert chosen in ok
        assert loss(chosen) == min(loss(node) for node in ok)
        assert touched(chosen) == min(touched(node) for node in ok if loss(node) == loss(chosen))
    else:
        assert touched(chosen) == min(touched(node) for node in nodes)


def test_entropy_loss_gives_up_the_column_that_carries_least(extract: pl.DataFrame) -> None:
    """With `loss="entropy"` the result is as k-anonymous as ever (pycanon agrees), and among the
    nodes that satisfy k the chosen one loses the least entropy: checked against every node."""
    from itertools import product

    import numpy as np

    from cldx.disclosure import kanonymity as kan

    hs = hierarchies()
    result = k_anonymise(extract, hs, k=5, loss="entropy", max_suppression=0.05)
    out = result.frame
    assert is_k_anonymous(out, QIS, 5)
    base = extract.with_columns(pl.col(c).cast(pl.String).fill_null(MISSING) for c in QIS)
    combos = base.group_by(QIS).agg(pl.len().alias("n"))
    weights = combos["n"].to_numpy().astype(np.int64)
    columns = [kan._Column(h, combos[h.column].to_numpy()) for h in hs]
    lost = [kan._entropy_lost(c, weights) for c in columns]
    assert all(loss[0] == 0 and loss[-1] == 1 and loss == sorted(loss) for loss in lost)

    def cost(node):
        return sum(lost[i][level] for i, level in enumerate(node))

    satisfying = []
    for node in product(*(range(h.height + 1) for h in hs)):
        sizes = kan._class_sizes([c.codes[l] for c, l in zip(columns, node)], [c.radix(l) for c, l in zip(columns, node)], weights)
        if weights[sizes < 5].sum() <= 0.05 * extract.height:
            satisfying.append(cost(node))
    chosen = tuple(result.levels[c] for c in QIS)
    assert cost(chosen) == pytest.approx(min(satisfying))
    with pytest.raises(ValueError):
        k_anonymise(extract, hs, k=5, loss="fewest")
