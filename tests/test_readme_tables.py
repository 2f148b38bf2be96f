"""The README's result tables and the numbers it quotes are the ones `python -m bench.report.readme`
generates from the committed results; a typed number, in a block or inline, is caught."""

from __future__ import annotations

import pandas as pd
import pytest

from bench.report.readme import BLOCKS, NUMBERS, regenerate
from bench.report.readme_source import listed, span
from tests.conftest import REPO

README = (REPO / "README.md").read_text()


def test_every_generated_block_and_number_is_in_the_readme() -> None:
    for name in BLOCKS:
        assert f"<!-- generated: {name} -->" in README and f"<!-- /generated: {name} -->" in README
    for key in NUMBERS:
        assert f"<!-- num:{key} -->" in README, key


def test_readme_tables_match_the_committed_results() -> None:
    _, changed = regenerate(README)
    assert changed == [], f"run `python -m bench.report.readme`: {changed} differ"


def _typed(old: str, new: str, after: str) -> str:
    start = README.index(after)
    typed = README[:start] + README[start:].replace(old, new, 1)
    assert typed != README
    return typed


def test_a_typed_number_is_caught() -> None:
    assert regenerate(_typed("7.16 ± 0.11", "7.17 ± 0.11", "<!-- generated: cpu-tuned -->"))[1] \
        == ["cpu-tuned"]
    assert regenerate(_typed("91.8 ± 0.6<", "91.7 ± 0.6<", "<!-- num:ref.plain.acc -->"))[1] \
        == ["num:ref.plain.acc"]
    indented = "  <!-- generated: sequence-kl -->"  # a block inside a list item
    assert regenerate(_typed("| 50.5 |", "| 50.6 |", indented))[1] == ["sequence-kl"]


def test_lists_and_spans_print_every_value_exactly() -> None:
    assert listed(pd.Series([47.75, 52.25, 51.5])) == "47.75, 52.25, 51.50"
    assert listed(pd.Series([91.6, 91.3, 92.4])) == "91.6, 91.3, 92.4"
    assert span(pd.Series([6.097, 6.403]), ".2g") == "6.1-6.4"
    assert span(pd.Series([0.03, 0.0301]), ".1g") == "0.03"


def test_numbers_come_from_the_results_not_from_the_readme(tmp_path) -> None:
    """A changed result changes the generated number (nothing typed in the generator)."""
    from bench.report.readme_reference import NUMBERS as REFERENCE

    folder = tmp_path / "results" / "reference"
    folder.mkdir(parents=True)
    metrics = pd.read_parquet(REPO / "results" / "reference" / "results.parquet")
    plain = (metrics.objective == "plain") & (metrics.metric == "accuracy")
    metrics.loc[plain, "value"] -= 10
    metrics.to_parquet(folder / "results.parquet")
    (folder / "runs.parquet").write_bytes(
        (REPO / "results" / "reference" / "runs.parquet").read_bytes())
    assert float(REFERENCE["ref.plain.mean"](tmp_path)) == pytest.approx(
        float(REFERENCE["ref.plain.mean"](REPO)) - 10, abs=0.051)
