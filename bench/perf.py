"""Performance benchmarks: ``python -m bench.perf dlc [--threads 1] [--repeats N] [--out FILE.md]``.

``dlc`` measures, in one process on this machine:

(a) the DLC loss (forward + backward) of the batched :class:`dlc.StarConvexLoss` against a naive
    per-sample Python loop that computes the same terms (``h`` once at ``w*`` and twice per
    sample), for S in {1, 4, 8, 16} and batch in {64, 256, 1024, 4096}, 10-dim targets, ``h`` =
    per-sample MSE to the prediction of a small linear layer;
(b) one training step (forward, loss, backward, Adam) of an MLP 32 -> 256 -> 256 -> 10 at batch
    256 with plain MSE against MSE + DLC (S = 4, 8; ``h`` = per-sample MSE in output space);
(c) the batched loss with ``chunk_size`` in {K (one call), None (the automatic rule),
    ceil(K/2), ceil(K/4), 1} (K = 2S + 1) at large batches;
(d) (a) again for large batches after raising glibc's malloc mmap/trim thresholds: with the
    defaults, freed multi-MB temporaries go back to the OS and are page-faulted in again on the
    next step, which is what makes big batched tensors slow on CPU.

Times are medians over ``--repeats`` runs after warm-up, wall clock. ``runner`` delegates to
:mod:`bench.perf_runner`.
"""

from __future__ import annotations

import argparse
import ctypes
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from bench.provenance import cpu_name
from dlc import Euclidean, StarConvexLoss

SAMPLES = (1, 4, 8, 16)
BATCHES = (64, 256, 1024, 4096)
DIM = 10
TARGETS = {"speed-up at S=8, B=64": 2.5, "speed-up at S=8, B=1024": 0.8,
           "train-step ratio (DLC S=8 / plain)": 1.3}


def median_time(fn: Callable[[], object], repeats: int, warmup: int = 3) -> float:
    """Median wall-clock seconds of ``fn()`` over ``repeats`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        begin = time.perf_counter()
        fn()
        times.append(time.perf_counter() - begin)
    return statistics.median(times)


def machine_line(threads: int) -> str:
    return (f"CPU: {cpu_name()}; torch {torch.__version__}; threads {threads}; "
            f"python {platform.python_version()}")


def loop_loss(pred: torch.Tensor, target: torch.Tensor, delta: torch.Tensor, lam: float,
              mu: float) -> torch.Tensor:
    """The naive reference: ``h`` at ``w*`` once, then twice per sample, summed hinges."""
    def h(w: torch.Tensor) -> torch.Tensor:
        return (pred - w).pow(2).mean(-1)

    h_star = h(target)
    hinge = torch.zeros_like(h_star)
    for d in delta:
        h_tilde, h_lam, n2 = h(target + d), h(target + lam * d), d.pow(2).sum(-1)
        hinge = hinge + torch.relu(h_star - h_lam) + torch.relu(h_star - h_tilde + mu / 2 * n2) \
            + torch.relu(h_lam - (1 - lam) * h_star - lam * h_tilde
                         + mu / 2 * lam * (1 - lam) * n2)
    return h_star.mean() + hinge.mean()


def loss_steps(samples: int, batch: int,
               chunk_size: int | None = None) -> tuple[Callable[[], None], Callable[[], None]]:
    """(batched, loop) closures, each one forward + backward of the DLC loss."""
    torch.manual_seed(0)
    layer = nn.Linear(DIM, DIM)
    x, target = torch.randn(batch, DIM), torch.randn(batch, DIM)
    space = Euclidean()
    loss = StarConvexLoss(space, samples=samples, mu=0.1, chunk_size=chunk_size)

    def batched() -> None:
        pred = layer(x)
        loss(lambda w: (pred[None] - w).pow(2).mean(-1), target).total.backward()

    def looped() -> None:
        pred = layer(x)
        delta = space.sample(target, samples)
        loop_loss(pred, target, delta, 0.5, 0.1).backward()

    return batched, looped


def train_step(samples: int) -> Callable[[], None]:
    """One Adam step of an MLP 32-256-256-10 at batch 256; plain MSE if ``samples == 0``."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(32, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                        nn.Linear(256, 10))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x, y = torch.randn(256, 32), torch.randn(256, 10)
    loss = StarConvexLoss(samples=samples) if samples else None

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        pred = net(x)
        if loss is None:
            value = (pred - y).pow(2).mean()
        else:
            value = loss(lambda w: (pred[None] - w).pow(2).mean(-1), y).total
        value.backward()
        opt.step()

    return step


def train_step_times(repeats: int) -> dict[str, float]:
    """Seconds per training step: plain MSE and MSE + DLC with S = 4, 8."""
    return {name: median_time(train_step(samples), repeats)
            for name, samples in [("plain MSE", 0), ("DLC S=4", 4), ("DLC S=8", 8)]}


