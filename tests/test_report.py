"""Reports from a synthetic results folder with known values (no training involved)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench import stats
from bench.report import write_report
from bench.store import RunWriter


def _fake_results(folder: Path) -> None:
    """Two tasks x {plain, dlc} x 3 seeds; dlc has the lower distance and the higher success on
    `alignment1d_a`, plain wins on `alignment1d_b`. Plus one failed and one skipped cell."""
    rng = np.random.default_rng(0)
    for task, dlc_better in (("alignment1d_a", True), ("alignment1d_b", False)):
        for objective in ("plain", "dlc"):
            good = (objective == "dlc") == dlc_better
            for seed in range(3):
                run_id = f"{task}-conv1d-{objective}-s{seed}"
                ident = dict(run_id=run_id, task=task, model="conv1d", objective=objective,
                             seed=seed)
                rows = []
                for it in range(4):
                    dist = (0.5 if good else 2.0) * 0.5 ** it + 0.01 * rng.random()
                    rows.append({**ident, "phase": "test_iter", "step": it, "metric": "distance",
                                 "value": dist})
                    rows.append({**ident, "phase": "test_iter", "step": it,
                                 "metric": "optimality_gap", "value": dist / 10})
                rows.append({**ident, "phase": "test", "step": 3, "metric": "distance",
                             "value": dist})
                for thr, base in ((0.5, 40.0), (1.0, 70.0)):
                    rows.append({**ident, "phase": "test", "step": 3, "metric": f"success@{thr:g}",
                                 "value": base + (20 if good else 0) + seed})
                for epoch in range(3):
                    rows.append({**ident, "phase": "train", "step": epoch, "metric": "train_loss",
                                 "value": 1.0 / (epoch + 1) + 0.01 * seed})
                rows.append({**ident, "phase": "landscape", "step": 0, "metric": "violation_rate",
                             "value": 0.1 if good else 0.4})
                for i, t in enumerate(np.linspace(-1, 1, 5)):
                    rows.append({**ident, "phase": "landscape", "step": i, "metric": "slice_t",
                                 "value": t})
                    rows.append({**ident, "phase": "landscape", "step": i, "metric": "slice_h",
                                 "value": t * t})
                writer = RunWriter(folder, run_id)
                writer.write_metrics(rows)
                for name in ("config.gin", "operative.gin"):  # a done run folder is complete
                    writer.write_text(name, "# fake\n")
                writer.publish({**ident, "status": "done", "reason": "", "device": "cpu",
                                "wall_time_s": 1.0, "step_time_s": 0.01, "cpu": "test-cpu",
                                "metric_directions": {"distance": "min", "success@0.5": "max",
                                                      "success@1": "max"}})
    for run_id, status in (("alignment1d_a-conv1d-margin-s0", "failed"),
                           ("alignment1d_a-other-plain-s0", "skipped")):
        writer = RunWriter(folder, run_id)
        writer.publish(dict(run_id=run_id, task="alignment1d_a", model=run_id.split("-")[1],
                            objective=run_id.split("-")[2], seed=0, status=status,
                            reason=f"because {status}"))


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("results")
    _fake_results(folder)
    return write_report(folder)


def test_final_table_lists_every_cell_and_bolds_the_best(report: Path) -> None:
    md = (report / "tables" / "alignment1d_final.md").read_text()
    rows = {tuple(c.strip() for c in line.split("|")[1:4]): line for line in md.splitlines()[2:]}
    assert set(rows) == {("alignment1d_a", "conv1d", "plain"), ("alignment1d_a", "conv1d", "dlc"),
                         ("alignment1d_b", "conv1d", "plain"), ("alignment1d_b", "conv1d", "dlc"),
                         ("alignment1d_a", "conv1d", "margin"), ("alignment1d_a", "other", "plain")}
    header = [c.strip() for c in md.splitlines()[0].split("|")[1:-1]]
    dist, succ = header.index("distance ↓"), header.index("success@1 ↑")

    def cell(key: tuple[str, str, str], col: int) -> str:
        return [c.strip() for c in rows[key].split("|")[1:-1]][col]

    assert cell(("alignment1d_a", "conv1d", "dlc"), dist).startswith("**")
    assert not cell(("alignment1d_a", "conv1d", "plain"), dist).startswith("**")
    assert cell(("alignment1d_b", "conv1d", "plain"), dist).startswith("**")
    assert cell(("alignment1d_a", "conv1d", "dlc"), succ).startswith("**")  # max is best here
    assert cell(("alignment1d_b", "conv1d", "plain"), succ).startswith("**")
    assert "±" in cell(("alignment1d_a", "conv1d", "dlc"), dist)
    assert "0/1 done, 1 failed" in rows[("alignment1d_a", "conv1d", "margin")]
    assert "0/1 done, 1 skipped" in rows[("alignment1d_a", "other", "plain")]
    assert "3/3 done" in rows[("alignment1d_a", "conv1d", "dlc")]
    cells = (report / "tables" / "cells.md").read_text()
    assert "because failed" in cells and "because skipped" in cells


def test_latex_is_structurally_valid(report: Path) -> None:
    for path in (report / "tables").glob("*.tex"):
        tex = path.read_text()
        depth = 0
        for char in tex.replace(r"\{", "").replace(r"\}", ""):
            depth += {"{": 1, "}": -1}.get(char, 0)
            assert depth >= 0, path
        assert depth == 0, path
        assert tex.index(r"\toprule") < tex.index(r"\midrule") < tex.index(r"\bottomrule")
        assert not re.findall(r"(?<!\\)_", tex), f"unescaped underscore in {path.name}"
        assert r"\caption{" in tex and "std" in tex or "CI" in tex
    final = (report / "tables" / "alignment1d_final.tex").read_text()
    assert r"alignment1d\_a" in final and r"\textbf{" in final and r"$\pm$" in final


def test_paired_difference_and_bootstrap_are_the_shared_definitions(report: Path) -> None:
    diffs = pd.read_csv(report / "tables" / "alignment1d_vs_plain.csv")
    row = diffs[(diffs.task == "alignment1d_a") & (diffs.metric == "distance")].iloc[0]
    assert row["diff"] < 0 and row.hi < 0 and row.verdict == "better" and row.n == 3
    row = diffs[(diffs.task == "alignment1d_b") & (diffs.metric == "distance")].iloc[0]
    assert row["diff"] > 0 and row.lo > 0 and row.verdict == "worse"
    assert stats.bootstrap_ci([1.0, 2.0, 3.0]) == stats.bootstrap_ci([1.0, 2.0, 3.0])
    lo, hi = stats.bootstrap_ci([1.0, 2.0, 3.0, 4.0])
    assert 1.0 <= lo < 2.5 < hi <= 4.0
    mean, std, n = stats.mean_std([1.0, 2.0, 3.0])
    assert (mean, n) == (2.0, 3) and std == pytest.approx(1.0)  # ddof=1
    assert stats.median_iqr([1.0, 2.0, 3.0, 4.0]) == (2.5, 1.75, 3.25)


def test_figures_are_written_and_not_empty(report: Path) -> None:
    figures = report / "figures"
    for stem in ("alignment1d_a_train_loss", "alignment1d_a_test_iter_distance",
                 "alignment1d_a_test_iter_optimality_gap", "alignment1d_a_success_vs_threshold",
                 "alignment1d_a_landscape_slice", "violation_rate", "profile_distance"):
        for suffix in (".png", ".pdf", ".csv"):
            path = figures / f"{stem}{suffix}"
            assert path.exists() and path.stat().st_size > 100, path
    index = (report / "index.md").read_text()
    assert "figures/alignment1d_a_test_iter_distance.png" in index
    assert "test-cpu" in index  # provenance


def test_performance_profile_on_known_costs() -> None:
    costs = pd.DataFrame({"a": [1.0, 2.0], "b": [2.0, 1.0], "c": [4.0, 4.0]})
    profile = stats.performance_profile(costs, np.array([1.0, 2.0, 4.0]))
    assert profile.loc[1.0].tolist() == [0.5, 0.5, 0.0]
    assert profile.loc[2.0].tolist() == [1.0, 1.0, 0.0]
    assert profile.loc[4.0].tolist() == [1.0, 1.0, 1.0]
    area = stats.profile_area(profile)
    assert area["a"] == area["b"] > area["c"]
