"""The report of a tuned comparison (`bench tune`), written to `<tuning folder>/report/`:

* `index.md`: the selected configs, the tuning compute per objective, the corrected comparisons of
  the winners (final seeds, test split) and of the one-shot defaults ("budget 0"), the across-task
  summary, and the figures;
* `comparisons.{md,csv}`, `budget0.{md,csv}`: per (task, model, objective) against the baseline,
  on the sweep's selection metric: mean +- std (n) of each side, the paired difference with its
  95% interval, the exact sign-flip p-value, its Holm correction across the table's rows and the
  verdict ("better"/"worse" only where the corrected p < 0.05, "no evidence" otherwise);
* `figures/sensitivity-<task>-<model>.{png,pdf,csv}`: validation score vs each swept
  hyper-parameter, one colour per objective (DeepOBS style);
* `figures/profile.{png,pdf,csv}`: Dolan-Moré performance profile of the winners over the problems
  whose selection metric is a cost (direction 'min'), for the objectives that ran on every such
  problem (`on_every_problem`; the same rule for the across-task summary); a task's non-learned
  reference (raw-intensity LK, ICP alone: `verdicts.learned_only`) is the floor of the `floor`
  class, not a problem of these summaries, and gets no sensitivity or budget figure;
* `figures/budget-<task>-<model>.{png,pdf,csv}`: left, the test score (final seeds, mean and 95%
  interval) of the config selected with a budget of b trials (b = 0 is the one-shot default);
  right, the validation score of the best of b trials, bootstrapped over random subsets of the
  trials (Schmidt et al. 2021) - on validation, since the protocol never evaluates a losing trial
  on the test split.

All statistics come from `bench.stats`.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from bench import stats
from bench.protocol.budget_tables import protocol_sections
from bench.protocol.verdicts import learned_only, qualify, reference_scores
from bench.report.figures import lay_out, save_figure
from bench.report.metadata import display_name
from bench.report.tables import PREAMBLE
from bench.runner import recorded_facts as facts
from bench.runner.store import atomic_write_frame, atomic_write_text

BASELINE = "plain"
#: `selection_values`' columns; `trivial`: the task's trivial predictor on the same metric
#: (`trivial_<metric>`, NaN where the task records none), a floor for `verdicts.classify`
COLUMNS = ["task", "model", "objective", "seed", "metric", "direction", "value", "trivial"]
SUBSET_DRAWS = 500  # bootstrap draws of trial subsets per budget (seeded)


def objective_colors(objectives: list[str]) -> dict[str, tuple]:
    """One fixed colour per objective name: the report package's `style(objective)` (the same
    colours as every other figure)."""
    from bench.report.figures import style

    return {o: style(o)[0] for o in objectives}


def selection_values(folder: Path, sweep, run_ids: set[str] | None = None) -> pd.DataFrame:
    """The selection metric of every done run of a results folder (only those of `run_ids` when
    given: the selected configs on the final seeds), phase 'test', final step: `COLUMNS`."""
    path = Path(folder) / "results.parquet"
    if not path.is_file():
        return pd.DataFrame(columns=COLUMNS)
    if (Path(folder) / "runs.parquet").is_file():  # the facts its runs recorded
        facts.learn(pd.read_parquet(Path(folder) / "runs.parquet"))
    frame = pd.read_parquet(path)
    frame = frame[(frame["phase"] == "test")
                  & (frame["run_id"].isin(run_ids) if run_ids is not None else True)]
    rows = []
    for (task, model, objective, seed), group in frame.groupby(["task", "model", "objective",
                                                                 "seed"]):
        metric, direction = sweep.metric_of(task)
        values = group[group["metric"] == metric].sort_values("step")["value"]
        trivial = group[group["metric"] == f"trivial_{metric}"]["value"]
        if len(values):
            rows.append(dict(task=task, model=model, objective=objective, seed=int(seed),
                             metric=metric, direction=direction, value=float(values.iloc[-1]),
                             trivial=float(trivial.iloc[-1]) if len(trivial) else np.nan))
    return pd.DataFrame(rows, columns=COLUMNS)


def comparison_table(values: pd.DataFrame, baseline: str = BASELINE, feasibility=None,
                     params: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per (task, model, objective != baseline): both sides' mean, std, n, the paired
    difference and interval, p, and `bench.protocol.verdicts.qualify`'s class, Holm-corrected p (over the
    valid rows) and verdict. `feasibility`: the feasibility table (path or DataFrame, optional);
    `params`: the selected configs (columns task, model, objective, params) for 'reduced to
    plain'. The non-learned references (e.g. ICP alone) come from `values` itself."""
    rows = []
    for (task, model), group in values.groupby(["task", "model"]):
        base = group[group["objective"] == baseline].set_index("seed")["value"]
        if base.empty:
            continue
        direction, metric = group["direction"].iloc[0], group["metric"].iloc[0]
        for objective, other in group[group["objective"] != baseline].groupby("objective"):
            mine = other.set_index("seed")["value"]
            test = stats.paired_test(mine, base, direction)
            mean, std, n = stats.mean_std(mine)
            bmean, bstd, bn = stats.mean_std(base)
            rows.append({**test, "task": task, "model": model, "metric": metric,
                         "objective": objective, "mean": mean, "std": std, "runs": n,
                         "base_mean": bmean, "base_std": bstd, "base_runs": bn})
    table = pd.DataFrame(rows)
    if len(table) and params is not None:
        table = table.merge(params[["task", "model", "objective", "params"]], how="left",
                            on=["task", "model", "objective"])
    return qualify(table, feasibility, reference_scores(values)) if len(table) else table


