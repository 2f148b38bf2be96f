"""The one definition of every statistic that tables and figures report.

* mean and standard deviation over seeds, std with ddof=1 (NaN for one seed);
* a 95% percentile-bootstrap confidence interval of the mean, with a fixed seed;
* the paired difference (objective - baseline, matched by seed) with its bootstrap CI;
* median and inter-quartile range;
* performance profiles (Dolan & Moré 2002) and their normalised area (as AlgoPerf reports them).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

BOOTSTRAP_SEED = 0
BOOTSTRAP_SAMPLES = 2000
CI_LEVEL = 0.95


def mean_std(values: Sequence[float]) -> tuple[float, float, int]:
    """(mean, std with ddof=1, n); std is NaN for a single value."""
    array = np.asarray(values, dtype=float)
    std = float(array.std(ddof=1)) if array.size > 1 else float("nan")
    return float(array.mean()), std, int(array.size)


def bootstrap_ci(values: Sequence[float], level: float = CI_LEVEL,
                 samples: int = BOOTSTRAP_SAMPLES, seed: int = BOOTSTRAP_SEED) -> tuple[float, float]:
    """Percentile-bootstrap CI of the mean of `values` (fixed seed: the same data give the same
    interval). A single value gives (value, value)."""
    array = np.asarray(values, dtype=float)
    if array.size < 2:
        return float(array.mean()), float(array.mean())
    rng = np.random.default_rng(seed)
    means = array[rng.integers(0, array.size, size=(samples, array.size))].mean(axis=1)
    tail = (1 - level) / 2
    return float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))


def paired_difference(objective: pd.Series, baseline: pd.Series) -> dict[str, float]:
    """Mean of objective - baseline over the seeds both have, with its bootstrap CI.

    Both series are indexed by seed. Returns {'diff', 'lo', 'hi', 'n'}; lo/hi are NaN for n < 2.
    """
    joined = pd.concat([objective.rename("o"), baseline.rename("b")], axis=1, join="inner")
    diff = (joined["o"] - joined["b"]).to_numpy()
    if diff.size < 2:  # no interval from fewer than two pairs
        mean = float(diff.mean()) if diff.size else float("nan")
        return {"diff": mean, "lo": float("nan"), "hi": float("nan"), "n": int(diff.size)}
    lo, hi = bootstrap_ci(diff)
    return {"diff": float(diff.mean()), "lo": lo, "hi": hi, "n": int(diff.size)}


def median_iqr(values: Sequence[float]) -> tuple[float, float, float]:
    """(median, 25th percentile, 75th percentile)."""
    q25, q50, q75 = np.quantile(np.asarray(values, dtype=float), [0.25, 0.5, 0.75])
    return float(q50), float(q25), float(q75)


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
