"""The tables of a results folder: `results.parquet` (tidy metrics) and `runs.parquet` (one row per
run), each with a CSV copy, built from the run folders.

* `read_tables(results)` only reads: the run folders merged with the tables already on disk (rows
  whose run folder is not here, e.g. tables copied off a cluster, are kept). `list` and `report`
  use it, so they work on a read-only folder and on tables without run folders.
* `collect(results, force=False)` writes the same tables (the four files as one unit: a full disk
  leaves all four as they were, never `results.*` new beside `runs.*` old), and refuses (`TablesWouldShrink`) when a
  run the tables hold as `done` would lose its rows (its folder is damaged); `force=True` rebuilds
  from the run folders alone. `run` and the `collect` command use it.

A damaged run folder (`bench.runner.store.inspect_run`) is listed with status `damaged` and the reason,
and contributes no metrics. When a config changed, the old run folder (other cache key, same task,
model, objective and seed) stays on disk; only the most recently finished run counts, the others
are listed as `superseded` and their metrics are left out. Each run's `config_id`
(`bench.runner.pooling`) says which runs one report row may pool.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from bench.runner.pooling import derived_config_id
from bench.runner.store import RUN_FIELDS, atomic_write_frames, inspect_run, runs_dir
from bench.schema import COLUMNS, Status

CELL = ["task", "model", "objective", "seed"]
TABLES = ("results", "runs")


class TablesWouldShrink(RuntimeError):
    """Rebuilding the tables would drop rows of finished runs; pass `force` to do it anyway."""


def scan_runs(results: Path) -> tuple[pd.DataFrame, list[pd.DataFrame]]:
    """One row per run folder (damaged ones with status `damaged`) and each healthy run's metrics."""
    records, frames = [], []
    folder = runs_dir(results)
    for run in sorted(folder.iterdir()) if folder.is_dir() else []:
        if run.name.startswith(".") or not run.is_dir():
            continue
        state = inspect_run(run)
        record = state.record or {}
        row = {k: record.get(k) for k in RUN_FIELDS}
        row["run_id"] = run.name
        if state.record is not None and not row["config_id"]:  # recorded before run.json held it
            row["config_id"] = derived_config_id(run, state.record)
        row["metric_directions"] = json.dumps(record.get("metric_directions") or {})
        row["facts"] = json.dumps(record["facts"]) if record.get("facts") else ""
        problem = state.problem
        if not problem and (run / "metrics.parquet").exists():
            try:
                frames.append(pd.read_parquet(run / "metrics.parquet"))
            except Exception as err:  # noqa: BLE001 - any unreadable file is damage
                problem = f"{run / 'metrics.parquet'}: unreadable ({type(err).__name__}: {err})"
        if problem:
            row.update(status=str(Status.DAMAGED), reason=problem)
            for name in ("task", "model", "objective", "family"):  # unreadable record: unknown
                row[name] = row[name] or ""
        records.append(row)
    return pd.DataFrame(records), frames


def read_saved(results: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(metrics, runs) as saved in the folder's parquet tables (empty when absent)."""
    saved = []
    for name in TABLES:
        path = Path(results) / f"{name}.parquet"
        saved.append(pd.read_parquet(path) if path.is_file() else pd.DataFrame())
    return saved[0], saved[1]


def build_tables(results: Path, keep_saved: bool = True,
                 saved: tuple[pd.DataFrame, pd.DataFrame] | None = None,
                 ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(metrics, runs) from the run folders, plus (when `keep_saved`) the saved rows of runs whose
    folder is not in `results/runs` (`saved`: `read_saved(results)` when the caller has it
    already). Reads only."""
    runs, frames = scan_runs(results)
    if keep_saved:
        saved_metrics, saved_runs = saved if saved is not None else read_saved(results)
        if not saved_runs.empty:
            here = set(runs["run_id"]) if not runs.empty else set()
            elsewhere = saved_runs[~saved_runs["run_id"].isin(here)]
            runs = pd.concat([runs, elsewhere], ignore_index=True) if not runs.empty else elsewhere
            if not saved_metrics.empty:
                frames.append(saved_metrics[saved_metrics["run_id"].isin(set(elsewhere["run_id"]))])
    if not runs.empty:  # a changed config leaves the old run beside the new one: newest wins
        ranked = runs[runs["status"] != Status.DAMAGED].sort_values(
            "finished", na_position="first", kind="stable")
        stale = ranked.index[ranked.duplicated(CELL, keep="last")]
        runs.loc[stale, "status"] = str(Status.SUPERSEDED)
        live = set(runs.loc[~runs["status"].isin([Status.SUPERSEDED, Status.DAMAGED]), "run_id"])
        frames = [f[f["run_id"].isin(live)] for f in frames if not f.empty]
    frames = [f for f in frames if not f.empty]
    metrics = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)
    return metrics, runs.reset_index(drop=True)


def read_tables(results: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(metrics, runs) of `results` without writing anything (see the module docstring)."""
    return build_tables(results, keep_saved=True)


def lost_runs(saved: pd.DataFrame, runs: pd.DataFrame) -> list[str]:
    """Run ids the saved runs table holds as `done` that `runs` no longer holds as done (or
    superseded by a newer run)."""
    if saved.empty:
        return []
    kept = set(runs.loc[runs["status"].isin([Status.DONE, Status.SUPERSEDED]), "run_id"]) \
        if not runs.empty else set()
    done = saved.loc[saved["status"] == Status.DONE, "run_id"]
    return sorted(set(done) - kept)


def collect(results: Path, force: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rebuild and write `results.parquet`/`.csv` and `runs.parquet`/`.csv`; returns (metrics, runs).

    Raises `TablesWouldShrink` (and writes nothing) when a run saved as done would lose its rows,
    unless `force`; with `force`, saved rows of runs without a folder here are dropped too.
    """
    results = Path(results)
    saved = None if force else read_saved(results)  # read once: kept rows and the shrink check
    metrics, runs = build_tables(results, keep_saved=not force, saved=saved)
    if saved is not None:
        lost = lost_runs(saved[1], runs)
        if lost:
            reasons = runs.set_index("run_id")["reason"] if not runs.empty else pd.Series(dtype=str)
            first = reasons.get(lost[0], "its folder is gone")
            raise TablesWouldShrink(
                f"{results}: the tables hold {len(lost)} done run(s) that would lose their rows "
                f"({lost[0]}: {first}); kept the tables as they are (rebuild anyway with "
                f"`python -m bench collect {results} --force`)")
    atomic_write_frames({results / f"{name}.{suffix}": frame  # all four or none
                         for frame, name in ((metrics, "results"), (runs, "runs"))
                         for suffix in ("parquet", "csv")})
    return metrics, runs
