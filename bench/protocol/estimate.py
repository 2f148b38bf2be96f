"""What `bench run MATRIX` costs before it runs (`python -m bench estimate MATRIX`).

For every distinct (task, model, objective) of the cells still to run, the seconds one cell takes
come either from the wall times of finished runs (`--from RESULTS`, a results folder's
`runs.parquet`, as `bench tune --estimate` reads them) or from a calibration on this machine
(`--calibrate`): a few training steps of that cell, timed after a warm-up step, times the steps of
its whole budget (ceil(train examples / batch size) x epochs), plus one whole evaluation (every
evaluation batch through the test-time solver, the metrics and the landscape diagnostic, as
`run_cell` evaluates; on the untrained model, whose solver runs the same iterations), with the
torch threads a cell gets under `--jobs` (`--threads`, default cores / jobs): a cell whose
evaluation dominates (learned-feature ICP) is priced by its evaluation, not one batch of it. A
cell's set-up (process, data, model) is not timed: a lower bound. On CUDA the calibration also
records the peak GPU memory of a cell, and the estimate says how many such cells fit on one GPU
at once.

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

from bench.runner.cell import Cell

#: training steps timed per calibrated cell (after one warm-up step)
CALIBRATION_STEPS = 3

STARTUP_S = 0.5  # per-cell start-up margin: cells fork from a server that imported the suite
                 # once (milliseconds), not a fresh interpreter (4.7 s CPU to import torch)


def measured_times(results: Path) -> pd.DataFrame:
    """Median wall time (s) per (task, model, objective) of the done runs of a results folder."""
    runs = pd.read_parquet(Path(results) / "runs.parquet")
    runs = runs[runs["status"] == "done"]
    return runs.groupby(["task", "model", "objective"], as_index=False)["wall_time_s"].median()


def time_of(times: pd.DataFrame, task: str, model: str, objective: str) -> tuple[float, str]:
    """(seconds, source) of one combination from `measured_times`: its own runs, else the same
    task and model under 'dlc', else their median objective, else NaN ('never measured')."""
    same = times[(times.task == task) & (times.model == model)]
    for name, source in ((objective, "measured"), ("dlc", "as dlc")):
        hit = same[same.objective == name]
        if len(hit):
            return float(hit["wall_time_s"].iloc[0]), source
    if len(same):
        return float(same["wall_time_s"].median()), "as the median objective"
    return float("nan"), "never measured"


@dataclass
class Calibration:
    """One calibrated cell: seconds per training step, the steps of its budget, seconds of one
    whole evaluation, its peak GPU memory (MiB; None off CUDA), or why its data are missing."""

    step_s: float = float("nan")
    steps: int = 0
    eval_s: float = float("nan")
    val_eval_s: float = float("nan")  # one whole evaluation on `val` (a tuning cell's), if timed
    peak_mib: float | None = None
    missing: str = ""

    @property
    def train_s(self) -> float:
        return self.step_s * self.steps

    @property
    def cell_s(self) -> float:
        return self.train_s + self.eval_s


def calibrate(cell: Cell, device: str = "auto", steps: int = CALIBRATION_STEPS,
              threads: int = 0, val: bool = False) -> Calibration:
    """Time `steps` training steps and one whole evaluation of `cell` on `device`, with `threads`
    torch threads (0: torch's default); `val`: also one whole evaluation on the validation split,
    what a tuning cell evaluates."""
    import torch

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return _calibrate(cell, device, steps, val)
    finally:
        torch.set_num_threads(before)


def _timed(action, where) -> float:
    """Seconds `action()` takes (on CUDA, until the device is done)."""
    import torch

    begin = time.perf_counter()
    action()
    if where.type == "cuda":
        torch.cuda.synchronize(where)
    return time.perf_counter() - begin


def _calibrate(cell: Cell, device: str, steps: int, val: bool) -> Calibration:
    import torch

    from bench.runner.config import parsed_text
    from bench.runner.device import pick_device, seed_everything, to_device
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
        eval_s = _evaluation_s(exp, cell, where)  # the seeded initial model, as a cell starts
        val_eval_s = _evaluation_s(exp, cell, where, "val") if val else float("nan")
        exp.model.train()
        columns = exp.task.dataset("train")[:]
        examples = len(next(iter(columns.values())))
        params = list(exp.model.parameters()) + list(exp.objective.parameters())
        optimizer = exp.optimizer(params, lr=exp.lr)
        times = []
        for i, batch in enumerate(batches(columns, exp.batch_size)):
            if i > steps:
                break
            times.append(_timed(lambda b=batch: train_step(exp, to_device(b, where), optimizer,
                                                           params, where), where))
        timed = times[1:] or times  # the first step warms up
        return Calibration(
            step_s=sorted(timed)[len(timed) // 2],
            steps=math.ceil(examples / exp.batch_size) * exp.epochs, eval_s=eval_s,
            val_eval_s=val_eval_s, peak_mib=(torch.cuda.max_memory_allocated(where) / 2**20
                                             if where.type == "cuda" else None))


def _evaluation_s(exp, cell: Cell, where, split: str = "") -> float:
    """Seconds of one whole evaluation of `exp` (on `split` when given), as `run_cell` evaluates.
    When the solver leaves the image or diverges on this untrained model, the solver's time on one
    evaluation batch times the batches instead (the metrics and landscape left out)."""
    from bench.runner.device import Diverged
    from bench.runner.evaluate import evaluate, solver_trace
    from bench.runner.recorder import Recorder

    if split:
        exp.eval_split = split
    try:
        return _timed(lambda: evaluate(exp, where, Recorder(
            cell.run_id, cell.task, cell.model, cell.objective, cell.seed)), where)
    except (FloatingPointError, Diverged):
        rows = exp.task.dataset(exp.eval_split)[:]
        first = {k: v[:exp.eval_batch_size] for k, v in rows.items()}
        batches = math.ceil(len(next(iter(rows.values()))) / exp.eval_batch_size)
        return batches * _timed(lambda: solver_trace(exp, first, where), where)


def gpu_memory_mib(device: str) -> float | None:
    """Total memory (MiB) of the CUDA device `device` names ('cuda', 'cuda:N'); None otherwise."""
    if not device.startswith("cuda"):
        return None
    import torch

    index = int(device.split(":")[1]) if ":" in device else 0
    return torch.cuda.get_device_properties(index).total_memory / 2**20


def estimate_cells(cells: Sequence[Cell], jobs: int = 1, results: Path | None = None,
                   calibrate_on: str | None = None, gpu_mib: float | None = None,
                   threads: int = 0) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """(one row per (task, model, objective) of `cells` + a TOTAL row, [(run id, missing data)]).

    Seconds per cell from `results`' measured wall times, or, with `calibrate_on` (a device),
    from `calibrate` on one cell of each group (with `threads` torch threads, as a cell of a
    `--jobs` pool gets). `gpu_mib`: the GPU's memory, for how many cells share one GPU."""
    groups: dict[tuple[str, str, str], list[Cell]] = {}
    for cell in cells:
        groups.setdefault((cell.task, cell.model, cell.objective), []).append(cell)
    times = measured_times(results) if results is not None else None
    rows, missing = [], []
    for (task, model, objective), members in groups.items():
        peak = None
        if calibrate_on is not None:
            measured = calibrate(members[0], calibrate_on, threads=threads)
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
