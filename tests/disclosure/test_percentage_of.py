"""percentage_of: a percentage of released counts is computed from the released (rounded) values,
hidden with them, capped at 100 when rounding puts the part above the whole, and exact only for a
provider's own exact figures."""

from __future__ import annotations

import polars as pl
import pytest

from cldx.disclosure import exact_table, percentage, percentage_of, protect

from .conftest import KEY, T

# Many cells whose counts are not multiples of 3, so RR3 moves most of them.
AREAS = [f"area {i:02d}" for i in range(30)]
MEASURED = pl.DataFrame({"area": AREAS, "count": [13 + (i % 7) * 5 + (i % 2) for i in range(30)]})
BETTER = MEASURED.with_columns(count=pl.col("count") * 4 // 7)


def released(frame: pl.DataFrame, measure: str, **options):
    return protect(frame, key=KEY, measure=measure, threshold=options.pop("threshold", T), **options)


def test_computed_from_the_released_counts_not_the_exact_ones():
    measured, better = released(MEASURED, "people measured"), released(BETTER, "people better off")
    exact = dict(zip(AREAS, zip(BETTER["count"], MEASURED["count"])))
    differs = 0
    for area in AREAS:
        x, n = better.get(area=area), measured.get(area=area)
        share = percentage_of(x, n, threshold=T)
        assert not share.suppressed and not share.exact
        assert share.value == round(100 * x.value / n.value, 1)
        # The interval too is the Wilson interval of the released counts.
        reference = percentage(x.value, n.value)
        assert (share.value, share.low, share.high) == (reference.value, reference.low, reference.high)
        differs += share.value != round(100 * exact[area][0] / exact[area][1], 1)
    assert differs > len(AREAS) // 2  # the exact percentage would have given the exact counts back


def test_hidden_when_a_count_is_suppressed_or_the_released_base_is_small():
    measured = released(pl.DataFrame({"area": ["a", "b", "c"], "count": [3, 40, 0]}), "people measured")
    better = released(pl.DataFrame({"area": ["a", "b", "c"], "count": [2, 4, 0]}), "people better off",
                      forced=measured.suppressed_cells())
    assert percentage_of(better.get(area="a"), measured.get(area="a")).suppressed  # both suppressed
    assert percentage_of(better.get(area="b"), measured.get(area="b")).suppressed  # the part suppressed
    assert percentage_of(better.get(area="c"), measured.get(area="c")).suppressed  # nobody: a base of 0
    # A released base under the threshold (a table protected with a lower threshold) is hidden too.
    loose = released(pl.DataFrame({"area": ["a"], "count": [2]}), "people", threshold=1)
    assert loose.get(area="a").value == 3
    assert percentage_of(loose.get(area="a"), loose.get(area="a"), threshold=T).suppressed
    assert not percentage_of(loose.get(area="a"), loose.get(area="a"), threshold=3).suppressed


def test_capped_at_100_when_rounding_puts_the_part_above_the_whole():
    whole = pl.DataFrame({"area": AREAS, "count": [10] * len(AREAS)})
    part = whole.with_columns(count=pl.lit(10))
    measured, better = released(whole, "people measured"), released(part, "people better off")
    above = [a for a in AREAS if better.get(area=a).value > measured.get(area=a).value]
    assert above  # 10 goes to 9 or 12, independently in each table
    for area in above:
        share = percentage_of(better.get(area=area), measured.get(area=area))
        assert share.value == 100.0 and share.high == 100.0 and share.low < 100.0


def test_a_providers_own_exact_figures_give_an_exact_percentage():
    own = exact_table(pl.DataFrame({"area": ["a", "b"], "count": [13, 0]}), measure="people measured", provider="P0001")
    better = exact_table(pl.DataFrame({"area": ["a", "b"], "count": [7, 0]}), measure="people better off", provider="P0001")
    share = percentage_of(better.get(area="a"), own.get(area="a"))
    assert share.exact and not share.suppressed and share.value == 53.8
    assert share.low < 53.8 < share.high
    # Exact figures have no threshold (they are the provider's own), but 0 of 0 is no percentage.
    assert percentage_of(better.get(area="b"), own.get(area="b")).suppressed
    # An exact figure over a controlled one mixes readers.
    controlled = released(MEASURED, "people measured")
    with pytest.raises(ValueError):
        percentage_of(better.get(area="a"), controlled.get(area=AREAS[0]))


@pytest.mark.parametrize("numerator, base", [(7, 13), (7.0, 13.0), (None, None), ("7", "13")])
def test_bare_numbers_are_refused(numerator, base):
    measured = released(MEASURED, "people measured")
    with pytest.raises(TypeError):
        percentage_of(numerator, base)
    with pytest.raises(TypeError):
        percentage_of(numerator, measured.get(area=AREAS[0]))
    with pytest.raises(TypeError):
        percentage_of(measured.get(area=AREAS[0]), base)


def test_a_statistic_is_not_a_count():
    measured = released(MEASURED, "people measured")
    with pytest.raises(TypeError):
        percentage_of(percentage(7, 13), measured.get(area=AREAS[0]))
