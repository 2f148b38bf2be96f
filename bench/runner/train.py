"""The training loop of one cell: batching, optimisation steps, the per-epoch metric rows.

`train(exp, device, seed, recorder)` runs `exp.epochs` epochs (the first `exp.stop_epoch` of them
for a halving rung) of `exp.optimizer` on `exp.objective`, shuffling the training split with its
own generator seeded by the cell's seed (or taking it in its stored order when `exp.shuffle` is
False), and
records one row per epoch and training metric (phase `train`) through a `Recorder`:

* `train_loss`: the objective's loss (what the optimizer minimised);
* `train_original`: the task's original loss at w* (`ObjectiveOutput.original`), the same quantity for
  every objective;
* `train_optimality_gap`: `train_original - task.optimum`, for tasks that declare their optimum;
* `train_<key>`: each value the objective logs (hinges, lam, ...).

Each of them has a declared direction (`train_directions`).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from bench.runner.device import Columns, Diverged, to_device
from bench.runner.experiment import Experiment
from bench.runner.recorder import Recorder
from bench.schema import Direction, Phase

#: directions of the metrics the loop itself records (objective logs declare their own)
TRAIN_DIRECTIONS = {"train_loss": Direction.MIN, "train_original": Direction.MIN,
                    "train_optimality_gap": Direction.MIN, "train_lr": Direction.NONE}


def batches(columns: Columns, size: int, order: torch.Tensor | None = None) -> Iterator[Columns]:
    """Consecutive batches of `size` rows of `columns` (each `[N, ...]`), in `order` (a permutation
    `[N]`) when given; the last batch may be smaller."""
    n = len(next(iter(columns.values())))
    index = order if order is not None else torch.arange(n)
    for start in range(0, n, size):
        part = index[start:start + size]
        yield {k: v[part] for k, v in columns.items()}


def train_directions(exp: Experiment) -> dict[str, Direction]:
    """Direction of every metric `train` records for `exp` (`none` for undeclared objective logs)."""
    logs = {f"train_{k}": Direction(v) for k, v in exp.objective.log_directions.items()}
    return {**TRAIN_DIRECTIONS, **logs}


def train_step(exp: Experiment, batch: Columns, optimizer: torch.optim.Optimizer,
               params: list[torch.nn.Parameter], device: torch.device, where: str = ""):
    """One optimisation step of `exp.objective` on `batch` (already on `device`); returns the
    objective's `ObjectiveOutput`. Raises `Diverged` (naming `where`) on a non-finite loss. On
    CUDA it waits for the step to finish, so a timer around it measures the step."""
    with torch.autocast(device.type, dtype=torch.bfloat16,
                        enabled=exp.autocast_bf16 and device.type == "cuda"):
        outputs = exp.task.forward(exp.model, batch)
        result = exp.objective(exp.task, exp.model, outputs, batch)
    if not torch.isfinite(result.loss):
        raise Diverged(f"non-finite loss {result.loss.item()} {where}".rstrip())
    optimizer.zero_grad(set_to_none=True)
    result.loss.backward()
    exp.clip(params)
    optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return result


def train(exp: Experiment, device: torch.device, seed: int, rec: Recorder,
          progress: bool = False) -> dict[str, Any]:
    """Train `exp.model` with `exp.objective`; records the training metrics per epoch.

    Returns timing info (`steps`, median and mean `step_time_s`). Raises `Diverged` on a
    non-finite loss.
    """
    task, model, objective = exp.task, exp.model, exp.objective
    columns = exp.task.dataset("train")[:]
    params = list(model.parameters()) + list(objective.parameters())
    optimizer = exp.optimizer(params, lr=exp.lr)
    scheduler = exp.scheduler(optimizer)
    order_rng = torch.Generator().manual_seed(seed)
    step, step_times = 0, []
    label = "{task} {model} {objective} s{seed}".format(**rec.ident)  # what tells cells apart
    for epoch in tqdm(range(exp.stop_epoch or exp.epochs), desc=label, unit="epoch", leave=False,
                      disable=not progress):
        model.train()
        sums: dict[str, float] = defaultdict(float)
        count = 0
        order = (torch.randperm(len(next(iter(columns.values()))), generator=order_rng)
                 if exp.shuffle else None)  # None: the stored order (`Experiment.shuffle`)
        for batch in batches(columns, exp.batch_size, order):
            batch = to_device(batch, device)
            begin = time.perf_counter()
            result = train_step(exp, batch, optimizer, params, device,
                                where=f"at step {step} (epoch {epoch})")
            step_times.append(time.perf_counter() - begin)
            sums["train_loss"] += result.loss.item()
            sums["train_original"] += float(result.original)
            for key, value in result.logs.items():
                sums[f"train_{key}"] += float(value)
            count += 1
            step += 1
        for key, total in sums.items():
            rec.add(Phase.TRAIN, epoch, key, total / max(count, 1))
        rec.add(Phase.TRAIN, epoch, "train_lr", optimizer.param_groups[0]["lr"])
        if scheduler is not None:
            scheduler.step()
        if task.optimum is not None and "train_original" in sums:
            rec.add(Phase.TRAIN, epoch, "train_optimality_gap",
                    sums["train_original"] / max(count, 1) - task.optimum)
    return {
        "steps": step,
        "step_time_s": float(np.median(step_times)) if step_times else None,
        "step_time_mean_s": float(np.mean(step_times)) if step_times else None,
    }
