"""The one path that runs cells, shared by `run`, `evaluate` and `tune`.

`plan(cells)` takes the cells of one command (any number of results folders: `tune` writes one
folder per trial) and does step 1, reading each run folder once; `run_cells(plan)` does the rest,
in this order:

1. de-duplicates them by (results folder, run id): a fine-tuning parent requested by several
   children, or by the matrix itself, runs once; a cell whose finished run differs only in
   evaluation settings (`bench.runner.identity`) is marked `evaluate_only`: its saved weights are
   re-evaluated, nothing is retrained;
2. removes the staging folders that killed workers left in each results folder;
3. records each skipped cell (`skipped` with its reason);
4. runs the cells that are not done, in waves: parents (`init_from`) first, each wave to its end
   before the next starts, on the named executor with the matrix's `Resources` (time limit, GPUs,
   CPUs, memory) and each cell's own timeout;
5. rebuilds each folder's tables (never dropping the rows of a done run).

The caller holds the folder's lock (`folder_lock`) so that step 2 never touches a live run's
staging folder.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from bench.runner.cell import Cell
from bench.runner.executors import Resources, execute
from bench.runner.store import (
    clean_staging,
    has_status,
    inspect_run,
    record_status,
    runs_dir,
    tables_current,
)
from bench.runner.writable import raise_for_storage
from bench.schema import Status


@contextmanager
def folder_lock(folder: Path, name: str, verb: str) -> Iterator[None]:
    """Hold `folder/name` (a file lock) for the block; say so and wait when another `verb` holds
    it. Creates `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(folder / name))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        print(f"another `bench {verb}` is writing to {folder}; waiting for it to finish "
              f"(lock file {lock.lock_file})", file=sys.stderr)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def unique_cells(cells: Sequence[Cell]) -> list[Cell]:
    """`cells` without repeats of the same (results folder, run id), first occurrence kept."""
    seen: dict[tuple[str, str], Cell] = {}
    for cell in cells:
        seen.setdefault((str(cell.results), cell.run_id), cell)
    return list(seen.values())


def waves(cells: Sequence[Cell]) -> list[list[Cell]]:
    """`cells` in dependency order: cells without a parent among them, then their children (a
    parent lives in its child's results folder)."""
    ids = {(str(c.results), c.run_id) for c in cells}
    first = [c for c in cells if (str(c.results), c.parent) not in ids]
    second = [c for c in cells if (str(c.results), c.parent) in ids]
    return [w for w in (first, second) if w]


@dataclass
class Plan:
    """What `run_cells` will do: every (unique) cell, those to run (to train, or to re-evaluate
    from saved weights: `Cell.evaluate_only`), those skipped."""

    cells: list[Cell]
    todo: list[Cell]
    skipped: list[Cell] = field(default_factory=list)

    @property
    def to_evaluate(self) -> list[Cell]:
        return [c for c in self.todo if c.evaluate_only]

    @property
    def to_train(self) -> list[Cell]:
        return [c for c in self.todo if not c.evaluate_only]

    @property
    def folders(self) -> list[Path]:
        return sorted({Path(c.results) for c in self.cells})

    @property
    def settled(self) -> bool:
        """Nothing to run and every skipped cell recorded as skipped (same key and reason):
        carrying out this plan writes no run folder."""
        return not self.todo and all(has_status(Path(c.results), c, Status.SKIPPED, c.skip_reason)
                                     for c in self.skipped)


def state_of(cell: Cell) -> str:
    """'done', 'evaluate' (a done run with the same training key: re-evaluate its weights) or
    'train'. One read of the run folder."""
    folder = runs_dir(Path(cell.results)) / cell.run_id
    if not folder.is_dir():
        return "train"
    state = inspect_run(folder)
    if state.is_done(cell.key):
        return "done"
    return "evaluate" if state.can_reevaluate(cell.train_key) else "train"


def plan(cells: Sequence[Cell]) -> Plan:
    """De-duplicate `cells` and find which are skipped, done, to re-evaluate and to train."""
    cells = unique_cells(cells)
    skipped = [c for c in cells if c.skip_reason]
    todo = []
    for cell in cells:
        if cell.skip_reason:
            continue
        state = state_of(cell)
        if state != "done":
            todo.append(replace(cell, evaluate_only=state == "evaluate"))
    return Plan(cells, todo, skipped)


def run_cells(work: Plan, executor: str = "sequential", jobs: int = 1,
              threads: int = 0, resources: Resources | None = None,
              on_outcome: Callable[[Cell | None, dict[str, Any]], None] | None = None,
              cell_progress: bool = False) -> list[dict[str, Any]]:
    """Carry out `work` (steps 2-5 above; `plan(cells)` makes it, reading each run folder once,
    or `bench evaluate` lists finished runs to re-evaluate as they are); returns the outcome of
    each cell that ran. `on_outcome(cell, outcome)` is called as each finishes (progress bars);
    `cell_progress` asks the sequential executor's child for a per-epoch bar."""
    removed = sum(clean_staging(folder) for folder in work.folders)
    if removed:
        print(f"removed {removed} incomplete run folder(s) left by an interrupted run")
    for cell in work.skipped:
        record_status(Path(cell.results), cell, Status.SKIPPED, cell.skip_reason)
    todo = [replace(c, progress=True) for c in work.todo] if cell_progress else work.todo
    if work.to_evaluate:
        print(f"{len(work.to_evaluate)} cell(s) differ from a finished run only in evaluation "
              "settings: re-evaluating their saved weights")
    by_id = {(str(c.results), c.run_id): c for c in todo}
    outcomes: list[dict[str, Any]] = []
    stream = _outcomes(todo, executor, jobs, threads, resources)
    try:
        for outcome in stream:
            raise_for_storage(outcome, len(outcomes))  # a full disk stops the matrix, one line
            outcomes.append(outcome)
            if on_outcome is not None:
                match = [c for (_, run_id), c in by_id.items() if run_id == outcome["run_id"]]
                on_outcome(match[0] if len(match) == 1 else None, outcome)
    except KeyboardInterrupt:
        stream.close()  # stops and reaps the workers before the message
        counts = Counter(o["status"] for o in outcomes)
        raise Interrupted(
            f"interrupted: {len(outcomes)} of {len(todo)} cell(s) finished ("
            f"{', '.join(f'{n} {s}' for s, n in counts.items()) or 'none'}), "
            f"{len(todo) - len(outcomes)} stopped or not started; run the same command again to "
            "resume (finished cells are kept and not re-run)") from None
    finally:
        stream.close()
    for folder in work.folders:
        if not outcomes and tables_current(folder):  # nothing changed: the tables are right
            continue
        from bench.runner.result_tables import (  # pandas: only when needed
            TablesWouldShrink,
            collect,
        )

        try:
            collect(folder)
        except TablesWouldShrink as err:
            print(f"the tables of {folder} were kept as they were: {err}", file=sys.stderr)
    return outcomes


class Interrupted(KeyboardInterrupt):
    """Ctrl-C while cells ran, saying what had finished (the command exits 130 with this line)."""


def _outcomes(todo: Sequence[Cell], executor: str, jobs: int, threads: int,
              resources: Resources | None) -> Iterator[dict[str, Any]]:
    """Every cell's outcome, parents (init_from) first: each wave runs to its end before the next
    starts. Closing this generator stops the running workers (`bench.runner.executors`)."""
    for wave in waves(todo):
        yield from execute(wave, executor, jobs, threads, resources)


def report_failed(outcomes: Sequence[dict[str, Any]]) -> int:
    """Print the cells that did not finish on stderr; 1 if there are any, else 0."""
    failed = [o for o in outcomes if o["status"] != Status.DONE]
    if failed:
        print(f"{len(failed)} cell(s) did not finish:", file=sys.stderr)
        for outcome in failed:
            print(f"  {outcome['run_id']}: {outcome['status']}: {outcome['reason']}",
                  file=sys.stderr)
    return int(bool(failed))
