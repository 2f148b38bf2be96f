"""The command line's arguments and their checks, for every verb: every bad value is one line on
stderr, exit 2, before anything is read or written.

This module imports neither torch nor pandas (`--help` answers in well under a second): a CUDA
device is looked up, through torch, only when `--device cuda[:N]` is given.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import NoReturn

from bench.runner.cell import EXECUTORS, MAX_SEED

PHASES = ("tune", "select", "final", "all")
FORMATS = ("md", "tex", "csv")


class OneLineParser(argparse.ArgumentParser):
    """argparse, but an error is one line (`dlc-bench run: error: ...`) and exit code 2."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(2)


def _integer(text: str, low: int, high: int | None = None) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < low or (high is not None and value > high):
        bounds = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise argparse.ArgumentTypeError(f"expected an integer {bounds}, got {text!r}")
    return value


def seeds(text: str) -> list[int]:
    """'0,1,2' -> [0, 1, 2]; each an integer in [0, 2**32 - 1]."""
    values = [t.strip() for t in text.split(",") if t.strip()]
    if not values:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")
    return [_integer(v, 0, MAX_SEED) for v in values]


def positive(text: str) -> int:
    return _integer(text, 1)


def non_negative(text: str) -> int:
    return _integer(text, 0)


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected finite seconds >= 0 (0: none), got {text!r}")
    return value


def positive_real(text: str) -> float:
    """A finite float > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text!r}")
    return value


def device(text: str) -> str:
    """'auto', 'cpu', 'cuda' or 'cuda:N', the CUDA ones only where torch sees that device."""
    match = re.fullmatch(r"auto|cpu|cuda(?::(\d+))?", text)
    if not match:
        raise argparse.ArgumentTypeError(f"expected auto, cpu, cuda or cuda:N, got {text!r}")
    if text.startswith("cuda"):
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(match.group(1) or 0)
        if index >= count:
            raise argparse.ArgumentTypeError(
                f"{text!r} asked for, but torch sees {count} CUDA device(s)")
    return text


def _utf8_path(text: str) -> Path:
    """`text` as a path, refused when it holds bytes that are not UTF-8 (they cannot be printed,
    recorded in run.json or written to a table)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        shown = text.encode("utf-8", "surrogateescape").decode("ascii", "backslashreplace")
        raise argparse.ArgumentTypeError(
            f"{shown}: the path holds bytes that are not UTF-8; rename it") from None
    return Path(text)


def results_folder(text: str) -> Path:
    """A folder to write results into: absent (created later) or a folder, never a file."""
    path = _utf8_path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} exists and is not a folder")
    return path


def existing_results(text: str) -> Path:
    """A results folder to read: it must exist."""
    path = _utf8_path(text)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(
            f"{text} is not a results folder ({'not a folder' if path.exists() else 'not found'})")
    return path


def measured_results(text: str) -> Path | str:
    """A results folder with a `runs.parquet` (the wall times `tune --estimate` reads), or
    'calibrate' (time one cell of each combination on this machine instead)."""
    if text == "calibrate":
        return text
    path = existing_results(text)
    if not (path / "runs.parquet").is_file():
        raise argparse.ArgumentTypeError(f"{text} has no runs.parquet (run `collect` on it first)")
    return path


def formats(text: str) -> list[str]:
    """'md,tex' -> ['md', 'tex']; each one of `FORMATS`."""
    values = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [v for v in values if v not in FORMATS]
    if unknown or not values:
        raise argparse.ArgumentTypeError(
            f"unknown format {', '.join(unknown) or repr(text)}; choose from {', '.join(FORMATS)} "
            "(comma-separated)")
    return values


def add_execution(parser: argparse.ArgumentParser) -> None:
    """Where and how cells run: the arguments `run` and `tune` share, checked the same way."""
    parser.add_argument("--executor", choices=EXECUTORS, default="sequential",
                        help="where cells run: sequential (one fresh process per cell, default), "
                             "local (--jobs fresh processes at a time), submitit (SLURM job "
                             "arrays), ray (Ray tasks)")
    parser.add_argument("--jobs", type=positive, default=1,
                        help="parallel cells (local/submitit/ray)")
    parser.add_argument("--threads", type=non_negative, default=0,
                        help="torch threads per cell (default: cores / jobs)")
    parser.add_argument("--device", type=device, default="auto",
                        help="auto (CUDA when torch sees a GPU, else CPU; default) | cpu | cuda | "
                             "cuda:N (the N-th visible GPU; the local executor pins one GPU per "
                             "worker itself)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print every cell's status, run nothing")


