"""Paper-ready tables: final metrics (mean ± std over seeds) and paired differences to a baseline.

A table is computed once as a tidy frame (`final_table`, `difference_table`) and rendered from
that frame to Markdown and LaTeX (`render`). Columns are split into groups of at most
`MAX_METRIC_COLUMNS` metrics (`column_groups`), in numeric order (success@3 before success@10).
Bold marks the best mean per task and metric only where the metric declares a direction in
run.json, values differ, and the metric is not a constant baseline (`trivial_*`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from bench import stats
from bench.report.metadata import (
    GROUPS,
    KNOWN_OBJECTIVES,
    MAX_METRIC_COLUMNS,
    definition_of,
    group_of,
    is_constant_baseline,
    objective_order,
    unit_of,
)
from bench.store import atomic_write_frame, atomic_write_text

KEYS = ["task", "model", "objective"]


# --- numbers -----------------------------------------------------------------------------------
def _decimals(value: float, significant: int) -> int:
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
    places = _decimals(mean, 3)
    if n > 1 and np.isfinite(std) and std > 0:
        places = min(places, _decimals(std, 2))
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
    places = min(_decimals(max(abs(diff), 1e-12), 3), _decimals(max(hi - lo, 1e-12), 2))
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


# --- computation -------------------------------------------------------------------------------
def summarise(values: pd.DataFrame) -> pd.DataFrame:
    """mean, std (ddof=1), n per (task, model, objective, metric)."""
    rows = []
    for key, group in values.groupby([*KEYS, "metric"]):
        rows.append((*key, *stats.mean_std(group["value"])))
    return pd.DataFrame(rows, columns=[*KEYS, "metric", "mean", "std", "n"])


def final_table(summary: pd.DataFrame, directions: dict[str, str]) -> pd.DataFrame:
    """`summary` without constant baselines, plus `best`: True for the best mean per task and
    metric where the metric declares a direction and at least two finite means differ."""
    table = summary[~summary.metric.map(is_constant_baseline)].copy()
    table["best"] = False
    for (_task, metric), group in table.groupby(["task", "metric"]):
        finite = group[np.isfinite(group["mean"])]
        direction = directions.get(metric)
        if direction not in ("min", "max") or len(finite) < 2 or \
                np.isclose(finite["mean"].min(), finite["mean"].max(), rtol=1e-9, atol=0):
            continue
        best = finite["mean"].min() if direction == "min" else finite["mean"].max()
        table.loc[finite.index[np.isclose(finite["mean"], best, rtol=1e-9, atol=0)], "best"] = True
    return table.reset_index(drop=True)


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
    from `stats.add_verdicts` (Holm across the rows that have a direction): 'better'/'worse' at
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
        verdicts = stats.add_verdicts(judged)
        out.loc[verdicts.index, ["p_holm", "verdict"]] = verdicts[["p_holm", "verdict"]]
    return out


def interval_text(diffs: pd.DataFrame) -> str:
    """How the intervals of a difference table were computed, for its caption."""
    methods = set(diffs["interval"]) - {"degenerate", "none"}
    names = {"t": "Student-t", "BCa": "BCa bootstrap (2000 resamples, seed 0)"}
    return " / ".join(names.get(m, m) for m in sorted(methods)) or "Student-t"


def power_note(diffs: pd.DataFrame, alpha: float = stats.ALPHA) -> str:
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
                  "≠": r"$\neq$", "…": r"\ldots{}"}


def latex_text(text: str) -> str:
    """Escape `text` for LaTeX and replace the Unicode symbols the report uses."""
    text = latex_escape(text)
    for symbol, latex in _LATEX_SYMBOLS.items():
        text = text.replace(symbol, latex)
    return text


def header(task_units: dict[str, str], metric: str, directions: dict[str, str],
           latex: bool) -> str:
    """Column header with the declared direction and unit: `distance ↓ (samples)`."""
    arrow = {"min": ("↓", r"$\downarrow$"), "max": ("↑", r"$\uparrow$")}.get(
        directions.get(metric), ("", ""))[latex]
    unit = task_units.get(metric, "")
    name = latex_escape(metric) if latex else metric
    text = f"{name} {arrow}".strip()
    if unit:  # LaTeX: the unit goes on a second header row (see `to_latex`)
        text += f"\n({latex_text(unit)})" if latex else f" ({unit})"
    return text


def render(table: pd.DataFrame, metrics: Sequence[str], directions: dict[str, str],
           latex: bool = False, baseline: str = "plain") -> pd.DataFrame:
    """Wide text table of `final_table` rows (or `difference_table` rows) for `metrics`."""
    bold = r"\textbf{%s}" if latex else "**%s**"
    rows = table[table.metric.isin(metrics)]
    if "diff" in rows:
        text = [format_interval(d, lo, hi, latex) for d, lo, hi in
                zip(rows["diff"], rows["lo"], rows["hi"])]
        flags = rows["verdict"] == "better"
    else:
        text = [format_mean_std(m, s, n, latex) for m, s, n in
                zip(rows["mean"], rows["std"], rows["n"])]
        flags = rows["best"]
    text = [bold % t if f else t for t, f in zip(text, flags)]
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
    wide = wide[present].rename(columns={m: header(units, m, directions, latex) for m in present})
    wide = wide.reset_index().rename_axis(columns=None).fillna("—" if not latex else "--")
    if latex:  # the caption names the family: `alignment1d_same` -> `same`
        wide["task"] = [t.split("_", 1)[1] if "_" in t else t for t in wide["task"]]
        for col in KEYS:
            wide[col] = wide[col].map(latex_escape)
    return wide


def to_markdown(frame: pd.DataFrame) -> str:
    from tabulate import tabulate

    return tabulate(frame, headers="keys", tablefmt="github", showindex=False)


def to_latex(frame: pd.DataFrame, caption: str, label: str, notes: Sequence[str] = ()) -> str:
    """A booktabs `table` float, shrunk to the text width when wider (adjustbox); notes below."""
    align = "lll" + "r" * (frame.shape[1] - 3)
    names = [str(c).split("\n")[0] for c in frame.columns]
    units = [str(c).split("\n")[1] if "\n" in str(c) else "" for c in frame.columns]
    lines = [" & ".join(names) + r" \\"]
    if any(units):
        lines.append(" & ".join(units) + r" \\")
    lines.append(r"\midrule")
    previous = None
    for row in frame.itertuples(index=False):
        cells = list(row)
        if previous is not None and cells[0] != previous:
            lines.append(r"\addlinespace")
        previous = cells[0]
        lines.append(" & ".join(str(c) for c in cells) + r" \\")
    tabular = "\n".join([rf"\begin{{tabular}}{{{align}}}", r"\toprule", *lines, r"\bottomrule",
                         r"\end{tabular}"])
    tabular = "\n".join([r"\begin{adjustbox}{max width=\linewidth}", tabular,
                         r"\end{adjustbox}"])
    body = [r"\begin{table}[t]", r"\centering", r"\small", r"\setlength{\tabcolsep}{4pt}",
            rf"\caption{{{caption}}}", rf"\label{{{label}}}", tabular]
    if notes:
        body.append(r"\par\smallskip{\footnotesize " + r" \\ ".join(notes) + "}")
    return "\n".join([*body, r"\end{table}"]) + "\n"


def caption_definitions(metrics: Sequence[str]) -> str:
    """`Metrics: distance = ...; success@k = ...` for the metrics of one table."""
    seen, parts = set(), []
    for metric in metrics:
        definition = definition_of(metric)
        key = definition or metric
        if definition and key not in seen:
            seen.add(key)
            name = re.sub(r"@[\d.]+$", "@k", metric)
            name = re.sub(r"^(success|escaped)_\w+$", r"\1_*", name)
            parts.append(f"{name}: {definition}")
    return ("Metrics: " + "; ".join(parts) + ".") if parts else ""


def write_table(markdown: pd.DataFrame, latex: pd.DataFrame, raw: pd.DataFrame, stem: Path,
                formats: Sequence[str], caption: str, label: str,
                notes: Sequence[str] = ()) -> list[Path]:
    """Write `stem.{md,tex,csv}` (as `formats` asks); returns the files written."""
    written = []
    if "md" in formats:
        text = to_markdown(markdown) + "\n"
        atomic_write_text(stem.with_suffix(".md"), text)
        written.append(stem.with_suffix(".md"))
    if "tex" in formats:
        tex_notes = [latex_text(n) for n in notes]
        atomic_write_text(stem.with_suffix(".tex"), to_latex(latex, caption, label, tex_notes))
        written.append(stem.with_suffix(".tex"))
    if "csv" in formats:
        atomic_write_frame(raw, stem.with_suffix(".csv"))
        written.append(stem.with_suffix(".csv"))
    return written


#: LaTeX packages the generated tables need (written as `tables/preamble.tex`).
PREAMBLE = r"""% Packages needed by the generated tables: \input{preamble} in the document preamble,
% then \input{<family>_final_<group>} where a table goes.
\usepackage{booktabs}   % \toprule, \midrule, \bottomrule, \addlinespace
\usepackage{adjustbox}  % max width=\linewidth (texlive-latex-extra)
\usepackage{amssymb}    % arrows and symbols in headers
\usepackage[T1]{fontenc}
"""
