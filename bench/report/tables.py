"""Paper-ready tables: final metrics (mean ± std over seeds) and paired differences to a baseline.

A table is computed once as a tidy frame (`final_table`, `difference_table`) and rendered from
that frame to Markdown and LaTeX (`render`). Columns are split into groups of at most
`MAX_METRIC_COLUMNS` metrics (`column_groups`), in numeric order (success@3 before success@10).
Bold marks the best mean per task and metric only where the metric declares a direction in
run.json, there is more than one seed, the printed means differ (equal printed means: bold on
both sides or neither), and the metric is not a constant baseline (`trivial_*`). Difference
tables mark the verdict (`bench.protocol.verdicts`) both ways, with p and Holm p under each interval.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from bench import stats
from bench.protocol.verdicts import ALPHA, MARKS, add_verdicts
from bench.report.metadata import (
    GROUPS,
    KNOWN_OBJECTIVES,
    MAX_METRIC_COLUMNS,
    definition_of,
    display_name,
    group_of,
    is_constant_baseline,
    objective_order,
    refinement_of,
    short_name,
    stem,
    unit_of,
)
from bench.report.numbers import (  # noqa: F401 - re-exported for the report's callers
    decimals,
    format_interval,
    format_mean_std,
    format_number,
    natural_key,
    scale_exponent,
    seeds_text,
)
from bench.runner.store import atomic_write_frame, atomic_write_text

KEYS = ["task", "model", "objective"]


# --- computation -------------------------------------------------------------------------------
def summarise(values: pd.DataFrame) -> pd.DataFrame:
    """mean, std (ddof=1), n per (task, model, objective, metric)."""
    rows = []
    for key, group in values.groupby([*KEYS, "metric"]):
        rows.append((*key, *stats.mean_std(group["value"])))
    return pd.DataFrame(rows, columns=[*KEYS, "metric", "mean", "std", "n"])


def final_table(summary: pd.DataFrame, directions: dict[str, str]) -> pd.DataFrame:
    """`summary` without constant baselines, plus `best`: True for the best mean per task and
    metric where the metric declares a direction, the means have more than one seed, and the
    displayed means are not all equal. A mean that displays as the best one (`ties_best`) is
    bold too, so equal printed values are bold on both sides or on neither."""
    table = summary[~summary.metric.map(is_constant_baseline)].copy()
    table["best"] = False
    for (_task, metric), group in table.groupby(["task", "metric"]):
        finite = group[np.isfinite(group["mean"])]
        direction = directions.get(metric)
        if direction not in ("min", "max") or len(finite) < 2 or finite["n"].max() < 2:
            continue
        best = finite.loc[finite["mean"].idxmin() if direction == "min" else
                          finite["mean"].idxmax()]
        tied = [ties_best(row, best) for row in finite.itertuples()]
        if not all(tied):
            table.loc[finite.index[tied], "best"] = True
    return table.reset_index(drop=True)


def ties_best(row, best) -> bool:
    """True when `row`'s mean prints like `best`'s at the coarser of their two precisions
    (`format_mean_std`: 3 significant digits of the mean, at most 2 of the std)."""
    def places(mean: float, std: float, n: int) -> int:
        digits = decimals(mean, 3)
        return min(digits, decimals(std, 2)) if n > 1 and np.isfinite(std) and std > 0 else digits

    shared = min(places(row.mean, row.std, row.n), places(best["mean"], best["std"], best["n"]))
    return format_number(row.mean, shared) == format_number(best["mean"], shared)


def constant_baselines(summary: pd.DataFrame) -> pd.DataFrame:
    """task, metric (without `trivial_`), value of every constant baseline."""
    const = summary[summary.metric.map(is_constant_baseline)]
    const = const.groupby(["task", "metric"], as_index=False)["mean"].first()
    return const.assign(metric=const.metric.str.removeprefix("trivial_"))


def difference_table(values: pd.DataFrame, baseline: str,
                     directions: dict[str, str]) -> pd.DataFrame:
    """Paired difference objective − baseline per (task, model, objective, metric) over the seeds
    both have (`stats.paired_test`: 95% t-interval below 10 pairs, BCa bootstrap from 10, exact
    sign-flip p), only over at least 2 pairs and never for constant baselines. `verdict` comes
    from `verdicts.add_verdicts` (Holm across the rows that have a direction): 'better'/'worse' at
    corrected p < 0.05, else 'no evidence'; '—' for a metric without a declared direction."""
    rows = []
    values = values[~values.metric.map(is_constant_baseline)]
    for (task, model, metric), group in values.groupby(["task", "model", "metric"]):
        base = group[group["objective"] == baseline].set_index("seed")["value"]
        if base.empty:
            continue
        direction = directions.get(metric)
        for objective, other in group[group["objective"] != baseline].groupby("objective"):
            test = stats.paired_test(other.set_index("seed")["value"], base,
                                     direction if direction in ("min", "max") else "min")
            if test["n"] < 2:
                continue
            rows.append(dict(task=task, model=model, objective=objective, metric=metric,
                             diff=test["diff"], lo=test["lo"], hi=test["hi"], n=test["n"],
                             p=test["p"], interval=test["interval"],
                             direction=direction if direction in ("min", "max") else None))
    frame = pd.DataFrame(rows, columns=[*KEYS, "metric", "diff", "lo", "hi", "n", "p",
                                        "interval", "direction"])
    judged = frame[frame["direction"].notna()]
    out = frame.assign(p_holm=np.nan, verdict="—")
    if len(judged):
        verdicts = add_verdicts(judged)
        out.loc[verdicts.index, ["p_holm", "verdict"]] = verdicts[["p_holm", "verdict"]]
    return out


def interval_text(diffs: pd.DataFrame) -> str:
    """How the intervals of a difference table were computed, for its caption."""
    methods = set(diffs["interval"]) - {"degenerate", "none"}
    names = {"t": "Student-t", "BCa": "BCa bootstrap (2000 resamples, seed 0)"}
    return " / ".join(names.get(m, m) for m in sorted(methods)) or "Student-t"


def power_note(diffs: pd.DataFrame, alpha: float = ALPHA) -> str:
    """A caption sentence when no row can reach p < alpha: the exact two-sided sign-flip test on
    n pairs cannot give p below 2 / 2^n."""
    if diffs.empty:
        return ""
    n = int(diffs["n"].max())
    smallest = 2.0 ** (1 - n)
    if smallest < alpha:
        return ""
    return (f" With {n} pairs the smallest possible p is {smallest:.2g}, so no difference can be "
            "bold here; read the intervals.")


def column_groups(metrics: Sequence[str],
                  width: int = MAX_METRIC_COLUMNS) -> list[tuple[str, list[str]]]:
    """[(name, metrics)]: the metrics in group order (GROUPS) and numeric order within a group,
    packed into tables of at most `width` metrics; a group is split only when it alone is
    wider than that, and small groups share a table (`error+success`)."""
    chunks: list[tuple[str, list[str]]] = []
    for group in GROUPS:
        members = sorted((m for m in metrics if group_of(m) == group), key=natural_key)
        parts = [members[i:i + width] for i in range(0, len(members), width)]
        chunks += [(group if len(parts) == 1 else f"{group}{k + 1}", part)
                   for k, part in enumerate(parts)]
    packed: list[tuple[str, list[str]]] = []
    for name, part in chunks:
        if packed and len(packed[-1][1]) + len(part) <= width:
            packed[-1] = (f"{packed[-1][0]}+{name}", packed[-1][1] + part)
        else:
            packed.append((name, part))
    return packed


# --- rendering ---------------------------------------------------------------------------------
def latex_escape(text: str) -> str:
    return re.sub(r"([_%&#])", r"\\\1", str(text))


#: plain-text symbols of captions, units and notes -> LaTeX (pdflatex has no Unicode fallback)
_LATEX_SYMBOLS = {"±": r"$\pm$", "−": "$-$", "↑": r"$\uparrow$", "↓": r"$\downarrow$",
                  "ŵ": r"$\hat w$", "w*": "$w^*$", "°": r"$^\circ$", "·": r"$\cdot$", "–": "--",
                  "—": "---", "⊕": r"$\oplus$", "²": "$^2$", "ℓ": r"$\ell$", "×": r"$\times$",
                  "≠": r"$\neq$", "…": r"\ldots{}",
                  "▲": r"$\blacktriangle$", "▼": r"$\blacktriangledown$"}


def latex_text(text: str) -> str:
    """Escape `text` for LaTeX and replace the Unicode symbols the report uses."""
    text = latex_escape(text)
    for symbol, latex in _LATEX_SYMBOLS.items():
        text = text.replace(symbol, latex)
    return text


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def header(task_units: dict[str, str], metric: str, directions: dict[str, str],
           latex: bool, exponent: int = 0, after: str = "") -> str:
    """Column header: display name, declared direction, then the shared factor, the unit and the
    refinement the value is measured after: `rotation error (isotropic) ↓ (degrees, after ICP)`."""
    arrow = {"min": ("↓", r"$\downarrow$"), "max": ("↑", r"$\uparrow$")}.get(
        directions.get(metric), ("", ""))[latex]
    name = latex_text(display_name(metric)) if latex else display_name(metric)
    text = f"{name} {arrow}".strip()
    extra = [(rf"$\times 10^{{{exponent}}}$" if latex else
              f"×10{str(exponent).translate(_SUPERSCRIPT)}") if exponent else "",
             task_units.get(metric, ""), f"after {after}" if after else ""]
    extra = ", ".join(latex_text(e) if latex and "$" not in e else e for e in extra if e)
    if extra:  # LaTeX: on a second header row (see `to_latex`)
        text += f"\n({extra})" if latex else f" ({extra})"
    return text


def cell_text(row, exponent: int, latex: bool) -> str:
    """One cell of `render`: `mean ± std` (bold when best), or `+d [lo, hi]` with the verdict's
    mark (bold better, italic worse) and its p and Holm p; values divided by 10^exponent."""
    f = 10.0 ** -exponent
    if not hasattr(row, "diff"):
        text = format_mean_std(row.mean * f, row.std * f, row.n, latex)
        return (r"\textbf{%s}" if latex else "**%s**") % text if row.best else text
    text = format_interval(row.diff * f, row.lo * f, row.hi * f, latex)
    style = {"better": (r"\textbf{%s}", "**%s**"), "worse": (r"\textit{%s}", "*%s*")}.get(
        row.verdict, ("%s", "%s"))[not latex]
    text = style % text + MARKS.get(row.verdict, ("", ""))[latex]
    if not np.isfinite(row.p):
        return text
    holm = f", Holm {row.p_holm:.2g}" if np.isfinite(row.p_holm) else ""
    p_text = f"p {row.p:.2g}{holm}"
    if latex:
        return (r"\begin{tabular}[c]{@{}r@{}}" + text + r" \\ {\scriptsize $p$ "
                + f"{row.p:.2g}{holm}".replace("-", "$-$") + r"}\end{tabular}")
    return f"{text} ({p_text})"


def refinement(rows: pd.DataFrame) -> str:
    """The refinement ('ICP') after which every row's metrics are measured, else ''."""
    afters = {refinement_of(t, m) for t, m in zip(rows["task"], rows["model"])}
    return afters.pop() if len(afters) == 1 else ""


