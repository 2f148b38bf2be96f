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
from bench.tasks.base import Batch, SizedByTask, Task
from dlc import Space, StarConvexLoss, StarConvexResult


@dataclass
class ObjectiveOutput:
    """What an objective returns for one batch.

    loss: scalar `[]` the optimizer minimises (carries the gradient).
    original: scalar `[]`, detached: the task's original loss `task.loss(model, outputs, batch, w*)` at
        the ground truth w*, whatever the objective trains on. The runner records its epoch mean as
        `train_original` and, for a task that declares its `optimum`, `train_optimality_gap` =
        `train_original - optimum`; so every objective is compared on the same quantity.
    logs: other scalars recorded per epoch as `train_<key>` (mean over steps); their directions
        are declared in the objective's `log_directions`.
    """

    loss: torch.Tensor
    original: torch.Tensor
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
    """Base term + weight * DLC hinges (T1..T3) on the task's h around w*.

    The base term is the task's `base` (`bench.tasks.forms`): 'method' -> the method's own loss
    `task.loss`, 'h' -> mean h(w*) (the paper's L = h(w*) + beta * hinge); tasks without a
    `base` use their own loss. `mu=None` takes the task's declared `mu` (its natural scale, in the
    units of its space). The perturbations come from `space`, by default the task's `space`
    (bound in the task's gin file); a preset may bind its own (e.g. the authors' entry noise).

    A preset that only makes sense for some tasks says so with `families` (task families it
    applies to, empty: all), `target_space` (class name the task's space must have, empty: any)
    and `skip_reason` (why, shown in the skip reason of the other cells).

    `ObjectiveOutput.original` is the method's own loss at w* (recorded as `train_original`, the same
    quantity for every objective). Logged per step (means per epoch, as `train_<key>`):
    `base_term` (the base term trained: h(w*) or the method's loss), `hinge` (unweighted),
    `hinge_<term>` (mean of each term), `hinge_ratio` = hinge / base_term,
    `weighted_hinge_ratio` = weight * hinge / base_term, `active_<term>` = share of (sample,
    example) pairs whose term is > 0, `lam`, and `mu` (current values; learned ones move).
    """

    log_directions: ClassVar[dict[str, Direction]] = {
        "base_term": Direction.MIN, "hinge": Direction.MIN, "hinge_ratio": Direction.MIN,
        "weighted_hinge_ratio": Direction.MIN,
        **{f"{kind}_{term}": Direction.MIN for kind in ("hinge", "active")
           for term in ("t1", "t2", "t3")},
        "lam": Direction.NONE, "mu": Direction.NONE}

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
        t1_margin: bool = False,
        space: Space | None = None,
        families: Sequence[str] = (),
        target_space: str = "",
        skip_reason: str = "",
    ) -> None:
        super().__init__()
        self.options = dict(
            samples=samples, lam=lam, weight=weight, terms=tuple(terms), aggregate=aggregate,
            learn_lam=learn_lam, learn_mu=learn_mu, perturbation=perturbation,
            adversarial_steps=adversarial_steps, t1_margin=t1_margin,
        )
        self.mu = mu
        self.space = space
        self.families, self.target_space = tuple(families), target_space
        self.skip_reason = skip_reason
        self.star: StarConvexLoss | None = None

    def skip(self, task: Task) -> tuple[bool, str]:
        family_ok = not self.families or task.family in self.families
        space_ok = not self.target_space or type(task.space).__name__ == self.target_space
        if family_ok and space_ok:
            return False, ""
        wanted = ", ".join(filter(None, [
            f"task families {list(self.families)}" if self.families else "",
            f"targets in a {self.target_space} space" if self.target_space else ""]))
        got = f"task {type(task).__name__} ({task.family!r}, {type(task.space).__name__} targets)"
        return True, f"this DLC preset applies to {wanted} only, not to {got}" + (
            f": {self.skip_reason}" if self.skip_reason else "")

    def setup(self, task: Task) -> None:
        mu = task.mu if self.mu is None else self.mu
        space = task.space if self.space is None else self.space
        if isinstance(space, SizedByTask):  # a preset's space that needs the task's sizes
            space = space.for_task(task)
        self.star = StarConvexLoss(space=space, mu=mu, **self.options)

    def forward(self, task: Task, model: nn.Module, outputs: Any, batch: Batch) -> ObjectiveOutput:
        target = task.target(batch)
        star = self.star(lambda w: task.h(outputs, w), target)
        if task.base == "h":
            original = star.h_star_mean
        else:
            original = task.loss(model, outputs, batch, target)
        loss = original + self.star.weight * star.hinge
        if task.base == "h":  # the comparable base, whatever is trained
            with torch.no_grad():
                method = task.loss(model, outputs, batch, target)
        else:
            method = original
        return ObjectiveOutput(loss, method.detach(), diagnostics(original, star, self.star.weight))


def diagnostics(base_term: torch.Tensor, star: StarConvexResult,
                weight: float) -> dict[str, torch.Tensor]:
    """The values a DLC-type objective logs per step (see `DLC`), all detached 0-dim tensors."""
    base = base_term.detach()
    hinge = star.hinge.detach()
    safe = base.abs().clamp_min(torch.finfo(base.dtype).tiny)
    logs = {"base_term": base, "hinge": hinge, "hinge_ratio": hinge / safe,
            "weighted_hinge_ratio": weight * hinge / safe}
    for name, value in star.terms.items():
        logs[f"hinge_{name}"] = value.detach().mean()
        logs[f"active_{name}"] = (value.detach() > 0).float().mean()
    logs["lam"] = star.lam.detach()
    logs["mu"] = star.mu.detach()
    return logs


@gin.configurable(module="bench.objectives")
class TargetNoise(Objective):
    """The original loss at perturbed targets w~ = retract(w*, d, 1), averaged over `samples`.

    Its `original` is the original loss at the true w* (computed without gradient), so
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
            original = task.loss(model, outputs, batch, target)
        return ObjectiveOutput(loss, original.detach())


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
