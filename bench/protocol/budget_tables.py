"""The tuning-side tables of a tuned comparison's report (`bench.report.tuned`): compute per
objective, selection stability, rung-vs-final rank correlation; each returns a DataFrame and the
report writes it as CSV and markdown.

Compute is counted as the protocol keeps it equal: full-budget-equivalent trials, i.e. epochs run
(rungs and restarts included, pruned trials included; `trials.json`'s `epochs_trained`) summed
over trials and tuning seeds, divided by the full budget's epochs; next to it the sweep's planned
value and the measured wall time of every tuning cell (rungs included).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from bench.protocol.stability import rung_correlation, selection_stability, stage_scores
from bench.protocol.trial_counts import trial_statuses, trial_text
from bench.runner.store import atomic_write_frame

GROUP = ["task", "model", "objective"]


def compute_table(out: Path, sweep, scores: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per (task, model, objective): points, trials reaching the full budget, measured
    and planned full-budget-equivalent trials (over the tuning seeds), wall time of its cells,
    and, from the selection's `scores` (trial_scores.csv), the trials that did not finish
    (`trials`: '8 trials, 1 diverged', `bench.protocol.trial_counts`)."""
    manifest = [e for e in json.loads((Path(out) / "trials.json").read_text())
                if not e.get("skipped")]
    rows = []
    for entry in manifest:
        full = entry.get("full_epochs")
        reached = entry.get("reached_full", True)  # no rungs: every trial ran the full budget
        equiv = entry.get("epochs_trained", 0) / full if full else float(reached)
        rows.append(dict(task=entry["task"], model=entry["model"], objective=entry["objective"],
                         reached=int(reached), equiv=equiv * len(entry["seeds"]),
                         seeds=len(entry["seeds"])))
    if not rows:
        return pd.DataFrame()
    table = pd.DataFrame(rows).groupby(GROUP, as_index=False).agg(
        points=("reached", "size"), reached_full=("reached", "sum"),
        full_budget_equiv=("equiv", "sum"), seeds=("seeds", "first"))
    table["planned_equiv"] = [sweep.compute(o) * s for o, s in zip(table["objective"],
                                                                   table["seeds"])]
    table = table.merge(_wall_times(out), on=GROUP, how="left").round(2)
    if scores is not None and not scores.empty:
        trials = trial_statuses(scores).groupby(GROUP)["status"].agg(trial_text).rename("trials")
        table = table.merge(trials.reset_index(), on=GROUP, how="left")
    return table


def _wall_times(out: Path) -> pd.DataFrame:
    """Total wall time (s) of the done tuning cells per (task, model, objective), rungs included."""
    folders = list((Path(out) / "trials").glob("t*")) + list((Path(out) / "rungs").glob("*/t*"))
    frames = [pd.read_parquet(f / "runs.parquet") for f in sorted(folders)
              if (f / "runs.parquet").is_file()]
    if not frames:
        return pd.DataFrame(columns=[*GROUP, "wall_s"])
    runs = pd.concat(frames, ignore_index=True)
    runs = runs[runs["status"] == "done"]
    return runs.groupby(GROUP, as_index=False).agg(wall_s=("wall_time_s", "sum"))


def stability_tables(out: Path, sweep) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(selection stability per (task, model, objective), rung-vs-final Spearman per (task,
    model, rung)) of a tuning folder."""
    frame = stage_scores(out, sweep)
    if frame.empty:
        return pd.DataFrame(), pd.DataFrame()
    return selection_stability(frame, sweep), rung_correlation(frame)


def protocol_sections(out: Path, sweep, report: Path,
                      scores: pd.DataFrame | None = None) -> list[str]:
    """The report's compute, selection-stability and rung-correlation sections (markdown lines;
    the tables also as CSV in `report`)."""
    from tabulate import tabulate

    compute = compute_table(out, sweep, scores)
    stable, spearman = stability_tables(out, sweep)
    lines = []
    for name, table, title in (
            ("compute", compute, "Tuning compute per objective (kept equal: full-budget-"
             "equivalent trials, pruned trials and restarts included; planned vs run; "
             "`reached_full`: trials that reached the full budget; wall time of all tuning "
             "cells, s; `trials`: those that did not finish, which selection left out)"),
            ("stability", stable, "Selection stability (share of leave-one-tuning-seed-out "
             "replays of the whole selection that keep every promotion and the winner)"),
            ("rung_correlation", spearman, "Rank correlation (Spearman) of each rung's mean "
             "validation score with the full budget's, trials that reached the full budget")):
        atomic_write_frame(table, report / f"{name}.csv")
        shown = tabulate(table, headers="keys", tablefmt="github", showindex=False) \
            if len(table) else "_none_"
        lines += [f"## {title}", "", shown, ""]
    return lines