def _write_table(table: pd.DataFrame, stem: Path, baseline: str, title: str) -> str:
    """`stem.{md,csv,tex}` of a comparison table; returns the Markdown."""
    from bench.report.comparison_tables import comparison_latex, comparison_markdown

    text = comparison_markdown(table, baseline)
    atomic_write_text(stem.with_suffix(".md"), text)
    csv = table.assign(unmatched=table["unmatched"].map(json.dumps)) if len(table) else table
    atomic_write_frame(csv, stem.with_suffix(".csv"))
    if len(table):
        atomic_write_text(stem.with_suffix(".tex"), comparison_latex(
            table, baseline, title, f"tab:{stem.name}".replace("_", "-")))
    return text


def sensitivity_figure(scores: pd.DataFrame, sweep, task: str, model: str,
                       out: Path) -> list[Path]:
    """Validation score (mean over tuning seeds) vs each swept hyper-parameter of (task, model)."""
    from matplotlib.ticker import NullLocator

    from bench.report.figures import pyplot

    plt = pyplot()

    mine = scores[(scores.task == task) & (scores.model == model) & (scores.status == "done")]
    per_trial = mine.groupby(["objective", "trial"], as_index=False).agg(
        score=("score", "mean"), params=("params", "first"), metric=("metric", "first"),
        direction=("direction", "first"))
    rows = [dict(objective=r.objective, trial=r.trial, score=r.score, axis=k, value=v)
            for r in per_trial.itertuples() for k, v in json.loads(r.params).items()]
    data = pd.DataFrame(rows, columns=["objective", "trial", "score", "axis", "value"])
    names = sorted(data["axis"].unique()) if len(data) else []
    if not names:
        return []
    colors = objective_colors(sorted(data["objective"].unique()))
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.4), squeeze=False)
    metric, direction = per_trial["metric"].iloc[0], per_trial["direction"].iloc[0]
    for ax, name in zip(axes[0], names):
        for objective, group in data[data["axis"] == name].groupby("objective"):
            numeric = pd.to_numeric(group["value"], errors="coerce")
            order = np.argsort(numeric.to_numpy()) if numeric.notna().all() else np.arange(len(group))
            x = numeric.iloc[order] if numeric.notna().all() else group["value"].astype(str)
            ax.plot(x, group["score"].iloc[order], "o-", color=colors[objective], label=objective)
        spec = next(sweep.spaces[o][name] for o in sweep.spaces if name in sweep.spaces[o])
        if spec.get("scaling") == "log":
            ax.set_xscale("log")
        if "feasible_points" not in spec:  # ticks at the sampled values, as the trials ran them
            ticks = sorted(pd.to_numeric(data.loc[data["axis"] == name, "value"]).unique())
            ax.set_xticks(ticks, [f"{v:.2g}" for v in ticks], rotation=60, fontsize=7)
            ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xlabel(name.rsplit(".", 2)[-2] + "." + name.rsplit(".", 1)[-1])
        ax.set_ylabel(f"validation {display_name(metric)} ("
                      f"{'lower' if direction == 'min' else 'higher'} is better)")
        ax.legend(fontsize=8)
    fig.suptitle(f"{task} / {model}: sensitivity (each point one trial)")
    return save_figure(lay_out(fig), data, out / f"sensitivity-{task}-{model}")


