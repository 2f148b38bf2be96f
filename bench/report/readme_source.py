"""Reading the committed results for the README (`bench.report.readme`): each folder's tables
once, per-seed values of one metric, and the few text formats the README prints.

Every function takes the repository root first, so that a test can point it at a copy.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from bench.report.numbers import format_mean_std


@cache
def tables(repo: Path, folder: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(metrics, runs) of `repo/results/folder`: the long results table (run_id, task, model,
    objective, seed, phase, step, metric, value) and the runs table (one row per run)."""
    root = repo / "results" / folder
    return pd.read_parquet(root / "results.parquet"), pd.read_parquet(root / "runs.parquet")


def values(repo: Path, folder: str, metric: str, phase: str = "test", step: int | None = None,
           **where: str) -> pd.Series:
    """`metric` per seed (index, ascending) of the runs matching `where` (task=, model=,
    objective=) in phase `phase`; at `step` (train: -1 is the last epoch), else the last step."""
    metrics, _ = tables(repo, folder)
    rows = metrics[(metrics.phase == phase) & (metrics.metric == metric)]
    for column, value in where.items():
        rows = rows[rows[column] == value]
    if rows.empty:
        raise KeyError(f"results/{folder}: no {phase} {metric} for {where}")
    last = rows.step.max() if step in (None, -1) else step
    rows = rows[rows.step == last]
    return rows.groupby("seed")["value"].mean().sort_index()


def walls(repo: Path, folder: str, **where: str) -> pd.Series:
    """Wall time (s) per seed of the finished runs matching `where`."""
    _, runs = tables(repo, folder)
    runs = runs[runs.status == "done"]
    for column, value in where.items():
        runs = runs[runs[column] == value]
    return runs.set_index("seed")["wall_time_s"].sort_index()


def mean_std(series: pd.Series) -> str:
    """`mean ± sample std` at the report's precision (`format_mean_std`)."""
    return format_mean_std(float(series.mean()), float(series.std(ddof=1)), len(series))


def listed(series: pd.Series, fmt: str | None = None) -> str:
    """`91.6, 91.3, 92.4`: the values in index order, by default all with the fewest decimals
    (at least 1, at most 4) that print every value exactly (`47.75, 52.25, 51.50`)."""
    if fmt is None:
        places = next((d for d in range(1, 5) if all(abs(round(v, d) - v) < 1e-9
                                                     for v in series)), 4)
        fmt = f".{places}f"
    return ", ".join(f"{v:{fmt}}" for v in series)


def span(series: pd.Series | np.ndarray, fmt: str = ".2g") -> str:
    """`lo-hi` of the values (one number when both print the same)."""
    low, high = (f"{v:{fmt}}" for v in (np.min(series), np.max(series)))
    return low if low == high else f"{low}-{high}"


def markdown(rows: list[tuple], columns: list[str]) -> str:
    """A compact GitHub table (`|---|` rules), as the README writes them."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return "\n".join([*lines, *("| " + " | ".join(map(str, r)) + " |" for r in rows)]) + "\n"


def minus(text: str) -> str:
    """`text` with its hyphens as minus signs (−), as the README's tables print differences."""
    return text.replace("-", "−")


def mean_text(mean: float, std: float, n: int) -> str:
    """The mean as a table prints it beside its std (`format_mean_std`, without the `± std`)."""
    return format_mean_std(mean, std, n).split(" ±")[0]


def across(repo: Path, folder: str, objective: str, what: str) -> str:
    """`0.641 [0.550, 0.716]`: one objective's `what` (iqm, poi) with its interval, from a tuned
    folder's `report/across_tasks.csv`."""
    path = repo / "results" / folder / "report" / "across_tasks.csv"
    row = pd.read_csv(path).set_index("objective").loc[objective]
    return f"{row[what]:.3f} [{row[what + '_lo']:.3f}, {row[what + '_hi']:.3f}]"

