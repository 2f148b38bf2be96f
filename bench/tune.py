"""`bench tune MATRIX [--phase tune|select|final|all]`: the three phases of a fair comparison.

* **tune**: every trial of the matrix's sweep (`bench.sweep`) is an ordinary cell (cached,
  resumable, run by any executor) evaluated on the VALIDATION split only: each trial cell carries
  `bench.run.Experiment.eval_split = 'val'` and `Cell.eval_split = 'val'`, so a config that asks
  for the test split fails the cell instead of recording a test metric. Trial index t writes the
  results folder `trials/t<ttt>/` (one run per task, model, objective and tuning seed).
* **select**: `bench.select` picks the winner per (task, model, objective) on the validation metric
  and writes `selected/<task>-<model>-<objective>.gin`.
* **final**: each winner re-runs on the sweep's fresh `final_seeds` (paired across objectives by
  seed) with `eval_split = 'test'`, into `final/`; the one-shot defaults of the matrix run on the
  same seeds into `budget0/` (the "budget 0" row), and the winners of the sweep's smaller
  `budgets` that differ from the full budget's into `budgets/t<ttt>/`; then the protocol report
  (`bench.report_protocol`) is written.

Everything lands in `results/tune/<matrix>/` (or `--out`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from bench.cell import Cell
from bench.config import ConfigError, resolve
from bench.folders import SWEEP_COPY
from bench.matrix import Matrix, combinations, expand_cells, load_matrix
from bench.result_tables import collect
from bench.select import select, selected_path, trial_scores
from bench.store import atomic_write_text, clean_staging, is_done, record_status
from bench.sweep import (
    EVAL_SPLIT,
    Sweep,
    binding_text,
    check_budgets,
    line_of,
    load_sweep,
    sample_params,
    tpe_params,
)

REPO = Path(__file__).resolve().parent.parent
PHASES = ("tune", "select", "final", "all")


def load_plan(matrix_path: Path) -> tuple[list[Matrix], Sweep]:
    """The matrix's parts and the one sweep they point to."""
    parts = load_matrix(matrix_path)
    refs = {part.sweep for part in parts}
    if refs == {""}:
        raise ConfigError(f"{matrix_path}: the matrix names no sweep; add "
                          "`bench.matrix.Matrix.sweep = 'sweeps/<name>.gin'`")
    if len(refs) > 1:
        raise ConfigError(f"{matrix_path}: its parts point to different sweeps {sorted(refs)}; "
                          "one tuning run uses one sweep file")
    sweep = load_sweep(resolve("sweeps", refs.pop()))
    if not sweep.final_seeds:
        raise ConfigError(f"{sweep.source}: bench.sweep.Sweep.final_seeds is empty")
    for part in parts:
        reused = sorted(set(part.seeds) & set(sweep.final_seeds))
        if reused:
            raise ConfigError(f"{sweep.source}: final_seeds {reused} are also tuning seeds of "
                              f"{matrix_path}; the final phase needs fresh seeds")
    return parts, sweep


def _entry(part: Matrix, task: str, model: str, objective: str, trial: int,
           params: dict[str, Any], cells: Sequence[Cell]) -> dict[str, Any]:
    return dict(task=Path(task).stem, model=Path(model).stem, objective=Path(objective).stem,
                trial=trial, params=params, seeds=[c.seed for c in cells],
                run_ids=[c.run_id for c in cells], results=f"trials/t{trial:03d}",
                skipped=bool(cells and cells[0].skip_reason))


def trial_cells(part: Matrix, task: str, model: str, objective: str, trial: int,
                params: dict[str, Any], out: Path, device: str, source: str = "") -> list[Cell]:
    """The cells of one trial (one per tuning seed), validation only. A search-space key that is
    not a valid binding is reported at its line of the sweep file `source`."""
    narrow = replace(part, tasks=[task], models=[model], objectives=[objective])
    bindings = [binding_text(k, v) for k, v in sorted(params.items())]
    bindings.append(binding_text(EVAL_SPLIT, "val"))
    try:
        cells = expand_cells(narrow, out / f"trials/t{trial:03d}", (), bindings, device)
    except ConfigError as err:
        bad = next((k for k in params if k in str(err)), None)
        where = line_of(source, repr(bad)) if bad and source else source or "sweep"
        lines = str(err).splitlines()
        hint = "".join(f"; {line.strip()}" for line in lines[1:] if "did you mean" in line)
        raise ConfigError(f"{where}: objective {objective!r}, trial {trial}, task {task!r}: "
                          f"{lines[0]}{hint}") from None
    return [replace(c, eval_split="val") for c in cells]


