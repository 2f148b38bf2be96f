"""Runner benchmarks (`python -m bench.perf runner`): overhead per cell, resume time, pool speed-up.

Everything is measured in one invocation on this machine, wall-clock, from the outside (a
subprocess per command, as a user would run it), into throw-away results folders:

1. overhead per cell: a matrix of cells with no training (`epochs = 0`, no landscape, 8 test
   examples), so the time is the runner's own: process start, imports, gin parsing and validation,
   data cache look-up, writing the run folder; for `sequential` and for the `local` pool;
2. re-run time of a finished matrix (everything cached: what `resume` costs);
3. throughput of the `local` executor with 2 workers x 1 thread vs `sequential` with 2 threads,
   on identical training cells of the `cpu` scale (about 10 s of training each: a fresh worker
   process costs 2-3 s of imports, so pool speed-ups are only meaningful on real cells);
4. start-up: `python -m bench --help` and every verb's `--help` (median of `--repeats` runs, target
   <= 1 s) and whether torch is imported for it (`python -X importtime`). `--help-only` measures
   only this; `--repo PATH` measures another checkout of the suite (e.g. an older commit);
5. a fully cached re-run of the whole smoke matrix (`bench run smoke` on a finished folder) against
   `python -c "import torch"`, alternated `--repeats` times (target: at most 1 s more), and
   whether the re-run imports torch. `--rerun-only` measures only this, on a copy of the finished
   folder `--smoke DIR` (without it, the smoke matrix is run first: minutes); `--repo` applies.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

NO_TRAINING = [
    "bench.run.Experiment.epochs = 0",
    "bench.run.Experiment.landscape_examples = 0",
    "bench.tasks.alignment1d.Alignment1D.n_test = 8",
    "bench.tasks.alignment1d.Alignment1D.n_train = 8",
]


def _wall(command: list[str], cwd: Path, env: dict[str, str]) -> float:
    """Wall time of `command` in a subprocess (stdout discarded)."""
    begin = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - begin


def _run(args: list[str], env: dict[str, str]) -> float:
    return _wall([sys.executable, "-m", "bench", "run", *args, "--no-progress"], REPO, env)


def _imports_torch(command: list[str], cwd: Path, env: dict[str, str]) -> bool:
    """Whether `python -X importtime COMMAND...` (a `python` command line) imports torch."""
    trace = subprocess.run([sys.executable, "-X", "importtime", *command[1:]], cwd=cwd, env=env,
                           check=True, capture_output=True, text=True).stderr
    return any(line.split("|")[-1].strip() == "torch" for line in trace.splitlines())


def _matrix_args(results: Path, seeds: int, bindings: list[str],
                 scale: str = "smoke") -> list[str]:
    args = ["smoke", "--results", str(results), "--tasks", "alignment1d_nonlinear",
            "--objectives", "plain,dlc", "--seeds", ",".join(map(str, range(seeds))),
            "--scale", scale]
    for binding in bindings:
        args += ["--gin_bindings", binding]
    return args


VERBS = ("", "run", "tune", "report", "list", "collect", "catalog")


def help_times(repo: Path, repeats: int = 5) -> list[tuple[str, float, bool]]:
    """(command, median wall time in s, imports torch?) of `python -m bench [verb] --help` run from
    the checkout `repo`."""
    env = {**os.environ, "PYTHONPATH": str(repo)}
    rows = []
    for verb in VERBS:
        command = [sys.executable, "-m", "bench", *([verb] if verb else []), "--help"]
        times = [_wall(command, repo, env) for _ in range(repeats)]
        torch = _imports_torch(command, repo, env)
        rows.append((" ".join(["python -m bench", *([verb] if verb else []), "--help"]),
                     sorted(times)[len(times) // 2], torch))
    return rows


def help_table(repo: Path, repeats: int) -> str:
    rows = help_times(repo, repeats)
    lines = ["| command | median wall time (s) | imports torch |", "|---|---|---|"]
    lines += [f"| `{cmd}` | {t:.2f} | {'yes' if torch else 'no'} |" for cmd, t, torch in rows]
    slowest = max(t for _, t, _ in rows)
    lines.append(f"\nslowest --help: {slowest:.2f} s (target <= 1 s: "
                 f"{'met' if slowest <= 1 else 'missed'}); `python -c pass` for reference: "
                 f"{_python_start():.2f} s")
    return "\n".join(lines)


def rerun_table(repo: Path, repeats: int, smoke: Path | None) -> str:
    """Median wall time of a fully cached `bench run smoke` from the checkout `repo` and of
    `python -c "import torch"`, alternated `repeats` times in this process (after one re-run that
    is not timed: it records the pre-keys where the code has them)."""
    env = {**os.environ, "PYTHONPATH": str(repo)}
    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp) / "smoke"
        if smoke is not None:
            shutil.copytree(smoke, results)
        run = [sys.executable, "-m", "bench", "run", "smoke", "--results", str(results),
               "--no-progress"]
        first = _wall(run, repo, env)  # a fresh folder: the whole matrix runs here
        reruns, torch_times = [], []
        for _ in range(repeats):
            reruns.append(_wall(run, repo, env))
            torch_times.append(_wall([sys.executable, "-c", "import torch"], repo, env))
        torch = _imports_torch(run, repo, env)
        cells = subprocess.run([*run, "--dry-run"], cwd=repo, env=env, check=True,
                               capture_output=True, text=True).stdout.strip().splitlines()[-1]
    rerun, bare = sorted(reruns)[repeats // 2], sorted(torch_times)[repeats // 2]
    return "\n".join([
        f"fully cached re-run of the smoke matrix ({cells}), checkout {repo}, median of "
        f"{repeats}, alternated:", "",
        "| measurement | wall time (s) |", "|---|---|",
        f"| `bench run smoke`, first run on this folder (builds every cell) | {first:.2f} |",
        f"| `bench run smoke`, fully cached | {rerun:.2f} |",
        f"| `python -c \"import torch\"` | {bare:.2f} |", "",
        f"re-run minus torch import: {rerun - bare:+.2f} s, ratio {rerun / bare:.2f}x (target: at "
        f"most 1 s more: {'met' if rerun - bare <= 1 else 'missed'}); the re-run imports torch: "
        f"{'yes' if torch else 'no'}; load average {os.getloadavg()[0]:.1f}"])


def _python_start() -> float:
    begin = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.perf_counter() - begin


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(prog="python -m bench.perf runner", description=__doc__)
    parser.add_argument("--seeds", type=int, default=4, help="seeds per objective (cells = 2x)")
    parser.add_argument("--train-seeds", type=int, default=2,
                        help="seeds per objective of the cpu-scale throughput cells")
    parser.add_argument("--repeats", type=int, default=5, help="runs per --help timing")
    parser.add_argument("--help-only", action="store_true", help="only the --help timings")
    parser.add_argument("--rerun-only", action="store_true",
                        help="only the cached re-run of the smoke matrix vs importing torch")
    parser.add_argument("--smoke", type=Path, default=None,
                        help="a finished smoke results folder to copy for the re-run timing "
                             "(default: run the smoke matrix first, minutes)")
    parser.add_argument("--repo", type=Path, default=REPO,
                        help="checkout whose --help is timed (default this one)")
    args = parser.parse_args(argv)
    if args.help_only or args.rerun_only:
        text = help_table(args.repo, args.repeats) if args.help_only else \
            rerun_table(args.repo, args.repeats, args.smoke)
        print(text)
        return text
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cells = 2 * args.seeds
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        env["DLC_BENCH_CACHE"] = str(tmp_path / "cache")
        _run(_matrix_args(tmp_path / "warm", 1, NO_TRAINING), env)  # fill the data cache
        seq = _run(_matrix_args(tmp_path / "o-seq", args.seeds, NO_TRAINING), env)
        loc = _run(_matrix_args(tmp_path / "o-loc", args.seeds, NO_TRAINING)
                   + ["--executor", "local", "--jobs", "2", "--threads", "1"], env)
        rerun = _run(_matrix_args(tmp_path / "o-seq", args.seeds, NO_TRAINING), env)
        n_train = 2 * args.train_seeds
        _run(_matrix_args(tmp_path / "warm-cpu", 1, NO_TRAINING[:2], "cpu"), env)  # cache data
        t_seq = _run(_matrix_args(tmp_path / "t-seq", args.train_seeds, [], "cpu")
                     + ["--threads", "2"], env)
        t_loc = _run(_matrix_args(tmp_path / "t-loc", args.train_seeds, [], "cpu")
                     + ["--executor", "local", "--jobs", "2", "--threads", "1"], env)
    lines = [
        f"cells per matrix: {cells} (alignment1d_nonlinear x conv1d x {{plain, dlc}} x "
        f"{args.seeds} seeds, smoke scale); cpu count {os.cpu_count()}",
        "",
        "| measurement | wall time (s) | per cell (s) |",
        "|---|---|---|",
        f"| no-training matrix, sequential (1 process) | {seq:.1f} | {seq / cells:.2f} |",
        f"| no-training matrix, local pool (2 workers, fresh process per cell) | {loc:.1f} | "
        f"{loc / cells:.2f} |",
        f"| re-run of the finished matrix (all cached) | {rerun:.1f} | {rerun / cells:.2f} |",
        f"| cpu-scale training matrix ({n_train} cells), sequential, 2 threads | {t_seq:.1f} | "
        f"{t_seq / n_train:.2f} |",
        f"| cpu-scale training matrix ({n_train} cells), local, 2 workers x 1 thread | "
        f"{t_loc:.1f} | {t_loc / n_train:.2f} |",
        "",
        f"local-pool speed-up over sequential on training cells: {t_seq / t_loc:.2f}x "
        "(target >= 1.6x on 2 cores); re-run target <= 5 s: "
        + ("met" if rerun <= 5 else "missed"),
        "",
        help_table(args.repo, args.repeats),
        "",
        rerun_table(args.repo, args.repeats, args.smoke),
    ]
    text = "\n".join(lines)
    print(text)
    return text


if __name__ == "__main__":
    main()
