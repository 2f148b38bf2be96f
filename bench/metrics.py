"""Test-time metrics, declared in gin (`Task.metrics = [@bench.metrics.Distance(), ...]`).

Every metric maps an evaluation `Trace` (the test-time solver's iterates, for all N test examples)
to one value per solver iteration, `[T+1]`; the runner stores all of them (phase `test_iter`) and the
last one (phase `test`). Each declares its `Direction` so reports know which value is best; the runner
records every metric's direction in `run.json` (`metric_directions`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import gin
import torch

from bench.schema import Direction


@dataclass
class Trace:
    """What the test-time solver did on N examples over T iterations.

    distance: [T+1, N] d(w_t, w*) in the units of the task's space.
    h: [T+1, N] h(w_t), the energy the solver minimises.
    h_star: [N] h(w*).
    extras: task-specific per-iteration values, each [T+1, N].
    h_search: [N] the lowest h found by a small search around w* (None: no search ran).
    """

    distance: torch.Tensor
    h: torch.Tensor
    h_star: torch.Tensor
    extras: dict[str, torch.Tensor] = field(default_factory=dict)
    h_search: torch.Tensor | None = None

    @property
    def h_best(self) -> torch.Tensor:
        """[N] the lowest value of h known for each example: over w*, the solver's iterates and
        the search around w*."""
        best = torch.minimum(self.h_star, self.h.min(dim=0).values)
        return best if self.h_search is None else torch.minimum(best, self.h_search)


class Metric:
    """Base class: `name`, `direction` (a `Direction`) and `__call__(trace) -> [T+1]`."""

    name: str = ""
    direction: Direction = Direction.MIN
    #: every parameter of a metric is read by evaluation only (`bench.runner.identity`)
    EVALUATION_PARAMETERS: ClassVar[str] = "*"

    def __call__(self, trace: Trace) -> torch.Tensor:
        raise NotImplementedError


@gin.configurable(module="bench.metrics")
class Distance(Metric):
    """Mean distance d(w_t, w*) to the ground truth (named `distance`)."""

    name = "distance"

    def __call__(self, trace: Trace) -> torch.Tensor:
        return trace.distance.mean(dim=1)


@gin.configurable(module="bench.metrics")
class OptimalityGap(Metric):
    """Mean over examples of max(0, h(w_t) − h_best), h_best the lowest h known for the example
    (`Trace.h_best`: over w*, the solver's iterates and a search around w*). Never negative, and 0
    exactly when the solver reached the best point known, whichever objective shaped h. Each
    objective learns its own h with its own scale, so the value has no better side across
    objectives (direction none); `SpuriousMinimum` is reported beside it."""

    name = "optimality_gap"
    direction = Direction.NONE

    def __call__(self, trace: Trace) -> torch.Tensor:
        return (trace.h - trace.h_best[None]).clamp_min(0).mean(dim=1)


@gin.configurable(module="bench.metrics")
class SpuriousMinimum(Metric):
    """% of examples where w* is not the minimiser of the learned h: some known point has
    h < h(w*) − (rtol |h(w*)| + atol). The same value at every iteration (a property of h)."""

    name = "spurious_minimum"

    def __init__(self, rtol: float = 1e-5, atol: float = 1e-8) -> None:
        self.rtol, self.atol = rtol, atol

    def __call__(self, trace: Trace) -> torch.Tensor:
        below = trace.h_best < trace.h_star - (self.rtol * trace.h_star.abs() + self.atol)
        return torch.full((trace.h.shape[0],), 100.0 * below.double().mean().item(),
                          dtype=torch.float64)


def with_companions(metrics: list[Metric]) -> list[Metric]:
    """`metrics` plus `SpuriousMinimum` beside an `OptimalityGap` (the gap is only read with it)."""
    names = {m.name for m in metrics}
    if "optimality_gap" in names and "spurious_minimum" not in names:
        return [*metrics, SpuriousMinimum()]
    return list(metrics)


def reported(metrics: list[Metric], model: Any) -> list[Metric]:
    """`with_companions(metrics)` less the metrics the model declares uninformative for itself
    (`model.uninformative_metrics`, names; e.g. the optimality gap of a model whose output is
    argmin h in closed form). Models without the attribute keep every metric."""
    drop = set(model.uninformative_metrics)
    return [m for m in with_companions(metrics) if m.name not in drop]


@gin.configurable(module="bench.metrics")
class SuccessRate(Metric):
    """Percentage of examples with d(w_t, w*) < threshold (named `success@<threshold>`)."""

    direction = Direction.MAX

    def __init__(self, threshold: float = 1.0) -> None:
        self.threshold = threshold
        self.name = f"success@{threshold:g}"

    def __call__(self, trace: Trace) -> torch.Tensor:
        return 100.0 * (trace.distance < self.threshold).double().mean(dim=1)


@gin.configurable(module="bench.metrics")
class Extra(Metric):
    """Mean of a task-specific per-iteration value `trace.extras[key]`."""

    def __init__(self, key: str = "", direction: Literal["min", "max", "none"] = "min") -> None:
        self.name = key
        self.direction = Direction(direction)

    def __call__(self, trace: Trace) -> torch.Tensor:
        if self.name not in trace.extras:
            raise KeyError(f"metric {self.name!r}: the task records only {sorted(trace.extras)}")
        return trace.extras[self.name].mean(dim=1)
