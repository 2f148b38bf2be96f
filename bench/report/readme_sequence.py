"""The README's sequence-family results at the `cpu` scale, from the one-shot runs of
`results/cpu_budget0` (seeds 0-2, test split): the per-task tables (mean ± sample std, and how
many seeds escape the plateau), the seconds per cell, and the numbers the prose quotes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from bench.report.readme_source import markdown, span, tables, values

FOLDER = "cpu_budget0"
CELLS = [("GRU", "gru"), ("LSTM", "lstm"), ("tanh RNN", "rnn")]
SIDES = ("plain", "dlc")
TASKS = [("adding", "sequence_adding"), ("copy", "sequence_copy"), ("digits", "sequence_digits"),
         ("MNIST-1D", "sequence_mnist1d")]
#: the cross-entropy tasks whose base loss the prose compares
CE_TASKS = ("sequence_copy", "sequence_digits", "sequence_mnist1d")


def _final(repo: Path, task: str, model: str, objective: str, metric: str) -> pd.Series:
    return values(repo, FOLDER, metric, task=task, model=model, objective=objective)


def _cell(repo: Path, task: str, model: str, objective: str, metric: str, places: int,
          escaped: bool = False, word: str = "") -> str:
    """`mean ± std` at `places` decimals, with `(esc. k/n)` seeds escaping when `escaped`."""
    series = _final(repo, task, model, objective, metric)
    text = f"{series.mean():.{places}f} ± {series.std(ddof=1):.{places}f}"
    if escaped:
        esc = _final(repo, task, model, objective, f"escaped_{metric}")
        text += f" ({word}{int(esc.sum())}/{len(esc)})"
    return text


def adding(repo: Path) -> str:
    return markdown([(name, *(_cell(repo, "sequence_adding", m, o, "mse", 4, True, "esc. ")
                              for o in SIDES)) for name, m in CELLS],
                    ["cell", "plain", "DLC"])


def copy(repo: Path) -> str:
    return markdown([(name, *(_cell(repo, "sequence_copy", m, o, "ce", 4) for o in SIDES),
                      *(_cell(repo, "sequence_copy", m, o, "recall_accuracy", 1) for o in SIDES))
                     for name, m in CELLS],
                    ["cell", "plain CE", "DLC CE", "plain recall acc.", "DLC recall acc."])


def classification(repo: Path) -> str:
    return markdown([(name, *(_cell(repo, t, m, o, "accuracy", 1, True)
                              for t in ("sequence_digits", "sequence_mnist1d") for o in SIDES))
                     for name, m in CELLS],
                    ["cell", "digits plain", "digits DLC", "MNIST-1D plain", "MNIST-1D DLC"])


def seconds(repo: Path) -> str:
    """Mean wall seconds per cell (one thread), per task and model."""
    _, runs = tables(repo, FOLDER)
    mean = runs.groupby(["task", "model"])["wall_time_s"].mean()
    return markdown([(name, *(f"{mean[(task, m)]:.0f}" for _, m in CELLS))
                     for name, task in TASKS], ["", "GRU", "LSTM", "RNN"])


def _base_ratio(repo: Path) -> pd.DataFrame:
    """Per (task, model) of `CE_TASKS`: DLC's over plain's mean training base loss
    (`train_original`) at the last epoch, and the share of epochs where DLC's is higher."""
    metrics, _ = tables(repo, FOLDER)
    train = metrics[(metrics.phase == "train") & (metrics.metric == "train_original")
                    & metrics.task.isin(CE_TASKS) & metrics.objective.isin(SIDES)]
    curves = train.groupby(["task", "model", "objective", "step"])["value"].mean().unstack(
        "objective")
    rows = []
    for (task, model), curve in curves.groupby(level=["task", "model"]):
        rows.append(dict(task=task, model=model, ratio=curve["dlc"].iloc[-1] / curve["plain"]
                         .iloc[-1], above=100 * (curve["dlc"] > curve["plain"]).mean()))
    return pd.DataFrame(rows)


def _ratio_span(repo: Path, task: str) -> str:
    ratios = _base_ratio(repo)
    return span(ratios[ratios.task == task]["ratio"], ".1f")


def _runs(repo: Path) -> pd.DataFrame:
    """The runs of the sequence family in the folder."""
    runs = tables(repo, FOLDER)[1]
    return runs[runs.task.str.startswith("sequence")]


def _trivial(repo: Path, task: str, metric: str, fmt: str) -> str:
    return f"{_final(repo, task, 'gru', 'plain', f'trivial_{metric}').mean():{fmt}}"


BLOCKS: dict[str, Callable[[Path], str]] = {
    "sequence-seconds": seconds, "sequence-adding": adding, "sequence-copy": copy,
    "sequence-classification": classification,
}

NUMBERS: dict[str, Callable[[Path], str]] = {
    "seq.cell_time": lambda r: f"{_runs(r)['wall_time_s'].sum():.0f}",
    "seq.cells": lambda r: str(len(_runs(r))),
    "seq.trivial.mse": lambda r: _trivial(r, "sequence_adding", "mse", ".4f"),
    "seq.trivial.ce": lambda r: _trivial(r, "sequence_copy", "ce", ".4f"),
    "seq.trivial.recall": lambda r: _trivial(r, "sequence_copy", "recall_accuracy", ".1f"),
    "seq.above": lambda r: span(_base_ratio(r)["above"], ".0f"),
    **{f"seq.ratio.{t.removeprefix('sequence_')}": (lambda r, t=t: _ratio_span(r, t))
       for t in CE_TASKS},
    "seq.mnist1d.gru.plain": lambda r: _cell(r, "sequence_mnist1d", "gru", "plain", "accuracy", 1),
}
