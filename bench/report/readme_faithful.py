"""The README's numbers of the faithful-DLC comparison at the `cpu` scale (`results/faithful_cpu`,
made by older code): the table of final test values per objective and the training diagnostics
its prose quotes (hinge ratios, T3 activity, how far the base loss still falls)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from bench.report.readme_source import markdown, mean_std, span, tables, values

FOLDER = "faithful_cpu"
COLUMNS = ["plain", "dlc", "preset", "plain_ft", "dlc_ft", "preset, fine-tuned"]
#: (row label, task, metric, test_iter step or None for the final value, preset, fine-tuned preset)
ROWS = [
    ("sequence_digits (accuracy %, ↑)", "sequence_digits", "accuracy", None,
     ("generic", "dlc_authors_generic"), None),
    ("homography thermal (MACE px, ↓)", "homography_synthetic_thermal", "mace", None,
     ("PRISE", "dlc_prise"), None),
    ("registration DCP (rot. error °, network only, ↓)", "registration_synthetic_dcp",
     "rot_iso_deg", 1, None, ("demo", "dlc_prnet_demo_ft")),
    ("registration DCP (rot. error °, after ICP, ↓)", "registration_synthetic_dcp",
     "rot_iso_deg", None, None, ("demo", "dlc_prnet_demo_ft")),
]


def _value(repo: Path, task: str, metric: str, step: int | None, objective: str) -> str:
    phase = "test" if step is None else "test_iter"
    return mean_std(values(repo, FOLDER, metric, phase=phase, step=step, task=task,
                           objective=objective))


def faithful_table(repo: Path) -> str:
    """Final test values, mean ± std over seeds, per family and objective."""
    rows = []
    for label, task, metric, step, preset, tuned in ROWS:
        cells = [_value(repo, task, metric, step, o) for o in ("plain", "dlc")]
        cells.append(f"{preset[0]}: {_value(repo, task, metric, step, preset[1])}" if preset
                     else "–")
        cells += [_value(repo, task, metric, step, o) for o in ("plain_ft", "dlc_ft")]
        cells.append(f"{tuned[0]}: {_value(repo, task, metric, step, tuned[1])}" if tuned
                     else "–")
        rows.append((label, *cells))
    return markdown(rows, ["family (metric)", *COLUMNS])


def _last(repo: Path, objective: str, metric: str) -> float:
    """Mean over seeds of a training metric of `sequence_digits` at the last epoch."""
    return float(values(repo, FOLDER, metric, phase="train", task="sequence_digits",
                        objective=objective).mean())


def _curve(repo: Path, task: str, objective: str) -> pd.Series:
    metrics, _ = tables(repo, FOLDER)
    rows = metrics[(metrics.phase == "train") & (metrics.metric == "train_original")
                   & (metrics.task == task) & (metrics.objective == objective)]
    return rows.groupby("step")["value"].mean()


def _falls(repo: Path, tasks: tuple[str, ...], epochs: int | None = None,
           skip: tuple[str, ...] = ()) -> pd.Series:
    """% by which the mean base loss falls over the last quarter of the epochs (or the last
    `epochs`), per (task, objective)."""
    metrics, _ = tables(repo, FOLDER)
    falls = []
    for task in tasks:
        for objective in sorted(set(metrics[metrics.task == task].objective) - set(skip)):
            curve = _curve(repo, task, objective)
            start = curve.iloc[-1 - (epochs or max(1, len(curve) // 4))]
            falls.append(100 * (start - curve.iloc[-1]) / start)
    return pd.Series(falls)


def _prise_change(repo: Path) -> float:
    """% by which PRISE's training energy moves from the first to the last epoch."""
    curve = _curve(repo, "homography_synthetic_thermal", "dlc_prise")
    return 100 * abs(curve.iloc[0] - curve.iloc[-1]) / curve.iloc[0]


BLOCKS: dict[str, Callable[[Path], str]] = {"faithful": faithful_table}
NUMBERS: dict[str, Callable[[Path], str]] = {
    "faith.cells": lambda r: str(len(tables(r, FOLDER)[1])),
    "faith.minutes": lambda r: f"{tables(r, FOLDER)[1].wall_time_s.sum() / 60:.0f}",
    **{f"faith.hinge.{o}": (lambda r, o=o: f"{_last(r, o, 'train_hinge_ratio'):.1f}")
       for o in ("dlc", "dlc_ft")},
    "faith.generic.t3": lambda r: f"{100 * _last(r, 'dlc_authors_generic', 'train_active_t3'):.0f}",
    "faith.generic.ce": lambda r: f"{_last(r, 'dlc_authors_generic', 'train_original'):.2f}",
    "faith.prise.energy": lambda r: " → ".join(
        f"{v:.3f}" for v in _curve(r, "homography_synthetic_thermal", "dlc_prise").iloc[[0, -1]]),
    "faith.prise.fall": lambda r: f"{_prise_change(r):.1f}",
    "faith.falls.short": lambda r: span(_falls(r, ("homography_synthetic_thermal",
                                                   "registration_synthetic_dcp"),
                                               skip=("dlc_prise",)), ".2g"),
    "faith.falls.sequence": lambda r: span(_falls(r, ("sequence_digits",), 10), ".1f"),
}

