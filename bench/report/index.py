"""The report's index page: provenance, per-family tables with notes, per-(task, model) figures.

`write_report(results)` reads `results.parquet` and `runs.parquet` (never rebuilding them) and
writes only into `<results>/report/` (or `out`):

* `tables/<family>_final_<group>.{md,tex,csv}`: per (task, model, objective) the final metrics
  of one metric group as mean ± std over seeds (at most 4 metric columns per table, `TableLayout`);
* `tables/<family>_vs_<baseline>_<group>.{md,tex,csv}`: paired differences with 95% bootstrap CIs;
* `tables/preamble.tex` (packages the tables need), `tables/cells.md`, `tables/profile_area.md`;
* `figures/<task>__<model>_*.{png,pdf,csv}` and the cross-task figures;
* `index.md` linking everything, with a provenance block that warns when runs come from several
  commits.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bench import stats
from bench.protocol.verdicts import ALPHA
from bench.report import figures, tables
from bench.report.metadata import (
    MAX_INTERVAL_COLUMNS,
    MAX_METRIC_COLUMNS,
    reference_models,
    refinement_of,
)
from bench.report.reading import (
    commits,
    drop_legacy_gap,
    evaluated_split,
    final_values,
    legacy_base_loss,
    load_tables,
    metric_directions,
    with_family,
)
from bench.runner.store import atomic_write_frame, atomic_write_text


@dataclass(frozen=True)
class TableLayout:
    """How wide the tables may be: metric columns per final table and per difference table
    (wider tables are split, never shrunk), and `wide`: LaTeX `table*` floats (both columns of a
    two-column paper) instead of `table`."""

    final_columns: int = MAX_METRIC_COLUMNS
    difference_columns: int = MAX_INTERVAL_COLUMNS
    wide: bool = False


class MixedCommitsWarning(UserWarning):
    """The runs of one results folder come from several git commits."""


class HingeDominatedWarning(UserWarning):
    """A DLC-type run trained on its hinge rather than its task (`bench.report.diagnostics`)."""


def provenance(runs: pd.DataFrame) -> list[str]:
    """Markdown lines: hardware, versions, commits (with a warning when several), seeds, cells."""
    if runs.empty:
        return []
    done = runs[runs.status == "done"]
    ran = done if not done.empty else runs

    def values(col: str) -> str:  # from the runs that trained (skipped cells never ran)
        return ", ".join(sorted({str(v) for v in ran.get(col, pd.Series(dtype=str)).dropna()}))

    wall = done["wall_time_s"].astype(float) if not done.empty else pd.Series(dtype=float)
    shas = commits(runs)
    lines = [
        "## Provenance", "",
        f"- hardware: {values('cpu')}; devices: {values('device')} {values('device_name')}".rstrip(),
        f"- torch threads per cell: {values('threads')}",
        f"- python {values('python')}, torch {values('torch')}, dlc-bench {values('package_version')}",
        f"- git SHA: {', '.join(shas) or 'not recorded'}",
        f"- seeds: {', '.join(str(s) for s in sorted(runs.seed.dropna().unique()))}",
        f"- cells: {len(runs)} ({', '.join(f'{n} {s}' for s, n in runs.status.value_counts().items())})",
    ]
    if len(shas) > 1:
        counts = runs.groupby("git_sha").size()
        lines.append(f"- **warning: the runs come from {len(shas)} commits** ("
                     + ", ".join(f"{s[:10]}: {counts.get(s, 0)} runs" for s in shas)
                     + "); results from one command at one commit are comparable")
    if not wall.empty:
        lines.append(f"- wall time per done cell: median {wall.median():.1f} s, max "
                     f"{wall.max():.1f} s, total {wall.sum() / 60:.1f} min")
    return lines + [""]


def cell_notes(runs: pd.DataFrame) -> list[str]:
    """One line per (task, model, objective) that is not fully done: skipped (with the reason,
    once), failed or diverged runs. Such cells never appear as empty table rows."""
    notes = []
    for (task, model, objective), group in runs.groupby(["task", "model", "objective"]):
        counts = group.status.value_counts()
        if counts.get("done", 0) == len(group):
            continue
        others = ", ".join(f"{n} {s}" for s, n in counts.items() if s != "done")
        reasons = "; ".join(sorted({str(r).splitlines()[0] for r in group.reason.dropna() if r}))
        notes.append(f"{task} · {model} · {objective}: {counts.get('done', 0)}/{len(group)} "
                     f"done, {others}" + (f" ({reasons})" if reasons else ""))
    return notes


def _family_caption(family: str, scale: str, seeds: str, metrics: Sequence[str],
                    interval: str, baseline: str, single_seed: bool = False,
                    split: str = "test") -> str:
    """`interval`: '' for the final-metrics table, else how the CIs were computed; `split`: the
    split the values were measured on ('test', or 'validation' for a tuning trial folder)."""
    if interval:
        head = (f"{family}, {scale} scale, {split} split: paired difference objective − {baseline} on the same "
                f"seeds ({seeds}), mean and 95% {interval} confidence interval of the mean "
                f"difference, with its p (exact two-sided sign-flip permutation test over the "
                f"seed pairs) and Holm p (Holm correction across the comparisons of the {family} "
                f"family). Bold ▲: better than {baseline}, italic ▼: worse, at Holm p < "
                f"{ALPHA:g}; unmarked: no evidence either way.")
    elif single_seed:
        head = (f"{family}, {scale} scale: final {split} metrics of one seed per cell (no spread, "
                "no best marked: one seed cannot tell the objectives apart).")
    else:
        head = (f"{family}, {scale} scale: final {split} metrics, mean ± std over {seeds} (std with "
                "ddof=1); bold: the best mean per task (equal printed means: all or none), only "
                "for metrics that declare a direction (↑/↓) and never for constant baselines.")
    return " ".join(p for p in (head, tables.caption_definitions(metrics)) if p)


def refinement_note(pairs: Iterable[tuple[str, str]]) -> str:
    """A caption sentence naming the models whose metrics are measured after a refinement, from
    the (task, model) pairs of a table."""
    found = {m: refinement_of(t, m) for t, m in sorted(set(pairs)) if refinement_of(t, m)}
    refined = sorted(found)
    if not refined:
        return ""
    after = sorted(set(found.values()))
    return (f" The metrics of {', '.join(refined)} are measured after {' / '.join(after)} "
            "refinement (the solver's last steps).")


def family_tables(family: str, values: pd.DataFrame, runs: pd.DataFrame,
                  directions: dict[str, str], folder: Path, formats: Sequence[str],
                  baseline: str, legacy_gap: set[str], layout: TableLayout = TableLayout(),
                  split: str = "test") -> tuple[list[Path], list[str]]:
    """Write every table of one family (`values` measured on `split`); returns (files written,
    index.md lines)."""
    summary = tables.summarise(values)
    final = tables.final_table(summary, directions)  # computed once, rendered twice
    scale = ", ".join(sorted({str(s) for s in runs.get("scale", pd.Series(dtype=str)).dropna()}))
    seeds = tables.seeds_text(sorted(final["n"].unique()))
    notes = cell_notes(runs)
    const = tables.constant_baselines(summary)
    if not const.empty:
        notes.append("Constant baselines (a trivial predictor; never bold): " + "; ".join(
            f"{t} {m} = {tables.format_number(v, tables.decimals(v, 3))}"
            for t, m, v in zip(const.task, const.metric, const["mean"])))
    if legacy_gap & set(values.task):
        notes.append("optimality_gap is left out: these runs recorded the old signed gap "
                     "h(ŵ) − h(w*), not comparable across objectives.")
    written: list[Path] = []
    lines = [f"## {family}", ""]
    diffs = tables.difference_table(values, baseline, directions)
    for kind, frame in (("final", final), (f"vs_{baseline}", diffs)):
        width = layout.final_columns if kind == "final" else layout.difference_columns
        groups = tables.column_groups(sorted(frame.metric.unique()), width)
        for k, (group, members) in enumerate(groups):
            caption = _family_caption(family, scale or "unknown", seeds, members,
                                      "" if kind == "final" else tables.interval_text(frame),
                                      baseline, single_seed=bool(len(final))
                                      and final["n"].max() < 2, split=split)
            caption += refinement_note(zip(values["task"], values["model"]))
            if kind != "final":
                caption += tables.power_note(frame)
            stem = folder / f"{family}_{kind}_{group.replace('+', '_')}"
            table_notes = notes if kind == "final" and k == 0 else []
            rows = frame[frame.metric.isin(members)]
            markdown = tables.render(rows, members, directions, baseline=baseline)
            latex = tables.render(rows, members, directions, latex=True, baseline=baseline)
            label = f"tab:{family}-{kind}-{group}".replace("_", "-").replace("+", "-")
            written += tables.write_table(markdown, latex, rows, stem, formats,
                                          tables.latex_text(caption + f" Tasks are named without the prefix {family}_."), label,
                                          table_notes, wide=layout.wide)
            title = ("Final metrics" if split == "test" else f"Final {split} metrics") \
                if kind == "final" else f"Difference to {baseline}"
            lines += [f"**{title}: {group.replace('+', ', ')}.** {caption}", "",
                      tables.to_markdown(markdown), ""]
            lines += [f"- {n}" for n in table_notes] + ([""] if table_notes else [])
    return written, lines


def write_report(results: Path, out: Path | None = None, formats: Sequence[str] | None = None,
                 baseline: str = "plain", layout: TableLayout = TableLayout()) -> Path:
    """Write tables, figures and index.md for `results` into `out` (default `results/report`);
    returns the report folder. Reads the tidy tables only and writes nothing outside `out`."""
    results = Path(results)
    out = Path(out) if out else results / "report"
    formats = list(formats or ["md", "tex", "csv"])
    metrics, runs = load_tables(results)
    directions = metric_directions(runs)
    shas = commits(runs)
    if len(shas) > 1:
        warnings.warn(f"{results}: the runs come from {len(shas)} commits ({', '.join(s[:10] for s in shas)})",
                      MixedCommitsWarning, stacklevel=2)
    lines = [f"# Report: {results.name}", "", *provenance(runs)]
    if not runs.empty:
        cols = [c for c in ("run_id", "status", "reason", "git_sha", "device", "wall_time_s",
                            "step_time_s") if c in runs]
        from tabulate import tabulate

        atomic_write_text(out / "tables" / "cells.md", tabulate(
            runs[cols].astype(object).fillna(""), headers=cols, tablefmt="github",
            showindex=False) + "\n")
        lines += ["[Every cell with its status and reason](tables/cells.md)", ""]
    if metrics.empty:
        atomic_write_text(out / "index.md", "\n".join(lines + ["No metrics recorded yet."]) + "\n")
        return out
    if "tex" in formats:
        atomic_write_text(out / "tables" / "preamble.tex", tables.PREAMBLE)
        lines += ["LaTeX: `\\input{tables/preamble}` in the preamble (T1 fonts with lmodern, "
                  "booktabs, amssymb), then `\\input{tables/<name>}` per table.", ""]
    metrics, legacy_gap = drop_legacy_gap(metrics)
    metrics, runs = with_family(metrics, runs), with_family(runs, runs)
    split = evaluated_split(metrics)
    values = final_values(metrics, split)
    with figures.figure_formats(formats):  # PNG for md, PDF for tex
        for family in sorted(metrics.family.unique()):
            in_family = values.task.isin(metrics.task[metrics.family == family])
            if in_family.any():
                _, fam_lines = family_tables(family, values[in_family], runs[runs.family == family],
                                             directions, out / "tables", formats, baseline,
                                             legacy_gap, layout, split)
                lines += fam_lines
            else:
                lines += [f"## {family}", ""]
            if legacy_base_loss(runs[runs.family == family]):
                lines += ["Training figures: these runs predate the explicit base loss; the left panel "
                          "shows each objective's logged `train_original`, which for target_noise is "
                          "its loss at the perturbed targets, not the task's base loss.", ""]
            for task in sorted(metrics.task[metrics.family == family].unique()):
                lines += _task_figures(task, metrics[metrics.task == task], out / "figures")
        lines += _across_tasks(values, out)
    lines += _hinge_section(metrics, out, formats)
    atomic_write_text(out / "index.md", "\n".join(lines) + "\n")
    return out


def _task_figures(task: str, task_metrics: pd.DataFrame, folder: Path) -> list[str]:
    """One section per model of `task` with its figures; returns index.md lines."""
    lines = []
    for model in sorted(task_metrics.model.unique()):
        drawn_elsewhere = model in reference_models(task) and task_metrics.model.nunique() > 1
        made = figures.task_model_figures(task, model, task_metrics[task_metrics.model == model],
                                          folder, figures.reference_for(task_metrics, model),
                                          iterations=not drawn_elsewhere)
        lines += [f"### {task} · {model}", ""]
        lines += [f"![{p.stem}](figures/{p.name})" for p in made if p.suffix == ".png"] + [""]
    return lines


def _hinge_section(metrics: pd.DataFrame, out: Path, formats: Sequence[str]) -> list[str]:
    """Final-epoch hinge diagnostics of DLC-type runs, and one warning per run whose weighted
    hinge exceeded 10x its base term at every epoch; [] for runs that logged none."""
    from bench.report.diagnostics import hinge_dominated, hinge_summary

    summary = hinge_summary(metrics)
    if summary.empty:
        return []
    table = tables.to_markdown(summary.round(4))
    atomic_write_text(out / "tables" / "hinge_diagnostics.md", table + "\n")
    if "csv" in formats:
        atomic_write_frame(summary, out / "tables" / "hinge_diagnostics.csv")
    lines = ["## Hinge diagnostics", "", "Final epoch of each DLC-type run: hinge / base term "
             "(unweighted and weighted), share of active hinges per term, λ, μ.", "", table, ""]
    for row in hinge_dominated(metrics).itertuples(index=False):
        text = (f"{row.run_id}: the weighted hinge exceeded 10x the base term at every epoch "
                f"(smallest ratio {row.min_weighted_ratio:.3g}): it trained on the hinge, not on "
                "the task")
        warnings.warn(text, HingeDominatedWarning, stacklevel=3)
        lines.append(f"- **warning:** {text}")
    return lines + [""]


def _across_tasks(values: pd.DataFrame, out: Path) -> list[str]:
    """Violation-rate bars per (task, model) and the performance profile of the final distance."""
    lines = ["## Across tasks", ""]
    made = figures.violation_figure(values, out / "figures" / "violation_rate")
    data = values[values.metric == "distance"]
    costs = data.groupby(["task", "model", "objective"])["value"].mean().unstack("objective")
    costs = costs.dropna().clip(lower=1e-12)
    if costs.shape[1] > 1 and not costs.empty:
        taus = np.linspace(1.0, 4.0, 301)
        profile = stats.performance_profile(costs, taus)
        area = stats.profile_area(profile)
        made += figures.profile_figure(profile, area, len(costs), "distance",
                                       out / "figures" / "profile_distance")
        table = tables.to_markdown(area.rename("normalised area").rename_axis("objective")
                                   .reset_index().round(3))
        atomic_write_text(out / "tables" / "profile_area.md", table + "\n")
        lines += ["Performance-profile area of the final distance over the (task, model) problems "
                  "that ran every objective (1 = best on every problem; τ from 1 to 4):", "",
                  table, ""]
    lines += [f"![{p.stem}](figures/{p.name})" for p in made if p.suffix == ".png"]
    return lines + [""]
