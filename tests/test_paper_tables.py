"""Comparison tables mark better and worse with p and Holm p; ties and single seeds; display
names, shared powers of ten, 'after ICP'; the CLI on tuning folders."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from bench.cli import main
from bench.report.index import _family_caption
from bench.report.tables import difference_table, final_table, render, summarise
from tests.conftest import REPO

DIRECTIONS = {"distance": "min", "accuracy": "max", "mse": "min", "rot_iso_deg": "min"}


def _values(shift: dict[str, float], seeds: int = 12, task: str = "alignment1d_same",
            model: str = "conv1d") -> pd.DataFrame:
    return pd.DataFrame([dict(task=task, model=model, objective=o, seed=s, metric=m,
                              value=base * (1 + 0.01 * s) + (delta if o == "dlc" else 0.0))
                         for o in ("plain", "dlc") for s in range(seeds)
                         for m, (base, delta) in shift.items()])


def test_difference_table_marks_better_and_worse_with_p_and_holm() -> None:
    values = _values({"distance": (1.0, -0.5), "accuracy": (80.0, -10.0)})
    diffs = difference_table(values, "plain", DIRECTIONS)
    text = render(diffs, ["distance", "accuracy"], DIRECTIONS).iloc[0]
    assert "▲" in text["distance ↓ (samples)"] and "▼" in text["accuracy ↑ (%)"]
    assert "p 0.00049" in text["accuracy ↑ (%)"] and "Holm" in text["accuracy ↑ (%)"]
    latex = render(diffs, ["distance", "accuracy"], DIRECTIONS, latex=True).iloc[0].to_list()
    assert any(r"\blacktriangledown" in c and r"\textit" in c for c in latex)
    caption = _family_caption("alignment1d", "cpu", "12 seeds", ["distance"], "BCa", "plain")
    assert "sign-flip" in caption and "Holm" in caption and "worse" in caption


def test_equal_printed_means_are_bold_on_both_sides_or_neither() -> None:
    summary = pd.DataFrame([dict(task="t_a", model="m", objective=o, metric="accuracy", mean=v,
                                 std=0.3, n=3) for o, v in (("plain", 96.21), ("dlc", 96.19),
                                                            ("margin", 90.0))])
    table = final_table(summary, DIRECTIONS)
    assert table.set_index("objective")["best"].to_dict() == {
        "plain": True, "dlc": True, "margin": False}
    tied = final_table(summary[summary.objective != "margin"], DIRECTIONS)
    assert not tied["best"].any()  # 96.2 vs 96.2: neither


def test_one_seed_has_no_spread_no_best_and_says_so() -> None:
    values = _values({"distance": (1.0, -0.5)}, seeds=1)
    table = final_table(summarise(values), DIRECTIONS)
    assert not table["best"].any()
    assert "±" not in " ".join(render(table, ["distance"], DIRECTIONS).iloc[:, 3])
    caption = _family_caption("alignment1d", "cpu", "1 seed", ["distance"], "", "plain",
                              single_seed=True)
    assert "std" not in caption and "one seed" in caption


def test_display_names_shared_exponent_and_after_icp() -> None:
    values = _values({"mse": (3.75e-4, 1e-5)}, seeds=3, task="sequence_adding", model="lstm")
    table = final_table(summarise(values), DIRECTIONS)
    header = render(table, ["mse"], DIRECTIONS).columns[3]
    assert header.startswith("MSE ↓ (×10⁻⁴")
    cells = render(table, ["mse"], DIRECTIONS).iloc[:, 3].tolist()
    assert all("e-" not in c for c in cells), cells
    reg = _values({"rot_iso_deg": (1.0, 0.1)}, seeds=3, task="registration_synthetic_dcp", model="dcp")
    header = render(final_table(summarise(reg), DIRECTIONS), ["rot_iso_deg"], DIRECTIONS).columns[3]
    assert header == "rotation error (isotropic) ↓ (degrees, after ICP)"


def test_run_refuses_a_tuning_folder_and_list_points_into_it(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "tuned"
    (folder / "selected").mkdir(parents=True)
    (folder / "trials.json").write_text("[]\n")
    assert main(["run", "smoke", "--results", str(folder), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "tuning folder" in err
    assert main(["list", str(folder)]) == 0
    out = capsys.readouterr().out
    assert f"{folder}/final/" in out and f"{folder}/trials/" in out


def test_report_format_is_checked_and_listed(tmp_path: Path, capsys) -> None:
    assert main(["report", str(tmp_path), "--format", "pdf"]) == 2
    assert "md, tex, csv" in capsys.readouterr().err
    assert main(["report", "--help"]) == 0
    text = capsys.readouterr().out
    assert "reads it only" not in text and "md, tex, csv" in " ".join(text.split())


@pytest.mark.slow  # seconds; CI runs it in its slow step
def test_format_tex_draws_pdf_figures_only(tmp_path: Path) -> None:
    from bench.report import write_report
    from bench.runner.result_tables import collect
    from tests.test_report import _fake_results

    _fake_results(tmp_path / "results")
    collect(tmp_path / "results")
    write_report(tmp_path / "results", tmp_path / "out", formats=["tex"])
    made = {p.suffix for p in (tmp_path / "out" / "figures").iterdir()}
    assert ".pdf" in made and ".png" not in made
    assert not list((tmp_path / "out" / "tables").glob("*_final_*.md"))


@pytest.mark.slow
def test_report_on_a_tuning_folder_writes_latex_tables(tmp_path: Path, monkeypatch) -> None:
    """On a copy of the committed tuning folder; its figures have no overlapping text."""
    from bench.report import tuned
    from tests.test_figures_layout import _overlaps

    overlaps, save = {}, tuned.save_figure

    def keep(fig, data, stem):  # figures arrive laid out (`figures.lay_out`): check, then save
        fig.canvas.draw()
        overlaps[stem.name] = _overlaps(fig)
        return save(fig, data, stem)

    monkeypatch.setattr(tuned, "save_figure", keep)
    copy = tmp_path / "cpu"
    shutil.copytree(REPO / "results" / "cpu_66f1d96_8trials_1seed", copy, ignore=shutil.ignore_patterns("report"))
    assert main(["report", str(copy)]) == 0
    assert overlaps and not {k: v for k, v in overlaps.items() if v}
    tex = (copy / "report" / "comparisons.tex").read_text()
    assert r"\blacktriangle" in tex and r"\blacktriangledown" in tex and "Holm" in tex