def run_cells(cells: Sequence[Cell], executor: str, jobs: int, threads: int) -> list[dict]:
    """Run the cells not yet done (skipped ones are recorded), then rebuild each results folder's
    tables. Returns the outcomes of the cells that ran."""
    from bench.executors import execute

    folders = sorted({c.results for c in cells})
    for folder in folders:
        clean_staging(Path(folder))
    for cell in cells:
        if cell.skip_reason:
            record_status(Path(cell.results), cell, "skipped", cell.skip_reason)
    todo = [c for c in cells if not c.skip_reason and not is_done(Path(c.results), c.run_id, c.key)]
    print(f"{len(cells)} cells: {len(todo)} to run, {len(cells) - len(todo)} done or skipped")
    outcomes = list(execute(todo, executor, jobs, threads)) if todo else []
    for folder in folders:
        collect(Path(folder))
    failed = [o for o in outcomes if o["status"] != "done"]
    for outcome in failed:
        print(f"  {outcome['run_id']}: {outcome['status']}: {outcome['reason']}", file=sys.stderr)
    return outcomes


def phase_tune(parts: Sequence[Matrix], sweep: Sweep, out: Path, args: argparse.Namespace) -> int:
    for part in parts:
        check_budgets(sweep, [Path(o).stem for o in part.objectives], args.allow_unequal_budgets)
    if sweep.sampler == "tpe":
        return _tune_sequential(parts, sweep, out, args)
    points = sample_params(sweep, list(sweep.spaces))
    cells, manifest = [], []
    for part, task, model, objective in combinations(parts):
        name = Path(objective).stem
        for trial, params in enumerate(points[name]):
            made = trial_cells(part, task, model, objective, trial, params, out, args.device,
                               sweep.source)
            cells += made
            manifest.append(_entry(part, task, model, objective, trial, params, made))
    if args.dry_run:
        return _print_dry(cells)
    atomic_write_text(out / "trials.json", json.dumps(manifest, indent=1) + "\n")
    outcomes = run_cells(cells, args.executor, args.jobs, args.threads)
    return 1 if any(o["status"] != "done" for o in outcomes) else 0


def _tune_sequential(parts: Sequence[Matrix], sweep: Sweep, out: Path,
                     args: argparse.Namespace) -> int:
    """Optuna TPE: one trial index at a time for every (task, model, objective), each asked from
    the finished trials before it; already decided trials (trials.json) are reused on resume."""
    path = out / "trials.json"
    manifest = json.loads(path.read_text()) if path.is_file() else []
    decided = {(e["task"], e["model"], e["objective"], e["trial"]): e for e in manifest}
    status = 0
    for trial in range(max(sweep.budget(Path(o).stem) for p in parts for o in p.objectives)):
        cells = []
        scores = trial_scores(out, manifest, sweep) if manifest else None
        for part, task, model, objective in combinations(parts):
            name = Path(objective).stem
            if trial >= sweep.budget(name):
                continue
            key = (Path(task).stem, Path(model).stem, name, trial)
            if key in decided:
                params = decided[key]["params"]
            else:
                params = tpe_params(sweep, name, _history(scores, key), _direction(sweep, task),
                                    trial)
            made = trial_cells(part, task, model, objective, trial, params, out, args.device,
                               sweep.source)
            cells += made
            if key not in decided:
                decided[key] = _entry(part, task, model, objective, trial, params, made)
                manifest.append(decided[key])
        if args.dry_run:
            return _print_dry(cells)
        atomic_write_text(path, json.dumps(manifest, indent=1) + "\n")
        outcomes = run_cells(cells, args.executor, args.jobs, args.threads)
        status |= int(any(o["status"] != "done" for o in outcomes))
    return status


def _direction(sweep: Sweep, task: str) -> str:
    return sweep.metric_of(Path(task).stem)[1]


def _history(scores, key) -> list[tuple[dict, float]]:
    if scores is None or scores.empty:
        return []
    task, model, objective, _ = key
    mine = scores[(scores.task == task) & (scores.model == model) & (scores.objective == objective)]
    per_trial = mine.groupby("trial").agg(score=("score", "mean"), params=("params", "first"))
    return [(json.loads(p), float(s)) for s, p in zip(per_trial["score"], per_trial["params"])]


def _print_dry(cells: Sequence[Cell]) -> int:
    todo = [c for c in cells if not c.skip_reason and not is_done(Path(c.results), c.run_id, c.key)]
    for cell in cells:
        print(f"{cell.run_id:60s} {Path(cell.results).name} "
              f"{'skipped' if cell.skip_reason else 'to run' if cell in todo else 'done'}")
    print(f"{len(cells)} cells, {len(todo)} to run")
    return 0