def render(table: pd.DataFrame, metrics: Sequence[str], directions: dict[str, str],
           latex: bool = False, baseline: str = "plain") -> pd.DataFrame:
    """Wide text table of `final_table` rows (or `difference_table` rows) for `metrics`; a column
    of values below 1e-3 or from 1e5 on shares one power of ten, named in its header."""
    rows = table[table.metric.isin(metrics)]
    value = "diff" if "diff" in rows else "mean"
    exponents = {m: scale_exponent(rows.loc[rows.metric == m, value]) for m in metrics}
    text = [cell_text(row, exponents[row.metric], latex) for row in rows.itertuples()]
    wide = rows.assign(text=text).pivot_table(index=KEYS, columns="metric", values="text",
                                              aggfunc="first")
    wide = wide.dropna(how="all")
    rank = {o: k for k, o in enumerate(objective_order(
        wide.index.get_level_values("objective"), baseline, KNOWN_OBJECTIVES))}
    wide = wide.sort_index(key=lambda level: level.map(rank) if level.name == "objective"
                           else level)
    present = [m for m in metrics if m in wide.columns]
    units = {m: unit_of(table.task.iloc[0], m) for m in present} if len(rows) else {}
    if rows.task.nunique() > 1:  # units differ between tasks only within a family in name
        units = {m: u for m, u in units.items()
                 if len({unit_of(t, m) for t in rows.task.unique()}) == 1}
    after = refinement(rows) if len(rows) else ""
    wide = wide[present].rename(columns={m: header(units, m, directions, latex, exponents[m],
                                                   after) for m in present})
    wide = wide.reset_index().rename_axis(columns=None).fillna("—" if not latex else "--")
    if latex:  # the caption names the family: `alignment1d_same` -> `same`
        wide["task"] = [short_name(t) for t in wide["task"]]
        for col in KEYS:
            wide[col] = wide[col].map(latex_escape)
    return wide


