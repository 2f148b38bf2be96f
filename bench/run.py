"""Run one cell: build it from gin, train with the objective, evaluate the test-time solver, record.

`run_cell(cell)` is what every executor calls, in whatever process it runs in. It starts from a
clean gin state, parses the shipped config text, seeds python/numpy/torch, trains, evaluates, and
writes the run folder through `bench.store.RunWriter` (atomically, run.json last). It never raises
for a failing cell: the outcome says `done`, `failed` (with traceback) or `diverged` (with the step).
"""

from __future__ import annotations

import json
import os
import platform
import random
import sys
import time
import traceback
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import gin
import numpy as np
import torch
from torch import nn
from tqdm import tqdm

import dlc
from bench import __version__
from bench.cell import Cell
from bench.metrics import Trace
from bench.objectives import Objective
from bench.provenance import cpu_name, git_sha
from bench.store import RunWriter
from bench.tasks.base import Task


class Diverged(RuntimeError):
    """The training loss became NaN or infinite."""


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
            (recorded as phases 'val'/'val_iter'; no test metric is computed).
    """

    def __init__(
        self,
        task: Task = gin.REQUIRED,
        model: nn.Module = gin.REQUIRED,
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
        self.landscape = (landscape_examples, landscape_rays, landscape_points)
        self.autocast_bf16 = autocast_bf16
        self.eval_split = eval_split

    def skip(self) -> tuple[bool, str]:
        """(True, reason) if task, model and objective cannot run together."""
        skip, reason = self.task.skip(self.model, self.objective)
        if not skip:
            skip, reason = self.objective.skip(self.task)
        return skip, reason


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - seeds legacy global-RNG users too
    torch.manual_seed(seed)


def pick_device(name: str) -> torch.device:
    """'auto' -> CUDA when present, else CPU; 'cuda' without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("--device cuda asked for, but torch sees no CUDA device")
    return torch.device(name)


def _to(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in batch.items()}


def _batches(columns: dict[str, torch.Tensor], size: int, order: torch.Tensor | None = None):
    n = len(next(iter(columns.values())))
    index = order if order is not None else torch.arange(n)
    for start in range(0, n, size):
        part = index[start:start + size]
        yield {k: v[part] for k, v in columns.items()}


class _Recorder:
    """Collects tidy metric rows for one cell."""

    def __init__(self, cell: Cell) -> None:
        self.only_split = cell.eval_split
        self.ident = dict(run_id=cell.run_id, task=cell.task, model=cell.model,
                          objective=cell.objective, seed=cell.seed)
        self.rows: list[dict[str, Any]] = []

    def add(self, phase: str, step: int, metric: str, value: float) -> None:
        if self.only_split == "val" and phase.startswith("test"):
            raise RuntimeError(f"a tuning cell (eval_split='val') tried to record {phase} {metric}")
        self.rows.append({**self.ident, "phase": phase, "step": int(step), "metric": metric,
                          "value": float(value)})


def train(exp: Experiment, device: torch.device, seed: int, rec: _Recorder,
          progress: bool = False) -> dict[str, Any]:
    """Train `exp.model` with `exp.objective`; records `train_loss` (and objective logs) per epoch.

    Returns timing info. Raises `Diverged` on a non-finite loss.
    """
    task, model, objective = exp.task, exp.model, exp.objective
    columns = exp.task.dataset("train")[:]
    params = list(model.parameters()) + list(objective.parameters())
    optimizer = exp.optimizer(params, lr=exp.lr)
    order_rng = torch.Generator().manual_seed(seed)
    step, step_times = 0, []
    for epoch in tqdm(range(exp.epochs), desc=rec.ident["run_id"][:40], unit="epoch",
                      leave=False, disable=not progress):
        model.train()
        sums: dict[str, float] = defaultdict(float)
        count = 0
        order = torch.randperm(len(next(iter(columns.values()))), generator=order_rng)
        for batch in _batches(columns, exp.batch_size, order):
            batch = _to(batch, device)
            begin = time.perf_counter()
            with torch.autocast(device.type, dtype=torch.bfloat16,
                                enabled=exp.autocast_bf16 and device.type == "cuda"):
                outputs = task.forward(model, batch)
                result = objective(task, model, outputs, batch)
            if not torch.isfinite(result.loss):
                raise Diverged(f"non-finite loss {result.loss.item()} at step {step} (epoch {epoch})")
            optimizer.zero_grad(set_to_none=True)
            result.loss.backward()
            if exp.grad_clip:
                torch.nn.utils.clip_grad_norm_(params, exp.grad_clip)
            optimizer.step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            step_times.append(time.perf_counter() - begin)
            sums["train_loss"] += result.loss.item()
            for key, value in result.logs.items():
                sums[f"train_{key}"] += float(value)
            count += 1
            step += 1
        for key, total in sums.items():
            rec.add("train", epoch, key, total / max(count, 1))
        if task.optimum is not None and "train_original" in sums:
            rec.add("train", epoch, "train_optimality_gap",
                    sums["train_original"] / max(count, 1) - task.optimum)
    return {
        "steps": step,
        "step_time_s": float(np.median(step_times)) if step_times else None,
        "step_time_mean_s": float(np.mean(step_times)) if step_times else None,
    }


