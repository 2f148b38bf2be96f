"""Selection: read the trials' tidy tables, pick the winner per (task, model, objective) on the
VALIDATION metric, and write it as a gin file.

Layout under a tuning folder (written by `bench.protocol.tune`):

    trials.json                         one entry per (task, model, objective, trial): params,
                                        bindings, seeds, results folder
    trials/t000/ ...                    one ordinary results folder per trial index
    selected/<task>-<model>-<objective>.gin   the winner's operative config, score in a comment
    selected/selected.csv               one row per winner: trial, score, params

Only validation rows (phase 'val') are read; a trial counts only when every one of its tuning seeds
finished ('done'); trials stopped by successive halving are 'pruned' and never win; ties go to the
lower trial index. A damaged trial file (trials.json, a trial's run.json or metrics.parquet) stops
the selection with one line naming it; `tune --phase tune` re-runs a damaged trial.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from bench.runner.config import ConfigError
from bench.runner.store import atomic_write_frame, atomic_write_text, inspect_run, runs_dir

VAL_PHASE = "val"


#: what every entry of trials.json holds
ENTRY = ("task", "model", "objective", "trial", "params", "seeds", "run_ids", "results")


def read_manifest(out: Path, missing_ok: bool = False) -> list[dict]:
    """The entries of `out/trials.json` ([] when absent and `missing_ok`); `ConfigError` naming the
    file when it is missing, unreadable or not a list of trial entries."""
    path = Path(out) / "trials.json"
    if not path.is_file():
        if missing_ok:
            return []
        raise ConfigError(f"{path}: no trials manifest; run `bench tune MATRIX --phase tune` first")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ConfigError(f"{path}: unreadable ({type(err).__name__}: {err}); remove it and run "
                          "`bench tune MATRIX --phase tune` to write it again") from None
    bad = next((i for i, e in enumerate(manifest if isinstance(manifest, list) else [None])
                if not isinstance(e, dict) or any(k not in e for k in ENTRY)), None)
    if bad is not None:
        raise ConfigError(f"{path}: entry {bad} is not a trial entry (expected a list of objects "
                          f"with {', '.join(ENTRY)}); remove it and run `bench tune MATRIX "
                          "--phase tune` to write it again")
    return manifest


def trial_scores(out: Path, manifest: Sequence[dict], sweep, strict: bool = True) -> pd.DataFrame:
    """One row per (task, model, objective, trial, seed): run status and its validation score
    (the sweep's metric at the `final` or `best` validation evaluation; NaN when not done).

    A damaged trial run folder (`bench.runner.store.inspect_run`) raises `ConfigError` naming the file
    when `strict` (selection never drops a trial silently: `tune --phase tune` re-runs it);
    otherwise its status is 'damaged'."""
    rows = []
    for entry in manifest:
        if entry.get("skipped"):
            continue  # an incompatible (task, model, objective): no trial to score
        metric, direction = sweep.metric_of(entry["task"])
        folder = Path(out) / entry["results"]
        for seed, run_id in zip(entry["seeds"], entry["run_ids"]):
            status, score = "missing", float("nan")
            run = runs_dir(folder) / run_id
            state = inspect_run(run) if run.is_dir() else None
            if entry.get("pruned_at") is not None:  # stopped by successive halving (bench.protocol.halving)
                status = "pruned"
            elif state is not None and state.damaged:
                if strict:
                    raise ConfigError(f"trial {entry['trial']} ({entry['objective']}, seed {seed}): "
                                      f"{state.problem}; run `bench tune MATRIX --phase tune` "
                                      "again to re-run the damaged trial")
                status = "damaged"
            elif state is not None:
                record = state.record
                status = record["status"]
                declared = (record.get("metric_directions") or {}).get(metric, direction)
                if declared != direction:
                    raise ConfigError(f"{sweep.source}: selection metric {metric!r} is declared "
                                      f"{declared!r} by the task, the sweep says {direction!r}")
                if status == "done":
                    score = _val_score(run / "metrics.parquet", metric, direction, sweep.iterate)
            rows.append(dict(task=entry["task"], model=entry["model"],
                             objective=entry["objective"], trial=entry["trial"], seed=seed,
                             run_id=run_id, status=status, metric=metric, direction=direction,
                             score=score, results=entry["results"],
                             params=json.dumps(entry["params"], sort_keys=True)))
    return pd.DataFrame(rows)


def _val_score(path: Path, metric: str, direction: str, iterate: str) -> float:
    try:
        frame = pd.read_parquet(path)
    except Exception as err:  # noqa: BLE001 - any unreadable file is damage, named
        raise ConfigError(f"{path}: unreadable ({type(err).__name__}: {err}); run `bench tune "
                          "MATRIX --phase tune` again to re-run the damaged trial") from None
    test_rows = frame["phase"].str.startswith("test")
    if test_rows.any():
        raise ConfigError(f"{path}: a tuning trial holds test metrics; refusing to select from it")
    rows = frame[(frame["phase"] == VAL_PHASE) & (frame["metric"] == metric)].sort_values("step")
    if rows.empty:
        known = sorted(frame.loc[frame["phase"] == VAL_PHASE, "metric"].unique())
        raise ConfigError(f"{path}: no validation metric {metric!r} (recorded: {known})")
    values = rows["value"].to_numpy(dtype=float)
    if iterate == "final":
        return float(values[-1])
    return float(np.nanmin(values) if direction == "min" else np.nanmax(values))


def winners(scores: pd.DataFrame, budget: int | None = None) -> pd.DataFrame:
    """The best trial per (task, model, objective): mean validation score over tuning seeds, only
    trials whose every seed is done; ties -> lowest trial index. Raises when a group has none.
    With `budget`, only the first `budget` trials (in sampling order) compete."""
    if budget is not None:
        scores = scores[scores["trial"] < budget]
    per_trial = scores.groupby(["task", "model", "objective", "trial"], as_index=False).agg(
        score=("score", "mean"), done=("status", lambda s: bool((s == "done").all())),
        direction=("direction", "first"), metric=("metric", "first"), params=("params", "first"),
        results=("results", "first"), run_id=("run_id", "first"), seeds=("seed", list))
    out = []
    for key, group in per_trial.groupby(["task", "model", "objective"]):
        usable = group[group["done"] & np.isfinite(group["score"])]
        if usable.empty:
            raise ConfigError(f"no finished trial for (task, model, objective) = {key}: "
                              "run `bench tune --phase tune` again (failed trials are retried)")
        ascending = usable["direction"].iloc[0] == "min"
        best = usable.sort_values(["score", "trial"], ascending=[ascending, True]).iloc[0]
        out.append({**best.to_dict(), "trials": int(len(group)), "finished": int(len(usable))})
    return pd.DataFrame(out)


def selected_path(out: Path, task: str, model: str, objective: str,
                  trial: int | None = None) -> Path:
    """The winner's gin file; with `trial`, the file of a smaller budget's winner (trial index)."""
    if trial is None:
        return Path(out) / "selected" / f"{task}-{model}-{objective}.gin"
    return Path(out) / "selected" / "budgets" / f"{task}-{model}-{objective}-t{trial:03d}.gin"


def write_selected(out: Path, chosen: pd.DataFrame, sweep, by_trial: bool = False) -> list[Path]:
    """One gin file per winner (its operative config, with the validation score and the sampled
    hyper-parameters in comments). Returns the gin files written. `by_trial`: name the files by
    trial index (the winners of smaller budgets)."""
    written = []
    for row in chosen.itertuples():
        run = runs_dir(Path(out) / row.results) / row.run_id
        operative = (run / "operative.gin").read_text()
        params = json.loads(row.params)
        header = [
            f"# Selected by `bench tune` (sweep {Path(sweep.source).name}, sampler {sweep.sampler}, "
            f"seed {sweep.seed}): trial {row.trial} of {row.trials} ({row.finished} finished).",
            f"# Validation {row.metric} ({row.direction}, {sweep.iterate} iterate) = "
            f"{row.score:.6g}, mean over tuning seeds {row.seeds}.",
            *[f"# swept: {k} = {v!r}" for k, v in sorted(params.items())],
            f"# Operative config of run {row.run_id}:",
        ]
        path = selected_path(out, row.task, row.model, row.objective,
                             int(row.trial) if by_trial else None)
        atomic_write_text(path, "\n".join(header) + "\n" + operative)
        written.append(path)
    return written


def select(out: Path, sweep) -> pd.DataFrame:
    """Read the trials of the tuning folder `out`, write the winners; returns the winners."""
    scores = trial_scores(out, read_manifest(out), sweep)
    atomic_write_frame(scores, Path(out) / "selected" / "trial_scores.csv")
    chosen = winners(scores)
    write_selected(out, chosen, sweep)
    folder = Path(out) / "selected"
    atomic_write_frame(chosen.drop(columns=["seeds"]), folder / "selected.csv")
    smaller = budget_winners(scores, chosen, sweep.budgets)
    atomic_write_frame(smaller.drop(columns=["seeds"]), folder / "budgets.csv")
    extra = smaller[~smaller["same_as_full"]].drop_duplicates(["task", "model", "objective",
                                                                 "trial"])
    write_selected(out, extra, sweep, by_trial=True)
    return chosen


def budget_winners(scores: pd.DataFrame, chosen: pd.DataFrame,
                   budgets: Sequence[int]) -> pd.DataFrame:
    """`winners` at every budget of `budgets` plus the full budget (column `budget`), with
    `same_as_full` where the winner is the full budget's (its final runs are then shared)."""
    full = chosen.assign(budget=chosen["trials"].astype(int), same_as_full=True)
    frames = [full]
    for budget in budgets:
        small = winners(scores, int(budget)).assign(budget=int(budget))
        merged = small.merge(chosen[["task", "model", "objective", "trial"]], how="left",
                             on=["task", "model", "objective"], suffixes=("", "_full"))
        frames.append(small.assign(same_as_full=(merged["trial"] == merged["trial_full"]).to_numpy()))
    return pd.concat(frames, ignore_index=True)
