"""How the report prints numbers: one precision per `mean ± std`, intervals at the precision of
their width, a shared power of ten for a column of very small or very large values."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np


# --- formats -----------------------------------------------------------------------------------
def decimals(value: float, significant: int) -> int:
    """Decimals that show `significant` digits of `value` (0 for large values)."""
    if value == 0 or not np.isfinite(value):
        return 0
    return max(0, significant - 1 - math.floor(math.log10(abs(value))))


def format_number(value: float, decimals: int) -> str:
    if not np.isfinite(value):
        return "—"
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
        return f"{value:.2e}"
    return f"{value:.{min(decimals, 6)}f}"


def format_mean_std(mean: float, std: float, n: int, latex: bool = False) -> str:
    """`mean ± std` at one precision: 3 significant digits of the mean, at most 2 of the std.

    `1 ± 6.7e-05` reads `1.00 ± 0.00`; a single seed gives the mean alone.
    """
    if not np.isfinite(mean):
        return "—"
    places = decimals(mean, 3)
    if n > 1 and np.isfinite(std) and std > 0:
        places = min(places, decimals(std, 2))
    text = format_number(mean, places)
    if n > 1 and np.isfinite(std):
        scientific = "e" in text
        spread = f"{std:.1e}" if scientific else f"{std:.{min(places, 6)}f}"
        text += (r" $\pm$ " if latex else " ± ") + spread
    return text.replace("-", "$-$") if latex else text


def format_interval(diff: float, lo: float, hi: float, latex: bool = False) -> str:
    """`+d [lo, hi]` at the precision of the interval's width (2 significant digits)."""
    if diff == lo == hi == 0:
        return "+0 [+0, +0]"
    places = min(decimals(max(abs(diff), 1e-12), 3), decimals(max(hi - lo, 1e-12), 2))
    tiny = max(abs(diff), abs(lo), abs(hi)) < 1e-3  # all below the fixed-point range

    def one(value: float) -> str:
        text = f"{value:+.1e}" if tiny and value != 0 else f"{value:+.{min(places, 6)}f}"
        return text.replace("-", "+") if float(text) == 0 else text  # no "-0"

    text = f"{one(diff)} [{one(lo)}, {one(hi)}]"
    return text.replace("-", "$-$") if latex else text


def seeds_text(counts: Sequence[int]) -> str:
    """`3 seeds`, `1 seed`, `2–3 seeds`."""
    low, high = min(counts), max(counts)
    span = f"{low}" if low == high else f"{low}–{high}"
    return f"{span} seed" + ("" if high == 1 else "s")


def natural_key(name: str) -> tuple:
    """Sort key that puts success@3 before success@10 and success@0.5 before success@1."""
    return tuple((0, float(p), "") if re.fullmatch(r"\d+(?:\.\d+)?", p) else (1, 0.0, p)
                 for p in re.split(r"(\d+(?:\.\d+)?)", name) if p)


def scale_exponent(values: Sequence[float]) -> int:
    """k such that a column of `values` reads better divided by 10^k: the exponent of the largest
    finite |value| when it is below 1e-3 or from 1e5 on, else 0 (no shared factor)."""
    finite = [abs(v) for v in values if np.isfinite(v) and v != 0]
    if not finite or 1e-3 <= max(finite) < 1e5:
        return 0
    return math.floor(math.log10(max(finite)))
