"""The cells of `bench tune`'s trials: one trial's validation-only cells (full budget or a halving
rung), its `trials.json` entry, and running a batch of cells (used by `bench.protocol.tune` and
`bench.protocol.rungs`)."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.protocol.sweep import EVAL_SPLIT, binding_text, line_of
from bench.protocol.verdicts import is_reference
from bench.runner.cell import Cell
from bench.runner.cell_runner import plan, run_cells
from bench.runner.config import ConfigError
from bench.runner.executors import Resources
from bench.runner.matrix import Matrix, combinations, expand_cells
from bench.runner.writable import check_results_folder, check_run_ids

STOP_EPOCH = "bench.run.Experiment.stop_epoch"  # a halving rung's binding (bench.protocol.halving)


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


def run_trial_cells(cells: Sequence[Cell], args: Any, resources: Resources | None) -> list[dict]:
    """Run the cells not yet done through the one cell-running path (`bench.runner.cell_runner`:
    de-duplication, parents first, skip records, staging clean-up, the matrix's resources), then
    rebuild each results folder's tables. Returns the outcomes of the cells that ran."""
    work = plan(cells)
    print(f"{len(work.cells)} cells: {len(work.todo)} to run, "
          f"{len(work.cells) - len(work.todo)} done or skipped")
    outcomes = run_cells(work, args.executor, args.jobs, args.threads, resources)
    for outcome in outcomes:
        if outcome["status"] != "done":
            print(f"  {outcome['run_id']}: {outcome['status']}: {outcome['reason']}",
                  file=sys.stderr)
    return outcomes


def print_dry(cells: Sequence[Cell], out: Path) -> int:
    """List the cells of a dry run (each once) and whether each is to run, done or skipped,
    after the checks a real run makes first (`out` writable, every run id fits a file name)."""
    check_results_folder(out)
    check_run_ids([c.run_id for c in cells], out)
    work = plan(cells)
    todo = {(c.results, c.run_id) for c in work.todo}
    for cell in work.cells:
        state = ("skipped" if cell.skip_reason
                 else "to run" if (cell.results, cell.run_id) in todo else "done")
        print(f"{cell.run_id:60s} {Path(cell.results).name} {state}")
    print(f"{len(work.cells)} cells, {len(todo)} to run")
    return 0


def tuned_combinations(parts: Sequence[Matrix]) -> Iterator[tuple[Matrix, str, str, str]]:
    """`combinations` without the non-learned references (`verdicts.is_reference`): those that
    get trials (a reference runs its defaults in the final phase)."""
    for part, task, model, objective in combinations(parts):
        if not is_reference(task, model):
            yield part, task, model, objective
