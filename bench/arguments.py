"""The command line's arguments and their checks: every bad value is one line on stderr, exit 2,
before anything is read or written."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import NoReturn

from bench.executors import EXECUTORS
from bench.matrix import MAX_SEED


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


def results_folder(text: str) -> Path:
    """A folder to write results into: absent (created later) or a folder, never a file."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} exists and is not a folder")
    return path


def existing_results(text: str) -> Path:
    """A results folder to read: it must exist."""
    path = Path(text)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(
            f"{text} is not a results folder ({'not a folder' if path.exists() else 'not found'})")
    return path


def build_parser(description: str = "") -> argparse.ArgumentParser:
    parser = OneLineParser(prog="dlc-bench", description=description)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    run = sub.add_parser("run", help="run (or resume) an experiment matrix")
    run.add_argument("matrix", help="matrix gin file (path or name under gin/matrices/)")
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
    run.add_argument("--executor", choices=EXECUTORS, default="sequential",
                     help="where cells run: sequential (one fresh process per cell, default), "
                          "local (--jobs fresh processes at a time), submitit (SLURM job arrays), "
                          "ray (Ray tasks)")
    run.add_argument("--jobs", type=positive, default=1, help="parallel cells (local/submitit/ray)")
    run.add_argument("--threads", type=non_negative, default=0,
                     help="torch threads per cell (default: cores / jobs)")
    run.add_argument("--device", type=device, default="auto",
                     help="auto (CUDA when torch sees a GPU, else CPU; default) | cpu | cuda | "
                          "cuda:N (the N-th visible GPU; the local executor pins one GPU per "
                          "worker itself)")
    run.add_argument("--timeout", type=seconds,
                     help="seconds after which a cell is killed and recorded failed (0: never; "
                          "default: the matrix's bench.matrix.Matrix.timeout)")
    run.add_argument("--dry-run", action="store_true", help="print every cell's status, run nothing")
    run.add_argument("--no-progress", action="store_true",
                     help="no progress bars (default: one bar over the cells, and a per-epoch bar "
                          "with the sequential executor on a terminal)")

    lst = sub.add_parser("list", help="cells of a results folder with status and reason (reads only)")
    lst.add_argument("results", type=existing_results)

    sub.add_parser("catalog", help="what can be run: tasks, models, objectives, scales and "
                                   "matrices under gin/, each with the first line of its comment")

    col = sub.add_parser("collect", help="rebuild a results folder's tables from its run folders")
    col.add_argument("results", type=existing_results)
    col.add_argument("--force", action="store_true",
                     help="rebuild even if done runs lose their rows (damaged or deleted folders)")

    rep = sub.add_parser("report", help="tables and figures from a results folder (reads it only)")
    rep.add_argument("results", type=existing_results)
    rep.add_argument("--out", type=results_folder, help="output folder (default RESULTS/report)")
    rep.add_argument("--format", default="md,tex,csv", help="table formats")
    rep.add_argument("--baseline", default="plain", help="objective the others are compared with")

    # `feasibility` (bench.feasibility): the hinge's floor on free outputs, per (task, objective)
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

    from bench.tune import add_parser as add_tune

    add_tune(sub)
    return parser
