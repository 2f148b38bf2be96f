"""What `bench run MATRIX` costs before it runs (`python -m bench estimate MATRIX`).

For every distinct (task, model, objective) of the cells still to run, the seconds one cell takes
come either from the wall times of finished runs (`--from RESULTS`, a results folder's
`runs.parquet`, as `bench tune --estimate` reads them) or from a calibration on this machine
(`--calibrate`): a few training steps of that cell, timed after a warm-up step, times the steps of
its whole budget (ceil(train examples / batch size) x epochs), plus the test-time solver timed on
one evaluation batch, times the evaluation batches. On CUDA the calibration also records the peak
GPU memory of a cell, and the estimate says how many such cells fit on one GPU at once.

Cells whose task needs local data that is absent (`Task.missing_data`) are listed first, with the
files expected, and left out of the totals.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bench.protocol.tune_estimate import STARTUP_S, measured_times, time_of
from bench.runner.cell import Cell

#: training steps timed per calibrated cell (after one warm-up step)
CALIBRATION_STEPS = 3


@dataclass
class Calibration:
    """One calibrated cell: seconds per training step and per evaluation batch, the steps and
    evaluation batches of its budget, its peak GPU memory (MiB; None off CUDA), or why its data
    are missing."""

    step_s: float = float("nan")
    steps: int = 0
    eval_batch_s: float = float("nan")
    eval_batches: int = 0
    peak_mib: float | None = None
    missing: str = ""

    @property
    def cell_s(self) -> float:
        return self.step_s * self.steps + self.eval_batch_s * self.eval_batches


def calibrate(cell: Cell, device: str = "auto", steps: int = CALIBRATION_STEPS) -> Calibration:
    """Time `steps` training steps and one evaluation batch of `cell` on `device`."""
    import torch

    from bench.runner.config import parsed_text
    from bench.runner.device import pick_device, seed_everything, to_device
    from bench.runner.evaluate import solver_trace
    from bench.runner.experiment import Experiment
    from bench.runner.train import batches, train_step

    with parsed_text(cell.config_text):  # gin is read in this block only
        seed_everything(cell.seed)
        exp = Experiment()
        missing = exp.task.missing_data()
        if missing:
            return Calibration(missing=missing)
        where = pick_device(device)
        if where.type == "cuda":
            torch.cuda.reset_peak_memory_stats(where)
        exp.model.to(where)
        exp.objective.setup(exp.task)
        exp.objective.to(where)
        columns = exp.task.dataset("train")[:]
        examples = len(next(iter(columns.values())))
        params = list(exp.model.parameters()) + list(exp.objective.parameters())
        optimizer = exp.optimizer(params, lr=exp.lr)
        times = []
        for i, batch in enumerate(batches(columns, exp.batch_size)):
            if i > steps:
                break
            begin = time.perf_counter()
            train_step(exp, to_device(batch, where), optimizer, params, where)
            times.append(time.perf_counter() - begin)
        evaluation = exp.task.dataset(exp.eval_split)[:]
        rows = len(next(iter(evaluation.values())))
        first = {k: v[:exp.eval_batch_size] for k, v in evaluation.items()}
        exp.model.eval()
        begin = time.perf_counter()
        solver_trace(exp, first, where)
        if where.type == "cuda":
            torch.cuda.synchronize(where)
        eval_s = time.perf_counter() - begin
        timed = times[1:] or times  # the first step warms up
        return Calibration(
            step_s=sorted(timed)[len(timed) // 2],
            steps=math.ceil(examples / exp.batch_size) * exp.epochs,
            eval_batch_s=eval_s, eval_batches=math.ceil(rows / exp.eval_batch_size),
            peak_mib=(torch.cuda.max_memory_allocated(where) / 2**20
                      if where.type == "cuda" else None))


def estimate_cells(cells: Sequence[Cell], jobs: int = 1, results: Path | None = None,
                   calibrate_on: str | None = None, gpu_mib: float | None = None
                   ) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """(one row per (task, model, objective) of `cells` + a TOTAL row, [(run id, missing data)]).

    Seconds per cell from `results`' measured wall times, or, with `calibrate_on` (a device),
    from `calibrate` on one cell of each group. `gpu_mib`: the GPU's memory, for how many cells
    share one GPU."""
    groups: dict[tuple[str, str, str], list[Cell]] = {}
    for cell in cells:
        groups.setdefault((cell.task, cell.model, cell.objective), []).append(cell)
    times = measured_times(results) if results is not None else None
    rows, missing = [], []
    for (task, model, objective), members in groups.items():
        peak = None
        if calibrate_on is not None:
            measured = calibrate(members[0], calibrate_on)
            if measured.missing:
                missing += [(c.run_id, measured.missing) for c in members]
                continue
            seconds, source, peak = measured.cell_s, f"calibrated on {calibrate_on}", \
                measured.peak_mib
        elif times is not None:
            seconds, source = time_of(times, task, model, objective)
        else:
            seconds, source = float("nan"), "no timing (--from or --calibrate)"
        rows.append(dict(task=task, model=model, objective=objective, cells=len(members),
                         cell_s=seconds, source=source, total_s=len(members) * seconds,
                         peak_mib=peak,
                         per_gpu=(math.floor(0.9 * gpu_mib / peak) if peak and gpu_mib else None)))
    table = pd.DataFrame(rows, columns=["task", "model", "objective", "cells", "cell_s", "source",
                                        "total_s", "peak_mib", "per_gpu"])
    count = int(table["cells"].sum()) if len(table) else 0
    work = float(table["total_s"].sum()) + count * STARTUP_S if len(table) else 0.0
    total = dict(task="TOTAL", model=f"{jobs} jobs", objective="", cells=count,
                 cell_s=float("nan"), source=f"{work / 3600:.2f} cell-hours, "
                                             f"+{STARTUP_S:g} s start-up per cell",
                 total_s=work / max(jobs, 1), peak_mib=None, per_gpu=None)
    return pd.concat([table, pd.DataFrame([total])], ignore_index=True).round(2), missing
