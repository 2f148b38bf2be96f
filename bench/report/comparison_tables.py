"""The tables of a tuned comparison (`bench tune`, `bench.report.tuned`): one row per (task,
model, objective) against the baseline, rendered to Markdown and to a LaTeX booktabs float.

Columns: both sides' mean ± std (n), the paired difference with its 95% interval, the exact
sign-flip p, its Holm correction across the table's rows and the verdict (`bench.protocol.verdicts`:
'better' and 'worse' both marked). Metrics carry their display name, direction and, for a model
measured after a refinement (registration: ICP), "after ICP".
"""

from __future__ import annotations

import pandas as pd

from bench.protocol.verdicts import ALPHA, MARKS
from bench.report.metadata import display_name, refinement_of, unit_of
from bench.report.numbers import format_interval, format_mean_std
from bench.report.tables import latex_escape, latex_text, to_latex

#: the column of the Holm-corrected p (over the valid rows only, `bench.protocol.verdicts.qualify`)
HOLM = "p (Holm, valid rows)"
CAPTION = ("{title}: each objective's winner against {baseline}'s winner on the test split, paired "
           "by final seed. Difference objective − {baseline}: mean and 95% interval (Student-t "
           "below 10 pairs, BCa bootstrap from 10); p: exact two-sided sign-flip permutation "
           "test; Holm: p corrected with Holm's method across the valid rows of this table (class "
           "valid, not reduced to plain; other rows: '—' and their class as the verdict). "
           "Better (bold ▲) and worse (italic ▼) at Holm p < {alpha:g}; otherwise no evidence "
           "either way.")


def metric_text(task: str, model: str, metric: str, direction: str, raw: bool = True) -> str:
    """`rot_iso_deg ↓ (degrees, after ICP)`: the name (raw or display), direction, unit and the
    refinement the value is measured after."""
    arrow = "↓" if direction == "min" else "↑"
    extra = [unit_of(task, metric), refinement_of(task, model)]
    extra[1] = f"after {extra[1]}" if extra[1] else ""
    extra = [e for e in extra if e]
    name = metric if raw else display_name(metric)
    return f"{name} {arrow}" + (f" ({', '.join(extra)})" if extra else "")


def _side(mean: float, std: float, n: int) -> str:
    return f"{mean:.4g} ± {std:.2g} ({n})" if n > 1 else f"{mean:.4g} (1)"


def comparison_frame(table: pd.DataFrame, baseline: str, raw: bool = True) -> pd.DataFrame:
    """The text of the comparison table (one row per comparison), in plain Unicode."""
    def verdict_text(word: str) -> str:
        return word + MARKS.get(word, ("", ""))[0]

    return pd.DataFrame({
        "task": table["task"], "model": table["model"],
        "metric": [metric_text(t, m, x, d, raw) for t, m, x, d in
                   zip(table["task"], table["model"], table["metric"], table["direction"])],
        "objective": table["objective"],
        "class": table["class"] if "class" in table else "valid",
        "objective mean ± std (n)": [_side(m, s, n) for m, s, n in
                                     zip(table["mean"], table["std"], table["runs"])],
        f"{baseline} mean ± std (n)": [_side(m, s, n) for m, s, n in
                                       zip(table["base_mean"], table["base_std"],
                                           table["base_runs"])],
        "diff [95% CI]": [f"{format_interval(d, lo, hi)} ({i})" for d, lo, hi, i in
                          zip(table["diff"], table["lo"], table["hi"], table["interval"])],
        "p": [f"{p:.2g}" for p in table["p"]],
        HOLM: [f"{p:.2g}" if pd.notna(p) else "—" for p in table["p_holm"]],
        "verdict": [verdict_text(v) for v in table["verdict"]],
        "unmatched seeds": [", ".join(map(str, u)) or "—" for u in table["unmatched"]],
    })


def comparison_markdown(table: pd.DataFrame, baseline: str) -> str:
    from tabulate import tabulate

    if table.empty:
        return "_no paired runs to compare_\n"
    return tabulate(comparison_frame(table, baseline), headers="keys", tablefmt="github",
                    showindex=False) + "\n"


def _stack(top: str, bottom: str, align: str = "l") -> str:
    """Two lines in one LaTeX cell (the second smaller)."""
    return (rf"\begin{{tabular}}[c]{{@{{}}{align}@{{}}}}{top} \\ {{\scriptsize {bottom}}}"
            r"\end{tabular}")


def comparison_latex(table: pd.DataFrame, baseline: str, title: str, label: str) -> str:
    """A booktabs `table*` float of the comparison (both columns of a two-column paper): one
    heading row per task with its metric (display name, direction, unit), then per row model,
    objective, both sides' mean ± std and the difference with the verdict's mark over p and Holm
    p; the caption names the test, the correction and the seeds. Narrower than the text width
    of a two-column article (469.75 pt; `tests/test_latex_fonts.py` measures it)."""
    text = comparison_frame(table, baseline, raw=False)
    style = {"better": r"\textbf{%s}", "worse": r"\textit{%s}"}
    diffs = [style.get(v, "%s") % format_interval(d, lo, hi, latex=True)
             + MARKS.get(v, ("", ""))[1]
             for v, d, lo, hi in zip(table["verdict"], table["diff"], table["lo"], table["hi"])]
    frame = pd.DataFrame({
        "model": [latex_escape(m) for m in table["model"]],
        "objective": [latex_escape(o) for o in table["objective"]],
        "mean $\\pm$ std": [format_mean_std(m, s, n, latex=True) for m, s, n in
                             zip(table["mean"], table["std"], table["runs"])],
        f"{latex_escape(baseline)}\nmean $\\pm$ std": [
            format_mean_std(m, s, n, latex=True)
            for m, s, n in zip(table["base_mean"], table["base_std"], table["base_runs"])],
        f"objective $-$ {latex_escape(baseline)} [95\\% CI]\n$p$, Holm $p$": [
            _stack(d, latex_text(f"p {p}, Holm {h}"), "r")
            for d, p, h in zip(diffs, text["p"], text[HOLM])],
    })
    groups = [rf"\textit{{{latex_escape(t)}}}: {latex_text(m)}"
              for t, m in zip(table["task"], text["metric"])]
    runs = sorted(set(table["runs"]) | set(table["base_runs"]))
    caption = latex_text(CAPTION.format(title=title, baseline=baseline, alpha=ALPHA)
                         + f" Mean ± std over {'/'.join(map(str, runs))} seeds per side.")
    return to_latex(frame, caption, label, wide=True, groups=groups, left=2)
