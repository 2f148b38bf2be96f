"""Evaluation of one trained cell: the test-time solver's trace, the metrics, the landscape.

* `solver_trace(exp, columns, device)` runs the task's iterative solver on every test example and
  gathers a `bench.metrics.Trace` (distance to w*, energy h, h(w*), task extras; `[T+1, N]` each),
  plus the lowest h of a small fixed search around w* (`search_minimum`), so the optimality gap
  is measured against the best value of h known for each example.
* `evaluate(exp, device, rec)` records each of `task.metrics` per solver iteration (phase
  `test_iter`) and at the last iteration (phase `test`), less those the model declares
  uninformative for itself (`bench.metrics.reported`), then the landscape diagnostic; with
  `exp.eval_split = 'val'` (tuning trials) on the validation split instead, as phases
  `val_iter`/`val`.
* `landscape(exp, columns, device, rec)`: on the first `landscape_examples` test examples, the
  fraction of sampled rays on which h is not star-convex around w* (`violation_rate`, lower is
  better) and a 1-D slice of h along one random direction per example (`slice_t`, `slice_h`,
  diagnostics with no better side).
* `metric_directions(exp)`: the declared direction of every metric a cell records.
* `check_finite(rows)`: a NaN or infinite evaluation value makes the cell `diverged` (never cached).
"""

from __future__ import annotations

import math
from collections import defaultdict

import torch

import dlc
from bench.metrics import Trace, reported
from bench.runner.device import Columns, Diverged, to_device
from bench.runner.experiment import Experiment
from bench.runner.recorder import Recorder
from bench.runner.train import batches, train_directions
from bench.schema import Direction, Phase

#: directions of the landscape diagnostic's metrics
LANDSCAPE_DIRECTIONS = {"violation_rate": Direction.MIN, "slice_t": Direction.NONE,
                        "slice_h": Direction.NONE}


#: the search around w* for the lowest known h (`Trace.h_search`): sampled perturbations of the
#: task's space, each taken at these fractions (fixed seed: the same points for every objective)
GAP_SEARCH_DIRECTIONS = 8
GAP_SEARCH_STEPS = (0.125, 0.25, 0.5, 1.0)
GAP_SEARCH_SEED = 1


def metric_directions(exp: Experiment) -> dict[str, Direction]:
    """metric name -> direction for every metric a cell of `exp` records (train, test, landscape)."""
    test = {m.name: Direction(m.direction) for m in reported(exp.task.metrics, exp.model)}
    return {**train_directions(exp), **test, **LANDSCAPE_DIRECTIONS}


@torch.no_grad()
def solver_trace(exp: Experiment, columns: Columns, device: torch.device) -> Trace:
    """Run the test-time solver on every row of `columns`, `exp.eval_batch_size` at a time."""
    task, model = exp.task, exp.model
    parts: dict[str, list[torch.Tensor]] = defaultdict(list)
    generator = torch.Generator(device=device).manual_seed(GAP_SEARCH_SEED)
    for batch in batches(columns, exp.eval_batch_size):
        batch = to_device(batch, device)
        outputs = task.forward(model, batch)
        target = task.target(batch)
        iterates = task.solve(model, outputs, batch)  # [T+1, B, ...]
        parts["distance"].append(task.space.distance(iterates, target[None]))
        parts["h"].append(task.h(outputs, iterates))
        parts["h_star"].append(task.h(outputs, target[None])[0])
        parts["h_search"].append(search_minimum(task, outputs, target, generator))
        for name, values in task.extras(model, outputs, batch, iterates).items():
            parts[f"extra.{name}"].append(values)
    joined = {k: torch.cat(v, dim=-1).double().cpu() for k, v in parts.items()}
    return Trace(distance=joined.pop("distance"), h=joined.pop("h"), h_star=joined.pop("h_star"),
                 h_search=joined.pop("h_search"),
                 extras={k.removeprefix("extra."): v for k, v in joined.items()})


def search_minimum(task, outputs, target: torch.Tensor,
                   generator: torch.Generator) -> torch.Tensor:
    """[B] the lowest h at GAP_SEARCH_DIRECTIONS sampled perturbations d of `task.space` around
    w* = `target` [B, ...], each at the fractions GAP_SEARCH_STEPS of d."""
    delta = task.space.sample(target, GAP_SEARCH_DIRECTIONS, generator)  # [S, B, *tangent]
    best = None
    for step in GAP_SEARCH_STEPS:
        values = task.h(outputs, task.space.retract(target, delta, step)).min(dim=0).values
        best = values if best is None else torch.minimum(best, values)
    return best


@torch.no_grad()
def evaluate(exp: Experiment, device: torch.device, rec: Recorder) -> None:
    """Run the test-time solver on the `exp.eval_split` split ('test' or 'val'); record every
    metric per iteration and final, then the landscape diagnostic."""
    exp.model.eval()
    columns = exp.task.dataset(exp.eval_split)[:]
    trace = solver_trace(exp, columns, device)
    final, per_iter = ((Phase.VAL, Phase.VAL_ITER) if exp.eval_split == "val"
                       else (Phase.TEST, Phase.TEST_ITER))
    for metric in reported(exp.task.metrics, exp.model):
        values = metric(trace)
        for it, value in enumerate(values.tolist()):
            rec.add(per_iter, it, metric.name, value)
        rec.add(final, len(values) - 1, metric.name, values[-1].item())
    if exp.landscape_examples > 0:
        landscape(exp, columns, device, rec)


@torch.no_grad()
def landscape(exp: Experiment, columns: Columns, device: torch.device, rec: Recorder) -> None:
    """`violation_rate` and a 1-D slice of h around w* on the first `landscape_examples` rows."""
    task, model = exp.task, exp.model
    batch = to_device(next(batches(columns, exp.landscape_examples)), device)
    outputs = task.forward(model, batch)
    target = task.target(batch)
    generator = torch.Generator(device=device).manual_seed(0)  # same rays for every objective

    def energy(w: torch.Tensor) -> torch.Tensor:
        return task.h(outputs, w)

    rate = dlc.violation_rate(energy, target, task.space, rays=exp.landscape_rays,
                              points=exp.landscape_points, generator=generator)
    rec.add(Phase.LANDSCAPE, 0, "violation_rate", float(rate))
    # h(w* + t d) - h(w*) along one random direction per example, |d| = the sampling radius
    ts, values = dlc.slice_1d(energy, target, task.space, generator=generator)
    gap = (values - energy(target[None])).mean(dim=1)
    for i, (t, value) in enumerate(zip(ts.tolist(), gap.tolist())):
        rec.add(Phase.LANDSCAPE, i, "slice_t", t)
        rec.add(Phase.LANDSCAPE, i, "slice_h", value)


def check_finite(rows: list[dict]) -> None:
    """Raise `Diverged` naming the first evaluation row (any phase but `train`) whose value is NaN
    or infinite: a model that trained to a finite loss can still be useless at test time."""
    for row in rows:
        if row["phase"] != Phase.TRAIN and not math.isfinite(row["value"]):
            raise Diverged(f"non-finite evaluation: {row['phase']} {row['metric']} = "
                           f"{row['value']} at step {row['step']}")
