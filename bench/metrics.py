"""Test-time metrics, declared in gin (`Task.metrics = [@bench.metrics.Distance(), ...]`).

Every metric maps an evaluation `Trace` (the test-time solver's iterates, for all N test examples)
to one value per solver iteration, `[T+1]`; the runner stores all of them (phase `test_iter`) and the
last one (phase `test`). Each declares its `Direction` so reports know which value is best; the runner
records every metric's direction in `run.json` (`metric_directions`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

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
    """

    distance: torch.Tensor
    h: torch.Tensor
    h_star: torch.Tensor
    extras: dict[str, torch.Tensor] = field(default_factory=dict)


class Metric:
    """Base class: `name`, `direction` (a `Direction`) and `__call__(trace) -> [T+1]`."""

    name: str = ""
    direction: Direction = Direction.MIN

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
    """Mean h(w_t) - h(w*): how far the solver is from the ground truth's energy. Negative when the
    solver found a point the learned energy prefers to the ground truth (a spurious minimum)."""

    name = "optimality_gap"

    def __call__(self, trace: Trace) -> torch.Tensor:
        return (trace.h - trace.h_star[None]).mean(dim=1)


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
