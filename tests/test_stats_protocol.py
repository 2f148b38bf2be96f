"""Known answers for the protocol's statistics (`bench.stats`), every expected value by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from bench import stats
from bench.protocol.verdicts import add_verdicts, verdict

nan = float("nan")


def series(values, seeds=None) -> pd.Series:
    return pd.Series(values, index=seeds if seeds is not None else range(len(values)), dtype=float)


def test_sign_flip_three_positive_differences_is_two_of_eight() -> None:
    # 8 sign patterns; only +++ and --- reach |mean| >= 2: p = 2/8
    assert stats.sign_flip_pvalue([1.0, 2.0, 3.0]) == pytest.approx(0.25)


def test_sign_flip_mixed_signs_by_enumeration() -> None:
    # sums of +-1 +-2 +-0.5: 3.5, 2.5, -0.5, -1.5, 1.5, 0.5, -2.5, -3.5; observed 2.5;
    # |sum| >= 2.5 in 4 of 8 patterns
    assert stats.sign_flip_pvalue([1.0, 2.0, -0.5]) == pytest.approx(0.5)
    # five positive differences: 2 of 32 patterns are as extreme
    assert stats.sign_flip_pvalue([0.3, 0.1, 0.2, 0.5, 0.4]) == pytest.approx(2 / 32)


def test_sign_flip_degenerate_inputs() -> None:
    assert stats.sign_flip_pvalue([0.0, 0.0, 0.0]) == 1.0
    assert math.isnan(stats.sign_flip_pvalue([]))


def test_holm_by_hand() -> None:
    # sorted 0.01, 0.03, 0.04 times 3, 2, 1 -> 0.03, 0.06, 0.04 -> running max 0.03, 0.06, 0.06
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    # NaN is not a test: two real p-values times 2 and 1
    out = stats.holm([0.02, float("nan"), 0.5])
    assert out[0] == pytest.approx(0.04) and math.isnan(out[1]) and out[2] == pytest.approx(0.5)
    assert stats.holm([0.3, 0.6]) == pytest.approx([0.6, 0.6])  # capped by the running max


def test_t_interval_by_hand() -> None:
    # differences 1, 2, 3: mean 2, sd 1, se 1/sqrt(3), t(0.975, 2 df) = 4.302652729749464
    result = stats.paired_test(series([2.0, 4.0, 6.0]), series([1.0, 2.0, 3.0]), "min")
    half = 4.302652729749464 / math.sqrt(3)
    assert result["diff"] == pytest.approx(2.0)
    assert (result["lo"], result["hi"]) == pytest.approx((2 - half, 2 + half))
    assert result["interval"] == "t" and result["n"] == 3 and result["p"] == pytest.approx(0.25)


def test_bca_from_ten_pairs() -> None:
    diffs = np.arange(1.0, 11.0)  # all positive: exact p = 2 / 2^10
    result = stats.paired_test(series(diffs), series(np.zeros(10)), "max")
    assert result["interval"] == "BCa"
    assert result["lo"] < 5.5 < result["hi"] and 1 <= result["lo"] and result["hi"] <= 10
    assert result["p"] == pytest.approx(2 / 1024)


def test_unmatched_seeds_are_named_and_left_out() -> None:
    objective = series([5.0, 6.0, 7.0, 100.0], seeds=[0, 1, 2, 9])
    baseline = series([4.0, 5.0, 6.0, -1.0], seeds=[0, 1, 2, 3])
    result = stats.paired_test(objective, baseline, "min")
    assert result["unmatched"] == [3, 9]
    assert result["n"] == 3 and result["diff"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="repeated seeds"):
        stats.paired_test(series([1.0, 2.0], seeds=[0, 0]), baseline, "min")


def test_one_pair_has_no_interval_nor_p() -> None:
    result = stats.paired_test(series([1.0]), series([0.0]), "min")
    assert result["n"] == 1 and math.isnan(result["lo"]) and math.isnan(result["p"])
    assert verdict((result["diff"], nan, nan), result["p"], "min") == "no evidence"


@pytest.mark.parametrize(("diff", "p", "direction", "expected"), [
    (-1.0, 0.01, "min", "better"),   # lower is better and the objective is lower
    (-1.0, 0.01, "max", "worse"),
    (+1.0, 0.01, "max", "better"),
    (+1.0, 0.01, "min", "worse"),
    (-1.0, 0.05, "min", "no evidence"),  # corrected p must be < 0.05
    (-1.0, float("nan"), "min", "no evidence"),
])
def test_verdict_words(diff: float, p: float, direction: str, expected: str) -> None:
    assert verdict((diff, nan, nan), p, direction) == expected


def test_verdict_rejects_an_unknown_direction() -> None:
    with pytest.raises(ValueError, match="'min' or 'max'"):
        verdict((1.0, nan, nan), 0.01, "lower")


def test_add_verdicts_corrects_across_the_table() -> None:
    table = pd.DataFrame(dict(diff=[-1.0, 2.0, -0.5], p=[0.01, 0.04, 0.03],
                              direction=["min", "max", "min"]))
    out = add_verdicts(table)
    assert out["p_holm"].tolist() == pytest.approx([0.03, 0.06, 0.06])
    # uncorrected, rows 2 and 3 would pass 0.05; after Holm only row 1 does
    assert out["verdict"].tolist() == ["better", "no evidence", "no evidence"]


@pytest.mark.slow  # seconds of real runs or resampling; .ci/run runs it too
def test_iqm_and_probability_of_improvement_by_hand() -> None:
    runs = np.arange(1.0, 9.0).reshape(8, 1)  # IQM of 1..8 = mean(3, 4, 5, 6) = 4.5
    iqm, lo, hi = stats.iqm_ci(runs)
    assert iqm == pytest.approx(4.5) and lo <= iqm <= hi
    better, worse = np.full((4, 2), 1.0), np.full((4, 2), 0.0)
    assert stats.probability_of_improvement(better, worse)[0] == pytest.approx(1.0)
    assert stats.probability_of_improvement(worse, better)[0] == pytest.approx(0.0)
    assert stats.probability_of_improvement(better, better)[0] == pytest.approx(0.5)  # ties: 1/2


def test_normalised_scores_respect_direction() -> None:
    values = pd.DataFrame(dict(problem=["a"] * 3, objective=["x", "y", "z"], seed=[0] * 3,
                               value=[1.0, 3.0, 2.0]))
    assert stats.normalised_scores(values, "min")["score"].tolist() == [1.0, 0.0, 0.5]
    assert stats.normalised_scores(values, "max")["score"].tolist() == [0.0, 1.0, 0.5]


@pytest.mark.slow  # seconds; CI runs it in its slow step
def test_across_tasks_rows() -> None:
    rows = [dict(problem=p, objective=o, seed=s, value=(0.0 if o == "dlc" else 1.0) + s * 0.01)
            for p in ("a", "b") for o in ("plain", "dlc") for s in range(4)]
    table = stats.across_tasks(pd.DataFrame(rows), "min", "plain").set_index("objective")
    # dlc is lower (better) on every run of every problem: P(dlc > plain) = 1
    assert table.loc["dlc", "poi"] == pytest.approx(1.0)
    assert math.isnan(table.loc["plain", "poi"])
    assert table.loc["dlc", "problems"] == 2 and table.loc["dlc", "runs"] == 4


def test_summaries_across_problems_keep_the_objectives_that_ran_every_problem() -> None:
    from bench.report.tuned import on_every_problem

    rows = [dict(problem=p, objective=o, value=1.0) for p in ("a", "b", "c")
            for o in ("plain", "dlc")] + [dict(problem="b", objective="preset", value=1.0)]
    kept, left_out = on_every_problem(pd.DataFrame(rows))
    assert sorted(kept["objective"].unique()) == ["dlc", "plain"] and len(kept) == 6
    assert left_out == {"preset": 1}  # ran 1 of the 3 problems
    # fewer than two complete objectives: nothing is left out
    two = pd.DataFrame([dict(problem="a", objective="plain", value=1.0),
                        dict(problem="b", objective="dlc", value=1.0)])
    assert on_every_problem(two)[1] == {} and len(on_every_problem(two)[0]) == 2
