"""The cells of `bench tune`'s trials: one trial's validation-only cells (full budget or a halving
rung), its `trials.json` entry, and running a batch of cells (used by `bench.tune` and
`bench.tune_rungs`)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.cell import Cell
from bench.config import ConfigError
from bench.matrix import Matrix, expand_cells
from bench.result_tables import collect
from bench.store import clean_staging, is_done, record_status
from bench.sweep import EVAL_SPLIT, binding_text, line_of

STOP_EPOCH = "bench.run.Experiment.stop_epoch"  # a halving rung's binding (bench.halving)


def manifest_entry(part: Matrix, task: str, model: str, objective: str, trial: int,
                   params: dict[str, Any], cells: Sequence[Cell]) -> dict[str, Any]:
    """The `trials.json` entry of one trial (its full-budget cells)."""
    return dict(task=Path(task).stem, model=Path(model).stem, objective=Path(objective).stem,
                trial=trial, params=params, seeds=[c.seed for c in cells],
                run_ids=[c.run_id for c in cells], results=f"trials/t{trial:03d}",
                skipped=bool(cells and cells[0].skip_reason))


def trial_cells(part: Matrix, task: str, model: str, objective: str, trial: int,
                params: dict[str, Any], out: Path, device: str, source: str = "",
                stop_epoch: int | None = None) -> list[Cell]:
    """The cells of one trial (one per tuning seed), validation only; with `stop_epoch`, its
    halving rung (the first `stop_epoch` epochs, in `rungs/e<epoch>/t<trial>`). A search-space key
    that is not a valid binding is reported at its line of the sweep file `source`."""
    narrow = replace(part, tasks=[task], models=[model], objectives=[objective])
    bindings = [binding_text(k, v) for k, v in sorted(params.items())]
    bindings.append(binding_text(EVAL_SPLIT, "val"))
    folder = out / f"trials/t{trial:03d}"
    if stop_epoch is not None:
        bindings.append(binding_text(STOP_EPOCH, stop_epoch))
        folder = out / f"rungs/e{stop_epoch:03d}/t{trial:03d}"
    try:
        cells = expand_cells(narrow, folder, (), bindings, device)
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


def print_dry(cells: Sequence[Cell]) -> int:
    """List the cells of a dry run and whether each is to run, done or skipped."""
    todo = [c for c in cells if not c.skip_reason and not is_done(Path(c.results), c.run_id, c.key)]
    for cell in cells:
        print(f"{cell.run_id:60s} {Path(cell.results).name} "
              f"{'skipped' if cell.skip_reason else 'to run' if cell in todo else 'done'}")
    print(f"{len(cells)} cells, {len(todo)} to run")
    return 0
