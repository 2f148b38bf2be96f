"""The README's numbers of the `cpu`-scale results made by older code: the tuned comparison
(`results/cpu_66f1d96_8trials_1seed`: its report's comparisons, across-task summary, profile, tuning compute, selected
configs, trial scores and the winners' tables) and the one-shot defaults (`results/cpu_budget0`).

A mean quoted in prose prints as in the comparison table (`format_mean_std`), so the prose and
the table never disagree on a digit.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from bench import stats
from bench.report.numbers import format_mean_std
from bench.report.reading import drop_legacy_gap, final_values
from bench.report.readme_source import across, markdown, mean_text, span, tables, values

TUNED, BUDGET0 = "cpu_66f1d96_8trials_1seed", "cpu_budget0"
PRESETS = ("dlc_prise", "dlc_authors_generic")
ENERGY = "alignment1d_nonlinear_energy"
#: (task, model, metric) rows of the budget-0 table, in README order
BUDGET0_ROWS = [
    ("alignment1d_nonlinear_energy", "conv1d", "distance"),
    ("alignment1d_nonlinear_energy", "conv1d", "success@1"),
    ("alignment1d_nonlinear_energy", "conv1d", "violation_rate"),
    ("alignment1d_nonlinear", "conv1d", "distance"),
    ("alignment1d_nonlinear", "conv1d", "success@1"),
    ("alignment1d_same", "conv1d", "distance"),
    ("homography_synthetic_same", "deeplk", "mace"),
    ("homography_synthetic_same", "deeplk", "violation_rate"),
    ("homography_synthetic_thermal", "deeplk", "mace"),
    ("homography_synthetic_thermal", "deeplk", "success@3"),
    ("registration_synthetic_dcp", "dcp", "rot_iso_deg"),
    ("registration_synthetic_dcp", "dcp", "success_1deg"),
    ("sequence_adding", "gru", "mse"),
    ("sequence_adding", "rnn", "mse"),
    ("sequence_copy", "gru", "recall_accuracy"),
    ("sequence_digits", "gru", "accuracy"),
    ("sequence_digits", "lstm", "accuracy"),
    ("sequence_mnist1d", "gru", "accuracy"),
]


def _report(repo: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(repo / "results" / TUNED / "report" / name)


def _row(repo: Path, task: str, objective: str = "dlc") -> pd.Series:
    table = _report(repo, "comparisons.csv")
    return table[(table.task == task) & (table.objective == objective)].iloc[0]


def _side(repo: Path, task: str, objective: str = "dlc", base: bool = False,
          std: bool = False) -> str:
    row = _row(repo, task, objective)
    keys = ("base_mean", "base_std", "base_runs") if base else ("mean", "std", "runs")
    return (format_mean_std if std else mean_text)(*(row[k] for k in keys))


def _holm(repo: Path, task: str, objectives: tuple[str, ...] = ("dlc",)) -> str:
    return span(pd.Series([_row(repo, task, o)["p_holm"] for o in objectives]), ".2g")


def _tuned(repo: Path, metric: str, objective: str, phase: str = "test",
           step: int | None = None) -> float:
    return float(values(repo, f"{TUNED}/final", metric, phase=phase, step=step,
                        task="alignment1d_nonlinear_energy", objective=objective).mean())


def _thermal(repo: Path, folder: str, metric: str, step: int | None) -> pd.Series:
    """Mean over seeds per objective of `metric` per LK iteration on the thermal task."""
    metrics, _ = tables(repo, folder)
    rows = metrics[(metrics.phase == "test_iter") & (metrics.metric == metric)
                   & (metrics.task == "homography_synthetic_thermal")]
    rows = rows[rows.step == (rows.step.max() if step is None else step)]
    return rows.groupby("objective")["value"].mean()


def _cost_ratios(repo: Path) -> pd.Series:
    """plain's mean over DLC's, per task whose selection metric is a cost."""
    table = _report(repo, "comparisons.csv")
    costs = table[(table.objective == "dlc") & (table.direction == "min")]
    return (costs["base_mean"] / costs["mean"]).set_axis(costs["task"])


def _area(repo: Path, objective: str) -> str:
    profile = _report(repo, "figures/profile.csv").set_index("tau")
    return f"{stats.profile_area(profile)[objective]:.2f}"


def _hinge(repo: Path, task: str) -> tuple[float, int, float]:
    """(smallest weighted hinge ratio over every epoch of the final DLC runs, how many of those
    runs stay above 10x at every epoch, the selected beta)."""
    metrics, _ = tables(repo, f"{TUNED}/final")
    ratio = metrics[(metrics.metric == "train_weighted_hinge_ratio") & (metrics.task == task)
                    & (metrics.objective == "dlc")].groupby("run_id")["value"].min()
    selected = _selected(repo)
    params = selected[(selected.task == task) & (selected.objective == "dlc")]["params"].iloc[0]
    return (float(ratio.min()), int((ratio > 10).sum()),
            float(params["bench.objectives.DLC.weight"]))


def _selected(repo: Path) -> pd.DataFrame:
    table = pd.read_csv(repo / "results" / TUNED / "selected" / "selected.csv")
    return table.assign(params=table["params"].map(json.loads))


def selected_table(repo: Path) -> str:
    """lr (and beta) of each objective's winning trial, per (task, model)."""
    table = _selected(repo)

    def text(params: dict) -> str:
        beta = params.get("bench.objectives.DLC.weight")
        lr = f"{params['bench.run.Experiment.lr']:.1e}".replace("e-0", "e-")
        return lr if beta is None else f"{lr}, {beta:.2f}"

    rows = []
    for (task, model), group in table.groupby(["task", "model"], sort=False):
        by = group.set_index("objective")["params"]
        preset = next((f"{o}: {text(by[o])}" for o in PRESETS if o in by), "—")
        rows.append((task, model, text(by["plain"]), text(by["dlc"]), preset))
    return markdown(rows, ["task", "model", "plain: lr", "dlc: lr, β", "preset: lr, β"])


