"""How many trials of a `bench tune` folder ran per (task, model, objective) and how many did not
finish (by status: a trial counts as failed, diverged, damaged or missing when one of its tuning
seeds is). The protocol report's compute table (`bench.protocol.budget_tables.compute_table`) shows it as
"8 trials, 1 diverged", so a comparison whose objectives had equal budgets on paper but not in
finished trials says so.
"""

from __future__ import annotations

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
