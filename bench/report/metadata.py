"""What the report says about each metric, in one place: unit, definition, table group.

Directions (which value is best) are NOT here: they come only from each run's `run.json`
(`metric_directions`, declared by the metric that produced the value). This module holds what a
reader needs to interpret a number: its unit per task family (or task), a one-line definition for
the table captions, and the group of metrics shown together in one table.

A family's units, iteration label, reference models and refinements are its facts
(`bench.tasks.facts`), read as the runs recorded them (`bench.runner.recorded_facts.lookup`; the registry for runs
recorded before): a metric's unit is the task's, then the family's, then the shared `UNITS`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import pandas as pd

from bench.runner import recorded_facts as facts

#: unit of a metric's value that is the same in every family (a family's units are its facts,
#: `bench.tasks.facts.Facts.units`); `None` = dimensionless, "%" = percent of test examples.
UNITS: dict[str, str] = {
    "accuracy": "%",
    "recall_accuracy": "%",
    "violation_rate": "share of rays",
    "spurious_minimum": "%",
    "optimality_gap": "h above the lowest known h",
    "iteration": "solver iterations",
    "epoch": "epochs",
}

#: how a raw metric name reads in a header, a caption or an axis label (default: `_` -> space)
DISPLAY_NAMES: dict[str, str] = {
    "recall_accuracy": "recall accuracy",
    "rot_iso_deg": "rotation error (isotropic)",
    "trans_iso": "translation error (isotropic)",
    "euler_mae_deg": "Euler-angle MAE",
    "euler_rmse_deg": "Euler-angle RMSE",
    "trans_mae": "translation MAE",
    "trans_rmse": "translation RMSE",
    "mace": "mean corner error",
    "mse": "MSE",
    "ce": "cross-entropy",
    "chamfer": "Chamfer distance",
    "success_1deg": "success (1°, 0.01)",
    "success_5deg": "success (5°, 0.05)",
}

#: one-line definitions for captions (stems as in UNITS).
DEFINITIONS: dict[str, str] = {
    "distance": "distance d(ŵ, w*) of the solver's final iterate to the ground truth",
    "success@": "% of test examples whose error is below k (the number after @)",
    "mace": "mean corner error (px) of the final homography",
    "trivial_mace": "mean corner error (px) of the identity prediction w = 0 (where LK starts)",
    "optimality_gap": ("h(ŵ) − min h, the learned energy at the solver's final iterate above the "
                       "lowest value known for that example (over w*, the solver's iterates and a "
                       "search around w*), clipped at 0"),
    "spurious_minimum": "% of test examples where w* is not the minimiser of the learned h",
    "violation_rate": "share of random rays through w* on which the learned h is not star-convex",
    "rot_iso_deg": "isotropic rotation error (RPM-Net); final value: after ICP refinement",
    "trans_iso": "isotropic translation error (RPM-Net); final value: after ICP refinement",
    "rot_network_deg": ("isotropic rotation error of the network's own estimate, before ICP "
                        "refinement (the primary registration error)"),
    "trans_network": "isotropic translation error of the network's own estimate, before ICP",
    "euler_mae_deg": "mean absolute Euler-angle error (DCP)",
    "euler_rmse_deg": "root-mean-square Euler-angle error (DCP)",
    "trans_mae": "mean absolute translation error (DCP)",
    "trans_rmse": "root-mean-square translation error (DCP)",
    "chamfer": "modified Chamfer distance (RPM-Net)",
    "success_": "% of pairs with rotation error < 1° (5°) and translation error < 0.01 (0.05)",
    "mse": "mean squared error of the predicted sum",
    "ce": "cross-entropy",
    "accuracy": "% of test sequences classified correctly",
    "recall_accuracy": "% of recalled symbols that are correct",
    "escaped_": "share of seeds whose final value left the trivial baseline's plateau",
}

#: objectives with a fixed place (tables) and a fixed colour and marker (figures)
KNOWN_OBJECTIVES = ("plain", "dlc", "dlc_max", "dlc_adversarial", "target_noise", "margin")

#: metric groups, in table order; a table holds at most MAX_METRIC_COLUMNS metrics of one group.
GROUPS = ("error", "success", "landscape", "plateau")
#: diagnostics of the learned h shown in the "landscape" group; `spurious_minimum` is not one of
#: them: it sits in the "error" group, beside the error it explains (a large MACE where w* is not
#: h's minimiser is a failed h, not a failed solver)
LANDSCAPE_METRICS = ("violation_rate", "optimality_gap")
MAX_METRIC_COLUMNS = 4
#: difference tables (`+d [lo, hi]` cells are wider)
MAX_INTERVAL_COLUMNS = 2

#: metrics a reference model measures exactly as the trained models do (its line may share their
#: axis); not `optimality_gap`, which each model measures on its own learned energy
REFERENCE_METRICS = ("distance", "mace", "rot_iso_deg")
#: a y-axis narrower than this share of the values' size says so on the plot
NARROW_SPAN = 0.02

def family_of(task: str, frame: pd.DataFrame | None = None) -> str:
    """The family recorded for `task` in `frame`'s `family` column (from the runs' `Task.family`),
    else from the runs' recorded facts or the registry (`bench.runner.recorded_facts.family_of`)."""
    if frame is not None and "family" in frame.columns:
        recorded = frame.loc[frame["task"] == task, "family"].dropna()
        if len(recorded) and recorded.iloc[0]:
            return str(recorded.iloc[0])
    return facts.family_of(task)