@cache
def _trial_runs(repo: Path) -> pd.DataFrame:
    """The finished trial cells of the tuning (every `trials/t*/runs.parquet`)."""
    runs = pd.concat([pd.read_parquet(f) for f in
                      sorted((repo / "results" / TUNED / "trials").glob("t*/runs.parquet"))])
    return runs[runs.status == "done"]


def _compute(repo: Path, objective: str) -> str:
    runs = _trial_runs(repo)
    mine = runs[runs.objective == objective]
    return f"{len(mine)} trials, {mine.wall_time_s.sum():.0f} s"


def _best_trial(repo: Path, objective: str) -> str:
    scores = pd.read_csv(repo / "results" / TUNED / "selected" / "trial_scores.csv")
    mine = scores[(scores.task == "sequence_copy") & (scores.objective == objective)]
    return f"{mine.groupby('trial')['score'].mean().max():.1f}"


@cache
def _budget0(repo: Path) -> pd.DataFrame:
    """Final test values of the one-shot runs (task, model, objective, seed, metric, value)."""
    metrics, _ = tables(repo, BUDGET0)
    return final_values(drop_legacy_gap(metrics)[0])


def _b0(repo: Path, task: str, model: str, objective: str, metric: str) -> pd.Series:
    data = _budget0(repo)
    return data[(data.task == task) & (data.model == model) & (data.objective == objective)
                & (data.metric == metric)]["value"]


def _b0_text(repo: Path, task: str, model: str, objective: str, metric: str,
             full: bool = True) -> str:
    series = _b0(repo, task, model, objective, metric)
    return (format_mean_std if full else mean_text)(series.mean(), series.std(ddof=1), len(series))


def _b0_gaps(repo: Path) -> pd.Series:
    """plain − DLC accuracy on the class-label rows of the budget-0 table (points)."""
    rows = [(t, m, x) for t, m, x in BUDGET0_ROWS if "accuracy" in x]
    return pd.Series([_b0(repo, *r[:2], "plain", r[2]).mean() - _b0(repo, *r[:2], "dlc", r[2])
                      .mean() for r in rows])


