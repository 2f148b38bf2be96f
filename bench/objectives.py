"""Training objectives: the "baselines" a gin file selects, generic over any task's `h`.

An objective turns (task, model outputs, batch) into an `ObjectiveOutput`: the scalar loss it
minimises, the task's original (base) loss at the ground truth w*, and a few logged values:

* `Plain`: the task's original loss.
* `DLC`: original loss + weight * aggregated star-convexity hinges on `h` (`dlc.StarConvexLoss`).
  `dlc_max.gin` and `dlc_adversarial.gin` are DLC with other bindings.
* `TargetNoise`: the original loss at perturbed targets w* + d and no hinges; the control that shows
  whether the hinges, not merely seeing perturbed targets, make the difference.
* `Margin`: original + weight * mean_s [h(w*) - h(w*+d_s) + margin]_+, a contrastive ranking loss
  without the star-convexity structure (no T1/T3, constant margin instead of mu/2 |d|^2).

A new baseline is a gin file binding one of these, or a user class (`import my_pkg.losses` in the gin
file, then `bench.run.Experiment.objective = @my_pkg.losses.Thing()`) that subclasses `Objective`
and declares the direction of each value it logs in `log_directions`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import gin
import torch
from torch import nn

from bench.schema import Direction
from bench.tasks.base import Batch, Task
from dlc import StarConvexLoss


@dataclass
class ObjectiveOutput:
    """What an objective returns for one batch.

    loss: scalar `[]` the optimizer minimises (carries the gradient).
    base: scalar `[]`, detached: the task's original loss `task.loss(model, outputs, batch, w*)` at
        the ground truth w*, whatever the objective trains on. The runner records its epoch mean as
        `train_original` and, for a task that declares its `optimum`, `train_optimality_gap` =
        `train_original - optimum`; so every objective is compared on the same quantity.
    logs: other scalars recorded per epoch as `train_<key>` (mean over steps); their directions
        are declared in the objective's `log_directions`.
    """

    loss: torch.Tensor
    base: torch.Tensor
    logs: dict[str, torch.Tensor] = field(default_factory=dict)


class Objective(nn.Module):
    """Base class. `setup(task)` runs once before the optimizer is built (create parameters there);
    `forward(task, model, outputs, batch)` returns an `ObjectiveOutput`.

    `log_directions` maps each key the objective logs to its `Direction` (a key missing there is
    recorded with direction `none`)."""

    log_directions: ClassVar[dict[str, Direction]] = {}

    def setup(self, task: Task) -> None:  # noqa: B027 - optional hook
        """Prepare for `task` (e.g. build a loss on its target space)."""

    def skip(self, task: Task) -> tuple[bool, str]:
        """(True, reason) when this objective cannot run on `task`."""
        return False, ""

    def forward(self, task: Task, model: nn.Module, outputs: Any, batch: Batch) -> ObjectiveOutput:
        raise NotImplementedError


@gin.configurable(module="bench.objectives")
class Plain(Objective):
    """The task's original loss, nothing added."""

    def forward(self, task: Task, model: nn.Module, outputs: Any, batch: Batch) -> ObjectiveOutput:
        loss = task.loss(model, outputs, batch, task.target(batch))
        return ObjectiveOutput(loss, loss.detach())


@gin.configurable(module="bench.objectives")
class DLC(Objective):
    """Original loss + weight * DLC hinges (T1..T3) on the task's h around w*.

    `mu=None` takes the task's declared `mu` (its natural scale, in the units of its space).
    The perturbation distribution is the task's `space` (bound in the task's gin file).
    """

    log_directions: ClassVar[dict[str, Direction]] = {
        "hinge": Direction.MIN, "hinge_t1": Direction.MIN, "hinge_t2": Direction.MIN,
        "hinge_t3": Direction.MIN, "lam": Direction.NONE}

    def __init__(
        self,
        samples: int = 4,
        lam: float = 0.5,
        mu: float | None = None,
        weight: float = 1.0,
        terms: Sequence[str] = ("t1", "t2", "t3"),
        aggregate: Literal["sum", "max"] = "sum",
        learn_lam: bool = False,
        learn_mu: bool = False,
        perturbation: Literal["random", "adversarial"] = "random",
        adversarial_steps: int = 3,
    ) -> None:
        super().__init__()
        self.options = dict(
            samples=samples, lam=lam, weight=weight, terms=tuple(terms), aggregate=aggregate,
            learn_lam=learn_lam, learn_mu=learn_mu, perturbation=perturbation,
            adversarial_steps=adversarial_steps,
        )
        self.mu = mu
        self.star: StarConvexLoss | None = None

    def setup(self, task: Task) -> None:
        mu = task.mu if self.mu is None else self.mu
        self.star = StarConvexLoss(space=task.space, mu=mu, **self.options)

    def forward(self, task: Task, model: nn.Module, outputs: Any, batch: Batch) -> ObjectiveOutput:
        target = task.target(batch)
        original = task.loss(model, outputs, batch, target)
        star = self.star(lambda w: task.h(outputs, w), target)
        loss = original + self.star.weight * star.hinge
        logs = {"hinge": star.hinge.detach()}
        logs.update({f"hinge_{k}": v.detach().mean() for k, v in star.terms.items()})
        logs["lam"] = star.lam.detach()
        return ObjectiveOutput(loss, original.detach(), logs)


@gin.configurable(module="bench.objectives")
class TargetNoise(Objective):
    """The original loss at perturbed targets w~ = retract(w*, d, 1), averaged over `samples`.

    Its `base` is the original loss at the true w* (computed without gradient), so
    `train_optimality_gap` measures the same thing as for every other objective."""

    def __init__(self, samples: int = 1) -> None:
        super().__init__()
        self.samples = samples

    def forward(self, task: Task, model: nn.Module, outputs: Any, batch: Batch) -> ObjectiveOutput:
        target = task.target(batch)
        delta = task.space.sample(target, self.samples)
        noisy = task.space.retract(target, delta, 1.0)
        loss = torch.stack([task.loss(model, outputs, batch, w) for w in noisy]).mean()
        with torch.no_grad():
            base = task.loss(model, outputs, batch, target)
        return ObjectiveOutput(loss, base.detach())


@gin.configurable(module="bench.objectives")
class Margin(Objective):
    """Original + weight * mean_s [h(w*) - h(w~_s) + margin]_+ (contrastive, no star-convexity)."""

    log_directions: ClassVar[dict[str, Direction]] = {"hinge": Direction.MIN}

    def __init__(self, samples: int = 4, margin: float = 0.1, weight: float = 1.0) -> None:
        super().__init__()
        self.samples, self.margin, self.weight = samples, margin, weight

    def forward(self, task: Task, model: nn.Module, outputs: Any, batch: Batch) -> ObjectiveOutput:
        target = task.target(batch)
        original = task.loss(model, outputs, batch, target)
        delta = task.space.sample(target, self.samples)
        points = torch.cat([target[None], task.space.retract(target, delta, 1.0)])
        energy = task.h(outputs, points)  # [S+1, B], one batched call
        hinge = torch.relu(energy[:1] - energy[1:] + self.margin).mean()
        return ObjectiveOutput(original + self.weight * hinge, original.detach(),
                               {"hinge": hinge.detach()})
