"""The README's numbers of the MNIST-1D reference matrix (`results/reference`, and the beta
selection in `results/reference_beta`), each computed from the committed tables.

`NUMBERS` maps the key of an inline README marker (`<!-- num:KEY -->...<!-- /num -->`) to a
function of the repository root that returns the text between the markers.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from bench.report.readme_source import listed, mean_std, span, tables, values, walls

FOLDER, TASK = "reference", "sequence_mnist1d_ref"
OBJECTIVES = {"plain": "plain", "dlc": "dlc_mnist1d_ref"}
#: beta of each run of `results/reference_beta` (its runs table has no beta column: the three
#: runs differ only in `--gin_bindings "bench.objectives.DLC.weight = B"`), by run key prefix
BETA_RUNS = {"1e-3": "de28c552", "1e-2": "7e40132a", "1e-1": "6bfa427e"}


def _test(repo: Path, side: str, metric: str = "accuracy") -> pd.Series:
    return values(repo, FOLDER, metric, task=TASK, objective=OBJECTIVES[side])


def _train_ce(repo: Path, side: str) -> pd.Series:
    """The training cross-entropy (`train_original`) of the last epoch, per seed."""
    return values(repo, FOLDER, "train_original", phase="train", task=TASK,
                  objective=OBJECTIVES[side])


def _walls(repo: Path, side: str) -> str:
    return listed(walls(repo, FOLDER, task=TASK, objective=OBJECTIVES[side]).round(), ".0f")


def _paired(repo: Path) -> str:
    """`lower on 2, tied on 1`: DLC's test accuracy against plain's, seed by seed."""
    diff = _test(repo, "dlc") - _test(repo, "plain")
    parts = [(int((diff < 0).sum()), "lower"), (int((diff > 0).sum()), "higher"),
             (int((diff == 0).sum()), "tied")]
    return ", ".join(f"{word} on {n}" for n, word in parts if n)


def _beta_wall(repo: Path, beta: str) -> str:
    _, runs = tables(repo, "reference_beta")
    row = runs[runs.run_id.str.endswith(BETA_RUNS[beta])]
    return f"{float(row.wall_time_s.iloc[0]):.0f}"


def _step_time(repo: Path) -> str:
    _, runs = tables(repo, FOLDER)
    return f"{float(runs[runs.objective == 'plain'].step_time_s.median()):.3f}"


NUMBERS: dict[str, Callable[[Path], str]] = {
    **{f"ref.{side}.acc": (lambda r, s=side: mean_std(_test(r, s))) for side in OBJECTIVES},
    **{f"ref.{side}.mean": (lambda r, s=side: f"{_test(r, s).mean():.1f}") for side in OBJECTIVES},
    **{f"ref.{side}.seeds": (lambda r, s=side: listed(_test(r, s))) for side in OBJECTIVES},
    **{f"ref.{side}.walls": (lambda r, s=side: _walls(r, s)) for side in OBJECTIVES},
    **{f"ref.{side}.ce": (lambda r, s=side: mean_std(_test(r, s, "ce"))) for side in OBJECTIVES},
    **{f"ref.{side}.ce_mean": (lambda r, s=side: f"{_test(r, s, 'ce').mean():.3f}")
       for side in OBJECTIVES},
    "ref.plain.wall_min": lambda r: span(walls(r, FOLDER, task=TASK, objective="plain") / 60,
                                         ".1f"),
    "ref.plain.train_ce": lambda r: span(_train_ce(r, "plain"), ".3f"),
    "ref.dlc.train_ce": lambda r: f"{_train_ce(r, 'dlc').mean():.2g}",
    "ref.gap": lambda r: f"{_test(r, 'plain').mean() - _test(r, 'dlc').mean():.1f}",
    "ref.paired": _paired,
    "ref.step_time": _step_time,
    "ref.beta.selected": lambda r: listed(values(r, "reference_beta", "accuracy", phase="val",
                                                 task=TASK)),
    **{f"ref.beta.{b}.wall": (lambda r, b=b: _beta_wall(r, b)) for b in BETA_RUNS},
}