def _b0_runs(repo: Path) -> str:
    _, runs = tables(repo, BUDGET0)
    counts = runs.git_sha.str[:10].value_counts()
    return ", ".join(f"{sha}: {n} runs" for sha, n in counts.items())


def _violation_span(repo: Path) -> str:
    data = _budget0(repo)
    rows = data[data.task.isin(["sequence_copy", "sequence_digits", "sequence_mnist1d"])
                & (data.metric == "violation_rate")]
    means = rows.groupby(["task", "model", "objective"])["value"].mean()
    return f"{means.min():.3f} to {means.max():.3f}"


def _other_ratios(repo: Path) -> str:
    """The largest factor between plain's and DLC's means on the other cost problems."""
    ratios = _cost_ratios(repo).drop([ENERGY, "sequence_adding"])
    return f"{np.exp(np.abs(np.log(ratios))).max():.1f}"


def _energy(objective: str, metric: str, fmt: str, scale: float = 1) -> Callable[[Path], str]:
    """A budget-0 mean of the energy task, as text."""
    return lambda repo: f"{scale * _b0(repo, ENERGY, 'conv1d', objective, metric).mean():{fmt}}"


BLOCKS: dict[str, Callable[[Path], str]] = {"cpu-selected": selected_table}
NUMBERS: dict[str, Callable[[Path], str]] = {
    "cpu.rows": lambda r: str(len(_report(r, "comparisons.csv"))),
    "cpu.trial_cells": lambda r: str(len(_trial_runs(r))),
    "cpu.trial_minutes": lambda r: f"{_trial_runs(r).wall_time_s.sum() / 60:.0f}",
    "cpu.final_cells": lambda r: str(len(tables(r, f"{TUNED}/final")[1])),
    "cpu.final_minutes": lambda r: f"{tables(r, f'{TUNED}/final')[1].wall_time_s.sum() / 60:.0f}",
    "cpu.energy.base": lambda r: _side(r, ENERGY, base=True),
    "cpu.energy.dlc": lambda r: _side(r, ENERGY),
    "cpu.energy.holm": lambda r: _holm(r, ENERGY),
    **{f"cpu.energy.success1.{o}": (lambda r, o=o: f"{_tuned(r, 'success@1', o):.1f}")
       for o in ("plain", "dlc")},
    **{f"cpu.energy.violation.{o}": (lambda r, o=o: f"{_tuned(r, 'violation_rate', o, 'landscape'):.3f}")
       for o in ("plain", "dlc")},
    "cpu.nonlinear.holm": lambda r: _holm(r, "alignment1d_nonlinear"),
    "cpu.same.holm": lambda r: _holm(r, "alignment1d_same"),
    "cpu.thermal.holm": lambda r: _holm(r, "homography_synthetic_thermal", ("dlc", "dlc_prise")),
    "cpu.registration.holm": lambda r: _holm(r, "registration_synthetic_dcp"),
    "cpu.registration.dlc": lambda r: _side(r, "registration_synthetic_dcp", std=True),
    "cpu.registration.plain": lambda r: _side(r, "registration_synthetic_dcp", base=True,
                                              std=True),
    "cpu.adding.holm": lambda r: _holm(r, "sequence_adding"),
    "cpu.thermal.start": lambda r: f"{_thermal(r, f'{TUNED}/final', 'mace', 0).mean():.1f}",
    "cpu.thermal.end": lambda r: span(_thermal(r, f"{TUNED}/final", "mace", None), ".1f"),
    "cpu.copy.base": lambda r: _side(r, "sequence_copy", base=True),
    "cpu.copy.dlc": lambda r: span(pd.Series([float(_side(r, "sequence_copy", o))
                                              for o in ("dlc", "dlc_authors_generic")]), ".1f"),
    "cpu.copy.holm": lambda r: _holm(r, "sequence_copy", ("dlc", "dlc_authors_generic")),
    "cpu.mnist1d.base": lambda r: _side(r, "sequence_mnist1d", base=True),
    "cpu.mnist1d.dlc": lambda r: _side(r, "sequence_mnist1d"),
    "cpu.mnist1d.generic": lambda r: _side(r, "sequence_mnist1d", "dlc_authors_generic"),
    "cpu.mnist1d.holm": lambda r: _holm(r, "sequence_mnist1d", ("dlc", "dlc_authors_generic")),
    "cpu.digits.generic": lambda r: _side(r, "sequence_digits", "dlc_authors_generic"),
    "cpu.digits.base": lambda r: _side(r, "sequence_digits", base=True),
    "cpu.digits.generic.holm": lambda r: _holm(r, "sequence_digits", ("dlc_authors_generic",)),
    "cpu.digits.gap": lambda r: f"{-_row(r, 'sequence_digits')['diff']:.1f}",
    "cpu.digits.holm": lambda r: _holm(r, "sequence_digits"),
    "cpu.problems": lambda r: f"{_report(r, 'across_tasks.csv').problems.iloc[0]:.0f}",
    **{f"cpu.preset_problems.{o}": (lambda r, o=o: str(int((_report(r, "comparisons.csv")
                                                            .objective == o).sum())))
       for o in PRESETS},
    **{f"cpu.iqm.{o}": (lambda r, o=o: across(r, TUNED, o, "iqm")) for o in ("plain", "dlc")},
    "cpu.poi": lambda r: across(r, TUNED, "dlc", "poi"),
    "cpu.cost_problems": lambda r: str(len(_cost_ratios(r))),
    **{f"cpu.area.{o}": (lambda r, o=o: _area(r, o)) for o in ("plain", "dlc")},
    "cpu.ratio.energy": lambda r: f"{_cost_ratios(r)[ENERGY]:.1f}",
    "cpu.ratio.adding": lambda r: f"{_cost_ratios(r)['sequence_adding']:.1f}",
    "cpu.ratio.others": _other_ratios,
    **{f"cpu.hinge.{t}.{k}": (lambda r, t=t, k=k, f=f: f"{_hinge(r, f'sequence_{t}')[k]:{f}}")
       for t in ("copy", "adding") for k, f in ((0, ".1f"), (1, ".0f"), (2, ".3g"))},
    **{f"cpu.best_trial.{o}": (lambda r, o=o: _best_trial(r, o))
       for o in ("plain", "dlc", "dlc_authors_generic")},
    **{f"cpu.compute.{o}": (lambda r, o=o: _compute(r, o)) for o in ("plain", "dlc", *PRESETS)},
    "b0.runs": _b0_runs,
    "b0.cells": lambda r: str(len(tables(r, BUDGET0)[1])),
    "b0.minutes": lambda r: f"{tables(r, BUDGET0)[1].wall_time_s.sum() / 60:.0f}",
    **{f"b0.registration.{o}": (lambda r, o=o: _b0_text(r, "registration_synthetic_dcp", "dcp",
                                                          o, "rot_iso_deg"))
       for o in ("plain", "dlc")},
    "b0.energy.success2": _energy("plain", "success@2", ".1f"),
    **{f"b0.energy.violation.{o}": _energy(o, "violation_rate", ".2f") for o in ("plain", "dlc")},
    "b0.energy.violation.percent": _energy("dlc", "violation_rate", ".0f", 100),
    **{f"b0.energy.success1.{o}": _energy(o, "success@1", ".0f") for o in ("plain", "dlc")},
    **{f"b0.same.{m}.{o}": (lambda r, m=m, o=o: _b0_text(r, "homography_synthetic_same", "deeplk",
                                                         o, m, full=False))
       for m in ("mace", "violation_rate") for o in ("plain", "dlc")},
    "b0.thermal.start": lambda r: f"{_thermal(r, BUDGET0, 'distance', 0).mean():.1f}",
    "b0.thermal.end": lambda r: span(_thermal(r, BUDGET0, "distance", None), ".0f"),
    "b0.gaps": lambda r: span(_b0_gaps(r), ".0f"),
    "b0.violation.sequence": _violation_span,
}
