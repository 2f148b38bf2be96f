"""The README's result tables, generated from the committed results (never typed).

`python -m bench.report.readme` rewrites every block of README.md between
`<!-- generated: NAME -->` and `<!-- /generated: NAME -->` from the tables it names;
`--check` writes nothing and exits 1 naming each block that differs (`tests/test_readme_tables.py`
runs it). Blocks:

* `cpu-tuned`: the tuned comparison made by older code,
  `results/cpu_66f1d96_8trials_1seed/report/comparisons.csv`
  (`bench.report.readme_results.comparison_block`, as `cpu-now` for today's `results/cpu`);
* `cpu-budget0`: chosen rows (`readme_cpu.BUDGET0_ROWS`) of plain vs dlc in `results/cpu_budget0`, from its
  `results.parquet`/`runs.parquet` with the report's own statistics (`bench.report.tables`);
* the blocks of `BLOCKS` in `bench.report.readme_checks`, `readme_sequence`, `readme_cpu`,
  `readme_faithful` and `readme_results`.

Numbers quoted in prose or in hand-laid table cells sit between inline markers,
`<!-- num:KEY -->91.8 ± 0.6<!-- /num -->`, and are rewritten the same way from `NUMBERS` (the
keys of `bench.report.readme_reference`, `readme_checks`, `readme_sequence`, `readme_cpu`,
`readme_faithful`, `readme_results`; and `PATTERNS`: `now.row.<task>.<model>.<objective>.<field>`).
"""

from __future__ import annotations

import argparse
import re
import sys
import textwrap
from collections.abc import Callable
from functools import cache
from pathlib import Path

from bench.report import (
    readme_checks,
    readme_cpu,
    readme_faithful,
    readme_reference,
    readme_results,
    readme_sequence,
)
from bench.report.comparison_tables import metric_text
from bench.report.numbers import format_interval, format_mean_std
from bench.report.reading import drop_legacy_gap, final_values, load_tables, metric_directions
from bench.report.readme_cpu import BUDGET0_ROWS
from bench.report.readme_source import markdown, minus
from bench.report.tables import difference_table, summarise
from bench.runner.store import atomic_write_text

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
#: a block, at any indentation (inside a list item, its lines are indented like its markers)
BLOCK = re.compile(r"^(?P<indent>[ ]*)(?P<open><!-- generated: (?P<name>[\w-]+) -->\n)(?P<body>.*?)"
                   r"(?P=indent)(?P<close><!-- /generated: (?P=name) -->)", re.S | re.M)


def cpu_budget0(repo: Path = REPO) -> str:
    """plain vs dlc on `BUDGET0_ROWS` of the one-shot defaults (seeds 0-2)."""
    metrics, runs = load_tables(repo / "results" / "cpu_budget0")
    metrics, _ = drop_legacy_gap(metrics)
    directions = metric_directions(runs)
    values = final_values(metrics)
    values = values[values["objective"].isin(["plain", "dlc"])]
    summary = summarise(values).set_index(["task", "model", "objective", "metric"])
    diffs = difference_table(values, "plain", directions).set_index(["task", "model", "metric"])
    rows = []
    for task, model, metric in BUDGET0_ROWS:
        d = diffs.loc[(task, model, metric)]
        sides = [format_mean_std(*summary.loc[(task, model, o, metric), ["mean", "std", "n"]])
                 for o in ("plain", "dlc")]
        excludes = "no" if d["lo"] <= 0 <= d["hi"] else ("yes, lower" if d["hi"] < 0
                                                          else "yes, higher")
        direction = directions.get(metric)
        name = metric_text(task, model, metric, direction) if direction in ("min", "max") \
            else metric
        rows.append((task, model, name, *sides, minus(format_interval(d["diff"], d["lo"],
                                                                        d["hi"])), excludes))
    return markdown(rows, ["task", "model", "metric", "plain", "DLC", "DLC − plain (95% CI)",
                           "CI excludes 0"])


BLOCKS: dict[str, Callable[[Path], str]] = {
    "cpu-tuned": lambda repo: readme_results.comparison_block(repo, readme_cpu.TUNED),
    "cpu-budget0": cpu_budget0, **readme_checks.BLOCKS, **readme_sequence.BLOCKS,
    **readme_cpu.BLOCKS, **readme_faithful.BLOCKS, **readme_results.BLOCKS}
#: `<!-- num:KEY -->text<!-- /num -->`: one number (or short list) inside a line
NUMBER = re.compile(r"(?P<indent>)(?P<open><!-- num:(?P<name>[\w.-]+) -->)(?P<body>[^<\n`]*)"
                    r"(?P<close><!-- /num -->)")
NUMBERS: dict[str, Callable[[Path], str]] = {**readme_reference.NUMBERS, **readme_checks.NUMBERS,
                                              **readme_sequence.NUMBERS, **readme_cpu.NUMBERS,
                                              **readme_faithful.NUMBERS, **readme_results.NUMBERS}
#: numbers named by pattern: a prefix and the function of (repo, name) that reads the rest
PATTERNS: dict[str, Callable[[Path, str], str]] = {"now.row.": readme_results.row_number}


@cache
def generated(kind: str, name: str, repo: Path) -> str:
    """The text of block (`kind` 'block') or number ('number') `name`, from the results under
    `repo` (computed once per process: the committed results do not change while it runs)."""
    known = BLOCKS if kind == "block" else NUMBERS
    pattern = next((f for p, f in PATTERNS.items() if name.startswith(p)), None)
    if kind == "number" and name not in known and pattern:
        return pattern(repo, name)
    if name not in known:
        raise KeyError(f"README.md: unknown {kind} {name!r}; known: {sorted(known)}")
    return known[name](repo)


def regenerate(text: str, repo: Path = REPO) -> tuple[str, list[str]]:
    """(README text with every generated block and inline number rewritten, names of those that
    changed; a number as `num:KEY`)."""
    changed: list[str] = []

    def rewrite(kind: str, prefix: str):
        def one(match: re.Match) -> str:
            body = textwrap.indent(generated(kind, match["name"], repo), match["indent"])
            if body != match["body"]:
                changed.append(prefix + match["name"])
            return match["indent"] + match["open"] + body + match["indent"] + match["close"]
        return one

    text = BLOCK.sub(rewrite("block", ""), text)
    return NUMBER.sub(rewrite("number", "num:"), text), changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.report.readme",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 when a block differs from its tables")
    args = parser.parse_args(argv)
    text, changed = regenerate(README.read_text())
    if args.check:
        for name in changed:
            print(f"README.md: {name!r} differs from its tables; run "
                  "`python -m bench.report.readme`", file=sys.stderr)
        return 1 if changed else 0
    if changed:
        atomic_write_text(README, text)
    print(f"README.md: {len(changed)} block(s)/number(s) rewritten" + (f" ({', '.join(changed)})"
                                                             if changed else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
