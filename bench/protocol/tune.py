"""`bench tune MATRIX [--phase tune|select|final|all]`: the three phases of a fair comparison.

* **tune**: every trial of the matrix's sweep (`bench.protocol.sweep`) is an ordinary cell (cached,
  resumable, run by any executor) evaluated on the VALIDATION split only: each trial cell carries
  `bench.run.Experiment.eval_split = 'val'` and `Cell.eval_split = 'val'`, so a config that asks
  for the test split fails the cell instead of recording a test metric. Trial index t writes the
  results folder `trials/t<ttt>/` (one run per task, model, objective and tuning seed).
* **select**: `bench.protocol.select` picks the winner per (task, model, objective) on the validation metric
  and writes `selected/<task>-<model>-<objective>.gin`.
* **final**: each winner re-runs on the sweep's fresh `final_seeds` (paired across objectives by
  seed) with `eval_split = 'test'`, into `final/`; the one-shot defaults of the matrix run on the
  same seeds into `budget0/` (the "budget 0" row), and the winners of the sweep's smaller
  `budgets` that differ from the full budget's into `budgets/t<ttt>/`; then the protocol report
  (`bench.report.tuned`) is written.

Everything lands in `results/tune/<matrix>/` (or `--out`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from bench.protocol.rungs import tune_with_rungs
from bench.protocol.select import read_manifest, select, selected_path, trial_scores
from bench.protocol.sweep import (
    EVAL_SPLIT,
    MIN_TUNING_SEEDS,
    Sweep,
    binding_text,
    check_budgets,
    check_resolution,
    load_sweep,
    sample_params,
    tpe_params,
)
from bench.protocol.trial_cells import (
    manifest_entry,
    print_dry,
    run_trial_cells,
    trial_cells,
    tuned_combinations,
)
from bench.protocol.verdicts import is_reference
from bench.runner.cell import Cell
from bench.runner.config import ConfigError, resolve
from bench.runner.executors import Resources
from bench.runner.folders import SWEEP_COPY
from bench.runner.matrix import Matrix, combinations, expand_cells, load_matrix, load_resources
from bench.runner.store import atomic_write_text
from bench.runner.writable import check_results_folder, check_run_ids

REPO = Path(__file__).resolve().parents[2]


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
    if sweep.tuning_seeds:
        parts = [replace(part, seeds=list(sweep.tuning_seeds)) for part in parts]
    for part in parts:
        if len(set(part.seeds)) < MIN_TUNING_SEEDS:
            raise ConfigError(f"{sweep.source}: {len(set(part.seeds))} tuning seed(s) "
                              f"{list(part.seeds)}; selection needs at least {MIN_TUNING_SEEDS} "
                              "(set bench.sweep.Sweep.tuning_seeds)")
        reused = sorted(set(part.seeds) & set(sweep.final_seeds))
        if reused:
            raise ConfigError(f"{sweep.source}: final_seeds {reused} are also tuning seeds of "
                              f"{matrix_path}; the final phase needs fresh seeds")
    return parts, sweep


class OutLock:
    """The tuning folder's lock (one driver per folder: staging clean-up), taken when the first
    file is about to be written, so a command refused before that (a bad sweep, a bad argument)
    leaves no folder and no lock file behind. `hold()` before writing; `release()` at the end."""

    def __init__(self, out: Path, first_write=None) -> None:
        self.out, self.lock, self.first_write = out, None, first_write

    def hold(self) -> None:
        if self.lock is not None:
            return
        from filelock import FileLock, Timeout

        self.out.mkdir(parents=True, exist_ok=True)
        self.lock = FileLock(str(self.out / ".tune.lock"))
        try:
            self.lock.acquire(timeout=0)
        except Timeout:
            print(f"another `bench tune` is writing to {self.out}; waiting for it to finish",
                  file=sys.stderr)
            self.lock.acquire()
        if self.first_write is not None:
            self.first_write()

    def release(self) -> None:
        if self.lock is not None:
            self.lock.release()


def before_writing(cells: Sequence[Cell], out: Path, args: argparse.Namespace) -> None:
    """The checks `run` makes before anything runs (the folder is writable, every run id fits a
    file name), then the tuning folder's lock (`args.lock`)."""
    check_results_folder(out)
    check_run_ids([c.run_id for c in cells], out)
    args.lock.hold()


