"""Command line: `python -m bench VERB` (also `dlc-bench VERB`), VERB one of those below.

What each command reads and writes:

* `run MATRIX`: checks every argument and builds every cell first (nothing is written on an
  error), then, holding the results folder's lock, runs the cells that are not done and rebuilds
  the tables (never dropping the rows of a done run; see `bench.runner.result_tables`).
* `evaluate MATRIX|RESULTS`: re-evaluates finished runs from their saved weights (never trains):
  a matrix's cells that differ from their finished run only in evaluation settings, or every done
  run of a results folder.
* `estimate MATRIX [--from RESULTS | --calibrate]`: what `run` would cost (runs nothing).
* `list RESULTS`: reads only (on a tuning folder it points to `final/` and `trials/`).
* `report RESULTS`: reads RESULTS, writes `RESULTS/report` (or `--out`); on a tuning folder, the
  protocol report (`bench.report.tuned`).
* `collect RESULTS [--force]`: rebuilds the tables from the run folders.
* `catalog`: what can be run (reads gin/); `tune MATRIX`: see `bench.protocol.tune`.
* `feasibility MATRIX [--out DIR]`: see `bench.protocol.feasibility` (writes only `DIR/feasibility.csv`).

A bad argument or config, or a file-system error (disk full, read-only file system, ...), is one
line on stderr and exit code 2. Ctrl-C stops the workers and exits with code 130 and one line
saying what finished; the same command resumes. Only `bench.arguments` and `bench.runner.config` are
imported up front, so `--help` needs neither torch nor pandas.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

from bench.arguments import build_parser
from bench.runner.config import ConfigError, resolve
from bench.runner.writable import StorageError, storage_error

REPO = Path(__file__).resolve().parent.parent
INTERRUPTED = 130  # the shell's code for a command stopped by SIGINT


class UsageError(RuntimeError):
    """A command that cannot do what it was asked (one line, exit code 2)."""


def _csv(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def matrix_parts(args: argparse.Namespace, registry: bool = True) -> tuple[Path, Path, list]:
    """(matrix file, results folder, its parts with the command line's axes, seeds, scale and
    timeout) of a `run`/`evaluate` command line. `registry=False`: without torch; then `--tasks`
    on a matrix of parts (which needs each task's family) raises `ConfigError`."""
    from bench.runner.folders import is_tune_folder
    from bench.runner.matrix import load_matrix, restrict_tasks

    matrix_path = resolve("matrices", args.matrix)
    results = args.results or REPO / "results" / matrix_path.stem
    if is_tune_folder(results):
        raise UsageError(f"{results} holds a tuning folder (`bench tune`), not `run` results; "
                         "`run` writes only into a results folder: pass --results DIR")
    parts = load_matrix(matrix_path, registry=registry)
    axes = {axis: _csv(getattr(args, axis)) for axis in ("tasks", "models", "objectives")}
    if axes["tasks"] and len(parts) > 1:  # each part keeps its own family's models
        if not registry:
            raise ConfigError("--tasks on a matrix of parts: each task's family is needed")
        parts = restrict_tasks(parts, axes.pop("tasks"), matrix_path)
    for matrix in parts:
        for axis, names in axes.items():
            if names:
                setattr(matrix, axis, names)
        if args.seeds:
            matrix.seeds = args.seeds
        if args.scale:
            matrix.scale = args.scale
        if args.timeout is not None:
            matrix.timeout = args.timeout
    return matrix_path, results, parts


def expand_arguments(args: argparse.Namespace, prekeys: dict | None = None,
                     ) -> tuple[Path, Path, list]:
    """(matrix file, results folder, cells) of a `run`/`evaluate` command line: the matrix's
    parts (`matrix_parts`) with the command line's gin files and bindings, built
    (`prekeys`: see `bench.runner.matrix.expand_cells`)."""
    from bench.runner.cell_runner import unique_cells
    from bench.runner.matrix import expand_cells

    matrix_path, results, parts = matrix_parts(args)
    cells = []
    for matrix in parts:
        cells += expand_cells(matrix, results, args.gin_file, args.gin_bindings, args.device,
                              prekeys)
    return matrix_path, results, unique_cells(cells)  # overrides can make parts share a cell


def _build(args: argparse.Namespace) -> tuple[Path, list, dict, object]:
    """(results folder, cells, their pre-key entries, resources): the slow path of `run`."""
    from bench.runner.matrix import load_resources

    prekeys: dict = {}
    matrix_path, results, cells = expand_arguments(args, prekeys)
    return results, cells, prekeys, load_resources(matrix_path)


def cmd_run(args: argparse.Namespace) -> int:
    """`run`: the cells found in the results folder's pre-key index when every one of them is
    there (no build, no torch: `bench.runner.cached_cells`), else every cell built; what is done is
    decided from the run folders either way. Only built cells have their pre-keys recorded."""
    from bench.runner.cached_cells import cached_cells
    from bench.runner.cell_runner import folder_lock, plan
    from bench.runner.prekey import record
    from bench.runner.store import inspect_run, runs_dir
    from bench.runner.writable import check_results_folder, check_run_ids
    from bench.schema import Status

    try:
        _, results, parts = matrix_parts(args, registry=False)
        cached = cached_cells(parts, results, args.gin_file, args.gin_bindings, args.device)
    except ConfigError:  # the slow path below names the problem
        cached = None
    if cached is not None:
        cells, prekeys, resources = cached, {}, None
    else:
        results, cells, prekeys, resources = _build(args)
    check_results_folder(results)  # before any cell runs, --dry-run included
    check_run_ids([c.run_id for c in cells], results)

    statuses = {}
    for cell in cells:
        if cell.skip_reason:
            statuses[cell.run_id] = f"skipped: {cell.skip_reason}"
            continue
        folder = runs_dir(results) / cell.run_id
        state = inspect_run(folder) if folder.is_dir() else None  # one read per folder
        if state is not None and state.is_done(cell.key):
            statuses[cell.run_id] = str(Status.DONE)
        elif state is not None and state.can_reevaluate(cell.train_key):
            statuses[cell.run_id] = "to re-evaluate"
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

    with folder_lock(results, ".run.lock", "run"):
        work = plan(cells)  # what is done now (another driver may have changed cells meanwhile)
        if cached is not None and not work.settled:  # cached cells are stand-ins: never run them
            results, cells, prekeys, resources = _build(args)
            work = plan(cells)
        if prekeys:
            record(results, prekeys)
        return _run_cells(args, results, work, resources)


def _run_cells(args: argparse.Namespace, results: Path, work, resources) -> int:
    """The part of `run` that writes, through the one cell-running path (`bench.runner.cell_runner`),
    under the results folder's lock."""
    from bench.runner.cell_runner import report_failed, run_cells

    print(f"{len(work.cells)} cells: {len(work.cells) - len(work.todo) - len(work.skipped)} done, "
          f"{len(work.skipped)} skipped, {len(work.todo)} to run -> {results}")
    for cell in work.skipped:
        print(f"  skipped {cell.run_id}: {cell.skip_reason}")
    begin = time.time()
    progress = None
    if not args.no_progress and work.todo:
        from tqdm import tqdm

        progress = tqdm(total=len(work.todo), desc="matrix", unit="cell")

    def advance(cell, outcome) -> None:
        if progress is not None:
            progress.set_postfix_str(f"{_label(cell, outcome['run_id'])} {outcome['status']}")
            progress.update()

    cell_bars = args.executor == "sequential" and not args.no_progress and sys.stderr.isatty()
    outcomes = run_cells(work, args.executor, args.jobs, args.threads, resources,
                         on_outcome=advance, cell_progress=cell_bars)
    if progress is not None:
        progress.close()
    print(f"ran {len(outcomes)} cells in {time.time() - begin:.1f} s -> {results}")
    return report_failed(outcomes)


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Re-evaluate finished runs from their saved weights; never trains. A MATRIX: its cells
    whose finished run differs only in evaluation settings (cells that need training are listed
    and left alone). A RESULTS folder: every done run in it, from its saved config (after a change
    of evaluation code)."""
    from bench.runner.cell_runner import Plan, folder_lock, plan, report_failed, run_cells
    from bench.runner.matrix import load_resources
    from bench.runner.reevaluate import saved_cells

    target = Path(args.matrix)
    if target.is_dir():
        results, resources = target, None
        cells = saved_cells(results)
    else:
        matrix_path, results, cells = expand_arguments(args)
        resources = load_resources(matrix_path)
        work = plan(cells)
        if work.to_train:
            print(f"{len(work.to_train)} cell(s) are not trained yet (run `bench run` first):")
            for cell in work.to_train:
                print(f"  {cell.run_id}")
        cells = work.to_evaluate
    print(f"{len(cells)} run(s) to re-evaluate in {results}")
    if args.dry_run or not cells:
        for cell in cells:
            print(f"  {cell.run_id}")
        return 0
    with folder_lock(results, ".run.lock", "run"):
        outcomes = run_cells(Plan(cells, cells), args.executor, args.jobs, args.threads,
                             resources)
    print(f"re-evaluated {len(outcomes)} run(s) -> {results}")
    return report_failed(outcomes)


def cmd_estimate(args: argparse.Namespace) -> int:
    """Cells still to run, their time per cell and in total, and cells that need absent data."""
    from bench.protocol.estimate import estimate_cells, gpu_memory_mib
    from bench.runner.cell_runner import plan
    from bench.runner.executors import threads_per_cell

    _, results, cells = expand_arguments(args)
    todo = plan(cells).todo
    timings = args.timings
    if timings is None and not args.calibrate:
        if not (results / "runs.parquet").is_file():
            raise UsageError(f"no timings: {results} has no runs.parquet; give --from RESULTS "
                             "(a results folder with done runs) or --calibrate")
        timings = results
    gpu_mib = gpu_memory_mib(args.device) if args.calibrate else None
    table, missing = estimate_cells(todo, args.jobs, None if args.calibrate else timings,
                                    args.device if args.calibrate else None, gpu_mib,
                                    threads_per_cell(args.jobs, args.threads))
    if missing:
        print(f"{len(missing)} cell(s) need local data that is absent (left out below):")
        for run_id, why in missing:
            print(f"  {run_id}: {why}")
    print(f"{len(cells)} cells, {len(todo)} to run -> {results}")
    print(table.to_string(index=False))
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
    from bench.runner.folders import is_tune_folder, tune_hint
    from bench.runner.result_tables import read_tables

    if is_tune_folder(args.results):
        print(tune_hint(args.results))
        return 0
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
    from bench.runner.result_tables import TablesWouldShrink, collect

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
    from bench.report.index import TableLayout
    from bench.report.reading import ReportInputError
    from bench.runner.folders import is_tune_folder

    out = args.out or args.results / "report"

    tune_folder = is_tune_folder(args.results)
    if args.baseline is not None and not tune_folder:
        _check_baseline(args.results, args.baseline)
    layout = TableLayout(*(2 * [args.max_columns] if args.max_columns else []), wide=args.wide)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if tune_folder:
                _report_tune(args.results, out, args.baseline or "plain")
            else:
                write_report(args.results, out, formats=args.format,
                             baseline=args.baseline or "plain", layout=layout)
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
    from bench.runner.result_tables import read_tables

    _, runs = read_tables(results)
    objectives = sorted(set(runs["objective"].dropna())) if "objective" in runs else []
    if baseline not in objectives:
        raise UsageError(f"--baseline {baseline!r} is not an objective of {results}; choose from "
                         f"{', '.join(objectives) or '(none: no runs yet)'}")


def _report_tune(folder: Path, out: Path, baseline: str) -> None:
    """The protocol report of a tuning folder, from its copy of the sweep file."""
    from bench.protocol.sweep import load_sweep
    from bench.report.tuned import write_protocol_report
    from bench.runner.folders import SWEEP_COPY

    sweep = folder / SWEEP_COPY
    if not sweep.is_file():
        raise UsageError(f"{sweep}: not found; a tuning folder keeps the sweep file it ran with "
                         "there (`bench tune` writes it): copy that sweep file to this path")
    write_protocol_report(folder, load_sweep(sweep), baseline, report=out)


def cmd_tune(args: argparse.Namespace) -> int:
    from bench.protocol import tune
    from bench.report import tuned

    return tune.main(args, tuned.write_protocol_report)


def cmd_feasibility(args: argparse.Namespace) -> int:
    from bench.protocol.feasibility import main as feasibility_main

    return feasibility_main(args)


COMMANDS = {"run": cmd_run, "evaluate": cmd_evaluate, "estimate": cmd_estimate, "list": cmd_list,
            "collect": cmd_collect, "catalog": cmd_catalog, "report": cmd_report, "tune": cmd_tune,
            "feasibility": cmd_feasibility}


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
    except KeyboardInterrupt as err:  # `bench.runner.cell_runner.Interrupted` says what had finished
        return _one_line("", str(err) or f"interrupted: `{args.command}` stopped; what it had "
                         "written is complete (writes are atomic); run the same command again",
                         INTERRUPTED)
    except OSError as err:
        if not storage_error(err):
            raise
        return _one_line("error", f"cannot write: {storage_error(err)}", 2)


def _one_line(prefix: str, message: object, code: int) -> int:
    text = " ".join(str(message).split())
    print(f"{prefix}: {text}" if prefix else text, file=sys.stderr)
    return code