@torch.no_grad()
def evaluate(exp: Experiment, device: torch.device, rec: _Recorder) -> None:
    """Run the test-time solver on the `exp.eval_split` split; record every metric per iteration
    (phase `<split>_iter`) and final (phase `<split>`)."""
    task, model = exp.task, exp.model
    model.eval()
    split = exp.eval_split
    columns = task.dataset(split)[:]
    parts: dict[str, list[torch.Tensor]] = defaultdict(list)
    for batch in _batches(columns, exp.eval_batch_size):
        batch = _to(batch, device)
        outputs = task.forward(model, batch)
        target = task.target(batch)
        iterates = task.solve(model, outputs, batch)  # [T+1, B, ...]
        parts["distance"].append(task.space.distance(iterates, target[None]))
        parts["h"].append(task.h(outputs, iterates))
        parts["h_star"].append(task.h(outputs, target[None])[0])
        for name, values in task.extras(model, outputs, batch, iterates).items():
            parts[f"extra.{name}"].append(values)
    joined = {k: torch.cat(v, dim=-1).double().cpu() for k, v in parts.items()}
    trace = Trace(distance=joined.pop("distance"), h=joined.pop("h"), h_star=joined.pop("h_star"),
                  extras={k.removeprefix("extra."): v for k, v in joined.items()})
    for metric in task.metrics:
        values = metric(trace)
        for it, value in enumerate(values.tolist()):
            rec.add(f"{split}_iter", it, metric.name, value)
        rec.add(split, len(values) - 1, metric.name, values[-1].item())

    examples, rays, points = exp.landscape
    if examples > 0:
        batch = _to(next(_batches(columns, examples)), device)
        outputs = task.forward(model, batch)
        target = task.target(batch)
        generator = torch.Generator(device=device).manual_seed(0)  # same rays for every objective
        def energy(w: torch.Tensor) -> torch.Tensor:
            return task.h(outputs, w)

        rate = dlc.violation_rate(energy, target, task.space, rays=rays, points=points,
                                  generator=generator)
        rec.add("landscape", 0, "violation_rate", float(rate))
        # h(w* + t d) - h(w*) along one random direction per example, |d| = the sampling radius
        ts, values = dlc.slice_1d(energy, target, task.space, generator=generator)
        gap = (values - energy(target[None])).mean(dim=1)
        for i, (t, value) in enumerate(zip(ts.tolist(), gap.tolist())):
            rec.add("landscape", i, "slice_t", t)
            rec.add("landscape", i, "slice_h", value)


def run_cell(cell: Cell) -> dict[str, Any]:
    """Run `cell` in this process and publish its run folder. Returns a short outcome dict."""
    from bench.config import parse_text

    started = time.time()
    writer = RunWriter(Path(cell.results), cell.run_id)
    record: dict[str, Any] = {
        **{k: v for k, v in cell.to_dict().items() if k not in ("config_text", "results")},
        "injected": {"seed": cell.seed, "device": cell.device},
        "package_version": __version__, "git_sha": git_sha(),
        "python": sys.version.split()[0], "torch": torch.__version__,
        "platform": platform.platform(), "cpu": cpu_name(), "pid": os.getpid(),
        "started": datetime.fromtimestamp(started, timezone.utc).isoformat(),
    }
    rec = _Recorder(cell)
    try:
        writer.write_text("config.gin", cell.config_text)
        if cell.threads:
            torch.set_num_threads(cell.threads)
        record["threads"] = torch.get_num_threads()
        parse_text(cell.config_text)
        seed_everything(cell.seed)
        exp = Experiment()
        if cell.eval_split and exp.eval_split != cell.eval_split:
            raise RuntimeError(f"this cell may only evaluate the {cell.eval_split!r} split, but its "
                               f"config sets bench.run.Experiment.eval_split = {exp.eval_split!r}")
        device = pick_device(cell.device)
        record["device"] = str(device)
        if device.type == "cuda":
            record["device_name"] = torch.cuda.get_device_name(device)
            record["cuda_visible_devices"] = os.environ.get("CUDA_VISIBLE_DEVICES")
        exp.model.to(device)
        exp.objective.setup(exp.task)
        exp.objective.to(device)
        record.update(train(exp, device, cell.seed, rec, progress=cell.progress))
        record["metric_directions"] = {m.name: m.direction for m in exp.task.metrics}
        evaluate(exp, device, rec)
        writer.write_text("operative.gin", gin.operative_config_str())
        record.update(status="done", reason="")
    except Diverged as err:
        record.update(status="diverged", reason=str(err))
    except Exception as err:  # noqa: BLE001 - a failing cell must not stop the matrix
        record.update(status="failed", reason=f"{type(err).__name__}: {err}",
                      traceback=traceback.format_exc())
    finally:
        gin.clear_config()
    record["wall_time_s"] = time.time() - started
    record["finished"] = datetime.now(timezone.utc).isoformat()
    writer.write_metrics(rec.rows)
    writer.publish(record)
    return {"run_id": cell.run_id, "status": record["status"], "reason": record["reason"],
            "wall_time_s": record["wall_time_s"]}


def main(argv: list[str] | None = None) -> int:
    """`python -m bench.run CELL.json`: run one serialised cell (used by cluster executors)."""
    args = argv if argv is not None else sys.argv[1:]
    cell = Cell(**json.loads(Path(args[0]).read_text()))
    outcome = run_cell(cell)
    print(json.dumps(outcome))
    return 0 if outcome["status"] == "done" else 1


if __name__ == "__main__":
    sys.exit(main())
