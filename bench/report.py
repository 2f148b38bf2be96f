"""Paper-ready reports from the tidy table: tables (Markdown, LaTeX booktabs, CSV) and figures.

`write_report(results)` reads only `results.parquet` and `runs.parquet` (rebuilt from the run
folders first) and writes into `<results>/report/`:

* `tables/<family>_final.{md,tex,csv}`: per (task, model, objective), each final metric as
  mean ± std over seeds (std with ddof=1), n seeds stated, the best mean per task and metric in bold
  (direction declared by the metric), and a `runs` column that names failed, diverged and skipped
  runs (they are never dropped silently);
* `tables/<family>_vs_<baseline>.{md,tex,csv}`: paired difference objective − baseline (matched by
  seed) with a 95% bootstrap CI (fixed seed);
* `tables/cells.md`: every cell with status and reason; `tables/profile_area.md`;
* `figures/*.{png,pdf,csv}`: training convergence, test-time convergence (distance, optimality gap),
  success rate vs threshold, landscape slices around w*, violation rate, performance profile;
* `index.md` linking everything, with a provenance block.

All statistics come from `bench.stats`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from bench import stats
from bench.catalog import read_tables
from bench.store import atomic_write_text

FINAL_PHASES = ("test", "landscape")


def family_of(task: str) -> str:
    """Task family from a task name: `alignment1d_nonlinear` -> `alignment1d`."""
    return task.split("_", 1)[0]


def metric_directions(runs: pd.DataFrame) -> dict[str, str]:
    """metric -> 'min' | 'max', as declared by the metrics (recorded in run.json)."""
    out: dict[str, str] = {"violation_rate": "min"}
    for text in runs.get("metric_directions", pd.Series(dtype=object)).dropna():
        out.update(json.loads(text) if isinstance(text, str) else text)
    return out


def direction_of(metric: str, directions: dict[str, str]) -> str:
    if metric in directions:
        return directions[metric]
    return "max" if metric.startswith(("success", "acc")) else "min"


# --- tables ------------------------------------------------------------------------------------
def final_values(metrics: pd.DataFrame) -> pd.DataFrame:
    """One row per (task, model, objective, seed, metric): the final value."""
    final = metrics[metrics["phase"].isin(FINAL_PHASES)]
    final = final[~final["metric"].str.startswith("slice_")]
    return final.groupby(["task", "model", "objective", "seed", "metric"], as_index=False)[
        "value"].last()


def summarise(values: pd.DataFrame) -> pd.DataFrame:
    """mean, std (ddof=1), n per (task, model, objective, metric)."""
    rows = []
    for key, group in values.groupby(["task", "model", "objective", "metric"]):
        mean, std, n = stats.mean_std(group["value"])
        rows.append((*key, mean, std, n))
    return pd.DataFrame(rows, columns=["task", "model", "objective", "metric", "mean", "std", "n"])


def _cell(mean: float, std: float, n: int, pm: str) -> str:
    if not np.isfinite(mean):
        return "—"
    return f"{mean:.3g} {pm} {std:.2g}" if n > 1 and np.isfinite(std) else f"{mean:.3g}"


def run_counts(runs: pd.DataFrame) -> pd.Series:
    """'3/3 done' or '2/3 done, 1 diverged' per (task, model, objective)."""
    def describe(group: pd.DataFrame) -> str:
        counts = group["status"].value_counts()
        text = f"{counts.get('done', 0)}/{len(group)} done"
        others = [f"{n} {s}" for s, n in counts.items() if s != "done"]
        return ", ".join([text, *others])

    return runs.groupby(["task", "model", "objective"]).apply(describe, include_groups=False)


def _natural(name: str) -> tuple:
    """Sort key that puts success@3 before success@10."""
    return tuple((0, float(p), "") if p.replace(".", "", 1).isdigit() else (1, 0.0, p)
                 for p in re.split(r"(\d+(?:\.\d+)?)", name) if p)


def _header(metric: str, directions: dict[str, str], latex: bool) -> str:
    """Column header with the metric's direction: `distance ↓`, `success@1 ↑`."""
    down = direction_of(metric, directions) == "min"
    if latex:
        return f"{latex_escape(metric)} " + (r"$\downarrow$" if down else r"$\uparrow$")
    return f"{metric} " + ("↓" if down else "↑")


