"""The one decision of every comparison table: is an objective better than the baseline, worse,
or is there no evidence either way?

`verdict` is the only place that decides it; `bench.stats.add_verdicts` (the tuned comparison and
the report's difference tables) calls it for every row, and the renderers mark 'better' and
'worse' alike (`MARKS`). To classify rows further (e.g. valid / ill-posed / floor /
non-iterative), extend `verdict` here and add the new labels to `VERDICTS` and `MARKS`.
"""

from __future__ import annotations

import math

#: significance level of the corrected p-value
ALPHA = 0.05
#: every verdict `verdict` can return, in the order tables list them
VERDICTS = ("better", "worse", "no evidence")
#: how a table marks a verdict: (Markdown, LaTeX) suffix after the number; '' for none
MARKS: dict[str, tuple[str, str]] = {
    "better": (" ▲", r"\,$\blacktriangle$"),
    "worse": (" ▼", r"\,$\blacktriangledown$"),
    "no evidence": ("", ""),
}


def verdict(diff_ci: tuple[float, float, float], p_holm: float, direction: str,
            alpha: float = ALPHA) -> str:
    """'better' / 'worse' (the objective against the baseline) where the corrected p < alpha,
    else 'no evidence'.

    diff_ci: (mean difference objective − baseline, CI low, CI high); only the mean's sign is
    used today (the interval is there for finer row classes). p_holm: the Holm-corrected p of the
    row. direction: the metric's, 'min' (lower is better) or 'max'.
    """
    if direction not in ("min", "max"):
        raise ValueError(f"direction must be 'min' or 'max', got {direction!r}")
    diff = float(diff_ci[0])
    if not (math.isfinite(p_holm) and p_holm < alpha and math.isfinite(diff)) or diff == 0:
        return "no evidence"
    improved = diff < 0 if direction == "min" else diff > 0
    return "better" if improved else "worse"
