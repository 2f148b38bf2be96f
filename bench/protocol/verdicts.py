"""Every comparison row's class and verdict, for every table (the one verdict module).

**The verdict** (`verdict`): is an objective better than the baseline, worse, or is there no
evidence either way? 'better'/'worse' only where the Holm-corrected p < `ALPHA`; `bench.stats.
add_verdicts` (the report's difference tables) and `qualify` (the tuned comparison) both call it,
and the renderers mark 'better' and 'worse' alike (`MARKS`).

**The class** of a row, which an objective on one (task, model) gets before any verdict:

* `non-iterative`: the model has no test-time solver that descends the learned h (declared per
  model in its family's facts, `bench.tasks.facts.ModelFacts.non_iterative`), so a loss that shapes h for a solver has nothing to act on;
* `ill-posed`: the feasibility check (`bench.protocol.feasibility`, a table task, objective, verdict) says
  the objective's training problem on that task is ill-posed;
* `floor`: every learned objective of the (task, model), the baseline included, is worse than the
  task's best non-learned reference (`Facts.reference_models` of its family, e.g. ICP alone, or
  the trivial predictor, `trivial_<metric>`), so the comparison is between two failures;
* `valid`: none of the above.

Better/worse verdicts only for `valid` rows, from the Holm correction over the valid rows alone; a
valid row whose selected weight is at the plain limit (<= `PLAIN_LIMIT` on a `WEIGHT_AXES` axis) is
'reduced to plain' (the tuner switched the term off: not a verdict on it) and is left out of Holm.
The other rows keep their numbers and show their class as the verdict.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.runner import recorded_facts as facts
from bench.runner.config import ConfigError
from bench.stats import holm

#: significance level of the corrected p-value
ALPHA = 0.05
#: every verdict `verdict` can return, in the order tables list them
VERDICTS = ("better", "worse", "no evidence")
#: what a row that gets no better/worse verdict shows instead (its class, or the plain limit)
REDUCED = "reduced to plain"
#: how a table marks a verdict: (Markdown, LaTeX) suffix after the number; '' for none
MARKS: dict[str, tuple[str, str]] = {
    "better": (" ▲", r"\,$\blacktriangle$"),
    "worse": (" ▼", r"\,$\blacktriangledown$"),
    "no evidence": ("", ""),
}


def verdict(diff_ci: tuple[float, float, float], p_holm: float, direction: str,
            alpha: float = ALPHA) -> str:
    """'better' / 'worse' (the objective against the baseline) where the corrected p < alpha,
    else 'no evidence'.

    diff_ci: (mean difference objective − baseline, CI low, CI high); only the mean's sign is
    used today (the interval is there for finer row classes). p_holm: the Holm-corrected p of the
    row. direction: the metric's, 'min' (lower is better) or 'max'.
    """
    if direction not in ("min", "max"):
        raise ValueError(f"direction must be 'min' or 'max', got {direction!r}")
    diff = float(diff_ci[0])
    if not (math.isfinite(p_holm) and p_holm < alpha and math.isfinite(diff)) or diff == 0:
        return "no evidence"
    improved = diff < 0 if direction == "min" else diff > 0
    return "better" if improved else "worse"



def add_verdicts(table: pd.DataFrame, alpha: float = ALPHA) -> pd.DataFrame:
    """Add `p_holm` (Holm across ALL rows of `table`) and `verdict` to a table with columns
    `diff`, `p` and `direction` (one row per comparison)."""
    missing = {"diff", "p", "direction"} - set(table.columns)
    if missing:
        raise ValueError(f"add_verdicts needs columns diff, p, direction; missing {sorted(missing)}")
    out = table.copy()
    out["p_holm"] = holm(out["p"].to_numpy(dtype=float)) if len(out) else []
    nan = [float("nan")] * len(out)
    out["verdict"] = [verdict((d, lo, hi), p, direction, alpha) for d, lo, hi, p, direction in
                      zip(out["diff"], out.get("lo", nan), out.get("hi", nan), out["p_holm"],
                          out["direction"])]
    return out

CLASSES = ("valid", "ill-posed", "floor", "non-iterative")
#: the verdicts `bench feasibility` writes (`no hinge`: an objective without a hinge, e.g. plain)
FEASIBILITY = ("feasible", "ill-posed", "undetermined", "no hinge")
PLAIN_LIMIT = 1e-4  # a weight at or below this is the plain limit of the search space
#: the weight of the added term of each objective class that has one (what reaches plain at 0)
WEIGHT_AXES = ("bench.objectives.DLC.weight", "bench.objectives.Margin.weight",
               "dlc.Euclidean.scale")


def reaches_plain_limit(spec: Mapping[str, Any]) -> bool:
    """Whether a search-space axis (AlgoPerf vocabulary) holds a value <= PLAIN_LIMIT."""
    if "feasible_points" in spec:
        return any(isinstance(v, (int, float)) and v <= PLAIN_LIMIT
                   for v in spec["feasible_points"])
    return float(spec["min"]) <= PLAIN_LIMIT


def reduced_to_plain(params: Mapping[str, Any] | str | None) -> bool:
    """Whether selected params (a dict or its JSON) put a weight axis at the plain limit."""
    if params is None or (isinstance(params, float) and np.isnan(params)):
        return False
    values = json.loads(params) if isinstance(params, str) else params
    return any(k in values and float(values[k]) <= PLAIN_LIMIT for k in WEIGHT_AXES)


def read_feasibility(source: Path | str | pd.DataFrame | None) -> pd.DataFrame:
    """The feasibility table (columns task, objective, verdict in FEASIBILITY) from a CSV path or
    a DataFrame; an empty table for None. Raises ConfigError naming the file and row."""
    if source is None:
        return pd.DataFrame(columns=["task", "objective", "verdict"])
    where = str(source) if not isinstance(source, pd.DataFrame) else "feasibility table"
    table = source if isinstance(source, pd.DataFrame) else pd.read_csv(source)
    missing = {"task", "objective", "verdict"} - set(table.columns)
    if missing:
        raise ConfigError(f"{where}: missing column(s) {sorted(missing)} (expected task, "
                          "objective, verdict)")
    for row, value in enumerate(table["verdict"], start=2):
        if value not in FEASIBILITY:
            raise ConfigError(f"{where}, row {row}: verdict {value!r}: expected one of "
                              f"{', '.join(FEASIBILITY)}")
    return table[["task", "objective", "verdict"]]


def worse(value: float, reference: float, direction: str) -> bool:
    """Whether `value` is worse than `reference` under the metric's direction."""
    return value > reference if direction == "min" else value < reference