def subset_curve(per_trial: pd.DataFrame, direction: str, seed: int = stats.BOOTSTRAP_SEED
                 ) -> pd.DataFrame:
    """Best validation score among b trials drawn at random without replacement, for b = 1..K:
    mean and 2.5/97.5 percentiles over `SUBSET_DRAWS` seeded draws. per_trial: column `score`."""
    scores = per_trial["score"].dropna().to_numpy(dtype=float)
    rng = np.random.default_rng(seed)
    pick = np.min if direction == "min" else np.max
    rows = []
    for budget in range(1, len(scores) + 1):
        best = np.array([pick(rng.choice(scores, size=budget, replace=False))
                         for _ in range(SUBSET_DRAWS)])
        rows.append(dict(budget=budget, mean=best.mean(), lo=np.quantile(best, 0.025),
                         hi=np.quantile(best, 0.975)))
    return pd.DataFrame(rows)


def budget_figure(out: Path, values_of: Callable[[Path], pd.DataFrame], sweep,
                  scores: pd.DataFrame, budgets: pd.DataFrame, task: str, model: str,
                  figures: Path) -> list[Path]:
    """Test score of the selected config vs budget (left) and bootstrapped best validation score
    vs budget (right) for (task, model); `values_of(folder)`: `selection_values` of a results
    folder."""
    from matplotlib.ticker import MaxNLocator

    from bench.report.figures import pyplot

    plt = pyplot()

    metric, direction = sweep.metric_of(task)
    mine = budgets[(budgets.task == task) & (budgets.model == model)]
    rows = []
    for row in mine.itertuples():
        folder = out / ("final" if row.same_as_full else f"budgets/t{int(row.trial):03d}")
        rows.append((row.objective, int(row.budget), folder))
    rows += [(o, 0, out / "budget0") for o in sorted(mine["objective"].unique())]
    test_rows = []
    for objective, budget, folder in rows:
        values = values_of(folder)
        values = values[(values.task == task) & (values.model == model)
                        & (values.objective == objective)]["value"]
        if len(values):
            mean = float(values.mean())
            lo, hi, _ = stats.mean_ci(values)
            test_rows.append(dict(panel="test", objective=objective, budget=budget, mean=mean,
                                  lo=lo, hi=hi, n=len(values)))
    val_rows = []
    done = scores[(scores.task == task) & (scores.model == model) & (scores.status == "done")]
    for objective, group in done.groupby("objective"):
        per_trial = group.groupby("trial", as_index=False)["score"].mean()
        curve = subset_curve(per_trial, direction)
        val_rows += [dict(panel="validation", objective=objective, **r)
                     for r in curve.to_dict("records")]
    data = pd.DataFrame(test_rows + val_rows)
    if data.empty:
        return []
    colors = objective_colors(sorted(data["objective"].unique()))
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, panel in zip(axes, ("test", "validation")):
        part = data[data["panel"] == panel].sort_values("budget")
        for objective, group in part.groupby("objective"):
            ax.plot(group["budget"], group["mean"], "o-", color=colors[objective], label=objective)
            ax.fill_between(group["budget"], group["lo"], group["hi"], color=colors[objective],
                            alpha=0.2)
        ax.set_xlabel("tuning budget (trials; 0 = one-shot default)" if panel == "test"
                      else "trials drawn (best of b, bootstrapped)")
        ax.set_ylabel(f"{panel} {display_name(metric)} "
                      f"({'lower' if direction == 'min' else 'higher'} is better)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=8)
    axes[0].set_title("selected config, final seeds (mean, 95% CI)", fontsize=9)
    axes[1].set_title(f"best validation score of b trials ({SUBSET_DRAWS} draws)", fontsize=9)
    fig.suptitle(f"{task} / {model}: score vs tuning budget")
    return save_figure(lay_out(fig), data, figures / f"budget-{task}-{model}")


def write_protocol_report(out: Path, sweep, baseline: str = BASELINE,
                          run_ids: set[str] | None = None, feasibility=None,
                          report: Path | None = None) -> Path:
    """Write `<out>/report/` (or `report`; see the module docstring); returns its index.md.
    `run_ids`: the final phase's cells (`bench.protocol.tune.final_cells`); only their runs are read, so
    runs of an earlier winner left in `final/` by a changed sweep never count. `feasibility`: the
    feasibility table (`bench.protocol.verdicts.read_feasibility`; default `<out>/feasibility.csv` when
    present)."""
    from tabulate import tabulate

    out = Path(out)
    report = Path(report) if report else out / "report"
    figures = report / "figures"
    scores = pd.read_csv(out / "selected" / "trial_scores.csv")
    selected = pd.read_csv(out / "selected" / "selected.csv")
    budgets = pd.read_csv(out / "selected" / "budgets.csv")
    values_of = functools.cache(lambda folder: selection_values(folder, sweep, run_ids))  # one read each
    final = values_of(out / "final")
    if feasibility is None and (out / "feasibility.csv").is_file():
        feasibility = out / "feasibility.csv"
    tuned = comparison_table(final, baseline, feasibility, selected)
    default = comparison_table(values_of(out / "budget0"), baseline, feasibility)
    lines = [f"# Tuned comparison: {Path(sweep.source).name}", "",
             f"Sampler {sweep.sampler} (seed {sweep.seed}); selection on the VALIDATION split, "
             f"{sweep.iterate} iterate; winners re-run on final seeds {list(sweep.final_seeds)} "
             "and evaluated on the test split once.", "",
             "## Selected configs (validation score, mean over tuning seeds)", ""]
    shown = selected[["task", "model", "objective", "trial", "trials", "metric", "score",
                      "params"]]
    lines += [tabulate(shown, headers="keys", tablefmt="github", showindex=False), ""]
    lines += protocol_sections(out, sweep, report, scores)
    lines += [f"## Tuned: each objective's winner vs {baseline}'s winner (test split)", "",
              "Paired by final seed; interval: t below 10 pairs, BCa from 10; p: exact sign-flip "
              "permutation; class (bench.protocol.verdicts): valid / ill-posed / floor / non-iterative; "
              "Holm across the valid rows only (not those whose selected weight is at the plain "
              "limit: 'reduced to plain'); 'better' ▲ / 'worse' ▼ only where the corrected "
              "p < 0.05. LaTeX: `comparisons.tex` and `budget0.tex`, with `\\input{preamble}` "
              "(`preamble.tex`) in the document's preamble.", "",
              _write_table(tuned, report / "comparisons", baseline, "Tuned comparison")]
    lines += [f"## Budget 0: the one-shot defaults vs {baseline}'s defaults (same seeds)", "",
              _write_table(default, report / "budget0", baseline, "Budget 0 (one-shot defaults)")]
    atomic_write_text(report / "preamble.tex", PREAMBLE)
    learned = learned_only(final)  # a non-learned reference is a floor, not a problem
    problems = learned.assign(problem=learned["task"] + "/" + learned["model"])
    across, left_out = _across(problems, baseline)
    if len(across):
        atomic_write_frame(across, report / "across_tasks.csv")
        lines += ["## Across tasks (normalised scores, winners, test split)", "",
                  "IQM and P(objective > baseline) from rliable, 95% stratified bootstrap CI, "
                  f"over the {int(across['problems'].max())} (task, model) problems of the "
                  "objectives that ran on all of them"
                  + _left_out_text(left_out, problems["problem"].nunique()) + ".", "",
                  tabulate(across.round(3), headers="keys", tablefmt="github", showindex=False),
                  ""]
    for path in winners_profile_figure(problems, figures):
        if path.suffix == ".png":
            lines += ["## Performance profile", "", f"![profile](figures/{path.name})", ""]
    lines += ["`final/` is an ordinary results folder: `python -m bench report "
              f"{out / 'final'}` gives the winners' standard tables and figures (convergence, "
              "landscape, performance profiles).", "", "## Figures", ""]
    for (task, model), _ in learned_only(scores).groupby(["task", "model"]):
        for path in sensitivity_figure(scores, sweep, task, model, figures) + \
                budget_figure(out, values_of, sweep, scores, budgets, task, model, figures):
            if path.suffix == ".png":
                lines.append(f"![{path.stem}](figures/{path.name})")
    index = report / "index.md"
    atomic_write_text(index, "\n".join(lines) + "\n")
    return index


def _left_out_text(left_out: dict[str, int], total: int) -> str:
    """'; left out (...): x (ran 1 of 9), ...' for the objectives `_across` leaves out."""
    if not left_out:
        return ""
    return "; left out (compared row by row above): " + ", ".join(
        f"{o} (ran {n} of {total})" for o, n in sorted(left_out.items()))


def winners_profile_figure(values: pd.DataFrame, figures: Path) -> list[Path]:
    """Dolan-Moré performance profile of the winners over the (task, model) problems whose
    selection metric is a positive cost (direction 'min'; mean over final seeds). values:
    `selection_values` of the final phase with a `problem` column."""
    from bench.report.figures import pyplot

    plt = pyplot()
    values, _ = on_every_problem(values[values["direction"] == "min"])
    costs = values.pivot_table(index="problem", columns="objective", values="value",
                               aggfunc="mean").dropna()
    costs = costs[(costs > 0).all(axis=1)]
    if costs.empty or costs.shape[1] < 2:
        return []
    ratios = costs.div(costs.min(axis=1), axis=0).to_numpy()
    taus = np.linspace(1.0, max(float(ratios.max()), 1.0) * 1.05, 200)
    profile = stats.performance_profile(costs, taus)
    area = stats.profile_area(profile)
    colors = objective_colors(list(costs.columns))
    fig, ax = plt.subplots(figsize=(4.6, 3.4))
    for objective in profile.columns:
        ax.step(taus, profile[objective], where="post", color=colors[objective],
                label=f"{objective} (area {area[objective]:.2f})")
    ax.set_xlabel("tau: within a factor tau of the best objective")
    ax.set_ylabel(f"share of {len(costs)} problems")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=8)
    ax.set_title("performance profile of the tuned winners (test, 'min' metrics)", fontsize=9)
    return save_figure(lay_out(fig), profile.reset_index(), figures / "profile")