def final_table(summary: pd.DataFrame, runs: pd.DataFrame, directions: dict[str, str],
                latex: bool = False) -> pd.DataFrame:
    """Wide table: one row per (task, model, objective), one column per metric, best in bold."""
    pm, bold = (r"$\pm$", r"\textbf{%s}") if latex else ("±", "**%s**")
    text = summary.copy()
    text["text"] = [_cell(m, s, n, pm) for m, s, n in zip(text["mean"], text["std"], text["n"])]
    for (_task, metric), group in text.groupby(["task", "metric"]):
        finite = group[np.isfinite(group["mean"])]
        if len(finite) < 2:
            continue
        best = (finite["mean"].min() if direction_of(metric, directions) == "min"
                else finite["mean"].max())
        winners = finite.index[np.isclose(finite["mean"], best, rtol=1e-9, atol=0)]
        text.loc[winners, "text"] = [bold % t for t in text.loc[winners, "text"]]
    wide = text.pivot_table(index=["task", "model", "objective"], columns="metric",
                            values="text", aggfunc="first")
    wide = wide[sorted(wide.columns, key=_natural)]
    wide = wide.rename(columns={m: _header(m, directions, latex) for m in wide})
    counts = run_counts(runs) if not runs.empty else pd.Series(dtype=str)
    wide.insert(0, "runs", counts.reindex(wide.index).fillna("").to_numpy())
    # cells with runs but no metrics (all failed/skipped) still get a row
    missing = counts.index.difference(wide.index)
    if len(missing):
        extra = pd.DataFrame({"runs": counts.loc[missing]}, index=missing)
        wide = pd.concat([wide, extra]).sort_index()
    return wide.reset_index().rename_axis(columns=None).fillna("—")


def difference_table(values: pd.DataFrame, baseline: str, directions: dict[str, str],
                     latex: bool = False) -> pd.DataFrame:
    """Paired difference objective − baseline per (task, model, objective, metric), 95% CI."""
    rows = []
    for (task, model, metric), group in values.groupby(["task", "model", "metric"]):
        base = group[group["objective"] == baseline].set_index("seed")["value"]
        if base.empty:
            continue
        for objective, other in group[group["objective"] != baseline].groupby("objective"):
            diff = stats.paired_difference(other.set_index("seed")["value"], base)
            better = direction_of(metric, directions) == "min"
            significant = (diff["hi"] < 0) if better else (diff["lo"] > 0)
            worse = (diff["lo"] > 0) if better else (diff["hi"] < 0)
            rows.append(dict(task=task, model=model, objective=objective, metric=metric, **diff,
                             verdict="better" if significant else "worse" if worse else "n.s."))
    frame = pd.DataFrame(rows, columns=["task", "model", "objective", "metric", "diff", "lo", "hi",
                                        "n", "verdict"])
    return frame


def difference_wide(diffs: pd.DataFrame, latex: bool = False) -> pd.DataFrame:
    if diffs.empty:
        return diffs
    bold = r"\textbf{%s}" if latex else "**%s**"
    text = [f"{d:+.3g} [{lo:+.3g}, {hi:+.3g}]" if np.isfinite(lo) else f"{d:+.3g} (n={n})"
            for d, lo, hi, n in zip(diffs["diff"], diffs["lo"], diffs["hi"], diffs["n"])]
    text = [bold % t if v == "better" else t for t, v in zip(text, diffs["verdict"])]
    wide = diffs.assign(text=text).pivot_table(index=["task", "model", "objective"],
                                               columns="metric", values="text", aggfunc="first")
    if latex:
        wide = wide.rename(columns=latex_escape)
    return wide.reset_index().rename_axis(columns=None).fillna("—")


