"""Estimates with uncertainty for the outcome, provider-comparison and cohort reports.

Owns the arithmetic only: paired change, two-group mean and proportion differences with effect
sizes, Wilson intervals, funnel-plot control limits (Spiegelhalter 2005, "Funnel plots for
comparing institutional performance", Statistics in Medicine 24:1185-1202) and indirect
standardisation for case mix. Pure functions: arrays, counts or a polars frame in, small frozen
dataclasses, dicts or a frame out. Nothing here reads the store, and disclosure control (suppression,
rounding) is the caller's job, applied to what these functions return.

Conventions: too little data gives None (or a null column) rather than an error; impossible data
(x > n, mismatched lengths, missing or non-finite values) raises ValueError. `confidence` and funnel
`levels` are two-sided coverages, e.g. 0.95.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
from numpy.typing import ArrayLike, NDArray
from scipy import stats

FUNNEL_LEVELS: tuple[float, ...] = (0.95, 0.998)

FunnelLimits = dict[float, tuple[NDArray[np.float64], NDArray[np.float64]]]


@dataclass(frozen=True)
class MeanEstimate:
    """A mean with its standard deviation and a t confidence interval (None when n is too small)."""

    n: int
    mean: float | None
    sd: float | None
    low: float | None
    high: float | None


@dataclass(frozen=True)
class EffectEstimate:
    """Group a minus group b: the raw difference with its interval, and a standardised effect size.

    For means the effect size is Hedges' g, for proportions Cohen's h.
    """

    n_a: int
    n_b: int
    difference: float | None
    low: float | None
    high: float | None
    effect_size: float | None
    effect_low: float | None
    effect_high: float | None


def _check_confidence(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")


def _finite_array(values: ArrayLike, name: str) -> NDArray[np.float64]:
    array = np.asarray(values, dtype=float).ravel()
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} has missing or non-finite values")
    return array


def _two_sided_z(confidence: float) -> float:
    return float(stats.norm.ppf((1 + confidence) / 2))


def _t_interval(mean: float, sd: float, n: int, confidence: float) -> tuple[float, float]:
    half_width = float(stats.t.ppf((1 + confidence) / 2, n - 1)) * sd / math.sqrt(n)
    return mean - half_width, mean + half_width


def paired_change(pre: ArrayLike, post: ArrayLike, *, confidence: float = 0.95) -> MeanEstimate:
    """Mean of post - pre over paired observations, with a t interval on n - 1 degrees of freedom.

    n = 0 gives mean None; n < 2 gives sd, low and high None.
    """
    _check_confidence(confidence)
    before = _finite_array(pre, "pre")
    after = _finite_array(post, "post")
    if before.shape != after.shape:
        raise ValueError(f"pre and post must pair up: {before.size} pre values, {after.size} post values")
    change = after - before
    n = int(change.size)
    if n == 0:
        return MeanEstimate(0, None, None, None, None)
    mean = float(change.mean())
    if n < 2:
        return MeanEstimate(n, mean, None, None, None)
    sd = float(change.std(ddof=1))
    low, high = _t_interval(mean, sd, n, confidence)
    return MeanEstimate(n, mean, sd, low, high)


def mean_difference(a: ArrayLike, b: ArrayLike, *, confidence: float = 0.95) -> EffectEstimate:
    """Mean of a minus mean of b for two independent groups, with Welch's t interval and Hedges' g.

    Interval: Welch's, unequal variances, Welch-Satterthwaite degrees of freedom. When both groups
    have zero variance the interval is the difference itself (the data show no spread at all).

    Effect size: Hedges' g = J * (mean_a - mean_b) / s_pooled, where s_pooled is the pooled SD on
    n_a + n_b - 2 degrees of freedom and J = 1 - 3 / (4 (n_a + n_b) - 9) is Hedges' usual
    approximation to the small-sample bias correction (the one statsmodels' `effectsize_smd` and
    Borenstein et al. 2009 use). Its interval is g +/- z * sqrt(var(g)) with the large-sample
    variance var(g) = (n_a + n_b) / (n_a n_b) + g^2 / (2 (n_a + n_b)) (Hedges & Olkin 1985).
    g is None when the pooled SD is zero.

    Both groups need at least 2 values for anything but the counts; otherwise the rest is None.
    """
    _check_confidence(confidence)
    group_a = _finite_array(a, "a")
    group_b = _finite_array(b, "b")
    n_a, n_b = int(group_a.size), int(group_b.size)
    if n_a < 2 or n_b < 2:
        return EffectEstimate(n_a, n_b, None, None, None, None, None, None)

    difference = float(group_a.mean() - group_b.mean())
    var_a, var_b = float(group_a.var(ddof=1)), float(group_b.var(ddof=1))
    share_a, share_b = var_a / n_a, var_b / n_b
    standard_error = math.sqrt(share_a + share_b)
    if standard_error == 0:
        low = high = difference
    else:
        # Welch-Satterthwaite df written with the shares' weights, so tiny variances cannot underflow.
        weight_a, weight_b = share_a / (share_a + share_b), share_b / (share_a + share_b)
        welch_df = 1 / (weight_a**2 / (n_a - 1) + weight_b**2 / (n_b - 1))
        half_width = float(stats.t.ppf((1 + confidence) / 2, welch_df)) * standard_error
        low, high = difference - half_width, difference + half_width

    pooled_sd = math.sqrt(((n_a - 1) * var_a + (n_b - 1) * var_b) / (n_a + n_b - 2))
    if pooled_sd == 0:
        return EffectEstimate(n_a, n_b, difference, low, high, None, None, None)
    total = n_a + n_b
    hedges_g = (1 - 3 / (4 * total - 9)) * difference / pooled_sd
    g_se = math.sqrt(total / (n_a * n_b) + hedges_g**2 / (2 * total))
    z = _two_sided_z(confidence)
    return EffectEstimate(n_a, n_b, difference, low, high, hedges_g, hedges_g - z * g_se, hedges_g + z * g_se)


def _check_count(x: int, n: int) -> None:
    if n < 0 or not 0 <= x <= max(n, 0):
        raise ValueError(f"need 0 <= x <= n, got x={x}, n={n}")


def wilson_interval(x: int, n: int, confidence: float = 0.95) -> tuple[float, float] | None:
    """Wilson score interval for the proportion x / n; None when n is 0."""
    _check_confidence(confidence)
    _check_count(x, n)
    if n == 0:
        return None
    z = _two_sided_z(confidence)
    proportion = x / n
    centre = (proportion + z**2 / (2 * n)) / (1 + z**2 / n)
    half_width = z / (1 + z**2 / n) * math.sqrt(proportion * (1 - proportion) / n + z**2 / (4 * n**2))
    # At x = 0 or x = n the bound is exactly 0 or 1; rounding would leave it a hair away.
    low = 0.0 if x == 0 else max(0.0, centre - half_width)
    high = 1.0 if x == n else min(1.0, centre + half_width)
    return low, high


def proportion_difference(x_a: int, n_a: int, x_b: int, n_b: int, *, confidence: float = 0.95) -> EffectEstimate:
    """x_a / n_a minus x_b / n_b, with Newcombe's hybrid score interval and Cohen's h.

    Interval: Newcombe (1998) method 10, built from each group's Wilson interval (l, u):
    d - sqrt((p_a - l_a)^2 + (u_b - p_b)^2) to d + sqrt((u_a - p_a)^2 + (p_b - l_b)^2).
    Effect size: Cohen's h = 2 asin(sqrt(p_a)) - 2 asin(sqrt(p_b)), interval h +/- z sqrt(1/n_a + 1/n_b).
    Everything but the counts is None when either group is empty.
    """
    _check_confidence(confidence)
    _check_count(x_a, n_a)
    _check_count(x_b, n_b)
    if n_a == 0 or n_b == 0:
        return EffectEstimate(n_a, n_b, None, None, None, None, None, None)
    p_a, p_b = x_a / n_a, x_b / n_b
    wilson_a = wilson_interval(x_a, n_a, confidence)
    wilson_b = wilson_interval(x_b, n_b, confidence)
    assert wilson_a is not None and wilson_b is not None  # both n are positive here
    (low_a, high_a), (low_b, high_b) = wilson_a, wilson_b
    difference = p_a - p_b
    low = difference - math.sqrt((p_a - low_a) ** 2 + (high_b - p_b) ** 2)
    high = difference + math.sqrt((high_a - p_a) ** 2 + (p_b - low_b) ** 2)

    cohens_h = 2 * math.asin(math.sqrt(p_a)) - 2 * math.asin(math.sqrt(p_b))
    h_half_width = _two_sided_z(confidence) * math.sqrt(1 / n_a + 1 / n_b)
    return EffectEstimate(n_a, n_b, difference, low, high, cohens_h, cohens_h - h_half_width, cohens_h + h_half_width)


def _interpolated_quantile(
    probability: float,
    cdf: Callable[[NDArray[np.float64]], NDArray[np.float64]],
    ppf: Callable[[float], NDArray[np.float64]],
) -> NDArray[np.float64]:
    """Spiegelhalter's (2005, appendix A.1) continuous version of a discrete quantile.

    r_p is the smallest count r with P(X <= r) >= p; the limit is r_p - alpha with
    alpha = (P(X <= r_p) - p) / (P(X <= r_p) - P(X <= r_p - 1)), which interpolates the inverse CDF
    linearly between counts so the funnel is a smooth curve rather than a staircase. The limit lies
    in (r_p - 1, r_p]: for the lower tail a count flagged by it is one the exact one-sided test flags
    too, while an upper limit can sit up to one count below the exact test's threshold.
    """
    r_p = ppf(probability)
    at_r = cdf(r_p)
    below_r = cdf(r_p - 1)
    alpha = (at_r - probability) / (at_r - below_r)
    return np.asarray(r_p - alpha, dtype=float)


def proportion_funnel(target: float, n: ArrayLike, levels: Sequence[float] = FUNNEL_LEVELS) -> FunnelLimits:
    """Control limits for an observed proportion at sample size n when the true rate is `target`.

    Exact binomial limits with Spiegelhalter's interpolation (see `_interpolated_quantile`): for
    level L the lower limit comes from p = (1 - L) / 2 and the upper from p = (1 + L) / 2, each
    divided by n, and clipped to [0, 1] (the interpolation dips below 0 when r_p = 0). Below about
    one expected event (n * target < 1) the upper limit is therefore 0, under the target itself:
    any event is then above it, which the exact test agrees with, but the curve looks odd there.
    Exact rather than the normal approximation because providers here are often small, where
    p0 +/- z sqrt(p0 (1 - p0) / n) is poor and can leave [0, 1].

    Returns {level: (low, high)} with arrays shaped like n (0-d arrays for a scalar n).
    """
    if not 0 < target < 1:
        # At 0 or 1 every unit must match the target exactly: there is no funnel to draw.
        raise ValueError(f"target must be strictly between 0 and 1, got {target}")
    sizes = np.asarray(n)
    if np.any(sizes < 1) or not np.all(sizes == np.floor(sizes)):
        raise ValueError("sample sizes must be whole numbers of at least 1")
    sizes = sizes.astype(np.int64)
    limits: FunnelLimits = {}
    for level in levels:
        _check_confidence(level)
        bounds = []
        for probability in ((1 - level) / 2, (1 + level) / 2):
            count = _interpolated_quantile(
                probability,
                lambda r: stats.binom.cdf(r, sizes, target),
                lambda p: stats.binom.ppf(p, sizes, target),
            )
            bounds.append(np.clip(count / sizes, 0.0, 1.0))
        limits[level] = (bounds[0], bounds[1])
    return limits


def ratio_funnel(expected: ArrayLike, levels: Sequence[float] = FUNNEL_LEVELS) -> FunnelLimits:
    """Control limits for observed / expected (an indirectly standardised ratio) around 1.

    The observed count is taken as Poisson with mean `expected`; the limits are the exact Poisson
    quantiles with Spiegelhalter's interpolation (as in `proportion_funnel`) divided by expected,
    clipped at 0 (so, as for proportions, the upper limit is 0 while expected is well under 1).
    `expected` must be positive.

    Returns {level: (low, high)} with arrays shaped like expected.
    """
    expected_counts = np.asarray(expected, dtype=float)
    if not np.all(np.isfinite(expected_counts)) or np.any(expected_counts <= 0):
        raise ValueError("expected counts must be positive and finite")
    limits: FunnelLimits = {}
    for level in levels:
        _check_confidence(level)
        bounds = []
        for probability in ((1 - level) / 2, (1 + level) / 2):
            count = _interpolated_quantile(
                probability,
                lambda r: stats.poisson.cdf(r, expected_counts),
                lambda p: stats.poisson.ppf(p, expected_counts),
            )
            bounds.append(np.clip(count / expected_counts, 0.0, None))
        limits[level] = (bounds[0], bounds[1])
    return limits


def mean_funnel(target_mean: float, sd: float, n: ArrayLike, levels: Sequence[float] = FUNNEL_LEVELS) -> FunnelLimits:
    """Control limits for a unit's mean of n values: target_mean +/- z * sd / sqrt(n) (normal).

    `sd` is the spread of individual values (e.g. across all units), not a standard error.
    Returns {level: (low, high)} with arrays shaped like n.
    """
    if sd < 0:
        raise ValueError(f"sd must not be negative, got {sd}")
    sizes = np.asarray(n, dtype=float)
    if np.any(sizes < 1):
        raise ValueError("sample sizes must be at least 1")
    limits: FunnelLimits = {}
    for level in levels:
        _check_confidence(level)
        half_width = _two_sided_z(level) * sd / np.sqrt(sizes)
        limits[level] = (target_mean - half_width, target_mean + half_width)
    return limits


def _level_label(level: float) -> str:
    return f"{level * 100:g}%"


def classify(value: float, low_high_by_level: Mapping[float, tuple[float, float]]) -> str:
    """Where a value falls against funnel limits: "within", or "above"/"below" the widest level it passes.

    E.g. "above 99.8%" when it is beyond both the 95% and 99.8% upper limits. A value exactly on a
    limit is within it. Pass scalar limits for one unit (index the arrays from the funnel functions).
    """
    if value is None or math.isnan(value):
        raise ValueError("cannot place a missing value on a funnel")
    for level in sorted(low_high_by_level, reverse=True):
        low, high = low_high_by_level[level]
        if value > high:
            return f"above {_level_label(level)}"
        if value < low:
            return f"below {_level_label(level)}"
    return "within"


def indirect_standardise(
    frame: pl.DataFrame,
    *,
    unit: str,
    strata: Iterable[str],
    outcome: str,
    binary: bool | None = None,
    confidence: float = 0.95,
    levels: Sequence[float] = FUNNEL_LEVELS,
) -> pl.DataFrame:
    """Case-mix adjustment by indirect standardisation, one output row per unit (sorted by unit).

    `frame` has one row per person-episode: the unit (e.g. provider), the stratum columns (e.g.
    age_band, baseline_band; a null stratum value is a stratum of its own) and a numeric outcome
    (0/1 for a rate, or a continuous value such as a score change). The reference for a stratum is
    the mean outcome over all units' rows in it. Per unit:

    - n, observed (sum of outcome), expected (sum of its rows' stratum references);
    - ratio = observed / expected (null when expected is 0) and adjusted = ratio * overall mean:
      for a rate, the indirectly standardised rate;
    - for a binary outcome, funnel limits for the ratio from `ratio_funnel(expected)`, in columns
      ratio_low_95 / ratio_high_95 / ratio_low_99.8 / ... (null for a continuous outcome or when
      expected is 0);
    - adjusted_difference = (observed - expected) / n, the mean of outcome minus stratum reference:
      for a continuous outcome this is the case-mix adjusted mean (e.g. "change 1.2 points above
      what its mix of clients would predict"), for a rate the adjusted risk difference. Its interval
      (difference_low, difference_high) is a t interval on n - 1 df from the unit's own residuals,
      treating the references as known (they come from all units, so this is slightly narrow for a
      unit that holds much of a stratum); null when n < 2.

    `binary` None means binary exactly when every outcome value is 0 or 1.
    """
    _check_confidence(confidence)
    strata = list(strata)
    if frame[outcome].null_count():
        raise ValueError(f"{outcome} has missing values; drop or impute them before standardising")
    rows = frame.select(pl.col(unit), *(pl.col(s) for s in strata), pl.col(outcome).cast(pl.Float64).alias("_outcome"))
    if not np.all(np.isfinite(rows["_outcome"].to_numpy())):
        raise ValueError(f"{outcome} has non-finite values")
    if binary is None:
        binary = bool(rows["_outcome"].is_in([0.0, 1.0]).all())

    reference = pl.col("_outcome").mean().over(strata) if strata else pl.col("_outcome").mean()
    rows = rows.with_columns(reference.alias("_reference")).with_columns(
        (pl.col("_outcome") - pl.col("_reference")).alias("_residual")
    )
    units = (
        rows.group_by(unit)
        .agg(
            pl.len().cast(pl.Int64).alias("n"),
            pl.col("_outcome").sum().alias("observed"),
            pl.col("_reference").sum().alias("expected"),
            pl.col("_residual").mean().alias("adjusted_difference"),
            pl.col("_residual").std(ddof=1).alias("_residual_sd"),
        )
        .sort(unit)
    )
    overall_mean = rows["_outcome"].mean() if rows.height else None

    n = units["n"].to_numpy().astype(int)
    expected = units["expected"].to_numpy().astype(float)
    has_expected = expected != 0
    ratio = np.divide(units["observed"].to_numpy().astype(float), expected, out=np.full(len(n), np.nan), where=has_expected)

    residual_mean = units["adjusted_difference"].to_numpy().astype(float)
    residual_sd = units["_residual_sd"].to_numpy().astype(float)
    enough = n >= 2
    half_width = np.full(len(n), np.nan)
    if enough.any():
        t = stats.t.ppf((1 + confidence) / 2, n[enough] - 1)
        half_width[enough] = t * residual_sd[enough] / np.sqrt(n[enough])

    def column(values: NDArray[np.float64]) -> pl.Series:
        return pl.Series(values, dtype=pl.Float64).fill_nan(None)

    extra: dict[str, pl.Series] = {
        "ratio": column(ratio),
        "adjusted": column(ratio * overall_mean if overall_mean is not None else ratio),
        "difference_low": column(residual_mean - half_width),
        "difference_high": column(residual_mean + half_width),
    }
    # Poisson limits only mean something for counts of events, and only where something is expected.
    funnel_at = binary & (expected > 0)
    limits = ratio_funnel(expected[funnel_at], levels) if funnel_at.any() else {}
    for level in levels:
        low, high = np.full(len(n), np.nan), np.full(len(n), np.nan)
        if level in limits:
            low[funnel_at], high[funnel_at] = limits[level]
        label = f"{level * 100:g}"
        extra[f"ratio_low_{label}"] = column(low)
        extra[f"ratio_high_{label}"] = column(high)

    return units.drop("_residual_sd").with_columns(**extra).select(
        unit,
        "n",
        "observed",
        "expected",
        "ratio",
        "adjusted",
        *(name for name in extra if name.startswith("ratio_")),
        "adjusted_difference",
        "difference_low",
        "difference_high",
    )
