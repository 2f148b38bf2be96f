"""The tuning compute of a `bench tune` folder, per (task, model) and objective: how many trials
ran, how many of them did not finish (by status: a trial counts as failed, diverged, damaged or
missing when one of its tuning seeds is), and the wall time of the trial cells.

The protocol report (`bench.report_protocol`) shows it as "8 trials, 1 diverged", so a comparison
whose objectives had equal budgets on paper but not in finished trials says so.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

ROW = ["task", "model", "objective"]


def trial_text(statuses: pd.Series) -> str:
    """'8 trials' or '8 trials, 1 diverged, 1 failed' from one status per trial."""
    counts = statuses[statuses != "done"].value_counts().sort_index()
    return ", ".join([f"{len(statuses)} trials", *(f"{n} {s}" for s, n in counts.items())])


def trial_statuses(scores: pd.DataFrame) -> pd.DataFrame:
    """One row per (task, model, objective, trial) of `trial_scores` (one row per seed): the
    trial's status, 'done' only when every seed is, else the first other status of its seeds."""
    def one(group: pd.Series) -> str:
        other = [s for s in group if s != "done"]
        return other[0] if other else "done"

    return scores.groupby([*ROW, "trial"], as_index=False)["status"].agg(one)


def compute_table(out: Path, scores: pd.DataFrame) -> pd.DataFrame:
    """Per (task, model): `<objective> trials` ('8 trials, 1 diverged', from `scores`, the
    selection's trial_scores) and `<objective> s` (total wall time of its trial cells, s, from
    the trial folders' runs tables)."""
    if scores.empty:
        return pd.DataFrame()
    trials = trial_statuses(scores).groupby(ROW)["status"].agg(trial_text).rename("trials")
    frames = [pd.read_parquet(f / "runs.parquet") for f in sorted((Path(out) / "trials").glob("t*"))
              if (f / "runs.parquet").is_file()]
    runs = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=[*ROW, "run_id", "wall_time_s"])
    known = runs[runs["run_id"].isin(set(scores["run_id"]))]  # this manifest's trial cells only
    seconds = known.groupby(ROW)["wall_time_s"].sum().round(1).rename("seconds")
    long = pd.concat([trials, seconds], axis=1).reset_index()
    wide = long.pivot_table(index=["task", "model"], columns="objective",
                            values=["trials", "seconds"], aggfunc="first")
    wide = wide[sorted(wide.columns, key=lambda c: (c[1], c[0] != "trials"))]
    wide.columns = [f"{objective} {'trials' if what == 'trials' else 's'}"
                    for what, objective in wide.columns]
    return wide.reset_index()
