"""Command line: `python -m bench run|list|collect|catalog|report|tune` (also `dlc-bench`).

What each command reads and writes:

* `run MATRIX`: checks every argument and builds every cell first (nothing is written on an
  error), then, holding the results folder's lock, runs the cells that are not done and rebuilds
  the tables (never dropping the rows of a done run; see `bench.result_tables`).
* `list RESULTS`, `report RESULTS`: read only (`report` writes its files under `--out`, default
  `RESULTS/report`).
* `collect RESULTS [--force]`: rebuilds the tables from the run folders.
* `catalog`: what can be run (reads gin/); `tune MATRIX`: see `bench.tune`.

A bad argument or config, or a file-system error (disk full, read-only file system, ...), is one
line on stderr and exit code 2. Ctrl-C stops the workers and exits with code 130 and one line
saying what finished; the same command resumes. Only `bench.arguments` and `bench.config` are
imported up front, so `--help` needs neither torch nor pandas.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

from bench.arguments import build_parser
from bench.config import ConfigError, resolve
from bench.writable import StorageError, storage_error

REPO = Path(__file__).resolve().parent.parent
INTERRUPTED = 130  # the shell's code for a command stopped by SIGINT


class UsageError(RuntimeError):
    """A command that cannot do what it was asked (one line, exit code 2)."""


class Interrupted(RuntimeError):
    """Ctrl-C during `run`, with what had finished (one line, exit code 130)."""


def _csv(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def cmd_run(args: argparse.Namespace) -> int:
    from filelock import FileLock, Timeout

    from bench.matrix import expand_cells, load_matrix, load_resources, restrict_tasks
    from bench.schema import Status
    from bench.store import inspect_run, runs_dir
    from bench.writable import check_results_folder, check_run_ids

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
    check_results_folder(results)  # before any cell runs, --dry-run included
    check_run_ids(unique, results)

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
               resources) -> int:
    """The part of `run` that writes: one driver at a time per results folder (a file lock), so
    removing staging folders left by killed workers never touches a live run's."""
    from bench.result_tables import TablesWouldShrink, collect
    from bench.schema import Status
    from bench.store import clean_staging, is_done, record_status

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
    failed = _drive(todo, args, resources)
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


def _outcomes(todo: Sequence, args: argparse.Namespace, resources) -> Iterator[dict]:
    """Every cell's outcome, parents (init_from) first: each wave runs to its end before the next
    starts. Closing this generator stops the running workers (`bench.executors`)."""
    from bench.executors import execute
    from bench.matrix import waves

    for wave in waves(todo):
        yield from execute(wave, args.executor, args.jobs, args.threads, resources)


def _drive(todo: Sequence, args: argparse.Namespace, resources) -> list[dict]:
    """Run `todo`; returns the outcomes of the cells that did not finish `done`. Ctrl-C stops the
    workers and raises `Interrupted`; a worker that cannot write raises `StorageError`."""
    from bench.schema import Status
    from bench.writable import raise_for_storage

    failed, finished = [], Counter()
    progress = None
    if not args.no_progress and todo:
        from tqdm import tqdm

        progress = tqdm(total=len(todo), desc="matrix", unit="cell")
    by_id = {c.run_id: c for c in todo}
    outcomes = _outcomes(todo, args, resources)
    try:
        for outcome in outcomes:
            raise_for_storage(outcome, sum(finished.values()))
            finished[outcome["status"]] += 1
            if outcome["status"] != Status.DONE:
                failed.append(outcome)
            if progress is not None:
                progress.set_postfix_str(
                    f"{_label(by_id.get(outcome['run_id']), outcome['run_id'])} "
                    f"{outcome['status']}")
                progress.update()
    except KeyboardInterrupt:
        outcomes.close()  # stops and reaps the workers before the message
        counts = ", ".join(f"{n} {s}" for s, n in finished.items()) or "none"
        raise Interrupted(
            f"interrupted: {sum(finished.values())} of {len(todo)} cell(s) finished ({counts}), "
            f"{len(todo) - sum(finished.values())} stopped or not started; run the same command "
            "again to resume (finished cells are kept and not re-run)") from None
    finally:
        outcomes.close()
        if progress is not None:
            progress.close()
    return failed


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
    from bench.result_tables import read_tables

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
    from bench.result_tables import TablesWouldShrink, collect

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
    if args.baseline is not None:
        _check_baseline(args.results, args.baseline)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            write_report(args.results, out, formats=args.format, baseline=args.baseline or "plain")
    except ReportInputError as err:
        raise UsageError(str(err)) from None
    except OSError as err:
        if not storage_error(err):
            raise
        raise UsageError(f"cannot write the report to {out}: {storage_error(err)}; "
                         "choose another folder with --out") from None
    for warning in caught:
        print(f"warning: {warning.message}", file=sys.stderr)
    print(f"report written to {out}")
    return 0


def _check_baseline(results: Path, baseline: str) -> None:
    """`UsageError` listing the objectives of `results` unless `baseline` is one of them."""
    from bench.result_tables import read_tables

    _, runs = read_tables(results)
    objectives = sorted(set(runs["objective"].dropna())) if "objective" in runs else []
    if baseline not in objectives:
        raise UsageError(f"--baseline {baseline!r} is not an objective of {results}; choose from "
                         f"{', '.join(objectives) or '(none: no runs yet)'}")


def cmd_tune(args: argparse.Namespace) -> int:
    from bench.tune import main as tune_main

    return tune_main(args)


COMMANDS = {"run": cmd_run, "list": cmd_list, "collect": cmd_collect, "catalog": cmd_catalog,
            "report": cmd_report, "tune": cmd_tune}


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser(__doc__.split("\n", 1)[0]).parse_args(argv)
    except SystemExit as stop:  # argparse: --help (0) or a bad argument (2, already printed)
        return int(stop.code or 0)
    try:
        return COMMANDS[args.command](args)
    except ConfigError as err:
        return _one_line("config error", err, 2)
    except (UsageError, StorageError) as err:
        return _one_line("error", err, 2)
    except Interrupted as err:
        return _one_line("", err, INTERRUPTED)
    except KeyboardInterrupt:
        return _one_line("", f"interrupted: `{args.command}` stopped; what it had written is "
                             "complete (writes are atomic); run the same command again", INTERRUPTED)
    except OSError as err:
        if not storage_error(err):
            raise
        return _one_line("error", f"cannot write: {storage_error(err)}", 2)


def _one_line(prefix: str, message: object, code: int) -> int:
    text = " ".join(str(message).split())
    print(f"{prefix}: {text}" if prefix else text, file=sys.stderr)
    return code
