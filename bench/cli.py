"""Command line: `python -m bench run|list|collect|catalog|report|tune|feasibility` (also `dlc-bench`).

What each command reads and writes:

* `run MATRIX`: checks every argument and builds every cell first (nothing is written on an
  error), then, holding the results folder's lock, runs the cells that are not done and rebuilds
  the tables (never dropping the rows of a done run; see `bench.result_tables`).
* `list RESULTS`, `report RESULTS`: read only (`report` writes its files under `--out`, default
  `RESULTS/report`).
* `collect RESULTS [--force]`: rebuilds the tables from the run folders.
* `catalog`: what can be run (reads gin/); `tune MATRIX`: see `bench.tune`.
* `feasibility MATRIX [--out DIR]`: see `bench.feasibility` (writes only `DIR/feasibility.csv`).

A bad argument or config is one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

from filelock import FileLock, Timeout

from bench.arguments import build_parser
from bench.config import ConfigError, resolve
from bench.executors import Resources, execute
from bench.result_tables import TablesWouldShrink, collect, read_tables
from bench.schema import Status
from bench.store import clean_staging, inspect_run, is_done, record_status, runs_dir

REPO = Path(__file__).resolve().parent.parent


class UsageError(RuntimeError):
    """A command that cannot do what it was asked (one line, exit code 2)."""


def _csv(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def cmd_run(args: argparse.Namespace) -> int:
    from bench.matrix import expand_cells, load_matrix, load_resources, restrict_tasks

    matrix_path = resolve("matrices", args.matrix)
    results = args.results or REPO / "results" / matrix_path.stem
    cells = []
    parts = load_matrix(matrix_path)
    if args.tasks and len(parts) > 1:  # each part keeps its own family's models
        parts = restrict_tasks(parts, _csv(args.tasks), matrix_path)
        args.tasks = None
    for matrix in parts:
        for axis in ("tasks", "models", "objectives"):
            if getattr(args, axis):
                setattr(matrix, axis, _csv(getattr(args, axis)))
        if args.seeds:
            matrix.seeds = args.seeds
        if args.scale:
            matrix.scale = args.scale
        if args.timeout is not None:
            matrix.timeout = args.timeout
        cells += expand_cells(matrix, results, args.gin_file, args.gin_bindings, args.device)
    unique = {c.run_id: c for c in cells}  # overrides can make two parts name the same cell
    cells = list(unique.values())
    resources = load_resources(matrix_path)

    statuses = {}
    for cell in cells:
        if cell.skip_reason:
            statuses[cell.run_id] = f"skipped: {cell.skip_reason}"
            continue
        folder = runs_dir(results) / cell.run_id
        state = inspect_run(folder) if folder.is_dir() else None  # one read per folder
        if state is not None and state.is_done(cell.key):
            statuses[cell.run_id] = str(Status.DONE)
        else:
            was = "" if state is None else "damaged" if state.damaged else state.record["status"]
            statuses[cell.run_id] = "to run" + (f" (was {was})" if was else "")
    if args.dry_run:
        for cell in cells:
            print(f"{cell.run_id:60s} {statuses[cell.run_id]}")
        print(f"{len(cells)} cells: " + ", ".join(
            f"{n} {s}" for s, n in Counter(s.split(":")[0].split(" (")[0]
                                          for s in statuses.values()).items()))
        return 0

    todo = [c for c in cells if statuses[c.run_id].startswith("to run")]
    results.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(results / ".run.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        print(f"another `bench run` is writing to {results}; waiting for it to finish "
              f"(lock file {lock.lock_file})", file=sys.stderr)
        lock.acquire()
    try:
        return _run_cells(args, results, cells, todo, resources)
    finally:
        lock.release()


def _run_cells(args: argparse.Namespace, results: Path, cells: list, todo: list,
               resources: Resources) -> int:
    """The part of `run` that writes: one driver at a time per results folder (a file lock), so
    removing staging folders left by killed workers never touches a live run's."""
    from bench.matrix import waves

    todo = [c for c in todo if not is_done(results, c.run_id, c.key)]  # done while we waited?
    if args.executor == "sequential" and not args.no_progress and sys.stderr.isatty():
        todo = [replace(c, progress=True) for c in todo]
    skipped = [c for c in cells if c.skip_reason]
    removed = clean_staging(results)
    if removed:
        print(f"removed {removed} incomplete run folder(s) left by an interrupted run")
    print(f"{len(cells)} cells: {len(cells) - len(todo) - len(skipped)} done, "
          f"{len(skipped)} skipped, {len(todo)} to run -> {results}")
    for cell in skipped:
        print(f"  skipped {cell.run_id}: {cell.skip_reason}")
        record_status(results, cell, Status.SKIPPED, cell.skip_reason)
    begin = time.time()
    # parents (init_from) first: each wave runs to its end before the next starts
    outcomes = itertools.chain.from_iterable(
        execute(wave, args.executor, args.jobs, args.threads, resources) for wave in waves(todo))
    failed = []
    progress = None
    if not args.no_progress and todo:
        from tqdm import tqdm

        progress = tqdm(total=len(todo), desc="matrix", unit="cell")
    by_id = {c.run_id: c for c in todo}
    for outcome in outcomes:
        if outcome["status"] != Status.DONE:
            failed.append(outcome)
        if progress is not None:
            progress.set_postfix_str(f"{_label(by_id.get(outcome['run_id']), outcome['run_id'])} "
                                     f"{outcome['status']}")
            progress.update()
    if progress is not None:
        progress.close()
    try:
        collect(results)
        print(f"ran {len(todo)} cells in {time.time() - begin:.1f} s; "
              f"tables: {results}/results.parquet")
    except TablesWouldShrink as err:
        print(f"ran {len(todo)} cells in {time.time() - begin:.1f} s; {err}", file=sys.stderr)
    if failed:
        print(f"{len(failed)} cell(s) did not finish:", file=sys.stderr)
        for outcome in failed:
            print(f"  {outcome['run_id']}: {outcome['status']}: {outcome['reason']}",
                  file=sys.stderr)
        return 1
    return 0


