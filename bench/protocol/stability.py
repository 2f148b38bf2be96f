"""How much a tuned selection owes to its tuning seeds, and how well early rungs predict the end.

`stage_scores` lays a tuning folder's validation scores out as one row per (task, model,
objective, stage, trial, seed): stage k < K is halving rung k (`trials.json`), stage K the full
budget (`selected/trial_scores.csv`).

`selection_stability` replays the whole selection (the rungs' promotions by Optuna's pruner and
the final choice, `bench.protocol.halving.decide`) on the mean over the tuning seeds with one seed left
out, once per seed: the stability is the share of those replays that promote the same trials at
every rung and pick the same winner (1.0: no single tuning seed decides the choice). A replay that
promotes a trial which never ran the full budget counts as a change.

`rung_correlation`: Spearman's rank correlation, per (task, model) and rung, between the rung's
mean validation score and the full budget's, over the trials that reached the full budget (every
objective pooled; early rungs can penalise slow starters).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from bench.protocol.halving import decide

GROUP = ["task", "model", "objective"]


def stage_scores(out: Path, sweep) -> pd.DataFrame:
    """Columns task, model, objective, direction, stage, trial, seed, score (see the module)."""
    manifest = json.loads((Path(out) / "trials.json").read_text())
    full = pd.read_csv(Path(out) / "selected" / "trial_scores.csv")
    rows = []
    for entry in manifest:
        if entry.get("skipped"):
            continue
        direction = sweep.metric_of(entry["task"])[1]
        for stage, rung in enumerate(entry.get("rungs", [])):
            for seed, score in zip(entry["seeds"], rung.get("seed_scores", [])):
                rows.append(dict(task=entry["task"], model=entry["model"],
                                 objective=entry["objective"], direction=direction, stage=stage,
                                 trial=entry["trial"], seed=seed, score=score))
    last = len(sweep.rungs)
    done = full[full["status"] == "done"]
    for row in done.itertuples():
        rows.append(dict(task=row.task, model=row.model, objective=row.objective,
                         direction=row.direction, stage=last, trial=row.trial, seed=row.seed,
                         score=row.score))
    frame = pd.DataFrame(rows, columns=[*GROUP, "direction", "stage", "trial", "seed", "score"])
    # a group without rungs (nothing to halve, e.g. ICP) has its full budget as its only stage
    frame["stage"] = frame["stage"] - (last - frame.groupby(GROUP)["stage"].transform("nunique")
                                       + 1)
    return frame


def _replay(scores: pd.DataFrame, seeds: list[int], direction: str,
            reduction_factor: int) -> tuple[list[set[int]], int | None]:
    mine = scores[scores["seed"].isin(seeds)]
    stages = []
    for stage in range(int(scores["stage"].max()) + 1):
        here = mine[mine["stage"] == stage]
        counts = here.groupby("trial")["score"].count()
        means = here.groupby("trial")["score"].mean()
        stages.append({int(t): float(means[t]) if counts[t] == len(seeds) else np.nan
                       for t in means.index})
    return decide(stages, direction, reduction_factor)


def stability(scores: pd.DataFrame, direction: str, reduction_factor: int) -> tuple[int | None,
                                                                                   float]:
    """(winner on every tuning seed, share of leave-one-seed-out replays with the same promotions
    and winner) for ONE (task, model, objective): columns stage, trial, seed, score."""
    seeds = sorted(int(s) for s in scores["seed"].unique())
    kept, winner = _replay(scores, seeds, direction, reduction_factor)
    if len(seeds) < 2:
        return winner, float("nan")
    same = [_replay(scores, [s for s in seeds if s != drop], direction, reduction_factor)
            == (kept, winner) for drop in seeds]
    return winner, float(np.mean(same))


def selection_stability(frame: pd.DataFrame, sweep) -> pd.DataFrame:
    """One row per (task, model, objective) of `stage_scores`: winner, tuning seeds, stability."""
    rows = []
    for (task, model, objective), group in frame.groupby(GROUP):
        winner, share = stability(group, group["direction"].iloc[0], sweep.eta(objective))
        rows.append(dict(task=task, model=model, objective=objective, winner=winner,
                         tuning_seeds=group["seed"].nunique(), stability=share))
    return pd.DataFrame(rows)


def rung_correlation(frame: pd.DataFrame) -> pd.DataFrame:
    """Per (task, model) and rung: trials reaching the full budget and Spearman's rho between
    their rung and full-budget mean scores (NaN below 3 trials)."""
    from scipy.stats import spearmanr

    means = frame.groupby([*GROUP, "stage", "trial"], as_index=False)["score"].mean()
    rows = []
    for (task, model), group in means.groupby(["task", "model"]):
        last = group.groupby("objective")["stage"].transform("max")
        final = group[group["stage"] == last].set_index(["objective", "trial"])["score"]
        for rung in sorted(set(group.loc[group["stage"] < last, "stage"])):
            early = group[(group["stage"] == rung) & (group["stage"] < last)]
            early = early.set_index(["objective", "trial"])["score"]
            both = pd.concat([early, final], axis=1, join="inner").dropna()
            with warnings.catch_warnings():  # a constant column: rho is undefined (NaN)
                warnings.simplefilter("ignore")
                rho = spearmanr(both.iloc[:, 0], both.iloc[:, 1]).statistic \
                    if len(both) >= 3 else np.nan
            rows.append(dict(task=task, model=model, rung=int(rung), trials=len(both),
                             spearman=float(rho)))
    return pd.DataFrame(rows, columns=["task", "model", "rung", "trials", "spearman"])