def build_parser(description: str = "") -> argparse.ArgumentParser:
    parser = OneLineParser(prog="dlc-bench", description=description)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    run = sub.add_parser("run", help="run (or resume) an experiment matrix")
    _cell_arguments(run)
    evaluate = sub.add_parser(
        "evaluate", help="re-evaluate finished runs from their saved weights (never trains)")
    _cell_arguments(evaluate, "a matrix (its cells whose finished run differs only in evaluation "
                              "settings) or a results folder (every done run in it, as saved)")
    estimate = sub.add_parser("estimate", help="what `run` would cost: cells, cell-hours, wall "
                                               "time, cells per GPU (runs nothing)")
    _cell_arguments(estimate)
    estimate.add_argument("--from", dest="timings", type=existing_results, metavar="RESULTS",
                          help="seconds per cell from the done runs of this results folder")
    estimate.add_argument("--calibrate", action="store_true",
                          help="time a few training steps and one evaluation batch of each "
                               "(task, model, objective) on --device instead")

    lst = sub.add_parser("list", help="cells of a results folder with status and reason (reads "
                                      "only; on a tuning folder: where its runs are)")
    lst.add_argument("results", type=existing_results)

    sub.add_parser("catalog", help="what can be run: tasks, models, objectives, scales and "
                                   "matrices under gin/, each with the first sentence of its "
                                   "comment")

    col = sub.add_parser("collect", help="rebuild a results folder's tables from its run folders")
    col.add_argument("results", type=existing_results)
    col.add_argument("--force", action="store_true",
                     help="rebuild even if done runs lose their rows (damaged or deleted folders)")

    rep = sub.add_parser("report", help="tables and figures of a results folder, or the protocol "
                                        "report of a tuning folder (reads RESULTS, writes "
                                        "RESULTS/report or --out)")
    rep.add_argument("results", type=existing_results)
    rep.add_argument("--out", type=results_folder, help="output folder (default RESULTS/report)")
    rep.add_argument("--format", type=formats, default=list(FORMATS),
                     help=f"table formats, comma-separated ({', '.join(FORMATS)}; default all); figures "
                          "are drawn as PNG with md and as PDF with tex")
    rep.add_argument("--max-columns", type=positive,
                     help="metric columns per table (default 4 per final table, 2 per "
                          "difference table); wider tables are split, never shrunk")
    rep.add_argument("--wide", action="store_true",
                     help="LaTeX table* floats (both columns of a two-column paper)")
    rep.add_argument("--baseline", help="objective the others are compared with (default plain; "
                                        "must be an objective of RESULTS)")

    tune = sub.add_parser("tune", help="tune -> select -> final on a matrix with a sweep")
    tune.add_argument("matrix", help="matrix gin file that names its sweep")
    tune.add_argument("--phase", choices=PHASES, default="all")
    tune.add_argument("--out", type=results_folder, help="folder (default results/tune/<matrix>)")
    add_execution(tune)
    tune.add_argument("--estimate", type=measured_results, metavar="RESULTS|calibrate",
                      help="print the cells of every phase and their time from the per-cell "
                           "wall times measured in RESULTS/runs.parquet, or from a calibration "
                           "of each combination on this machine (`calibrate`); trains no cell")
    tune.add_argument("--allow-unequal-budgets", action="store_true",
                      help="run even when objectives have different numbers of trials")
    tune.add_argument("--feasibility", type=Path, metavar="CSV",
                      help="feasibility table (task, objective, verdict) whose 'ill-posed' rows "
                           "the report's verdicts mark (default OUT/feasibility.csv if present)")

    # `feasibility` (bench.protocol.feasibility): the hinge's floor on free outputs, per (task, objective)
    fea = sub.add_parser("feasibility", help="can each objective's hinge be satisfied? (free "
                                             "outputs, no network; writes only --out)")
    fea.add_argument("matrix", help="matrix gin file (path or name under gin/matrices/)")
    fea.add_argument("--tasks", help="comma-separated task gin files (default: the matrix's)")
    fea.add_argument("--objectives", help="comma-separated objective gin files")
    fea.add_argument("--out", type=results_folder, help="folder for feasibility.csv (default: "
                                                         "none, the table on stdout only)")
    fea.add_argument("--batch", type=positive, default=32, help="training examples (default 32)")
    fea.add_argument("--steps", type=positive, default=400, help="Adam steps (default 400)")
    fea.add_argument("--lr", type=positive_real, default=0.05, help="Adam lr (default 0.05)")
    return parser


def _cell_arguments(run: argparse.ArgumentParser,
                    what: str = "matrix gin file (path or name under gin/matrices/)") -> None:
    """The arguments of the verbs that expand a matrix into cells and run them (`run`,
    `evaluate`)."""
    run.add_argument("matrix", help=what)
    run.add_argument("--results", type=results_folder,
                     help="results folder (default results/<matrix>)")
    run.add_argument("--tasks", help="comma-separated task gin files: replace the task axis")
    run.add_argument("--models", help="comma-separated model gin files: replace the model axis")
    run.add_argument("--objectives", help="comma-separated objective gin files: replace that axis")
    run.add_argument("--seeds", type=seeds, help="comma-separated seeds, e.g. 0,1,2")
    run.add_argument("--scale", choices=["smoke", "cpu", "paper"], help="replace the matrix scale")
    run.add_argument("--gin_file", action="append", default=[], help="extra gin file (repeatable)")
    run.add_argument("--gin_bindings", action="append", default=[],
                     help="extra binding, e.g. \"bench.run.Experiment.epochs = 2\" (repeatable)")
    add_execution(run)
    run.add_argument("--timeout", type=seconds,
                     help="seconds after which a cell is killed and recorded failed (0: never; "
                          "default: the matrix's bench.matrix.Matrix.timeout)")
    run.add_argument("--no-progress", action="store_true",
                     help="no progress bars (default: one bar over the cells, and a per-epoch bar "
                          "with the sequential executor on a terminal)")
