"""bench.stats against values worked out by hand on tiny tables.

The percentile bootstrap of a mean of 0/1 values has an exact distribution: for ``n`` values of
which ``m`` are 1, a resample's mean is ``K / n`` with ``K ~ Binomial(n, m / n)``. Its quantiles
are read off the binomial CDF; the tables are chosen so that each quantile the tests use lies at
least 0.009 away from a CDF step, which with 200 000 resamples is more than 9 Monte-Carlo
standard errors (``sqrt(p (1 - p) / 200000) < 0.001``), so the expected interval is exact.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from bench import stats
from bench.protocol.verdicts import add_verdicts, verdict

nan = float("nan")

MANY = 200_000  # resamples for the exact-quantile checks (see the module docstring)


def test_mean_std_by_hand() -> None:
    mean, std, n = stats.mean_std([1.0, 2.0, 3.0, 4.0])
    # deviations -1.5, -0.5, 0.5, 1.5: sum of squares 5, ddof = 1 -> variance 5/3
    assert (mean, n) == (2.5, 4) and std == pytest.approx(math.sqrt(5 / 3))
    mean, std, n = stats.mean_std([7.0])
    assert mean == 7.0 and n == 1 and math.isnan(std)


def test_median_iqr_by_hand() -> None:
    assert stats.median_iqr([5.0, 1.0, 4.0, 2.0, 3.0]) == (3.0, 2.0, 4.0)
    # four values: linear interpolation at positions 0.75, 1.5, 2.25 of the sorted [1, 2, 3, 4]
    assert stats.median_iqr([4.0, 3.0, 2.0, 1.0]) == (2.5, 1.75, 3.25)


@pytest.mark.parametrize("values, level, expected", [
    # [0, 1, 1]: K ~ Bin(3, 2/3), CDF 1/27 = 0.037, 7/27 = 0.259, 19/27 = 0.704, 1.
    # 95 %: quantiles 0.025 -> K = 0, 0.975 -> K = 3
    ([0.0, 1.0, 1.0], 0.95, (0.0, 1.0)),
    # 90 %: 0.05 -> K = 1 (0.05 > 0.037); 0.95 -> K = 3
    ([0.0, 1.0, 1.0], 0.90, (1 / 3, 1.0)),
    # 50 %: 0.25 -> K = 1 (0.25 < 0.259); 0.75 -> K = 3 (0.75 > 0.704)
    ([0.0, 1.0, 1.0], 0.50, (1 / 3, 1.0)),
    # [0, 0, 1]: K ~ Bin(3, 1/3), CDF 8/27 = 0.296, 20/27 = 0.741, 26/27 = 0.963, 1.
    ([0.0, 0.0, 1.0], 0.95, (0.0, 1.0)),       # 0.975 > 0.963 -> K = 3
    ([0.0, 0.0, 1.0], 0.90, (0.0, 2 / 3)),     # 0.95 < 0.963 -> K = 2
    # shifting and scaling the data shifts and scales the interval: 10 + 2 * (0, 1)
    ([10.0, 12.0, 12.0], 0.95, (10.0, 12.0)),
])
def test_bootstrap_ci_quantiles_by_hand(values, level, expected) -> None:
    lo, hi = stats.bootstrap_ci(values, level=level, samples=MANY)
    assert (lo, hi) == pytest.approx(expected, abs=1e-12)


def test_bootstrap_ci_defaults() -> None:
    # the defaults are a 95 % interval from 2000 resamples with seed 0; on [0, 1, 1] the 2.5 %
    # and 97.5 % quantiles are 0 and 1 (a 90 % or 50 % interval would start at 1/3)
    assert (stats.CI_LEVEL, stats.BOOTSTRAP_SAMPLES, stats.BOOTSTRAP_SEED) == (0.95, 2000, 0)
    assert stats.bootstrap_ci([0.0, 1.0, 1.0]) == (0.0, 1.0)
    data = [0.3, 1.2, -0.4, 2.2, 0.9]
    assert stats.bootstrap_ci(data) == stats.bootstrap_ci(data)  # fixed seed
    assert stats.bootstrap_ci(data, seed=1) != stats.bootstrap_ci(data)
    assert stats.bootstrap_ci([4.5]) == (4.5, 4.5)


def test_paired_difference_matches_by_seed() -> None:
    # seeds 0-2 in both; seed 5 only in the objective, seed 3 only in the baseline
    objective = pd.Series({0: 2.0, 1: 5.0, 2: 4.0, 5: 100.0})
    baseline = pd.Series({0: 2.0, 1: 4.0, 2: 3.0, 3: -100.0})
    out = stats.paired_difference(objective, baseline)
    # differences objective - baseline: 0, 1, 1 -> mean 2/3, n 3
    assert out["diff"] == pytest.approx(2 / 3) and out["n"] == 3
    # t-interval of [0, 1, 1] (n < 10): sd sqrt(1/3), se 1/3, t(0.975, df=2) = 4.302653
    assert (out["lo"], out["hi"]) == pytest.approx((-0.767551, 2.100884), abs=1e-6)
    assert out["unmatched"] == [3, 5]
    swapped = stats.paired_difference(baseline, objective)
    assert swapped["diff"] == pytest.approx(-2 / 3)


def test_paired_difference_needs_two_pairs() -> None:
    one = stats.paired_difference(pd.Series({0: 3.0, 1: 1.0}), pd.Series({0: 1.0, 2: 1.0}))
    assert one["diff"] == 2.0 and one["n"] == 1
    assert math.isnan(one["lo"]) and math.isnan(one["hi"])
    none = stats.paired_difference(pd.Series({0: 3.0}), pd.Series({1: 1.0}))
    assert none["n"] == 0 and math.isnan(none["diff"]) and math.isnan(none["lo"])


def costs() -> pd.DataFrame:
    # problem rows, solver columns; ratios to the best per row:
    # p1: A 1, B 2;  p2: A 4/1.5 = 8/3, B 1;  p3: A 1, B 1
    return pd.DataFrame({"A": [1.0, 4.0, 2.0], "B": [2.0, 1.5, 2.0]},
                        index=["p1", "p2", "p3"])


def test_performance_profile_by_hand() -> None:
    taus = np.array([1.0, 1.5, 2.0, 3.0])
    profile = stats.performance_profile(costs(), taus)
    assert list(profile.index) == list(taus) and list(profile.columns) == ["A", "B"]
    # share of problems with ratio <= tau: A has ratios {1, 8/3, 1}, B has {2, 1, 1}
    np.testing.assert_allclose(profile["A"], [2 / 3, 2 / 3, 2 / 3, 1.0])
    np.testing.assert_allclose(profile["B"], [2 / 3, 2 / 3, 1.0, 1.0])


def test_profile_area_by_hand() -> None:
    taus = np.array([1.0, 1.5, 2.0, 3.0])
    area = stats.profile_area(stats.performance_profile(costs(), taus))
    # trapezoids over [1, 1.5], [1.5, 2], [2, 3], divided by the range 2:
    # A: (1/3 + 1/3 + (2/3 + 1) / 2) / 2 = 1.5 / 2 = 0.75
    # B: (1/3 + (2/3 + 1) / 2 * 0.5 + 1) / 2 = (1/3 + 5/12 + 1) / 2 = 0.875
    assert area["A"] == pytest.approx(0.75) and area["B"] == pytest.approx(0.875)


def test_two_values_are_enough_for_a_spread_and_an_interval() -> None:
    mean, std, n = stats.mean_std([1.0, 3.0])
    assert (mean, n) == (2.0, 2) and std == pytest.approx(math.sqrt(2))  # (1 + 1) / (2 - 1)
    # [0, 1]: K ~ Bin(2, 1/2), CDF 0.25, 0.75, 1: the 2.5 % and 97.5 % quantiles are 0 and 1
    assert stats.bootstrap_ci([0.0, 1.0], samples=MANY) == (0.0, 1.0)
    two = stats.paired_difference(pd.Series({0: 1.0, 1: 3.0}), pd.Series({0: 1.0, 1: 2.0}))
    assert two["n"] == 2 and two["diff"] == 0.5
    # t-interval of the differences [0, 1]: sd sqrt(1/2), se 1/2; with one degree of freedom t is
    # Cauchy, so t(0.975, 1) = tan(0.475 pi) = 12.7062...
    half = 0.5 * math.tan(0.475 * math.pi)
    assert two["interval"] == "t"
    assert (two["lo"], two["hi"]) == pytest.approx((0.5 - half, 0.5 + half), rel=1e-9)


def test_profile_index_is_named_tau() -> None:
    profile = stats.performance_profile(costs(), np.array([1.0, 2.0]))
    assert profile.index.name == "tau"


def test_mean_ci_small_cases_by_hand() -> None:
    lo, hi, method = stats.mean_ci([3.0])
    assert math.isnan(lo) and math.isnan(hi) and method == "none"
    assert stats.mean_ci([2.0, 2.0, 2.0]) == (2.0, 2.0, "degenerate")
    # [1, 2, 3]: mean 2, sd 1, se 1/sqrt(3); t(0.975, 2) = 1/sqrt(2 p (1 - p)) - ... exactly
    # sqrt(2) * x / sqrt(1 - x^2) with x = 2 * 0.975 - 1 = 0.95 (closed form for 2 dof)
    t2 = math.sqrt(2) * 0.95 / math.sqrt(1 - 0.95**2)
    lo, hi, method = stats.mean_ci([1.0, 2.0, 3.0])
    assert method == "t" and (lo, hi) == pytest.approx((2 - t2 / math.sqrt(3),
                                                         2 + t2 / math.sqrt(3)), rel=1e-12)


def test_mean_ci_from_ten_values_is_seeded_and_follows_the_level() -> None:
    values = [0.1, 0.5, 0.2, 0.9, 0.4, 0.3, 0.8, 0.6, 0.7, 1.5]
    lo, hi, method = stats.mean_ci(values)
    assert method == "BCa" and lo < float(np.mean(values)) < hi
    assert stats.mean_ci(values) == (lo, hi, method)  # fixed seed: the same interval
    lo90, hi90, _ = stats.mean_ci(values, level=0.90)
    assert lo < lo90 < hi90 < hi  # a 90 % interval sits inside the 95 % one
    two = stats.paired_test(pd.Series(dict(enumerate(values))), pd.Series(dict.fromkeys(
        range(10), 0.0)), level=0.90)
    assert (two["lo"], two["hi"]) == (lo90, hi90)  # the level reaches the interval


@pytest.mark.slow  # seconds; CI runs it in its slow step
def test_sign_flip_monte_carlo_above_sixteen_pairs() -> None:
    # 20 positive differences: exactly, p = 2 / 2^20 = 1.9e-6; above 16 pairs the p-value is a
    # seeded Monte-Carlo estimate from 10^5 sign draws: each one-sided p is
    # (hits + 1) / (10^5 + 1), the two-sided one twice the smaller; no draw reaches the observed
    # mean unless all signs agree (expected 0.19 such draws), so p = 2 / 100001
    p = stats.sign_flip_pvalue([1.0] * 20)
    assert p == pytest.approx(2 / 100_001, rel=1e-9)
    mixed = [(-1.0) ** i * (i + 1) / 10 + 0.3 for i in range(20)]
    assert stats.sign_flip_pvalue(mixed) == stats.sign_flip_pvalue(mixed)  # seeded
    assert stats.sign_flip_pvalue([]) != stats.sign_flip_pvalue([])  # NaN: no differences


def test_paired_test_defaults_and_errors() -> None:
    a, b = pd.Series({0: 1.0, 1: 2.0}), pd.Series({0: 0.0, 1: 0.0})
    assert stats.paired_test(a, b)["direction"] == "min"
    assert stats.paired_difference(a, b)["direction"] == "min"
    one = stats.paired_test(a.iloc[:1], b.iloc[:1])
    assert one["interval"] == "none" and math.isnan(one["p"]) and math.isnan(one["hi"])
    repeated = pd.Series([1.0, 2.0], index=[1, 1])
    with pytest.raises(ValueError, match=r"^objective values have repeated seeds: \[1\]$"):
        stats.paired_test(repeated, b)
    with pytest.raises(ValueError, match=r"^baseline values have repeated seeds: \[1\]$"):
        stats.paired_test(b, repeated)


def test_verdict_signs_and_alpha() -> None:
    # lower is better: any positive difference is worse, however small; higher is better: mirror
    assert verdict((0.5, nan, nan), 0.001, "min") == "worse"
    assert verdict((-0.5, nan, nan), 0.001, "min") == "better"
    assert verdict((0.5, nan, nan), 0.001, "max") == "better"
    assert verdict((-0.5, nan, nan), 0.001, "max") == "worse"
    assert verdict((0.0, nan, nan), 0.001, "max") == "no evidence"
    table = pd.DataFrame({"diff": [-1.0, 2.0], "p": [0.01, 0.02], "direction": ["min", "max"]})
    # Holm over 2 tests: 0.01 * 2 = 0.02, max(0.02, 0.02 * 1) = 0.02
    assert add_verdicts(table)["verdict"].tolist() == ["better", "better"]
    assert add_verdicts(table)["p_holm"].tolist() == pytest.approx([0.02, 0.02])
    assert add_verdicts(table, alpha=0.01)["verdict"].tolist() == ["no evidence"] * 2
    with pytest.raises(ValueError, match=r"missing \['p'\]"):
        add_verdicts(table.drop(columns="p"))


def test_identical_values_give_a_point_interval() -> None:
    assert stats.bootstrap_ci([2.0, 2.0, 2.0]) == (2.0, 2.0)


def test_across_tasks_reports_every_column(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stats, "BOOTSTRAP_SAMPLES", 200)  # the interval's shape, not its digits
    # two problems, four seeds; on each problem dlc's values are 0, 0.01, 0.02, 0.03 and
    # plain's 1, 1.01, 1.02, 1.03: min-max scores (lower is better) put dlc near 1, plain near 0
    rows = [dict(problem=p, objective=o, seed=s, value=(0.0 if o == "dlc" else 1.0) + s * 0.01)
            for p in ("a", "b") for o in ("dlc", "plain") for s in range(4)]
    table = stats.across_tasks(pd.DataFrame(rows), "min", "plain").set_index("objective")
    assert list(table.columns) == ["iqm", "iqm_lo", "iqm_hi", "poi", "poi_lo", "poi_hi", "runs",
                                   "problems"]
    dlc, plain = table.loc["dlc"], table.loc["plain"]
    # IQM of scores 1 - v / 1.03 for v in {0.01, 0.02} (the middle half of four values)
    assert dlc["iqm"] == pytest.approx(1 - 0.015 / 1.03)
    assert plain["iqm"] == pytest.approx(1 - 1.015 / 1.03)
    for row in (dlc, plain):
        assert row["iqm_lo"] <= row["iqm"] <= row["iqm_hi"] and row["iqm_lo"] < row["iqm_hi"]
    assert dlc["poi"] == 1.0 and dlc["poi_lo"] == 1.0 and dlc["poi_hi"] == 1.0
    assert math.isnan(plain["poi"]) and math.isnan(plain["poi_lo"]) and math.isnan(plain["poi_hi"])
    assert (dlc["runs"], dlc["problems"]) == (4, 2)


def test_tied_problems_and_tiny_samples(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stats, "BOOTSTRAP_SAMPLES", 200)  # the interval's shape, not its digits
    values = pd.DataFrame([dict(problem="tie", objective=o, seed=0, value=5.0) for o in "xy"])
    assert stats.normalised_scores(values, "min")["score"].tolist() == [1.0, 1.0]  # all tie: 1
    rows = [dict(problem=p, objective=o, seed=s, value=(0.0 if o == "dlc" else 1.0) + s * 0.01)
            for p in ("a", "b") for o in ("dlc", "plain") for s in range(2)]
    two = stats.across_tasks(pd.DataFrame(rows), "min", "plain").set_index("objective")
    assert two.loc["dlc", "iqm_lo"] < two.loc["dlc", "iqm_hi"]  # two runs per problem: a CI
    one = stats.across_tasks(pd.DataFrame([r for r in rows if r["seed"] == 0]), "min", "plain")
    assert one["iqm_lo"].isna().all() and one["iqm_hi"].isna().all()  # one run: no CI


def test_more_resamples_change_a_continuous_bootstrap() -> None:
    data = [0.3, 1.2, -0.4, 2.2, 0.9]
    assert stats.bootstrap_ci(data, samples=100) != stats.bootstrap_ci(data, samples=5000)


def test_bca_interval_uses_the_documented_resample_count(monkeypatch: pytest.MonkeyPatch) -> None:
    values = [0.1, 0.5, 0.2, 0.9, 0.4, 0.3, 0.8, 0.6, 0.7, 1.5]
    default = stats.mean_ci(values)
    monkeypatch.setattr(stats, "BOOTSTRAP_SAMPLES", 500)
    assert stats.mean_ci(values) != default  # BOOTSTRAP_SAMPLES, not scipy's own default


def test_probability_of_improvement_resamples_runs_within_each_problem(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stats, "BOOTSTRAP_SAMPLES", 200)  # the property holds for any count
    # problem 0: every x above every y (P = 1); problem 1: every x below every y (P = 0).
    # Resampling runs within a problem keeps each problem's P, so every resample averages 1/2;
    # mixing problems (resampled columns stacked as rows) would not.
    x = np.array([[10.0, 0.0], [11.0, 1.0], [12.0, 2.0]])
    y = np.array([[0.0, 10.0], [1.0, 11.0], [2.0, 12.0]])
    assert stats.probability_of_improvement(x, y) == (0.5, 0.5, 0.5)


def test_across_tasks_by_hand_with_gaps_and_single_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stats, "BOOTSTRAP_SAMPLES", 200)  # point values do not resample
    # one problem, lower is better; scores 1 - v / 5: plain 0.8, 0.4, 0.0 and dlc 1.0, 0.6, 0.2,
    # so P(dlc > plain) = (3 + 2 + 1) / 9 = 2/3 (no ties)
    rows = [dict(problem="a", objective=o, seed=s, value=v)
            for o, values in (("plain", (1.0, 3.0, 5.0)), ("dlc", (0.0, 2.0, 4.0)))
            for s, v in enumerate(values)]
    # an objective with runs on both problems but no seed that has both: no matrix, left out
    # (and the objectives sorted after it are still reported)
    rows += [dict(problem="a", objective="a_gappy", seed=7, value=2.0),
             dict(problem="b", objective="a_gappy", seed=8, value=2.0)]
    rows += [dict(problem="b", objective=o, seed=s, value=1.0) for o in ("plain", "dlc")
             for s in range(3)]
    table = stats.across_tasks(pd.DataFrame(rows), "min", "plain").set_index("objective")
    assert list(table.index) == ["dlc", "plain"]
    dlc = table.loc["dlc"]
    # problem b ties everywhere (score 1, P = 1/2): P averaged over problems = (2/3 + 1/2) / 2
    assert dlc["poi"] == pytest.approx(7 / 12) and dlc["poi_lo"] < dlc["poi"] < dlc["poi_hi"]
    single = stats.across_tasks(pd.DataFrame(rows[:1] + rows[3:4]), "min", "plain")
    assert single["objective"].tolist() == ["dlc", "plain"]  # one run of one problem: kept
    assert single["runs"].tolist() == [1, 1] and single["iqm_lo"].isna().all()


def test_iqm_interval_is_seeded_follows_the_level_and_the_resample_count(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stats, "BOOTSTRAP_SAMPLES", 300)
    runs = np.array([[0.1, 0.4], [0.5, 0.2], [0.9, 0.7], [0.3, 0.8], [0.6, 0.1], [0.45, 0.55]])
    iqm, lo, hi = stats.iqm_ci(runs)
    assert stats.iqm_ci(runs) == (iqm, lo, hi)  # a fixed seed: the same interval
    _, lo50, hi50 = stats.iqm_ci(runs, level=0.5)
    assert lo < lo50 < hi50 < hi  # a 50 % interval sits inside the 95 % one
    monkeypatch.setattr(stats, "BOOTSTRAP_SAMPLES", 600)
    assert stats.iqm_ci(runs) != (iqm, lo, hi)  # BOOTSTRAP_SAMPLES, not scipy's own default