def latex_escape(text: str) -> str:
    return re.sub(r"([_%&#])", r"\\\1", str(text))


def to_latex(table: pd.DataFrame, caption: str, label: str) -> str:
    """booktabs LaTeX with escaped row labels; headers and cells are pre-formatted LaTeX."""
    frame = table.copy()
    for col in ("task", "model", "objective", "runs"):
        if col in frame:
            frame[col] = frame[col].map(latex_escape)
    styler = frame.style.hide(axis="index")
    return styler.to_latex(hrules=True, caption=caption, label=label,
                           position_float="centering", column_format="l" * frame.shape[1])


# --- figures -----------------------------------------------------------------------------------
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, data: pd.DataFrame, path: Path) -> list[str]:
    fig.tight_layout()
    for suffix in (".png", ".pdf"):
        fig.savefig(path.with_suffix(suffix), dpi=150)
    _plt().close(fig)
    data.to_csv(path.with_suffix(".csv"), index=False)
    return [f"figures/{path.name}.png"]


def _lines(data: pd.DataFrame, x: str, y: str, path: Path, title: str, yscale: str = "linear",
           xscale: str = "linear") -> list[str]:
    import seaborn as sns

    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.6, 3.2))
    style = "model" if data["model"].nunique() > 1 else None
    sns.lineplot(data=data, x=x, y=y, hue="objective", style=style, errorbar=("ci", 95),
                 n_boot=stats.BOOTSTRAP_SAMPLES, seed=stats.BOOTSTRAP_SEED, ax=ax)
    if yscale == "log" and (data[y] > 0).all():
        ax.set_yscale("log")
    elif yscale == "symlog":
        ax.set_yscale("symlog", linthresh=max(1e-6, float(data[y].abs().median()) / 10 or 1e-6))
    ax.set_xscale(xscale)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    return _save(fig, data, path)


def task_figures(task: str, metrics: pd.DataFrame, out: Path) -> list[str]:
    """Every figure of one task; returns their relative paths."""
    figs = out / "figures"
    made: list[str] = []
    train = metrics[(metrics.phase == "train") & (metrics.metric == "train_loss")]
    if not train.empty:
        made += _lines(train.rename(columns={"step": "epoch", "value": "train_loss"}), "epoch",
                       "train_loss", figs / f"{task}_train_loss", f"{task}: training loss",
                       yscale="log")
    iters = metrics[metrics.phase == "test_iter"]
    for metric, scale in (("distance", "log"), ("optimality_gap", "symlog")):
        data = iters[iters.metric == metric].rename(columns={"step": "iteration", "value": metric})
        if not data.empty:
            made += _lines(data, "iteration", metric, figs / f"{task}_test_iter_{metric}",
                           f"{task}: test-time {metric.replace('_', ' ')}", yscale=scale)
    success = metrics[(metrics.phase == "test") & metrics.metric.str.startswith("success@")]
    if not success.empty:
        data = success.assign(threshold=success.metric.str.removeprefix("success@").astype(float))
        data = data.rename(columns={"value": "success_rate"})
        made += _lines(data, "threshold", "success_rate", figs / f"{task}_success_vs_threshold",
                       f"{task}: success rate (%) vs threshold", xscale="log")
    slices = metrics[(metrics.phase == "landscape") & metrics.metric.isin(["slice_t", "slice_h"])]
    if not slices.empty:
        wide = slices.pivot_table(index=["run_id", "model", "objective", "seed", "step"],
                                  columns="metric", values="value").reset_index()
        made += _lines(wide.rename(columns={"slice_t": "t", "slice_h": "h(w*+td) - h(w*)"}), "t",
                       "h(w*+td) - h(w*)", figs / f"{task}_landscape_slice",
                       f"{task}: h along rays through w*")
    return made


