"""Hinge diagnostics: the 10x warning rule and the final-epoch summary."""

from __future__ import annotations

import pandas as pd

from bench.report.diagnostics import hinge_dominated, hinge_summary


def _rows(run: str, metric: str, values: list[float]) -> list[dict]:
    return [dict(run_id=run, task="t", model="m", objective=run, seed=0, phase="train", step=i,
                 metric=metric, value=v) for i, v in enumerate(values)]


def test_a_run_is_flagged_only_when_the_weighted_hinge_dominates_every_epoch() -> None:
    table = pd.DataFrame(
        _rows("always", "train_weighted_hinge_ratio", [30.0, 12.0, 10.5])
        + _rows("once_below", "train_weighted_hinge_ratio", [30.0, 9.0, 40.0])
        + _rows("small", "train_weighted_hinge_ratio", [0.5, 0.2])
        + _rows("plain", "train_original", [1.0, 0.5]))
    flagged = hinge_dominated(table)
    assert flagged["run_id"].tolist() == ["always"]
    assert flagged["min_weighted_ratio"].tolist() == [10.5]
    assert hinge_dominated(table, factor=8.0)["run_id"].tolist() == ["always", "once_below"]


def test_summary_keeps_the_last_epoch_of_each_diagnostic() -> None:
    table = pd.DataFrame(_rows("a", "train_active_t2", [1.0, 0.25])
                         + _rows("a", "train_mu", [0.3, 0.1])
                         + _rows("a", "test_thing", [5.0]))
    summary = hinge_summary(table)
    assert summary[["active_t2", "mu"]].values.tolist() == [[0.25, 0.1]]
    assert hinge_summary(table[table.metric == "test_thing"]).empty
