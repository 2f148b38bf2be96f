"""The README's result tables are the ones `python -m bench.report.readme` generates from the
committed results; a typed number in a generated block is caught."""

from __future__ import annotations

from bench.report.readme import BLOCKS, regenerate
from tests.conftest import REPO

README = (REPO / "README.md").read_text()


def test_every_generated_block_is_in_the_readme() -> None:
    for name in BLOCKS:
        assert f"<!-- generated: {name} -->" in README and f"<!-- /generated: {name} -->" in README


def test_readme_tables_match_the_committed_results() -> None:
    _, changed = regenerate(README)
    assert changed == [], f"run `python -m bench.report.readme`: {changed} differ"


def test_a_typed_number_is_caught() -> None:
    start = README.index("<!-- generated: cpu-tuned -->")
    typed = README[:start] + README[start:].replace("7.16 ± 0.11", "7.17 ± 0.11", 1)
    assert typed != README
    assert regenerate(typed)[1] == ["cpu-tuned"]