def tune_glibc_malloc() -> bool:
    """Raise glibc's mmap and trim thresholds (process-wide) so large freed tensors are reused
    instead of being returned to the OS and page-faulted in again; False if not glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        return bool(libc.mallopt(m_mmap_threshold, 32 * 2**20)
                    and libc.mallopt(m_trim_threshold, 2**30))
    except (OSError, AttributeError):
        return False


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3f}"


def _speedup_table(cells: list[tuple[int, int]], repeats: int,
                   speedups: dict[tuple[int, int], float]) -> list[str]:
    lines = ["| S | batch | batched | loop | speed-up |", "|---:|---:|---:|---:|---:|"]
    for samples, batch in cells:
        batched, looped = loss_steps(samples, batch)
        fast, slow = median_time(batched, repeats), median_time(looped, repeats)
        speedups[samples, batch] = slow / fast
        lines.append(f"| {samples} | {batch} | {_ms(fast)} | {_ms(slow)} | {slow / fast:.2f}x |")
    return lines


def run_dlc(threads: int, repeats: int) -> str:
    """Run all DLC measurements; return the Markdown report."""
    torch.set_num_threads(threads)
    lines = ["## DLC loss performance", "", machine_line(threads), "",
             "### (a) loss forward + backward: batched vs per-sample loop (ms, median)", ""]
    speedups: dict[tuple[int, int], float] = {}
    lines += _speedup_table([(s, b) for s in SAMPLES for b in BATCHES], repeats, speedups)

    lines += ["", "### (b) training step, MLP 32-256-256-10, batch 256 (ms, median)", "",
              "| loss | step | ratio to plain |", "|---|---:|---:|"]
    steps = train_step_times(repeats)
    for name, seconds in steps.items():
        lines.append(f"| {name} | {_ms(seconds)} | {seconds / steps['plain MSE']:.2f}x |")

    lines += ["", "### (c) chunk_size of the batched loss at large batches (ms, median)", "",
              "| S | batch | chunk_size | time | speed-up vs one call |", "|---:|---:|---|---:|---:|"]
    for samples in (8, 16):
        for batch in (1024, 4096):
            k = 2 * samples + 1
            whole = None
            for chunk in (k, None, -(-k // 2), -(-k // 4), 1):
                seconds = median_time(loss_steps(samples, batch, chunk)[0], repeats)
                whole = whole or seconds
                label = "None (auto)" if chunk is None else f"{chunk} of {k}"
                lines.append(f"| {samples} | {batch} | {label} | {_ms(seconds)} | "
                             f"{whole / seconds:.2f}x |")

    got = {"speed-up at S=8, B=64": speedups[8, 64],
           "speed-up at S=8, B=1024": speedups[8, 1024],
           "train-step ratio (DLC S=8 / plain)": steps["DLC S=8"] / steps["plain MSE"]}
    tuned: dict[tuple[int, int], float] = {}
    if tune_glibc_malloc():
        lines += ["", "### (d) as (a), large batches, after `mallopt(M_MMAP_THRESHOLD=32 MiB, "
                  "M_TRIM_THRESHOLD=1 GiB)`", ""]
        lines += _speedup_table([(s, b) for s in (8, 16) for b in (1024, 4096)], repeats, tuned)
    lines += ["", "### Targets", "", "| target | wanted | got | met |", "|---|---:|---:|---|"]
    for name, wanted in TARGETS.items():
        ok = got[name] <= wanted if name.startswith("train") else got[name] >= wanted
        sign = "<=" if name.startswith("train") else ">="
        lines.append(f"| {name} | {sign} {wanted} | {got[name]:.2f} | {'yes' if ok else 'no'} |")
    if tuned:
        lines.append(f"| speed-up at S=8, B=1024, tuned malloc (d) | >= 0.8 | "
                     f"{tuned[8, 1024]:.2f} | {'yes' if tuned[8, 1024] >= 0.8 else 'no'} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.perf", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    dlc = sub.add_parser("dlc", help="DLC loss: batched vs loop, training-step overhead")
    dlc.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    dlc.add_argument("--repeats", type=int, default=40, help="timed runs per cell (default 40)")
    dlc.add_argument("--out", type=Path, default=None, help="also write the report (Markdown)")
    runner = sub.add_parser("runner", help="benchmark runner overheads (bench.perf_runner)",
                            add_help=False)
    runner.add_argument("rest", nargs=argparse.REMAINDER)
    args, extra = parser.parse_known_args(argv)  # REMAINDER alone drops a leading --option
    if args.command == "runner":
        from bench import perf_runner

        result = perf_runner.main(extra + args.rest)
        return result if isinstance(result, int) else 0
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    report = run_dlc(args.threads, args.repeats)
    print(report)
    if args.out is not None:
        args.out.write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
