"""`bench feasibility MATRIX`: can the objective's hinge be satisfied at all, with no network?

For every (task, objective) of a matrix, the task's network outputs on one batch of training data
are replaced by FREE tensors of the same shapes (every floating tensor of the outputs that the
network computed: logits, feature maps, correspondences, estimates; the inputs stay constants),
started at an untrained model's outputs, and optimised with Adam for the objective's own loss
(base + beta * hinge, at its beta, mu, S, lambda, space and aggregation; a learned lambda is
learned too). Whatever a network can output, free tensors can too, so a hinge that free tensors
cannot bring down cannot be satisfied by training either (the converse does not hold: feasible is
necessary, not sufficient).

Per row (`COLUMNS`): `base_at_floor` (the method's loss at w*), `hinge_floor` (the unweighted
hinge) and `active_t1..3` (share of (sample, example) pairs whose term is > 0) at the mean
iterate of the last quarter of the steps, each averaged over `EVAL_DRAWS` fixed draws of the
perturbations; `trivial_base`, the base loss at the
start (the untrained model's outputs); `ratio = hinge_floor / trivial_base`; `lam`, the final
lambda; `verdict` from `classify`:

* `undetermined`: the loss at the mean iterate of the last quarter of the steps differs by more
  than `CONVERGENCE_TOL * trivial_base` from the loss at the mean iterate of the third quarter,
  or is not finite: the optimisation has not converged, no verdict;
* `feasible`: `ratio <= FEASIBLE_RATIO` (the hinge's floor is at most 1 % of the trivial base loss);
* `ill-posed`: converged with `ratio > FEASIBLE_RATIO`.

`note` says `lambda at a bound (T3 off)` when a learned lambda ended within `LAM_BOUND` of 0 or 1,
where T3 vanishes: a floor reached that way is not a satisfied star-convexity constraint.
Objectives without a hinge (`plain`, `target_noise`: their outputs log no `hinge`) are listed with
verdict `no hinge` and no numbers; skipped combinations are left out.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from bench.objectives import Objective, ObjectiveOutput
from bench.protocol.verdicts import FEASIBILITY
from bench.tasks.base import Batch, Task

FEASIBLE_RATIO = 0.01  # hinge floor <= 1 % of the trivial base loss: satisfiable
CONVERGENCE_TOL = 0.01  # change between the last two quarters of the loss, in units of the trivial base loss
LAM_BOUND = 0.05  # a learned lambda this close to 0 or 1 has (nearly) switched T3 off: its
                  # weight lam (1 - lam) < 0.0475, under a fifth of its value at lam = 0.5
EVAL_DRAWS = 4  # fixed perturbation draws averaged for every evaluation
VERDICTS, NO_HINGE = FEASIBILITY[:-1], FEASIBILITY[-1]  # verdicts.read_feasibility's vocabulary
LAM_NOTE = "lambda at a bound (T3 off)"
COLUMNS = ["task", "model", "objective", "trivial_base", "base_at_floor", "hinge_floor", "ratio",
           "active_t1", "active_t2", "active_t3", "lam", "verdict", "note"]


def classify(ratio: float, converged: bool) -> str:
    """The verdict of one row: 'undetermined' when the optimisation did not converge (or the ratio
    is not finite), else 'feasible' when `ratio <= FEASIBLE_RATIO`, else 'ill-posed'."""
    if not converged or not math.isfinite(ratio):
        return "undetermined"
    return "feasible" if ratio <= FEASIBLE_RATIO else "ill-posed"


def lam_note(lam: float, learned: bool) -> str:
    """`LAM_NOTE` when a learned lambda ended within `LAM_BOUND` of 0 or 1, else ''."""
    return LAM_NOTE if learned and min(lam, 1 - lam) < LAM_BOUND else ""


# --- free outputs -----------------------------------------------------------------------------
def free_outputs(outputs: Any) -> tuple[Any, list[torch.Tensor]]:
    """`outputs` with every floating tensor that carries a gradient (computed by the network)
    replaced by a detached leaf copy that requires grad; returns the copy and those leaves.
    Walks tensors, lists, tuples, dicts and dataclasses; anything else is kept as is."""
    leaves: list[torch.Tensor] = []

    def walk(obj: Any) -> Any:
        if isinstance(obj, torch.Tensor):
            if obj.is_floating_point() and obj.requires_grad:
                leaf = obj.detach().clone().requires_grad_(True)
                leaves.append(leaf)
                return leaf
            return obj.detach()
        if isinstance(obj, (list, tuple)):
            return type(obj)(walk(v) for v in obj)
        if isinstance(obj, dict):
            return {k: walk(v) for k, v in obj.items()}
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            return replace(obj, **{f.name: walk(getattr(obj, f.name))
                                   for f in dataclasses.fields(obj) if f.init})
        return obj

    return walk(outputs), leaves


# --- the optimisation -------------------------------------------------------------------------
Step = Callable[[], ObjectiveOutput]


def _evaluate(step: Step, seed: int) -> dict[str, float]:
    """Mean of the loss, base and logged values over `EVAL_DRAWS` fixed perturbation draws."""
    sums: dict[str, float] = {}
    with torch.random.fork_rng():  # gradients on: an adversarial search ascends on delta
        torch.manual_seed(seed)
        for _ in range(EVAL_DRAWS):
            out = step()
            values = {"loss": out.loss, "base": out.original, **out.logs}
            for key, value in values.items():
                sums[key] = sums.get(key, 0.0) + float(value.detach()) / EVAL_DRAWS
    return sums


def floor(step: Step, params: Sequence[torch.Tensor], steps: int = 400, lr: float = 0.05,
          seed: int = 0) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    """Minimise `step().loss` over `params` with Adam (fresh perturbations every step); returns
    the evaluations (`_evaluate`) at the start, at the mean of the iterates of the third quarter
    of the steps and at the mean of those of the last quarter, where `params` are left (the
    means, Polyak averages, do not move with the noise of the perturbations; a trend does)."""
    params = list(params)
    optimizer = torch.optim.Adam(params, lr=lr)
    start = _evaluate(step, seed)
    sums = {q: [torch.zeros_like(p) for p in params] for q in (2, 3)}
    counts = {2: 0, 3: 0}
    for index in range(steps):
        optimizer.zero_grad()
        step().loss.backward()
        optimizer.step()
        quarter = min(4 * index // steps, 3)
        if quarter in sums:
            counts[quarter] += 1
            for total, p in zip(sums[quarter], params):
                total += p.detach()
    evaluations = []
    for q in (2, 3):
        with torch.no_grad():
            for total, p in zip(sums[q], params):
                p.copy_(total / max(counts[q], 1) if counts[q] else p)
        evaluations.append(_evaluate(step, seed))
    return start, evaluations[0], evaluations[1]


def check(task: Task, model: torch.nn.Module, objective: Objective, batch: Batch,
          steps: int = 400, lr: float = 0.05, seed: int = 0) -> dict[str, Any]:
    """One row (without the names): the floor of `objective` on `task` with `model`'s outputs on
    `batch` freed (see the module docstring). `objective.setup(task)` must have run."""
    torch.manual_seed(seed)
    model.train()
    outputs, leaves = free_outputs(task.forward(model, batch))
    for p in model.parameters():
        p.requires_grad_(False)

    def step() -> ObjectiveOutput:
        return objective(task, model, outputs, batch)

    probe = _evaluate(step, seed)
    if "hinge" not in probe:
        return {"verdict": NO_HINGE, "note": ""}
    learned = [p for p in objective.parameters() if p.requires_grad]
    start, third, end = floor(step, leaves + learned, steps, lr, seed)
    trivial = abs(start["base"])
    scale = max(trivial, torch.finfo(torch.float32).tiny)
    ratio = end["hinge"] / scale
    converged = abs(end["loss"] - third["loss"]) <= CONVERGENCE_TOL * scale
    lam = end.get("lam", math.nan)
    return {"trivial_base": trivial, "base_at_floor": end["base"], "hinge_floor": end["hinge"],
            "ratio": ratio, **{f"active_{t}": end.get(f"active_{t}", math.nan)
                               for t in ("t1", "t2", "t3")},
            "lam": lam, "verdict": classify(ratio, converged),
            "note": lam_note(lam, bool(learned) and "lam" in end)}


# --- over a matrix ----------------------------------------------------------------------------
def matrix_rows(matrix: str, tasks: Sequence[str] | None = None,
                objectives: Sequence[str] | None = None, batch_size: int = 32,
                steps: int = 400, lr: float = 0.05) -> pd.DataFrame:
    """`COLUMNS` for every (task, objective) of the matrix file `matrix` (name under
    gin/matrices/ or path), with the first model of its part that runs with both."""

    from bench.runner.config import parsed_text, resolve
    from bench.runner.device import seed_everything
    from bench.runner.experiment import Experiment
    from bench.runner.matrix import expand_cells, load_matrix, restrict_tasks

    path = resolve("matrices", matrix)
    parts = load_matrix(path)
    if tasks:
        parts = restrict_tasks(parts, tasks, path)
    rows, seen = [], set()
    for part in parts:
        part = replace(part, seeds=[0], objectives=list(objectives or part.objectives))
        for cell in expand_cells(part, Path("/nonexistent")):
            if cell.skip_reason or cell.parent or (cell.task, cell.objective) in seen:
                continue
            seen.add((cell.task, cell.objective))
            with parsed_text(cell.config_text):
                seed_everything(0)  # the start point does not depend on the rows before it
                exp = Experiment()
                exp.objective.setup(exp.task)
                batch = exp.task.dataset("train")[:batch_size]
                row = check(exp.task, exp.model, exp.objective, batch, steps, lr)
            rows.append({"task": cell.task, "model": cell.model, "objective": cell.objective,
                         **row})
            print(f"  {cell.task} / {cell.objective}: {row['verdict']}", file=sys.stderr)
    return pd.DataFrame(rows, columns=COLUMNS)


def format_table(table: pd.DataFrame) -> str:
    """The rows as a GitHub-flavoured markdown table (numbers to 4 significant digits)."""
    from tabulate import tabulate

    shown = table.astype(object).where(table.notna(), "")
    return tabulate(shown, headers=list(table.columns), tablefmt="github", showindex=False,
                    floatfmt=".4g")


def main(args) -> int:
    """The `feasibility` verb: table on stdout, `feasibility.csv` in `--out` (atomically)."""
    from bench.runner.store import atomic_write_text

    def names(text: str | None) -> list[str] | None:
        return [t.strip() for t in text.split(",") if t.strip()] if text else None

    table = matrix_rows(args.matrix, names(args.tasks), names(args.objectives), args.batch,
                        args.steps, args.lr)
    print(format_table(table))
    if args.out is not None:
        atomic_write_text(Path(args.out) / "feasibility.csv", table.to_csv(index=False))
        print(f"-> {Path(args.out) / 'feasibility.csv'}")
    return 0
