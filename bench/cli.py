"""Command line: `python -m bench run|list|catalog|report|tune` (also installed as `dlc-bench`)."""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

from filelock import FileLock, Timeout

from bench.config import ConfigError, resolve
from bench.executors import EXECUTORS, execute
from bench.schema import Status
from bench.store import clean_staging, collect, is_done, read_run, record_status

REPO = Path(__file__).resolve().parent.parent


def _csv(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dlc-bench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run (or resume) an experiment matrix")
    run.add_argument("matrix", help="matrix gin file (path or name under gin/matrices/)")
    run.add_argument("--results", type=Path, help="results folder (default results/<matrix>)")
    run.add_argument("--tasks", help="comma-separated task gin files: replace the task axis")
    run.add_argument("--models", help="comma-separated model gin files: replace the model axis")
    run.add_argument("--objectives", help="comma-separated objective gin files: replace that axis")
    run.add_argument("--seeds", help="comma-separated seeds, e.g. 0,1,2")
    run.add_argument("--scale", choices=["smoke", "cpu", "paper"], help="replace the matrix scale")
    run.add_argument("--gin_file", action="append", default=[], help="extra gin file (repeatable)")
    run.add_argument("--gin_bindings", action="append", default=[],
                     help="extra binding, e.g. \"bench.run.Experiment.epochs = 2\" (repeatable)")
    run.add_argument("--executor", choices=EXECUTORS, default="sequential",
                     help="where cells run: sequential (this process, default), local (a pool of "
                          "--jobs fresh processes), submitit (SLURM job arrays), ray (Ray tasks)")
    run.add_argument("--jobs", type=int, default=1, help="parallel cells (local/submitit/ray)")
    run.add_argument("--threads", type=int, default=0,
                     help="torch threads per cell (default: cores / jobs)")
    run.add_argument("--device", default="auto",
                     help="auto (CUDA when torch sees a GPU, else CPU; default) | cpu | cuda | "
                          "cuda:N (the N-th visible GPU; the local executor pins one GPU per "
                          "worker itself)")
    run.add_argument("--dry-run", action="store_true", help="print every cell's status, run nothing")
    run.add_argument("--no-progress", action="store_true",
                     help="no progress bars (default: one bar over the cells, and a per-epoch bar "
                          "with the sequential executor on a terminal)")

    lst = sub.add_parser("list", help="cells of a results folder with status and reason")
    lst.add_argument("results", type=Path)

    sub.add_parser("catalog", help="what can be run: tasks, models, objectives, scales and "
                                   "matrices under gin/, each with the first line of its comment")

    rep = sub.add_parser("report", help="tables and figures from a results folder")
    rep.add_argument("results", type=Path)
    rep.add_argument("--out", type=Path, help="output folder (default RESULTS/report)")
    rep.add_argument("--format", default="md,tex,csv", help="table formats")
    rep.add_argument("--baseline", default="plain", help="objective the others are compared with")

    from bench.tune import add_parser as add_tune

    add_tune(sub)
    return parser


def cmd_run(args: argparse.Namespace) -> int:
    from bench.matrix import expand_cells, load_matrix, restrict_tasks

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
            matrix.seeds = [int(s) for s in _csv(args.seeds)]
        if args.scale:
            matrix.scale = args.scale
        cells += expand_cells(matrix, results, args.gin_file, args.gin_bindings, args.device)
    unique = {c.run_id: c for c in cells}  # overrides can make two parts name the same cell
    cells = list(unique.values())

    statuses = {}
    for cell in cells:
        if cell.skip_reason:
            statuses[cell.run_id] = f"skipped: {cell.skip_reason}"
        elif is_done(results, cell.run_id, cell.key):
            statuses[cell.run_id] = str(Status.DONE)
        else:
            previous = read_run(results, cell.run_id)
            statuses[cell.run_id] = "to run" + (f" (was {previous['status']})" if previous else "")
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
        return _run_cells(args, results, cells, todo, statuses)
    finally:
        lock.release()


def _run_cells(args: argparse.Namespace, results: Path, cells: list, todo: list,
               statuses: dict[str, str]) -> int:
    """The part of `run` that writes: one driver at a time per results folder (a file lock), so
    removing staging folders left by killed workers never touches a live run's."""
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
    from bench.matrix import waves

    # parents (init_from) first: each wave runs to its end before the next starts
    outcomes = itertools.chain.from_iterable(
        execute(wave, args.executor, args.jobs, args.threads) for wave in waves(todo))
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
    collect(results)
    print(f"ran {len(todo)} cells in {time.time() - begin:.1f} s; tables: {results}/results.parquet")
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
    _, runs = collect(args.results)
    if runs.empty:
        print(f"no runs in {args.results}")
        return 0
    from tabulate import tabulate

    cols = ["run_id", "status", "reason", "wall_time_s"]
    print(tabulate(runs[cols].astype(object).fillna(""), headers=cols, tablefmt="github", showindex=False))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    import warnings

    from bench.report import write_report
    from bench.report.data import ReportInputError

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = write_report(args.results, args.out, formats=_csv(args.format),
                               baseline=args.baseline)
    except ReportInputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for warning in caught:
        print(f"warning: {warning.message}", file=sys.stderr)
    print(f"report written to {out}")
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from bench.tune import main as tune_main

    return tune_main(args)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return {"run": cmd_run, "list": cmd_list, "catalog": cmd_catalog,
                "report": cmd_report, "tune": cmd_tune}[args.command](args)
    except ConfigError as err:
        print(f"config error: {err}", file=sys.stderr)
        return 2