def to_markdown(frame: pd.DataFrame) -> str:
    from tabulate import tabulate

    return tabulate(frame, headers="keys", tablefmt="github", showindex=False)


def to_latex(frame: pd.DataFrame, caption: str, label: str, notes: Sequence[str] = (),
             wide: bool = False, groups: Sequence[str] | None = None, left: int = 3) -> str:
    """A booktabs `table` float at the caption's size (never shrunk: `column_groups` splits wide
    tables instead), or `table*` (both columns of a two-column paper) when `wide`; notes below.

    `groups` (one LaTeX label per row): a full-width heading row wherever the label changes, so
    long shared names (task, metric) need no column; `left`: the left-aligned leading columns.
    """
    align = "l" * left + "r" * (frame.shape[1] - left)
    names = [str(c).split("\n")[0] for c in frame.columns]
    units = [str(c).split("\n")[1] if "\n" in str(c) else "" for c in frame.columns]
    lines = [" & ".join(names) + r" \\"]
    if any(units):
        lines.append(" & ".join(units) + r" \\")
    lines.append(r"\midrule")
    previous = None
    for k, row in enumerate(frame.itertuples(index=False)):
        cells = list(row)
        key = groups[k] if groups is not None else cells[0]
        if previous is not None and key != previous:
            lines.append(r"\addlinespace")
        if groups is not None and key != previous:
            lines.append(rf"\multicolumn{{{frame.shape[1]}}}{{@{{}}l}}{{{key}}} \\")
        previous = key
        lines.append(" & ".join(str(c) for c in cells) + r" \\")
    float_env = "table*" if wide else "table"
    body = [rf"\begin{{{float_env}}}[t]", r"\centering", r"\small", r"\setlength{\tabcolsep}{4pt}",
            rf"\caption{{{caption}}}", rf"\label{{{label}}}",
            rf"\begin{{tabular}}{{{align}}}", r"\toprule", *lines, r"\bottomrule",
            r"\end{tabular}"]
    if notes:
        body.append(r"\par\smallskip{\footnotesize " + r" \\ ".join(notes) + "}")
    return "\n".join([*body, rf"\end{{{float_env}}}"]) + "\n"


