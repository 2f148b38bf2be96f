"""Reading a results folder for the report, without writing anything outside the report folder.

The report reads the tidy tables `results.parquet` and `runs.parquet` that `bench run` writes
when it ends; it never rebuilds them (a rebuild from a folder without `runs/`, as in a committed
results folder, would replace them with empty tables).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from bench.report.metadata import family_of
from bench.result_tables import read_tables
from bench.store import COLUMNS

FINAL_PHASES = ("test", "landscape")
#: the optimality gap is reported only beside this metric (see `drop_legacy_gap`).
GAP_COMPANION = "spurious_minimum"


class ReportInputError(ValueError):
    """The results folder cannot be reported on (missing or unreadable tables)."""


def load_tables(results: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(metrics, runs) from `results/results.parquet` and `results/runs.parquet`, merged with the
    run folders under `results/runs` when there are any (a damaged folder is listed `damaged`).

    Raises ReportInputError naming the missing file when a folder has neither table.
    """
    results = Path(results)
    metrics_path, runs_path = results / "results.parquet", results / "runs.parquet"
    if (results / "runs").is_dir():  # run folders here: their current state, damaged ones named
        return read_tables(results)  # (merged with the tables; reads only)
    if not runs_path.exists():
        raise ReportInputError(
            f"{runs_path}: no runs table; `python -m bench run` writes it when a matrix ends")
    runs = pd.read_parquet(runs_path)
    metrics = (pd.read_parquet(metrics_path) if metrics_path.exists()
               else pd.DataFrame(columns=COLUMNS))
    return metrics, runs


def metric_directions(runs: pd.DataFrame) -> dict[str, str]:
    """metric -> 'min' | 'max', exactly as declared in the runs' `run.json` (nothing inferred).

    Raises ReportInputError when two runs declare opposite directions for one metric.
    """
    out: dict[str, str] = {}
    for text in runs.get("metric_directions", pd.Series(dtype=object)).dropna():
        for metric, direction in (json.loads(text) if isinstance(text, str) else text).items():
            if direction is None:
                continue
            if out.setdefault(metric, direction) != direction:
                raise ReportInputError(f"metric {metric!r} is declared both {out[metric]!r} and "
                                       f"{direction!r} in {runs.attrs.get('path', 'runs.parquet')}")
    return out


def drop_legacy_gap(metrics: pd.DataFrame) -> tuple[pd.DataFrame, set[str]]:
    """Remove `optimality_gap` rows of runs that lack `spurious_minimum`.

    Such runs recorded the old signed gap h(ŵ) − h(w*) (negative wherever w* is not the minimiser
    of the learned h), which is not comparable across objectives. Returns (metrics, the tasks
    whose gap was dropped).
    """
    if metrics.empty:
        return metrics, set()
    current = set(metrics.loc[metrics.metric == GAP_COMPANION, "run_id"])
    legacy = (metrics.metric == "optimality_gap") & ~metrics.run_id.isin(current)
    return metrics[~legacy], set(metrics.loc[legacy, "task"])


def commits(runs: pd.DataFrame) -> list[str]:
    """The distinct git SHAs of the runs that trained (skipped cells never ran)."""
    ran = runs[runs.status != "skipped"] if "status" in runs else runs
    return sorted({str(s) for s in ran.get("git_sha", pd.Series(dtype=str)).dropna() if s})


def with_family(frame: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """`frame` (with a `task` column) plus `family`: as recorded in runs.parquet (`Task.family`),
    else, for tables written before runs recorded it, the task name up to its first `_`."""
    recorded = {}
    if "family" in runs:
        recorded = runs.dropna(subset=["family"]).groupby("task")["family"].first().to_dict()
    return frame.assign(family=[recorded.get(t) or family_of(t) for t in frame["task"]])


def final_values(metrics: pd.DataFrame) -> pd.DataFrame:
    """One row per (task, model, objective, seed, metric): the final value (no landscape curves)."""
    final = metrics[metrics["phase"].isin(FINAL_PHASES)]
    final = final[~final["metric"].str.startswith("slice_")]
    return final.groupby(["task", "model", "objective", "seed", "metric"], as_index=False)[
        "value"].last()