def _across(values: pd.DataFrame, baseline: str) -> tuple[pd.DataFrame, dict[str, int]]:
    """IQM / probability of improvement over the (task, model) problems of `values` (as
    `winners_profile_figure`'s); 'max' metrics are negated so that every problem is normalised as a cost.
    Returns the table and the objectives left out (`on_every_problem`)."""
    if values.empty:
        return pd.DataFrame(), {}
    costs = values.assign(value=np.where(values["direction"] == "max", -values["value"],
                                         values["value"]))
    kept, left_out = on_every_problem(costs)
    return stats.across_tasks(kept, "min", baseline), left_out


def on_every_problem(values: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """`values` (columns objective, problem, ...) restricted to the objectives that ran on every
    problem, so that summaries across problems compare like with like; returns (kept rows,
    {left-out objective: number of problems it ran}). An objective that applies to one family
    only (a faithful preset) is compared in the per-row table instead. When fewer than two
    objectives cover every problem, nothing is left out (the summaries then keep the problems
    that every objective ran)."""
    if values.empty:
        return values, {}
    counts = values.groupby("objective")["problem"].nunique()
    complete = counts[counts == values["problem"].nunique()].index
    if len(complete) < 2:
        return values, {}
    left_out = {str(o): int(n) for o, n in counts.items() if o not in set(complete)}
    return values[values["objective"].isin(complete)], left_out

