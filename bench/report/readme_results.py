"""The README's tables and numbers of the tuned comparison made by the current code, `results/cpu`
(issue 24's protocol: nested design, successive halving, two tuning seeds, row classes), each
computed from the committed tables (never typed).

* `BLOCKS`: `cpu-now` (the comparison, with each row's class), `cpu-now-selected` (the winners'
  configs, validation score and selection stability), `cpu-now-compute` (tuning compute per
  objective), `cpu-now-rungs` (rank correlation of the halving rung with the full budget),
  `cpu-now-changes` (each row beside the same row of the previous tuned comparison);
* `NUMBERS`: the run's commit, cells and measured wall time, and the across-task summary;
* `row_number`: `now.row.<task>.<model>.<objective>.<field>`, one field of one comparison row
  (`mean`, `base`, `diff`, `p`, `holm`, `class`, `verdict`, `beta`), for the prose.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from pathlib import Path

import pandas as pd

from bench import stats
from bench.protocol.verdicts import MARKS, learned_only
from bench.report.comparison_tables import metric_text
from bench.report.numbers import format_interval, format_mean_std
from bench.report.readme_source import across, markdown, mean_text, minus, values

CURRENT = "cpu"
ENERGY, THERMAL = "alignment1d_nonlinear_energy", "homography_synthetic_thermal"
PREVIOUS = "cpu_66f1d96_8trials_1seed"  # the tuned comparison of the first protocol (older code)
#: the swept weight of each objective that has one (its plain limit is the axis' lower end)
WEIGHTS = {"bench.objectives.DLC.weight": "β", "bench.objectives.Margin.weight": "margin weight",
           "dlc.Euclidean.scale": "noise scale s"}
LR = "bench.run.Experiment.lr"


def _csv(repo: Path, folder: str, name: str) -> pd.DataFrame:
    return pd.read_csv(repo / "results" / folder / name)


def _verdict(word: str) -> str:
    return f"**{word}**{MARKS[word][0]}" if word in ("better", "worse") else word


def comparison_block(repo: Path, folder: str) -> str:
    """A tuned folder's `report/comparisons.csv` as a README table (test split, winners): both
    sides' mean ± std, the paired difference [95% CI], p, Holm and the verdict; with each row's
    class where the report recorded one."""
    table = _csv(repo, folder, "report/comparisons.csv")
    columns = {
        "task": table["task"], "model": table["model"],
        "metric": [metric_text(t, m, x, d) for t, m, x, d in
                   zip(table["task"], table["model"], table["metric"], table["direction"])],
        "objective": table["objective"],
    }
    if "class" in table:
        columns["class"] = table["class"]
    columns.update({
        "objective mean ± std": [format_mean_std(m, s, n) for m, s, n in
                                 zip(table["mean"], table["std"], table["runs"])],
        "plain mean ± std": [format_mean_std(m, s, n) for m, s, n in
                             zip(table["base_mean"], table["base_std"], table["base_runs"])],
        "difference [95% CI]": [minus(format_interval(d, lo, hi)) for d, lo, hi in
                                zip(table["diff"], table["lo"], table["hi"])],
        "p": [f"{p:.2g}" for p in table["p"]],
        "Holm": ["—" if pd.isna(p) else f"{p:.2g}" for p in table["p_holm"]],
        "verdict": [_verdict(v) for v in table["verdict"]],
    })
    frame = pd.DataFrame(columns)
    return markdown(list(frame.itertuples(index=False)), list(frame.columns))


def _params(text: str) -> dict:
    return json.loads(text) if isinstance(text, str) else {}


def _weight(params: dict) -> str:
    for key, name in WEIGHTS.items():
        if key in params:
            return f"{name} {params[key]:.2g}"
    return "—"


def selected_block(repo: Path) -> str:
    """Each objective's winner: learning rate (none for a non-learned reference), swept weight,
    validation score (mean over the tuning seeds), points searched, and the selection stability
    (share of leave-one-tuning-seed-out replays that keep the winner)."""
    selected = _csv(repo, CURRENT, "selected/selected.csv")
    stability = _csv(repo, CURRENT, "report/stability.csv").set_index(
        ["task", "model", "objective"])["stability"]
    rows = []
    learned = learned_only(selected).index
    for index, row in zip(selected.index, selected.itertuples(index=False)):
        params = _params(row.params)
        lr = f"{params[LR]:.1e}".replace("e-0", "e-") if index in learned else \
            "— (nothing to train)"
        rows.append((row.task, row.model, row.objective, lr, _weight(params), f"{row.score:.4g}",
                     int(row.trials),
                     f"{stability[(row.task, row.model, row.objective)]:.2f}"))
    return markdown(rows, ["task", "model", "objective", "lr", "weight", "validation score",
                           "points", "stability"])


def _learned_compute(repo: Path) -> pd.DataFrame:
    """`report/compute.csv` without the non-learned references (no trials: not problems)."""
    return learned_only(_csv(repo, CURRENT, "report/compute.csv"))


def compute_block(repo: Path) -> str:
    """Tuning compute per objective, summed over the (task, model) problems it ran: points
    searched, trials that reached the full budget, full-budget-equivalent trials (per tuning seed,
    as planned and as run) and the wall time of its tuning cells (1 thread each); the non-learned
    references (`verdicts.learned_only`) are not problems of this sum."""
    compute = _learned_compute(repo)
    rows = []
    for objective, group in compute.groupby("objective", sort=False):
        rows.append((objective, group[["task", "model"]].drop_duplicates().shape[0],
                     int(group["points"].sum()), int(group["reached_full"].sum()),
                     f"{group['planned_equiv'].sum():.1f}", f"{group['full_budget_equiv'].sum():.1f}",
                     f"{group['wall_s'].sum() / 60:.0f}"))
    return markdown(rows, ["objective", "problems", "points", "reached full budget",
                           "full-budget equiv. planned", "run", "tuning wall (min)"])


def _spread(repo: Path) -> float:
    """The largest gap, within one problem, between two objectives' full-budget-equivalent
    trials as run (the protocol plans them equal to within one)."""
    compute = _learned_compute(repo)
    spans = compute.groupby(["task", "model"])["full_budget_equiv"].agg(lambda v: v.max() - v.min())
    return float(spans.max())


def rungs_block(repo: Path) -> str:
    """Spearman correlation of the rung's validation score with the full budget's, per problem,
    over the trials that reached the full budget."""
    table = _csv(repo, CURRENT, "report/rung_correlation.csv")
    rows = [(r.task, r.model, int(r.trials), "—" if pd.isna(r.spearman) else f"{r.spearman:+.2f}")
            for r in table.itertuples(index=False)]
    return markdown(rows, ["task", "model", "trials at full budget", "Spearman ρ"])


def changes_block(repo: Path, previous: str) -> str:
    """Each row of today's comparison beside the same (task, model, objective) row of a previous
    tuned folder (`previous`, made by older code): both sides' means and the verdict then and now
    (now with its class); rows only one of them has are listed with '—' on the other side."""
    now = _csv(repo, CURRENT, "report/comparisons.csv")
    then = _csv(repo, previous, "report/comparisons.csv")
    keys = ["task", "model", "objective"]
    both = now.merge(then, on=keys, how="outer", suffixes=("", "_then"))

    def sides(row: pd.Series, suffix: str) -> str:
        if pd.isna(row.get("mean" + suffix)):
            return "—"
        mine = mean_text(row["mean" + suffix], row["std" + suffix], row["runs" + suffix])
        base = mean_text(row["base_mean" + suffix], row["base_std" + suffix],
                         row["base_runs" + suffix])
        return f"{mine} vs {base}"

    rows = []
    for _, row in both.sort_values(keys).iterrows():
        verdict_now = "—" if pd.isna(row["verdict"]) else (
            row["verdict"] if row["verdict"] == row["class"] else f"{row['class']}: {row['verdict']}")
        rows.append((row["task"], row["model"], row["objective"], sides(row, "_then"),
                     "—" if pd.isna(row["verdict_then"]) else row["verdict_then"],
                     sides(row, ""), verdict_now))
    return markdown(rows, ["task", "model", "objective", "then: objective vs plain", "then",
                           "now: objective vs plain", "now"])


@cache
def _runs(repo: Path) -> pd.DataFrame:
    """Every cell the tuning ran (trials, rungs, final phase): one row per run."""
    root = repo / "results" / CURRENT
    frames = [pd.read_parquet(p) for p in sorted(root.rglob("runs.parquet"))
              if "report" not in p.parts]
    runs = pd.concat(frames).drop_duplicates("run_id")
    return runs[runs.status == "done"]


def _intervals(repo: Path) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """(start, end) of every cell the tuning ran, sorted by start."""
    runs = _runs(repo)
    end = pd.to_datetime(runs["finished"])
    return sorted(zip(end - pd.to_timedelta(runs["wall_time_s"], unit="s"), end))


def _wall(repo: Path) -> float:
    """Measured wall time of the whole tuning, s: first cell's start to last cell's end."""
    spans = _intervals(repo)
    return (max(end for _, end in spans) - spans[0][0]).total_seconds()


def _busy(repo: Path) -> float:
    """Seconds during which at least one cell ran (the union of the cells' intervals): the span
    `_wall` less the pauses between commands."""
    spans = _intervals(repo)
    total, (start, stop) = 0.0, spans[0]
    for begin, finish in spans[1:]:
        if begin > stop:
            total += (stop - start).total_seconds()
            start, stop = begin, finish
        else:
            stop = max(stop, finish)
    return total + (stop - start).total_seconds()


def versus(repo: Path, task: str, objective: str, other: str) -> str:
    """`objective` − `other` on the final seeds of `task` (the sweep's metric, test split): the
    paired difference, its 95% interval and the exact sign-flip p (one comparison, outside the
    table's Holm family)."""
    row = _comparisons(repo).xs(task, level="task").iloc[0]
    side = [values(repo, f"{CURRENT}/final", row["metric"], task=task, objective=o)
            for o in (objective, other)]
    test = stats.paired_test(side[0], side[1], row["direction"])
    return f"{minus(format_interval(test['diff'], test['lo'], test['hi']))}, p = {test['p']:.2g}"


def _final_mean(repo: Path, task: str, metric: str, fmt: str, **where: str) -> str:
    """Mean over the final runs (test split, last step) of `metric` on `task`."""
    return f"{values(repo, f'{CURRENT}/final', metric, task=task, **where).mean():{fmt}}"


def _final(repo: Path) -> pd.DataFrame:
    return pd.read_parquet(repo / "results" / CURRENT / "final" / "runs.parquet")


@cache
def _comparisons(repo: Path) -> pd.DataFrame:
    return _csv(repo, CURRENT, "report/comparisons.csv").set_index(["task", "model", "objective"])


FIELDS: dict[str, Callable[[pd.Series], str]] = {
    "mean": lambda r: mean_text(r["mean"], r["std"], r["runs"]),
    "base": lambda r: mean_text(r["base_mean"], r["base_std"], r["base_runs"]),
    "diff": lambda r: minus(format_interval(r["diff"], r["lo"], r["hi"])),
    "p": lambda r: f"{r['p']:.2g}",
    "holm": lambda r: "—" if pd.isna(r["p_holm"]) else f"{r['p_holm']:.2g}",
    "class": lambda r: str(r["class"]),
    "verdict": lambda r: str(r["verdict"]),
    "beta": lambda r: _weight(_params(r["params"])).split(" ")[-1],
}


def row_number(repo: Path, name: str) -> str:
    """`now.row.<task>.<model>.<objective>.<field>`: one field of one row of the comparison."""
    parts = name.split(".")
    if len(parts) != 6 or parts[:2] != ["now", "row"] or parts[5] not in FIELDS:
        raise KeyError(f"README.md: {name!r} is not now.row.<task>.<model>.<objective>.<field> "
                       f"with a field in {sorted(FIELDS)}")
    row = _comparisons(repo).loc[tuple(parts[2:5])]
    return FIELDS[parts[5]](row)


def _classes(repo: Path) -> str:
    counts = _comparisons(repo)["class"].value_counts()
    return ", ".join(f"{n} {c}" for c, n in counts.items())


BLOCKS: dict[str, Callable[[Path], str]] = {
    "cpu-now": lambda r: comparison_block(r, CURRENT), "cpu-now-selected": selected_block,
    "cpu-now-compute": compute_block, "cpu-now-rungs": rungs_block,
    "cpu-now-changes": lambda r: changes_block(r, PREVIOUS)}
NUMBERS: dict[str, Callable[[Path], str]] = {
    "now.commits": lambda r: ", ".join(sorted(_runs(r)["git_sha"].str[:7].unique())),
    "now.cells": lambda r: str(len(_runs(r))),
    "now.final_cells": lambda r: str(len(_final(r))),
    "now.cell_hours": lambda r: f"{_runs(r)['wall_time_s'].sum() / 3600:.1f}",
    "now.wall_min": lambda r: f"{_wall(r) / 60:.0f}",
    "now.busy_min": lambda r: f"{_busy(r) / 60:.0f}",
    "now.energy.dlc_vs_unrolled": lambda r: versus(r, ENERGY, "dlc", "unrolled"),
    "now.thermal.identity": lambda r: _final_mean(r, THERMAL, "trivial_mace", ".1f"),
    "now.thermal.rawlk": lambda r: _final_mean(r, THERMAL, "mace", ".1f", model="rawlk"),
    "now.adding.trivial": lambda r: _final_mean(r, "sequence_adding", "trivial_mse", ".4f"),
    "now.rows": lambda r: str(len(_comparisons(r))),
    "now.compute_spread": lambda r: f"{_spread(r):.2f}",
    "now.holm_rows": lambda r: str(int(_comparisons(r)["p_holm"].notna().sum())),
    "now.classes": _classes,
    "now.problems": lambda r: f"{_csv(r, CURRENT, 'report/across_tasks.csv').problems.iloc[0]:.0f}",
    **{f"now.iqm.{o}": (lambda r, o=o: across(r, CURRENT, o, "iqm")) for o in ("plain", "dlc")},
    "now.poi": lambda r: across(r, CURRENT, "dlc", "poi"),
}
