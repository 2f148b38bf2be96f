"""The one definition of every statistic that tables and figures report.

Per row of a table (one task, model, metric and objective against the baseline):

* mean and standard deviation over seeds, std with ddof=1 (NaN for one seed);
* the paired difference objective - baseline over the seeds both have (`paired_test`), with a
  95% t-interval (`scipy.stats.ttest_1samp`) below 10 pairs, a BCa bootstrap interval
  (`scipy.stats.bootstrap`, fixed seed) from 10 pairs on, and an exact sign-flip permutation
  p-value (`scipy.stats.permutation_test`, every one of the 2^n sign patterns up to n = 16);
* Holm's correction across the rows of one table (`statsmodels.stats.multitest.multipletests`) and
  the verdict words: "better"/"worse" only where the corrected p < 0.05, "no evidence" otherwise.

Across tasks (scores normalised per task to [0, 1], higher is better):

* the inter-quartile mean (`rliable.metrics.aggregate_iqm`) with a stratified bootstrap CI: runs are
  resampled within each task independently (`scipy.stats.bootstrap` with one sample per task, which
  resamples each sample on its own; `rliable.library` is not used because it imports `arch`, whose
  7.x releases do not import under pandas 3);
* the probability of improvement P(X > Y) (`rliable.metrics.probability_of_improvement`), same CI;
* performance profiles (Dolan & Moré 2002) and their normalised area (as AlgoPerf reports them).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from rliable import metrics as rly
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

BOOTSTRAP_SEED = 0
BOOTSTRAP_SAMPLES = 2000
CI_LEVEL = 0.95
EXACT_PERMUTATION_MAX_N = 16  # 2^16 sign patterns; above this, a seeded Monte Carlo draw of 10^5
DIRECTIONS = ("min", "max")


def mean_std(values: Sequence[float]) -> tuple[float, float, int]:
    """(mean, std with ddof=1, n); std is NaN for a single value."""
    array = np.asarray(values, dtype=float)
    std = float(array.std(ddof=1)) if array.size > 1 else float("nan")
    return float(array.mean()), std, int(array.size)


def bootstrap_ci(values: Sequence[float], level: float = CI_LEVEL,
                 samples: int = BOOTSTRAP_SAMPLES, seed: int = BOOTSTRAP_SEED) -> tuple[float, float]:
    """Percentile-bootstrap CI of the mean of `values` (`scipy.stats.bootstrap`, fixed seed: the
    same data give the same interval). Meant for n >= 10; `mean_ci` picks the right interval.
    Fewer than two values, or identical values, give (mean, mean)."""
    array = np.asarray(values, dtype=float)
    if array.size < 2 or np.ptp(array) == 0:
        return float(array.mean()), float(array.mean())
    result = sps.bootstrap((array,), np.mean, confidence_level=level, n_resamples=samples,
                           method="percentile", random_state=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def mean_ci(values: Sequence[float], level: float = CI_LEVEL) -> tuple[float, float, str]:
    """(lo, hi, method) of the mean: Student t below 10 values, BCa bootstrap from 10 on.

    NaN bounds for fewer than two values; (mean, mean) when every value is the same.
    """
    array = np.asarray(values, dtype=float)
    if array.size < 2:
        return float("nan"), float("nan"), "none"
    if np.ptp(array) == 0:
        return float(array[0]), float(array[0]), "degenerate"
    if array.size < 10:
        ci = sps.ttest_1samp(array, 0.0).confidence_interval(level)
        return float(ci.low), float(ci.high), "t"
    result = sps.bootstrap((array,), np.mean, confidence_level=level, method="BCa",
                           n_resamples=BOOTSTRAP_SAMPLES,
                           random_state=np.random.default_rng(BOOTSTRAP_SEED))
    return float(result.confidence_interval.low), float(result.confidence_interval.high), "BCa"


def sign_flip_pvalue(differences: Sequence[float]) -> float:
    """Two-sided paired permutation p-value of mean(differences) = 0 (signs flipped at random).

    Exact (all 2^n sign patterns) for n <= 16, else 10^5 seeded draws. NaN for no differences;
    1.0 when every difference is 0.
    """
    diff = np.asarray(differences, dtype=float)
    if diff.size == 0:
        return float("nan")
    if not np.any(diff):
        return 1.0
    exact = diff.size <= EXACT_PERMUTATION_MAX_N
    result = sps.permutation_test((diff,), np.mean, permutation_type="samples",
                                  alternative="two-sided", vectorized=False,
                                  n_resamples=np.inf if exact else 100_000,
                                  random_state=np.random.default_rng(BOOTSTRAP_SEED))
    return float(result.pvalue)


def _check_direction(direction: str) -> None:
    if direction not in DIRECTIONS:
        raise ValueError(f"metric direction must be 'min' or 'max', got {direction!r}")


def paired_test(objective: pd.Series, baseline: pd.Series, direction: str = "min",
                level: float = CI_LEVEL) -> dict[str, object]:
    """Paired comparison objective - baseline over the seeds both have.

    Both series are indexed by seed (one value per seed). Seeds present on one side only are not
    paired: they are dropped and listed in `unmatched` (so a missing run is visible, never
    silently averaged in). Returns {'diff', 'lo', 'hi', 'n', 'p', 'interval', 'unmatched',
    'direction'}: mean difference, its CI (`mean_ci`), the number of pairs, the exact sign-flip
    p-value (uncorrected) and the interval's method. lo/hi/p are NaN for fewer than two pairs.
    """
    _check_direction(direction)
    for name, series in (("objective", objective), ("baseline", baseline)):
        if series.index.has_duplicates:
            raise ValueError(f"{name} values have repeated seeds: "
                             f"{sorted(series.index[series.index.duplicated()].unique())}")
    joined = pd.concat([objective.rename("o"), baseline.rename("b")], axis=1, join="inner")
    unmatched = sorted(set(objective.index).symmetric_difference(baseline.index))
    diff = (joined["o"] - joined["b"]).to_numpy(dtype=float)
    row: dict[str, object] = {"diff": float(diff.mean()) if diff.size else float("nan"),
                              "n": int(diff.size), "unmatched": unmatched, "direction": direction}
    if diff.size < 2:
        return {**row, "lo": float("nan"), "hi": float("nan"), "p": float("nan"),
                "interval": "none"}
    lo, hi, method = mean_ci(diff, level)
    return {**row, "lo": lo, "hi": hi, "p": sign_flip_pvalue(diff), "interval": method}


def paired_difference(objective: pd.Series, baseline: pd.Series) -> dict[str, object]:
    """`paired_test` with direction 'min' (kept for callers that only read diff/lo/hi/n)."""
    return paired_test(objective, baseline, "min")


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm-corrected p-values (same order); NaN entries stay NaN and do not count as tests."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    finite = np.isfinite(p)
    if finite.any():
        out[finite] = multipletests(p[finite], method="holm")[1]
    return out


def median_iqr(values: Sequence[float]) -> tuple[float, float, float]:
    """(median, 25th percentile, 75th percentile)."""
    q25, q50, q75 = np.quantile(np.asarray(values, dtype=float), [0.25, 0.5, 0.75])
    return float(q50), float(q25), float(q75)


# --- across tasks ------------------------------------------------------------------------------
def normalised_scores(values: pd.DataFrame, direction: str) -> pd.DataFrame:
    """Scores in [0, 1], higher is better, per problem.

    values: columns `problem`, `objective`, `seed`, `value` (one metric). Each problem is min-max
    scaled over every objective's runs on it (a problem where all runs tie scores 1).
    Returns the same rows with `score`.
    """
    _check_direction(direction)
    out = values.copy()
    grouped = out.groupby("problem")["value"]
    low, high = grouped.transform("min"), grouped.transform("max")
    span = (high - low).where(high > low)
    score = (out["value"] - low) / span
    out["score"] = (1 - score if direction == "min" else score).fillna(1.0)
    return out


def score_matrix(scores: pd.DataFrame, objective: str) -> np.ndarray:
    """(runs x problems) matrix of one objective's scores, runs matched by seed; only seeds that
    every problem has are kept (rliable's layout)."""
    wide = scores[scores["objective"] == objective].pivot_table(
        index="seed", columns="problem", values="score", aggfunc="first").dropna()
    return wide.sort_index(axis=1).to_numpy(dtype=float)


def _stratified_ci(statistic, matrices: Sequence[np.ndarray], level: float) -> tuple[float, float]:
    """CI of statistic(*matrices) resampling runs within each problem (column) independently."""
    columns = [m[:, j] for m in matrices for j in range(m.shape[1])]
    problems = matrices[0].shape[1]

    def from_columns(*cols: np.ndarray) -> float:
        parts = [np.stack(cols[k * problems:(k + 1) * problems], axis=1)
                 for k in range(len(matrices))]
        return float(statistic(*parts))

    if min(len(c) for c in columns) < 2:
        return float("nan"), float("nan")
    result = sps.bootstrap(columns, from_columns, vectorized=False, paired=False,
                           confidence_level=level, method="percentile",
                           n_resamples=BOOTSTRAP_SAMPLES,
                           random_state=np.random.default_rng(BOOTSTRAP_SEED))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def iqm_ci(matrix: np.ndarray, level: float = CI_LEVEL) -> tuple[float, float, float]:
    """(IQM, lo, hi) of a (runs x problems) score matrix, stratified bootstrap CI."""
    point = float(rly.aggregate_iqm(matrix))
    return (point, *_stratified_ci(rly.aggregate_iqm, [matrix], level))


def probability_of_improvement(x: np.ndarray, y: np.ndarray,
                               level: float = CI_LEVEL) -> tuple[float, float, float]:
    """(P(X > Y), lo, hi) averaged over problems; x and y are (runs x problems) score matrices."""
    point = float(rly.probability_of_improvement(x, y))
    return (point, *_stratified_ci(rly.probability_of_improvement, [x, y], level))


def across_tasks(values: pd.DataFrame, direction: str, baseline: str) -> pd.DataFrame:
    """IQM [CI] per objective and P(objective > baseline) [CI] over problems.

    values: columns `problem`, `objective`, `seed`, `value` of one metric; only the problems on
    which every objective has runs count (so that all matrices share their columns). Returns one
    row per objective: iqm, iqm_lo, iqm_hi, poi, poi_lo, poi_hi (poi NaN for the baseline).
    """
    objectives = values["objective"].nunique()
    shared = values.groupby("problem")["objective"].nunique() == objectives
    values = values[values["problem"].isin(shared[shared].index)]  # problems every objective ran
    scores = normalised_scores(values, direction)
    base = score_matrix(scores, baseline) if baseline in set(scores["objective"]) else None
    rows = []
    for objective in sorted(scores["objective"].unique()):
        matrix = score_matrix(scores, objective)
        if matrix.size == 0:
            continue
        iqm, lo, hi = iqm_ci(matrix)
        poi = (float("nan"),) * 3
        if base is not None and objective != baseline and base.size:
            poi = probability_of_improvement(matrix, base)
        rows.append(dict(objective=objective, iqm=iqm, iqm_lo=lo, iqm_hi=hi, poi=poi[0],
                         poi_lo=poi[1], poi_hi=poi[2], runs=matrix.shape[0],
                         problems=matrix.shape[1]))
    return pd.DataFrame(rows)


def performance_profile(costs: pd.DataFrame, taus: np.ndarray) -> pd.DataFrame:
    """Dolan-Moré performance profile.

    costs: rows = problems, columns = solvers (objectives), values = a cost to minimise (> 0).
    Returns rows = taus, columns = solvers: the share of problems on which the solver is within a
    factor tau of the best solver on that problem.
    """
    ratios = costs.div(costs.min(axis=1), axis=0)
    return pd.DataFrame({col: [(ratios[col] <= tau).mean() for tau in taus] for col in costs},
                        index=pd.Index(taus, name="tau"))


def profile_area(profile: pd.DataFrame) -> pd.Series:
    """Area under each solver's profile, normalised to [0, 1] over the tau range."""
    taus = profile.index.to_numpy(dtype=float)
    return profile.apply(lambda col: np.trapezoid(col.to_numpy(), taus) / (taus[-1] - taus[0]))