def caption_definitions(metrics: Sequence[str]) -> str:
    """`Metrics: distance = ...; success@k = ...` for the metrics of one table."""
    seen, parts = set(), []
    for metric in metrics:
        definition = definition_of(metric)
        key = definition or metric
        if definition and key not in seen:
            seen.add(key)
            name = {"success@": "success@k", "success_": "success (1°, 5°)",
                    "escaped_": "escaped"}.get(stem(metric), display_name(metric))
            parts.append(f"{name}: {definition}")
    return ("Metrics: " + "; ".join(parts) + ".") if parts else ""


def write_table(markdown: pd.DataFrame, latex: pd.DataFrame, raw: pd.DataFrame, stem: Path,
                formats: Sequence[str], caption: str, label: str,
                notes: Sequence[str] = (), wide: bool = False) -> list[Path]:
    """Write `stem.{md,tex,csv}` (as `formats` asks); returns the files written."""
    written = []
    if "md" in formats:
        text = to_markdown(markdown) + "\n"
        atomic_write_text(stem.with_suffix(".md"), text)
        written.append(stem.with_suffix(".md"))
    if "tex" in formats:
        tex_notes = [latex_text(n) for n in notes]
        atomic_write_text(stem.with_suffix(".tex"), to_latex(latex, caption, label, tex_notes, wide))
        written.append(stem.with_suffix(".tex"))
    if "csv" in formats:
        atomic_write_frame(raw, stem.with_suffix(".csv"))
        written.append(stem.with_suffix(".csv"))
    return written


#: LaTeX packages the generated tables need (written as `tables/preamble.tex`).
PREAMBLE = r"""% Packages needed by the generated tables: \input{preamble} in the document preamble,
% then \input{<family>_final_<group>} where a table goes. Debian: texlive-latex-base,
% texlive-latex-recommended, lmodern.
\usepackage[T1]{fontenc}
\usepackage{lmodern}    % scalable Type 1 fonts (T1 without it embeds Type 3 bitmaps)
\usepackage{booktabs}   % \toprule, \midrule, \bottomrule, \addlinespace
\usepackage{amssymb}    % arrows, triangles (verdict marks) and symbols in headers
"""