def violation_figure(values: pd.DataFrame, out: Path) -> list[str]:
    import seaborn as sns

    data = values[values.metric == "violation_rate"].rename(columns={"value": "violation_rate"})
    if data.empty:
        return []
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(4.6, 1.2 * data.task.nunique() + 2), 3.2))
    sns.barplot(data=data, x="task", y="violation_rate", hue="objective", errorbar=("ci", 95),
                n_boot=stats.BOOTSTRAP_SAMPLES, seed=stats.BOOTSTRAP_SEED, ax=ax)
    ax.set_title("share of rays through w* where h is not star-convex", fontsize=9)
    ax.tick_params(axis="x", labelsize=7)
    ax.legend(fontsize=7)
    return _save(fig, data, out / "figures" / "violation_rate")


def profile_figure(values: pd.DataFrame, out: Path, metric: str = "distance",
                   tau_max: float = 4.0) -> tuple[list[str], pd.Series]:
    """Performance profile over (task, model) problems of the mean final `metric` (a cost)."""
    data = values[values.metric == metric]
    if data.empty or data.objective.nunique() < 2:
        return [], pd.Series(dtype=float)
    costs = data.groupby(["task", "model", "objective"])["value"].mean().unstack("objective")
    costs = costs.dropna().clip(lower=1e-12)
    if costs.empty:
        return [], pd.Series(dtype=float)
    taus = np.linspace(1.0, tau_max, 301)
    profile = stats.performance_profile(costs, taus)
    area = stats.profile_area(profile)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.6, 3.2))
    for col in profile:
        ax.plot(taus, profile[col], drawstyle="steps-post", label=f"{col} (area {area[col]:.2f})")
    ax.set_xlabel("τ (within a factor τ of the best)")
    ax.set_ylabel("share of problems")
    ax.set_title(f"performance profile of final {metric} over {len(costs)} problems", fontsize=9)
    ax.legend(fontsize=7)
    return _save(fig, profile.reset_index(), out / "figures" / f"profile_{metric}"), area


# --- provenance and index ----------------------------------------------------------------------
def provenance(runs: pd.DataFrame) -> list[str]:
    if runs.empty:
        return []
    done = runs[runs.status == "done"]

    ran = done if not done.empty else runs

    def values(col: str) -> str:  # from the runs that trained (skipped cells never ran)
        return ", ".join(sorted({str(v) for v in ran.get(col, pd.Series(dtype=str)).dropna()}))

    wall = done["wall_time_s"].astype(float) if not done.empty else pd.Series(dtype=float)
    lines = [
        "## Provenance", "",
        f"- hardware: {values('cpu')}; devices: {values('device')} {values('device_name')}".rstrip(),
        f"- torch threads per cell: {values('threads')}",
        f"- python {values('python')}, torch {values('torch')}, dlc-bench {values('package_version')}",
        f"- git SHA: {values('git_sha') or 'not recorded'}",
        f"- seeds: {', '.join(str(s) for s in sorted(runs.seed.dropna().unique()))}",
        f"- cells: {len(runs)} ({', '.join(f'{n} {s}' for s, n in runs.status.value_counts().items())})",
    ]
    if not wall.empty:
        lines.append(f"- wall time per done cell: median {wall.median():.1f} s, max {wall.max():.1f} s,"
                     f" total {wall.sum() / 60:.1f} min")
    return lines + [""]


