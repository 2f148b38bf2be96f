"""What a `bench tune` run costs before it runs: cells per phase and their time, from measured
per-cell wall times (a results folder's `runs.parquet`, e.g. the committed `results/cpu_66f1d96_8trials_1seed`).

A combination never measured borrows the median time of the same task and model under the
objective 'dlc' (then any objective), and says so in the `source` column. The smaller budgets'
winners are counted as if each differed from the full budget's (an upper bound). The total adds a
per-cell start-up margin and divides by the parallel jobs.

Tuning compute is the sweep's planned compute (`Sweep.compute`: full-budget-equivalent trials per
tuning seed under successive halving, restarts included) times the tuning seeds. From measured
wall times a rung cell is counted at its fraction of a full cell's time (a lower bound: each rung
cell also evaluates validation once, in full). With `results = 'calibrate'` one cell of each
combination is calibrated on this machine (`bench.protocol.estimate.calibrate`: training steps
and one whole evaluation on each split, with the threads a pool cell gets), and every tuning cell
pays its fraction of the training plus a whole validation evaluation: full-budget-equivalents x
train + tuning cells x validation evaluation + final cells x (train + test evaluation).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pandas as pd

from bench.protocol.estimate import STARTUP_S, calibrate, measured_times, time_of
from bench.protocol.halving import survivors
from bench.protocol.verdicts import is_reference
from bench.runner.matrix import Matrix, combinations, expand_cells


def estimate(parts: Sequence[Matrix], sweep, results: Path | str, jobs: int = 1,
             device: str = "auto", threads: int = 0) -> pd.DataFrame:
    """One row per (task, model, objective): tune and final cells, seconds per cell, total; plus a
    'TOTAL' row with the wall time on `jobs` parallel workers (start-up included). `results`: a
    results folder with measured wall times, or 'calibrate' (on `device`, `threads` per cell)."""
    times = None if results == "calibrate" else measured_times(Path(results))
    rows = []
    for part, task, model, objective in combinations(parts):
        narrow = replace(part, tasks=[task], models=[model], objectives=[objective], seeds=[0])
        cell = expand_cells(narrow, Path("/nonexistent"))[0]
        if cell.skip_reason:
            continue
        name = Path(objective).stem
        seeds = len(sweep.tuning_seeds or part.seeds)
        reference = is_reference(task, model)  # no trials: its defaults run on the final seeds
        alive = survivors(sweep.budget(name), sweep.eta(name), len(sweep.rungs))
        tune = 0 if reference else sum(alive) * seeds
        full_equiv = 0.0 if reference else sweep.compute(name) * seeds
        final = len(sweep.final_seeds) * (1 + int(sweep.budget0) + len(sweep.budgets))
        if times is None:
            measured = calibrate(cell, device, threads=threads, val=True)
            train_s, val_s = measured.train_s, measured.val_eval_s
            seconds, source = measured.cell_s, (f"calibrated: train {train_s:.0f} s, evaluation "
                                                f"{measured.eval_s:.0f} s (val {val_s:.0f} s)")
            total = full_equiv * train_s + tune * val_s + final * seconds
        else:
            seconds, source = time_of(times, cell.task, cell.model, name)
            total = (full_equiv + final) * seconds
        rows.append(dict(task=cell.task, model=cell.model, objective=name, tune_cells=tune,
                         final_cells=final, tune_full_equiv=full_equiv, cell_s=seconds,
                         source=source, total_s=total))
    table = pd.DataFrame(rows)
    cells = int(table["tune_cells"].sum() + table["final_cells"].sum())
    work = float(table["total_s"].sum()) + cells * STARTUP_S
    total = dict(task="TOTAL", model=f"{jobs} jobs", objective="", tune_cells=table["tune_cells"].sum(),
                 final_cells=table["final_cells"].sum(),
                 tune_full_equiv=table["tune_full_equiv"].sum(), cell_s=float("nan"),
                 source=f"+{STARTUP_S:g} s start-up per cell", total_s=work / max(jobs, 1))
    return pd.concat([table, pd.DataFrame([total])], ignore_index=True).round(1)