def short_name(task: str) -> str:
    """`task` without its family's name in front (`alignment1d_same` -> `same`, for a caption
    that names the family); a task named otherwise keeps its name."""
    family = family_of(task)
    return task.removeprefix(f"{family}_") if family and task != f"{family}_" else task


def reference_models(task: str) -> tuple[str, ...]:
    """The models with nothing to train of `task`'s family (`Facts.reference_models`): drawn as
    a reference (own style) in the other models' plots (`icp`: classical ICP; `rawlk`: classical
    Lucas-Kanade on raw intensities)."""
    return tuple(facts.lookup(task).reference_models)


def refinement_start(task: str, model: str) -> tuple[int, str] | None:
    """(step, name): the test-time step at which `model`'s learned iterations end and a classical
    refinement begins (registration: step 0 is the identity, steps 1..K the network passes, then
    ICP), or None (`ModelFacts.refinement`)."""
    start = facts.lookup(task, model).refinement
    return (int(start[0]), str(start[1])) if start else None


def figure_text(task: str, model: str, what: str) -> str:
    """A figure text of `model` on `task` (`bench.tasks.facts.LABELS`: the iteration axis, the
    base loss's unit): the model's own, else the family's."""
    return facts.lookup(task, model).label(what) or (
        "test-time solver iteration" if what == "iteration" else "")


def stem(metric: str) -> str:
    """`success@3` -> `success@`, `success_1deg` -> `success_`, `escaped_ce` -> `escaped_`."""
    match = re.match(r"(success@|success_|escaped_|trivial_)", metric)
    return match.group(1) if match else metric


def unit_of(task: str, metric: str) -> str:
    """The unit of `metric` in `task` ('' when dimensionless or unknown): the task's facts
    (`Facts.units`, per-task differences applied), else the shared `UNITS`; a name with a number
    (`success@3`) is looked up by its stem."""
    own = facts.lookup(task).units
    for table, key in ((own, metric), (own, stem(metric)), (UNITS, metric), (UNITS, stem(metric))):
        if key in table:
            return table[key] or ""
    return ""


def definition_of(metric: str) -> str:
    return DEFINITIONS.get(metric) or DEFINITIONS.get(stem(metric), "")


def is_constant_baseline(metric: str) -> bool:
    """`trivial_<name>`: the value of a constant predictor, the same for every objective."""
    return metric.startswith("trivial_")


def group_of(metric: str) -> str:
    if metric.startswith(("success@", "success_")):
        return "success"
    if metric.startswith("escaped_"):
        return "plateau"
    if metric in LANDSCAPE_METRICS:
        return "landscape"
    return "error"


def display_name(metric: str) -> str:
    """How `metric` reads for a person: `recall_accuracy` -> `recall accuracy`."""
    return DISPLAY_NAMES.get(metric, metric.replace("_", " "))


def label(task: str, metric: str) -> str:
    """Axis label with the unit: `distance (samples)`."""
    unit = unit_of(task, metric)
    return f"{display_name(metric)} ({unit})" if unit else display_name(metric)


def refinement_of(task: str, model: str) -> str:
    """The classical refinement after which `model`'s final metrics are measured ('ICP'), or ''.
    A reference model (ICP alone) is its own refinement."""
    start = refinement_start(task, model)
    if start is not None:
        return start[1]
    if model in reference_models(task):
        return model.upper()
    return ""


def objective_order(objectives: Iterable[str], baseline: str = "plain",
                    known: Sequence[str] = KNOWN_OBJECTIVES) -> list[str]:
    """The baseline first, then the known objectives in their fixed order, then the others."""
    rank = {name: k for k, name in enumerate(known)}
    return sorted(set(objectives), key=lambda o: (o != baseline, rank.get(o, len(rank)), o))