def _label(cell, run_id: str) -> str:
    """What tells cells apart in a progress bar: `task model objective s<seed>`."""
    if cell is None:
        return run_id
    return f"{cell.task} {cell.model} {cell.objective} s{cell.seed}"


def cmd_catalog(args: argparse.Namespace) -> int:
    from bench.catalog import catalog, format_catalog

    print(format_catalog(catalog()), end="")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    _, runs = read_tables(args.results)
    if runs.empty:
        print(f"no runs in {args.results}")
        return 0
    from tabulate import tabulate

    cols = [c for c in ("run_id", "status", "reason", "threads", "wall_time_s") if c in runs]
    table = runs[cols].astype(object).where(runs[cols].notna(), "")
    print(tabulate(table, headers=cols, tablefmt="github", showindex=False))
    return 0


def cmd_collect(args: argparse.Namespace) -> int:
    try:
        _, runs = collect(args.results, force=args.force)
    except TablesWouldShrink as err:
        raise UsageError(str(err)) from None
    counts = Counter(runs["status"]) if not runs.empty else Counter()
    print(f"{args.results}: {len(runs)} runs ({', '.join(f'{n} {s}' for s, n in counts.items())})")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    import warnings

    from bench.report import write_report
    from bench.report.data import ReportInputError

    out = args.out or args.results / "report"
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            write_report(args.results, out, formats=_csv(args.format), baseline=args.baseline)
    except ReportInputError as err:
        raise UsageError(str(err)) from None
    except PermissionError as err:
        raise UsageError(f"cannot write the report to {out} ({err.strerror}: {err.filename}); "
                         "choose another folder with --out") from None
    for warning in caught:
        print(f"warning: {warning.message}", file=sys.stderr)
    print(f"report written to {out}")
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from bench.tune import main as tune_main

    return tune_main(args)


def cmd_feasibility(args: argparse.Namespace) -> int:
    from bench.feasibility import main as feasibility_main

    return feasibility_main(args)


COMMANDS = {"run": cmd_run, "list": cmd_list, "collect": cmd_collect, "catalog": cmd_catalog,
            "report": cmd_report, "tune": cmd_tune, "feasibility": cmd_feasibility}


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser(__doc__.split("\n", 1)[0]).parse_args(argv)
    except SystemExit as stop:  # argparse: --help (0) or a bad argument (2, already printed)
        return int(stop.code or 0)
    try:
        return COMMANDS[args.command](args)
    except ConfigError as err:
        print(f"config error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    except UsageError as err:
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
