"""One table of each kind compiles with pdflatex and embeds no Type 3 (bitmap) font; the tuned
comparison (`table*`) fits the text width of a two-column paper.

Needs pdflatex and pdffonts (Debian: `apt-get install texlive-latex-base
texlive-latex-recommended lmodern poppler-utils`, as `.ci/run` does). Elsewhere it skips with
that reason; in CI (`CI=true`) a missing tool fails the test instead."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from bench.report.comparison_tables import comparison_latex
from bench.report.tables import PREAMBLE, difference_table, final_table, render, summarise, to_latex
from tests.conftest import REPO

TOOLS = ("pdflatex", "pdffonts")
INSTALL = ("apt-get install texlive-latex-base texlive-latex-recommended lmodern "
           "poppler-utils")


def _need_tools() -> None:
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if not missing:
        return
    message = f"{', '.join(missing)} not installed ({INSTALL})"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI must run this test: {message}")
    pytest.skip(message)


def _values() -> pd.DataFrame:
    rows = [dict(task="alignment1d_a", model="conv1d", objective=o, seed=s, metric=m,
                 value=base + 0.1 * s + (0.5 if o == "dlc" else 0.0))
            for o in ("plain", "dlc") for s in range(6)
            for m, base in (("distance", 1.0), ("success@1", 50.0), ("mse", 3e-4))]
    return pd.DataFrame(rows)


def tables_of_each_kind() -> dict[str, str]:
    directions = {"distance": "min", "success@1": "max", "mse": "min"}
    values = _values()
    final = final_table(summarise(values), directions)
    diffs = difference_table(values, "plain", directions)
    metrics = ["distance", "success@1", "mse"]
    comparison = diffs[diffs.metric == "distance"].assign(
        mean=1.5, std=0.2, runs=6, base_mean=1.0, base_std=0.2, base_runs=6, unmatched=[[]])
    return {
        "final": to_latex(render(final, metrics, directions, latex=True), "Final ± std.", "t:f"),
        "difference": to_latex(render(diffs, metrics, directions, latex=True), "Diff.", "t:d"),
        "comparison": comparison_latex(comparison, "plain", "Tuned", "t:c"),
    }


def test_every_table_kind_compiles_without_type3_fonts(tmp_path: Path) -> None:
    _need_tools()
    for name, text in tables_of_each_kind().items():
        (tmp_path / f"{name}.tex").write_text(text)
    (tmp_path / "preamble.tex").write_text(PREAMBLE)
    body = "\n".join(rf"\input{{{n}}}" for n in tables_of_each_kind())
    (tmp_path / "doc.tex").write_text("\\documentclass{article}\n\\input{preamble}\n"
                                      f"\\begin{{document}}\n{body}\n\\end{{document}}\n")
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:]
    fonts = subprocess.run(["pdffonts", "doc.pdf"], cwd=tmp_path, capture_output=True,
                           text=True, timeout=60, check=True).stdout
    assert len(fonts.splitlines()) > 2, fonts  # some font is embedded
    assert "Type 3" not in fonts, fonts


def test_preamble_loads_a_scalable_font() -> None:
    assert r"\usepackage{lmodern}" in PREAMBLE and "adjustbox" not in PREAMBLE


def _overfull(folder: Path, table: str, width: str = "") -> list[float]:
    """pt by which each line of `table` overflows, compiled in `\\documentclass[10pt,twocolumn]
    {article}` (its \\textwidth, 469 pt on A4, 469.75 pt on letter: narrower than IEEEtran's
    7.16 in, CVPR's 6.875 in, ICML's 6.75 in or AAAI's 7 in), or at `width` when given."""
    (folder / "table.tex").write_text(table)
    (folder / "preamble.tex").write_text(PREAMBLE)
    resize = rf"\setlength{{\textwidth}}{{{width}}}" if width else ""
    (folder / "doc.tex").write_text("\\documentclass[10pt,twocolumn]{article}\n\\input{preamble}\n"
                                    f"{resize}\n\\begin{{document}}\n\\input{{table}}\nText.\n"
                                    "\\end{document}\n")
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"],
                          cwd=folder, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:]
    log = (folder / "doc.log").read_text(errors="replace")
    return [float(x) for x in re.findall(r"Overfull \\hbox \(([\d.]+)pt too wide\)", log)]


def test_tuned_comparison_fits_a_two_column_text_width(tmp_path: Path) -> None:
    _need_tools()
    table = pd.read_csv(REPO / "results" / "cpu_66f1d96_8trials_1seed" / "report" / "comparisons.csv")  # real names
    table["unmatched"] = table["unmatched"].map(json.loads)
    text = comparison_latex(table, "plain", "Tuned", "t:c")
    assert r"\begin{table*}" in text and r"\small" in text and "adjustbox" not in text
    assert _overfull(tmp_path, text) == []
    assert _overfull(tmp_path, text, "300pt")  # the measurement sees a table that does not fit
