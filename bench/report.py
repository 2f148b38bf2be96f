"""Reports from the tidy table (first version): final-metric tables and convergence figures.

Reads only `results.parquet` / `runs.parquet` (rebuilt from the run folders first). Writes into
`<results>/report/`:

* `tables/<family>.{md,csv}`: per (task, model, objective) the final test metrics as
  mean +- std over seeds (std with ddof=1; n stated), best mean per task and column in bold;
* `tables/cells.md`: every cell with its status and reason (failed, diverged and skipped cells are
  listed, never dropped);
* `figures/<task>_test_iter_<metric>.{png,pdf,csv}`: the test-time solver's convergence per
  iteration, mean over test examples, 95% bootstrap CI over seeds (seaborn, fixed seed);
* `figures/<task>_train_loss.{png,pdf,csv}`: training convergence per epoch;
* `index.md` linking everything.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from bench.store import atomic_write_text, collect

LOWER_IS_BETTER_PREFIXES = ("distance", "optimality_gap", "train_loss", "violation_rate", "mace")


def direction(metric: str) -> str:
    """'max' for success rates and accuracies, 'min' for errors, gaps and losses."""
    return "max" if metric.startswith(("success", "acc")) else "min"


def summarise(metrics: pd.DataFrame) -> pd.DataFrame:
    """Final metrics per (task, model, objective, metric): mean, std (ddof=1), n over seeds."""
    final = metrics[metrics["phase"].isin(["test", "landscape"])]
    grouped = final.groupby(["task", "model", "objective", "metric"])["value"]
    return grouped.agg(mean="mean", std=lambda v: v.std(ddof=1), n="count").reset_index()


def _format(mean: float, std: float, n: int) -> str:
    return f"{mean:.3g} ± {std:.2g}" if n > 1 and np.isfinite(std) else f"{mean:.3g}"


def final_table(summary: pd.DataFrame, bold: str = "**") -> pd.DataFrame:
    """Wide table: one row per (task, model, objective), one column per metric; best in bold."""
    cells = summary.copy()
    cells["text"] = [_format(m, s, n) for m, s, n in zip(cells["mean"], cells["std"], cells["n"])]
    for (_task, metric), group in cells.groupby(["task", "metric"]):
        best = group["mean"].min() if direction(metric) == "min" else group["mean"].max()
        winners = group.index[np.isclose(group["mean"], best)]
        if len(group) > 1:
            cells.loc[winners, "text"] = bold + cells.loc[winners, "text"] + bold
    wide = cells.pivot_table(index=["task", "model", "objective"], columns="metric",
                             values="text", aggfunc="first")
    return wide.reset_index().rename_axis(columns=None)


def _figure(data: pd.DataFrame, x: str, y: str, path: Path, logy: bool, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    sns.lineplot(data=data, x=x, y=y, hue="objective", errorbar=("ci", 95), n_boot=1000, seed=0,
                 ax=ax)
    if logy and (data[y] > 0).all():
        ax.set_yscale("log")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    for suffix in (".png", ".pdf"):
        fig.savefig(path.with_suffix(suffix), dpi=150)
    plt.close(fig)
    data.to_csv(path.with_suffix(".csv"), index=False)


def write_report(results: Path, out: Path | None = None, formats: Sequence[str] | None = None,
                 baseline: str = "plain") -> Path:
    """Write tables, figures and index.md for `results`; returns the report folder."""
    from tabulate import tabulate

    results = Path(results)
    out = Path(out) if out else results / "report"
    (out / "tables").mkdir(parents=True, exist_ok=True)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    formats = list(formats or ["md", "csv"])
    metrics, runs = collect(results)
    lines = [f"# Report: {results.name}", ""]

    if not runs.empty:
        seeds = runs.groupby(["task", "model", "objective"])["seed"].nunique()
        lines += [f"Runs: {len(runs)}; seeds per cell: {int(seeds.min())}-{int(seeds.max())}. "
                  "Values are mean ± std over seeds (std with ddof=1); best mean per task in bold.",
                  ""]
        cols = ["run_id", "status", "reason", "device", "wall_time_s", "step_time_s"]
        cells_md = tabulate(runs[cols].fillna(""), headers=cols, tablefmt="github",
                            showindex=False)
        atomic_write_text(out / "tables" / "cells.md", cells_md + "\n")
        lines += ["- [every cell, with status](tables/cells.md)", ""]

    if not metrics.empty:
        summary = summarise(metrics)
        table = final_table(summary)
        family = "all"
        if "md" in formats:
            text = tabulate(table.fillna("—"), headers="keys", tablefmt="github", showindex=False)
            atomic_write_text(out / "tables" / f"{family}.md", text + "\n")
            lines += ["## Final test metrics", "", text, ""]
        if "csv" in formats:
            summary.to_csv(out / "tables" / f"{family}.csv", index=False)

        lines += ["## Figures", ""]
        for task, group in metrics.groupby("task"):
            iters = group[group["phase"] == "test_iter"]
            for metric in ("distance", "optimality_gap"):
                data = iters[iters["metric"] == metric].rename(
                    columns={"step": "iteration", "value": metric})
                if not data.empty:
                    path = out / "figures" / f"{task}_test_iter_{metric}"
                    _figure(data, "iteration", metric, path, logy=metric == "distance",
                            title=f"{task}: test-time {metric}")
                    lines.append(f"![{task} {metric}](figures/{path.name}.png)")
            train = group[(group["phase"] == "train") & (group["metric"] == "train_loss")]
            if not train.empty:
                path = out / "figures" / f"{task}_train_loss"
                _figure(train.rename(columns={"step": "epoch", "value": "train_loss"}), "epoch",
                        "train_loss", path, logy=True, title=f"{task}: training loss")
                lines.append(f"![{task} training loss](figures/{path.name}.png)")
        lines.append("")
    atomic_write_text(out / "index.md", "\n".join(lines) + "\n")
    return out
