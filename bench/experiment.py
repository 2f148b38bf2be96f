"""`Experiment`: what one cell trains and evaluates, as bound by its gin files.

The task, model and objective gin files and the scale file all bind this one configurable. It is
registered under the gin name `bench.run.Experiment` (the name every gin file, matrix binding and
saved `config.gin` uses), although it lives in this module: renaming it would change the config text
and so the cache key of every existing run.
"""

from __future__ import annotations

from collections.abc import Callable

import gin
import torch

from bench.objectives import Objective
from bench.tasks.base import Model, Task


@gin.configurable(module="bench.run")
class Experiment:
    """What a cell trains and evaluates; bound by the task, model, objective and scale gin files.

    Args:
        task, model, objective: the three axes of the matrix.
        optimizer: an optimizer class (`@torch.optim.Adam`), called with params and `lr`.
        lr, epochs, batch_size, grad_clip: training budget (scales set them).
        eval_batch_size: batch size of the test-time solver.
        landscape_examples, landscape_rays, landscape_points: the `violation_rate` diagnostic on the
            first test examples (0 examples disables it).
        autocast_bf16: train under bf16 autocast on CUDA.
        eval_split: the split the test-time solver is evaluated on: 'test', or 'val' for tuning
            (recorded as phases 'val'/'val_iter'; then no test metric is computed).
    """

    def __init__(
        self,
        task: Task = gin.REQUIRED,
        model: Model = gin.REQUIRED,
        objective: Objective = gin.REQUIRED,
        optimizer: Callable[..., torch.optim.Optimizer] = torch.optim.Adam,
        lr: float = 1e-3,
        epochs: int = 10,
        batch_size: int = 64,
        grad_clip: float | None = None,
        eval_batch_size: int = 256,
        landscape_examples: int = 64,
        landscape_rays: int = 16,
        landscape_points: int = 8,
        autocast_bf16: bool = False,
        eval_split: str = "test",
    ) -> None:
        if eval_split not in ("val", "test"):
            raise ValueError(f"eval_split must be 'val' or 'test', got {eval_split!r}")
        self.task, self.model, self.objective = task, model, objective
        self.optimizer, self.lr, self.epochs, self.batch_size = optimizer, lr, epochs, batch_size
        self.grad_clip, self.eval_batch_size = grad_clip, eval_batch_size
        self.landscape_examples = landscape_examples
        self.landscape_rays, self.landscape_points = landscape_rays, landscape_points
        self.autocast_bf16 = autocast_bf16
        self.eval_split = eval_split

    @property
    def family(self) -> str:
        """The task family this experiment belongs to (`Task.family`)."""
        return self.task.family

    def skip(self) -> tuple[bool, str]:
        """(True, reason) if task, model and objective cannot run together."""
        skip, reason = self.task.skip(self.model, self.objective)
        if not skip:
            skip, reason = self.objective.skip(self.task)
        return skip, reason
