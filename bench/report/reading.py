"""Reading a results folder for the report, without writing anything outside the report folder.

The report reads the run folders merged with the saved tidy tables (`results.parquet`,
`runs.parquet`) and never writes them: everything it writes goes into its own output folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from bench.report.metadata import family_of
from bench.runner import recorded_facts as facts
from bench.runner.pooling import describe_mix, mixed_configs
from bench.runner.result_tables import read_tables
from bench.runner.store import COLUMNS

FINAL_PHASES = ("test", "landscape")
#: the optimality gap is reported only beside this metric (see `drop_legacy_gap`).
GAP_COMPANION = "spurious_minimum"


class ReportInputError(ValueError):
    """The results folder cannot be reported on (missing or unreadable tables)."""


def load_tables(results: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(metrics, runs) of `results` without writing anything: the run folders merged with the
    saved tables (`bench.runner.result_tables.read_tables`; a folder with tables but no run folders, as a
    committed results folder, reads as saved; a damaged run folder is listed as `damaged`).

    Raises ReportInputError when the folder has neither run folders nor a runs table, and when
    one (task, model, objective) has live runs of more than one config (`bench.runner.pooling`): one
    table row must never average them.
    """
    results = Path(results)
    runs_path = results / "runs.parquet"
    if not runs_path.exists() and not (results / "runs").is_dir():
        raise ReportInputError(
            f"{runs_path}: no runs table and no run folders; `python -m bench run` writes them")
    metrics, runs = read_tables(results)
    facts.learn(runs)  # the facts the runs recorded (units, labels, reference models, ...)
    mixed = mixed_configs(runs)
    if mixed:
        raise ReportInputError(describe_mix(results, mixed))
    if metrics.empty:
        metrics = pd.DataFrame(columns=COLUMNS)
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


def legacy_base_loss(runs: pd.DataFrame) -> bool:
    """True when some run that trained recorded no direction for `train_original`: it predates
    the explicit base loss (`ObjectiveOutput.original`), and an objective that trains on another loss
    (target_noise: the loss at perturbed targets) logged that loss under this name."""
    ran = runs[runs.get("status", pd.Series(dtype=str)) == "done"]
    for text in ran.get("metric_directions", pd.Series(dtype=object)).dropna():
        declared = json.loads(text) if isinstance(text, str) else text
        if "train_original" not in declared:
            return True
    return False


def commits(runs: pd.DataFrame) -> list[str]:
    """The distinct git SHAs of the runs that trained (skipped cells never ran)."""
    ran = runs[runs.status != "skipped"] if "status" in runs else runs
    return sorted({str(s) for s in ran.get("git_sha", pd.Series(dtype=str)).dropna() if s})


def with_family(frame: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """`frame` (with a `task` column) plus `family`: as recorded in runs.parquet (`Task.family`),
    else, for tables written before runs recorded it, the registry's (`bench.tasks.facts`)."""
    families = {task: family_of(task, runs) for task in frame["task"].unique()}
    return frame.assign(family=frame["task"].map(families))


def evaluated_split(metrics: pd.DataFrame) -> str:
    """'validation' for a folder whose runs evaluated the validation split only (a tuning trial
    folder, `bench tune`), else 'test'."""
    phases = set(metrics["phase"]) if not metrics.empty else set()
    return "validation" if "val" in phases and not any(p.startswith("test") for p in phases) \
        else "test"


def final_values(metrics: pd.DataFrame, split: str = "test") -> pd.DataFrame:
    """One row per (task, model, objective, seed, metric): the final value on `split` ('test' or
    'validation', see `evaluated_split`) and the landscape (no landscape curves)."""
    phases = ("val", "landscape") if split == "validation" else FINAL_PHASES
    final = metrics[metrics["phase"].isin(phases)]
    final = final[~final["metric"].str.startswith("slice_")]
    return final.groupby(["task", "model", "objective", "seed", "metric"], as_index=False)[
        "value"].last()