def phase_tune(parts: Sequence[Matrix], sweep: Sweep, out: Path, args: argparse.Namespace,
               resources: Resources | None = None) -> int:
    for part in parts:
        check_budgets(sweep, [Path(o).stem for o in part.objectives], args.allow_unequal_budgets)
    if sweep.sampler == "tpe":
        return _tune_sequential(parts, sweep, out, args, resources)
    points = sample_params(sweep, list(sweep.spaces))
    if not args.allow_unequal_budgets:
        check_resolution(sweep, points)
    plan = [(part, task, model, objective, trial, params)
            for part, task, model, objective in tuned_combinations(parts)
            for trial, params in enumerate(points[Path(objective).stem])]
    if sweep.rungs:
        if not args.dry_run:
            before_writing([], out, args)
        return tune_with_rungs(plan, sweep, out, args, resources)
    cells, manifest = [], []
    for part, task, model, objective, trial, params in plan:
        made = trial_cells(part, task, model, objective, trial, params, out, args.device,
                           sweep.source)
        cells += made
        manifest.append(manifest_entry(part, task, model, objective, trial, params, made))
    if args.dry_run:
        return print_dry(cells, out)
    before_writing(cells, out, args)
    atomic_write_text(out / "trials.json", json.dumps(manifest, indent=1) + "\n")
    outcomes = run_trial_cells(cells, args, resources)
    return 1 if any(o["status"] != "done" for o in outcomes) else 0


def _tune_sequential(parts: Sequence[Matrix], sweep: Sweep, out: Path,
                     args: argparse.Namespace, resources: Resources | None) -> int:
    """Optuna TPE: one trial index at a time for every (task, model, objective), each asked from
    the finished trials before it; already decided trials (trials.json) are reused on resume."""
    path = out / "trials.json"
    manifest = read_manifest(out, missing_ok=True)
    decided = {(e["task"], e["model"], e["objective"], e["trial"]): e for e in manifest}
    status = 0
    for trial in range(max(sweep.budget(Path(o).stem) for p in parts for o in p.objectives)):
        cells = []
        scores = trial_scores(out, manifest, sweep, strict=False) if manifest else None
        for part, task, model, objective in tuned_combinations(parts):
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
                decided[key] = manifest_entry(part, task, model, objective, trial, params, made)
                manifest.append(decided[key])
        if args.dry_run:
            return print_dry(cells, out)
        before_writing(cells, out, args)
        atomic_write_text(path, json.dumps(manifest, indent=1) + "\n")
        outcomes = run_trial_cells(cells, args, resources)
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


def final_cells(parts: Sequence[Matrix], sweep: Sweep, out: Path, device: str) -> list[Cell]:
    """Winners on the fresh seeds (`final/`) and the one-shot defaults on the same seeds
    (`budget0/`, unless the sweep sets `budget0 = False`), all evaluated on the test split. A
    non-learned reference (`verdicts.is_reference`: nothing to tune, no trials) runs its defaults in
    `final/`, beside the winners it is the floor of."""
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
        if is_reference(task, model):
            cells += expand_cells(narrow, out / "final", (), test, device)
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


def main(args: argparse.Namespace, write_report: Callable[..., Path]) -> int:
    """`bench tune`; `write_report(out, sweep, run_ids=, feasibility=)` writes the protocol report
    after the final phase (`bench.report.tuned.write_protocol_report`, passed in by the CLI: the
    protocol never imports the report)."""
    matrix_path = resolve("matrices", args.matrix)
    out = Path(args.out) if args.out else REPO / "results" / "tune" / matrix_path.stem
    parts, sweep = load_plan(matrix_path)
    if args.estimate:
        from bench.protocol.tune_estimate import estimate
        from bench.runner.executors import threads_per_cell

        print(estimate(parts, sweep, args.estimate, args.jobs, args.device,
                       threads_per_cell(args.jobs, args.threads)).to_string())
        return 0
    resources = load_resources(matrix_path)
    sweep_text = Path(sweep.source).read_text()
    # taken before the first write (a refused command leaves no lock); the folder keeps the
    # sweep file it ran with, which `report` reads
    args.lock = OutLock(out, lambda: atomic_write_text(out / SWEEP_COPY, sweep_text))
    try:
        return _phases(parts, sweep, out, args, resources, write_report)
    finally:
        args.lock.release()


def _phases(parts: Sequence[Matrix], sweep: Sweep, out: Path, args: argparse.Namespace,
            resources: Resources | None, write_report: Callable[..., Path]) -> int:
    status = 0
    begin = time.time()
    if args.phase in ("tune", "all"):
        status |= phase_tune(parts, sweep, out, args, resources)
        if args.dry_run:
            return status
    if args.phase in ("select", "all") and not args.dry_run:  # a dry run writes nothing
        check_results_folder(out)
        args.lock.hold()
        chosen = select(out, sweep)
        print(f"selected {len(chosen)} configs -> {out / 'selected'}")
    if args.phase in ("final", "all"):
        cells = final_cells(parts, sweep, out, args.device)
        if args.dry_run:
            return print_dry(cells, out)
        before_writing(cells, out, args)
        outcomes = run_trial_cells(cells, args, resources)
        status |= int(any(o["status"] != "done" for o in outcomes))
        report = write_report(out, sweep, run_ids={c.run_id for c in cells},
                                       feasibility=getattr(args, "feasibility", None))
        print(f"protocol report -> {report}")
    print(f"bench tune {args.phase} finished in {time.time() - begin:.1f} s -> {out}")
    return status