def final_cells(parts: Sequence[Matrix], sweep: Sweep, out: Path, device: str) -> list[Cell]:
    """Winners on the fresh seeds (`final/`) and the one-shot defaults on the same seeds
    (`budget0/`, unless the sweep sets `budget0 = False`), all evaluated on the test split."""
    test = [binding_text(EVAL_SPLIT, "test")]
    cells = []
    for part, task, model, objective in combinations(parts):
        narrow = replace(part, tasks=[task], models=[model], objectives=[objective],
                         seeds=list(sweep.final_seeds))
        chosen = selected_path(out, Path(task).stem, Path(model).stem, Path(objective).stem)
        defaults = expand_cells(narrow, out / "budget0", (), test, device)
        if all(c.skip_reason for c in defaults):
            cells += defaults  # an incompatible combination: recorded as skipped, no winner
            continue
        if not chosen.is_file():
            raise ConfigError(f"{chosen}: no selected config; run `bench tune --phase select`")
        if sweep.budget0:
            cells += defaults
        cells += expand_cells(narrow, out / "final", (str(chosen),), test, device)
        for trial in _smaller_budget_trials(out, Path(task).stem, Path(model).stem,
                                            Path(objective).stem):
            path = selected_path(out, Path(task).stem, Path(model).stem, Path(objective).stem,
                                 trial)
            cells += expand_cells(narrow, out / f"budgets/t{trial:03d}", (str(path),), test,
                                  device)
    return cells


def _smaller_budget_trials(out: Path, task: str, model: str, objective: str) -> list[int]:
    """Trials that won a smaller budget but not the full one (they get final runs of their own)."""
    import pandas as pd

    path = out / "selected" / "budgets.csv"
    if not path.is_file():
        return []
    table = pd.read_csv(path)
    mine = table[(table.task == task) & (table.model == model) & (table.objective == objective)
                 & ~table.same_as_full]
    return sorted(set(mine["trial"].astype(int)))


def main(args: argparse.Namespace) -> int:
    matrix_path = resolve("matrices", args.matrix)
    out = Path(args.out) if args.out else REPO / "results" / "tune" / matrix_path.stem
    parts, sweep = load_plan(matrix_path)
    if args.estimate:
        from bench.tune_estimate import estimate

        print(estimate(parts, sweep, args.estimate, args.jobs).to_string())
        return 0
    if args.dry_run:
        return _phases(parts, sweep, out, args)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / SWEEP_COPY, Path(sweep.source).read_text())  # `report` reads it
    lock = FileLock(str(out / ".tune.lock"))  # one driver per tuning folder (staging clean-up)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        print(f"another `bench tune` is writing to {out}; waiting for it to finish",
              file=sys.stderr)
        lock.acquire()
    try:
        return _phases(parts, sweep, out, args)
    finally:
        lock.release()


def _phases(parts: Sequence[Matrix], sweep: Sweep, out: Path, args: argparse.Namespace) -> int:
    status = 0
    begin = time.time()
    if args.phase in ("tune", "all"):
        status |= phase_tune(parts, sweep, out, args)
        if args.dry_run:
            return status
    if args.phase in ("select", "all") and not args.dry_run:  # a dry run writes nothing
        chosen = select(out, sweep)
        print(f"selected {len(chosen)} configs -> {out / 'selected'}")
    if args.phase in ("final", "all"):
        cells = final_cells(parts, sweep, out, args.device)
        if args.dry_run:
            return _print_dry(cells)
        outcomes = run_cells(cells, args.executor, args.jobs, args.threads)
        status |= int(any(o["status"] != "done" for o in outcomes))
        from bench.report_protocol import write_protocol_report

        report = write_protocol_report(out, sweep)
        print(f"protocol report -> {report}")
    print(f"bench tune {args.phase} finished in {time.time() - begin:.1f} s -> {out}")
    return status


def add_parser(sub) -> None:
    """The `tune` verb's arguments (registered by `bench.cli`)."""
    from bench.executors import EXECUTORS

    tune = sub.add_parser("tune", help="tune -> select -> final on a matrix with a sweep")
    tune.add_argument("matrix", help="matrix gin file that names its sweep")
    tune.add_argument("--phase", choices=PHASES, default="all")
    tune.add_argument("--out", type=Path, help="folder (default results/tune/<matrix>)")
    tune.add_argument("--executor", choices=EXECUTORS, default="sequential")
    tune.add_argument("--jobs", type=int, default=1)
    tune.add_argument("--threads", type=int, default=0)
    tune.add_argument("--device", default="auto")
    tune.add_argument("--dry-run", action="store_true", help="print the cells, run nothing")
    tune.add_argument("--estimate", type=Path, metavar="RESULTS",
                      help="print the cells of every phase and their time from the per-cell "
                           "wall times measured in RESULTS/runs.parquet (runs nothing)")
    tune.add_argument("--allow-unequal-budgets", action="store_true",
                      help="run even when objectives have different numbers of trials")
