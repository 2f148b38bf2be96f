"""`Experiment`: what one cell trains and evaluates, as bound by its gin files.

The task, model and objective gin files and the scale file all bind this one configurable. It is
registered under the gin name `bench.run.Experiment` (the name every gin file, matrix binding and
saved `config.gin` uses), although it lives in this module: renaming it would change the config text
and so the cache key of every existing run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import gin
import torch

from bench.objectives import Objective
from bench.tasks.base import Model, Task
from bench.tasks.splits import val_fraction


@gin.configurable(module="bench.run")
class Experiment:
    """What a cell trains and evaluates; bound by the task, model, objective and scale gin files.

    Args:
        task, model, objective: the three axes of the matrix.
        optimizer: an optimizer class (`@torch.optim.Adam`), called with params and `lr`.
        lr, epochs, batch_size: training budget (scales set them).
        shuffle: draw a new order of the training rows every epoch (from the cell's seed); False
            takes the batches in the rows' stored order every epoch, as the MNIST-1D reference
            protocol does (`batch b` of every epoch is rows [b * batch_size, (b + 1) * batch_size)).
        grad_clip: clip the global gradient norm to this value (None: no clipping).
        grad_clip_value: clip every gradient entry to [-v, v] (PRISE's elementwise clipping;
            None: none). Applied after `grad_clip`, identically for every objective.
        schedule: learning-rate schedule over the epochs, stepped once per epoch: None (constant),
            'cosine' (cosine annealing from `lr` towards `lr * schedule_floor` after the last
            epoch: epoch e uses lr_f + (lr - lr_f) (1 + cos(pi e / epochs)) / 2) or 'step' (multiply by `schedule_gamma` at each fraction of `epochs` in
            `schedule_milestones`). The same for every objective of a scale.
        init_from: objective (gin file stem, e.g. 'plain') of the cell of the same task, model
            and seed whose final weights this cell starts from (fine-tuning; the runner runs that
            cell first and its cache key is part of this cell's); '' trains from scratch.
        eval_batch_size: batch size of the test-time solver.
        landscape_examples, landscape_rays, landscape_points: the `violation_rate` diagnostic on the
            first test examples (0 examples disables it).
        autocast_bf16: train under bf16 autocast on CUDA.
        eval_split: the split the test-time solver is evaluated on: 'test', or 'val' for tuning
            (recorded as phases 'val'/'val_iter'; then no test metric is computed).
        stop_epoch: train only the first `stop_epoch` epochs of the `epochs`-long schedule, then
            evaluate (a rung of successive halving, `bench.protocol.halving`: the validation score at that
            epoch checkpoint of the full run); None trains all `epochs`.
    """

    #: parameters only evaluation reads (`bench.runner.identity`): changing them re-evaluates a finished
    #: run's saved weights instead of retraining it
    EVALUATION_PARAMETERS: ClassVar[frozenset[str]] = frozenset(
        {"eval_batch_size", "landscape_examples", "landscape_rays", "landscape_points"})

    def __init__(
        self,
        task: Task = gin.REQUIRED,
        model: Model = gin.REQUIRED,
        objective: Objective = gin.REQUIRED,
        optimizer: Callable[..., torch.optim.Optimizer] = torch.optim.Adam,
        lr: float = 1e-3,
        epochs: int = 10,
        batch_size: int = 64,
        shuffle: bool = True,
        grad_clip: float | None = None,
        grad_clip_value: float | None = None,
        schedule: str | None = None,
        schedule_floor: float = 0.0,
        schedule_gamma: float = 0.1,
        schedule_milestones: tuple[float, ...] = (0.5, 0.75),
        init_from: str = "",
        eval_batch_size: int = 256,
        landscape_examples: int = 64,
        landscape_rays: int = 16,
        landscape_points: int = 8,
        autocast_bf16: bool = False,
        eval_split: str = "test",
        stop_epoch: int | None = None,
    ) -> None:
        if eval_split not in ("val", "test"):
            raise ValueError(f"eval_split must be 'val' or 'test', got {eval_split!r}")
        if stop_epoch is not None and not 1 <= stop_epoch < epochs:
            raise ValueError(f"bench.run.Experiment.stop_epoch must be from 1 to epochs - 1 = "
                             f"{epochs - 1} (or None), got {stop_epoch!r}")
        self.stop_epoch = stop_epoch
        self.task, self.model, self.objective = task, model, objective
        fraction = val_fraction()  # read from gin here, at the edge, not in data loading
        if task is not None:  # (tests build an Experiment without a task for its schedules)
            task.val_fraction = fraction
        self.optimizer, self.lr, self.epochs, self.batch_size = optimizer, lr, epochs, batch_size
        self.grad_clip, self.eval_batch_size = grad_clip, eval_batch_size
        self.shuffle = shuffle
        if schedule not in (None, "cosine", "step"):
            raise ValueError(f"bench.run.Experiment.schedule must be None, 'cosine' or 'step', "
                             f"got {schedule!r}")
        self.grad_clip_value, self.schedule = grad_clip_value, schedule
        self.schedule_floor, self.schedule_gamma = schedule_floor, schedule_gamma
        self.schedule_milestones = tuple(schedule_milestones)
        self.init_from = init_from
        self.landscape_examples = landscape_examples
        self.landscape_rays, self.landscape_points = landscape_rays, landscape_points
        self.autocast_bf16 = autocast_bf16
        self.eval_split = eval_split

    def scheduler(self, optimizer: torch.optim.Optimizer):
        """The per-epoch learning-rate scheduler of `schedule`, or None."""
        if self.schedule == "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(
                optimizer, T_max=max(self.epochs, 1), eta_min=self.lr * self.schedule_floor)
        if self.schedule == "step":
            milestones = sorted({max(1, round(f * self.epochs)) for f in self.schedule_milestones})
            return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones,
                                                        gamma=self.schedule_gamma)
        return None

    def clip(self, params: list[torch.nn.Parameter]) -> None:
        """Gradient clipping of this experiment (norm, then elementwise), in place."""
        if self.grad_clip:
            torch.nn.utils.clip_grad_norm_(params, self.grad_clip)
        if self.grad_clip_value:
            torch.nn.utils.clip_grad_value_(params, self.grad_clip_value)

    @property
    def family(self) -> str:
        """The task family this experiment belongs to (`Task.family`)."""
        return self.task.family

    def skip(self) -> tuple[bool, str]:
        """(True, reason) if task, model and objective cannot run together. A model with nothing
        to learn (`learned = False`: ICP, raw-intensity LK) runs once, as 'plain' from scratch."""
        skip, reason = self.task.skip(self.model, self.objective)
        if not skip:
            skip, reason = self.objective.skip(self.task)
        if not skip and not self.model.learned and (
                type(self.objective).__name__ != "Plain" or self.init_from):
            return True, (f"{type(self.model).__name__} has nothing to train (a classical "
                          "reference): it runs with the 'plain' objective only, from scratch")
        return skip, reason