def write_report(results: Path, out: Path | None = None, formats: Sequence[str] | None = None,
                 baseline: str = "plain") -> Path:
    """Write tables, figures and index.md for `results`; returns the report folder."""
    from tabulate import tabulate

    results = Path(results)
    out = Path(out) if out else results / "report"
    (out / "tables").mkdir(parents=True, exist_ok=True)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    formats = list(formats or ["md", "tex", "csv"])
    metrics, runs = read_tables(results)
    directions = metric_directions(runs)
    lines = [f"# Report: {results.name}", ""]
    lines += provenance(runs)
    if not runs.empty:
        cols = [c for c in ("run_id", "status", "reason", "device", "wall_time_s", "step_time_s")
                if c in runs]
        atomic_write_text(out / "tables" / "cells.md", tabulate(
            runs[cols].astype(object).fillna(""), headers=cols, tablefmt="github",
            showindex=False) + "\n")
        lines += ["[Every cell with its status and reason](tables/cells.md)", ""]
    if metrics.empty:
        atomic_write_text(out / "index.md", "\n".join(lines + ["No metrics recorded yet."]) + "\n")
        return out

    values = final_values(metrics)
    summary = summarise(values)
    for family in sorted({family_of(t) for t in values.task}):
        fam_values = values[values.task.map(family_of) == family]
        fam_summary = summary[summary.task.map(family_of) == family]
        fam_runs = runs[runs.task.map(family_of) == family] if not runs.empty else runs
        n = sorted(fam_summary["n"].unique())
        caption = (f"{family}: final test metrics, mean $\\pm$ std over {'/'.join(map(str, n))} "
                   "seeds (std with ddof=1); best mean per task in bold; arrows give the direction.")
        lines += [f"## {family}", "", caption.replace("$\\pm$", "±"), ""]
        _write_table(final_table(fam_summary, fam_runs, directions),
                     final_table(fam_summary, fam_runs, directions, latex=True), fam_summary,
                     out / "tables" / f"{family}_final", formats, caption, f"tab:{family}-final",
                     lines)
        diffs = difference_table(fam_values, baseline, directions)
        if not diffs.empty:
            caption = (f"{family}: paired difference objective $-$ {baseline} (same seeds), mean "
                       "and 95\\% bootstrap CI; bold where the CI excludes 0 in the better "
                       "direction.")
            lines += [caption.replace("$-$", "−").replace("\\%", "%"), ""]
            _write_table(difference_wide(diffs), difference_wide(diffs, latex=True), diffs,
                         out / "tables" / f"{family}_vs_{baseline}", formats, caption,
                         f"tab:{family}-vs-{baseline}", lines)
        for task in sorted(fam_values.task.unique()):
            figs = task_figures(task, metrics[metrics.task == task], out)
            lines += [f"### {task}", ""] + [f"![{Path(f).stem}]({f})" for f in figs] + [""]

    made = violation_figure(values, out)
    made_profile, area = profile_figure(values, out)
    if made or made_profile:
        lines += ["## Across tasks", ""] + [f"![{Path(f).stem}]({f})" for f in made + made_profile]
    if not area.empty:
        table = tabulate(area.rename("normalised area").rename_axis("objective").reset_index(),
                         headers="keys",
                         tablefmt="github", showindex=False, floatfmt=".3f")
        atomic_write_text(out / "tables" / "profile_area.md", table + "\n")
        lines += ["", "Performance-profile area of the final distance (1 = best on every "
                  "problem; τ from 1 to 4):", "", table, ""]
    atomic_write_text(out / "index.md", "\n".join(lines) + "\n")
    return out


def _write_table(md: pd.DataFrame, tex: pd.DataFrame, raw: pd.DataFrame, stem: Path,
                 formats: Sequence[str], caption: str, label: str, lines: list[str]) -> None:
    from tabulate import tabulate

    if "md" in formats:
        text = tabulate(md, headers="keys", tablefmt="github", showindex=False)
        atomic_write_text(stem.with_suffix(".md"), text + "\n")
        lines += [text, ""]
    if "tex" in formats:
        atomic_write_text(stem.with_suffix(".tex"), to_latex(tex, caption, label))
    if "csv" in formats:
        raw.to_csv(stem.with_suffix(".csv"), index=False)
