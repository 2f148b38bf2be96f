"""Hinge diagnostics of DLC-type cells, from the tidy metrics table (for reports and notes).

Every DLC-type objective logs per epoch (phase 'train'): `train_hinge_ratio` (unweighted hinge /
base term), `train_weighted_hinge_ratio` (weight * hinge / base term), `train_active_t1..t3`
(share of active hinges per term), `train_lam`, `train_mu`. Two views of them:

* `hinge_summary(metrics)`: one row per run, the final epoch's values (columns: those metrics
  without the `train_` prefix);
* `hinge_dominated(metrics, factor=10)`: the runs whose weighted hinge exceeds `factor` times
  their base term at every epoch (column `min_weighted_ratio`): the objective trained on the
  hinge, not on the task. A report prints a warning for each.
"""

from __future__ import annotations

import pandas as pd

RUN = ["run_id", "task", "model", "objective", "seed"]
DIAGNOSTICS = ("train_hinge_ratio", "train_weighted_hinge_ratio", "train_active_t1",
               "train_active_t2", "train_active_t3", "train_lam", "train_mu")


def _train_rows(metrics: pd.DataFrame, names: tuple[str, ...]) -> pd.DataFrame:
    return metrics[(metrics["phase"] == "train") & metrics["metric"].isin(names)]


def hinge_summary(metrics: pd.DataFrame) -> pd.DataFrame:
    """Final-epoch diagnostics per run (`RUN` columns + one column per logged diagnostic)."""
    rows = _train_rows(metrics, DIAGNOSTICS)
    if rows.empty:
        return pd.DataFrame(columns=RUN)
    last = rows[rows["step"] == rows.groupby("run_id")["step"].transform("max")]
    wide = last.pivot_table(index=RUN, columns="metric", values="value").reset_index()
    wide.columns.name = None
    return wide.rename(columns=lambda c: c.removeprefix("train_"))


def hinge_dominated(metrics: pd.DataFrame, factor: float = 10.0) -> pd.DataFrame:
    """Runs whose `train_weighted_hinge_ratio` exceeds `factor` at every epoch, with their
    smallest ratio (`min_weighted_ratio`); empty when none."""
    rows = _train_rows(metrics, ("train_weighted_hinge_ratio",))
    smallest = rows.groupby(RUN)["value"].min().rename("min_weighted_ratio").reset_index()
    return smallest[smallest["min_weighted_ratio"] > factor].reset_index(drop=True)