def classify(table: pd.DataFrame, feasibility: Path | str | pd.DataFrame | None = None,
             references: Mapping[str, float] | None = None) -> list[str]:
    """The class of each row of a comparison table (columns task, model, objective, direction,
    mean, base_mean); `references`: task -> the non-learned reference's score (same metric)."""
    feasible = read_feasibility(feasibility)
    ill = {(t, o) for t, o, v in feasible.itertuples(index=False) if v == "ill-posed"}
    references = references or {}
    floors = set()
    for (task, model), group in table.groupby(["task", "model"]):
        if task in references:
            ref, direction = references[task], group["direction"].iloc[0]
            learned = list(group["mean"]) + [group["base_mean"].iloc[0]]
            if all(worse(v, ref, direction) for v in learned):
                floors.add((task, model))
    classes = []
    for row in table.itertuples():
        if facts.lookup(row.task, row.model).non_iterative:
            classes.append("non-iterative")
        elif (row.task, row.objective) in ill:
            classes.append("ill-posed")
        elif (row.task, row.model) in floors:
            classes.append("floor")
        else:
            classes.append("valid")
    return classes


def better_or_worse(diff: float, p_holm: float, direction: str, alpha: float = ALPHA) -> str:
    """'better' / 'worse' / 'no evidence' for a valid row (the objective against the baseline)."""
    return verdict((diff, float("nan"), float("nan")), p_holm, direction, alpha)


def qualify(table: pd.DataFrame, feasibility: Path | str | pd.DataFrame | None = None,
            references: Mapping[str, float] | None = None, alpha: float = ALPHA) -> pd.DataFrame:
    """`table` (columns task, model, objective, direction, mean, base_mean, diff, p; optional
    params: the selected config's JSON) with `class`, `p_holm` (Holm over the valid rows that are
    not reduced to plain; NaN elsewhere) and `verdict`."""
    out = table.copy()
    if out.empty:
        return out.assign(**{"class": [], "p_holm": [], "verdict": []})
    out["class"] = classify(out, feasibility, references)
    reduced = [reduced_to_plain(p) for p in out.get("params", [None] * len(out))]
    tested = (out["class"] == "valid").to_numpy() & ~np.array(reduced, dtype=bool)
    out["p_holm"] = np.nan
    if tested.any():
        out.loc[tested, "p_holm"] = holm(out.loc[tested, "p"].to_numpy(dtype=float))
    out["verdict"] = [
        better_or_worse(d, p, direction, alpha) if test else REDUCED if cls == "valid" else cls
        for d, p, direction, test, cls in zip(out["diff"], out["p_holm"], out["direction"],
                                              tested, out["class"])]
    return out


def reference_scores(values: pd.DataFrame) -> dict[str, float]:
    """task -> the best non-learned score in a values table (columns task, model, value; optional
    direction and trivial): the mean of its family's non-learned reference model (the first of
    `Facts.reference_models` that has values) and the trivial predictor's value on the same
    metric (column `trivial`, e.g. predicting 1 on adding, the identity homography), the better
    of the two under the task's direction."""
    out = {}
    for task, group in values.groupby("task"):
        scores = []
        for model in facts.lookup(str(task)).reference_models:
            mine = group[group["model"] == model]["value"]
            if len(mine):
                scores.append(float(mine.mean()))
                break
        if "trivial" in group and group["trivial"].notna().any():
            scores.append(float(group["trivial"].dropna().mean()))
        if scores:
            best = max if "direction" in group and group["direction"].iloc[0] == "max" else min
            out[task] = best(scores)
    return out


def is_reference(task: str, model: str) -> bool:
    """Whether `model` (a name, or a gin path) is a non-learned reference of `task`'s family
    (`Facts.reference_models`: ICP alone, raw-intensity LK): nothing to tune, the floor of its
    task's rows."""
    return Path(model).stem in facts.lookup(Path(task).stem).reference_models


def learned_only(values: pd.DataFrame) -> pd.DataFrame:
    """`values` (columns task, model, ...) without the rows of each task's non-learned reference
    models (`is_reference`): a reference is the floor the rows are classed against, not a problem
    of its own in summaries across problems."""
    keep = [not is_reference(str(t), str(m)) for t, m in zip(values["task"], values["model"])]
    return values[keep]
