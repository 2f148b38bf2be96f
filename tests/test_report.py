"""Reports from synthetic results folders with known values (no training involved)."""

from __future__ import annotations

import re
import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench import stats
from bench.report import write_report
from bench.report.figures import KNOWN_STYLES, style
from bench.report.tables import format_interval, format_mean_std, natural_key, seeds_text
from bench.runner.result_tables import collect
from bench.runner.store import RunWriter
from tests.conftest import write_weights

DIRECTIONS = {"distance": "min", "success@0.5": "max", "success@1": "max", "success@2": "max",
              "success@10": "max", "violation_rate": "min", "accuracy": "max",
              "trivial_accuracy": "max", "optimality_gap": "min", "spurious_minimum": "min"}
#: violation rate per (model, objective) on alignment1d_a: pooled over models, plain and dlc
#: would both read 0.225, hiding that dlc is better on conv1d and worse on mlp.
VIOLATION = {("conv1d", "plain"): 0.40, ("conv1d", "dlc"): 0.10,
             ("mlp", "plain"): 0.05, ("mlp", "dlc"): 0.35}


def _publish(folder: Path, ident: dict, rows: list[dict], sha: str = "a" * 40,
             status: str = "done", reason: str = "") -> None:
    writer = RunWriter(folder, ident["run_id"])
    if rows:
        writer.write_metrics(rows)
    if status == "done":  # a done run folder is complete
        for name in ("config.gin", "operative.gin"):
            writer.write_text(name, "# fake\n")
        write_weights(writer.stage / "weights.safetensors")
    family = "seqtoy" if ident["task"] == "seqtoy_a" else "alignment1d"  # as Task.family records
    writer.publish({**ident, "family": family, "status": status, "reason": reason, "device": "cpu", "scale": "smoke",
                    "wall_time_s": 1.0, "step_time_s": 0.01, "cpu": "test-cpu", "git_sha": sha,
                    "finished": "2026-01-01T00:00:00",
                    "metric_directions": DIRECTIONS if status == "done" else {}})


def _alignment_rows(ident: dict, good: bool, seed: int, model: str, rng) -> list[dict]:
    rows = []
    for it in range(4):
        dist = (0.5 if good else 2.0) * 0.5 ** it + 0.01 * rng.random()
        rows.append({**ident, "phase": "test_iter", "step": it, "metric": "distance", "value": dist})
        rows.append({**ident, "phase": "test_iter", "step": it, "metric": "optimality_gap",
                     "value": -dist / 10})  # the old signed gap: negative
    rows.append({**ident, "phase": "test", "step": 3, "metric": "distance", "value": dist})
    rows.append({**ident, "phase": "test", "step": 3, "metric": "optimality_gap", "value": -0.1})
    rows.append({**ident, "phase": "test", "step": 3, "metric": "mystery", "value": seed + 0.5})
    for thr, base in ((0.5, 40.0), (1.0, 70.0), (2.0, 80.0), (10.0, 90.0)):
        rows.append({**ident, "phase": "test", "step": 3, "metric": f"success@{thr:g}",
                     "value": base + (5 if good else 0) + seed})
    for epoch in range(3):
        for name, value in (("train_loss", 5.0 / (epoch + 1)), ("train_original", 1 / (epoch + 1)),
                            ("train_hinge", 4.0 / (epoch + 1))):
            rows.append({**ident, "phase": "train", "step": epoch, "metric": name, "value": value})
        if ident["objective"] == "dlc":  # dominated by the hinge on alignment1d_b only
            ratio = 20.0 - epoch if ident["task"] == "alignment1d_b" else 4.0 / (epoch + 1)
            rows.append({**ident, "phase": "train", "step": epoch,
                         "metric": "train_weighted_hinge_ratio", "value": ratio})
    rows.append({**ident, "phase": "landscape", "step": 0, "metric": "violation_rate",
                 "value": VIOLATION[(model, ident["objective"])] + 0.01 * seed})
    for i, t in enumerate(np.linspace(-1, 1, 5)):
        rows.append({**ident, "phase": "landscape", "step": i, "metric": "slice_t", "value": t})
        rows.append({**ident, "phase": "landscape", "step": i, "metric": "slice_h", "value": t * t})
    return rows


def _fake_results(folder: Path) -> None:
    """alignment1d_a (models conv1d, mlp) and alignment1d_b (conv1d) x {plain, dlc} x 3 seeds;
    dlc is better on alignment1d_a, plain on alignment1d_b; a constant-baseline task seqtoy_a;
    one failed cell and one skipped cell over 3 seeds; two commits."""
    rng = np.random.default_rng(0)
    for task, dlc_better, models in (("alignment1d_a", True, ("conv1d", "mlp")),
                                     ("alignment1d_b", False, ("conv1d",))):
        for model in models:
            for objective in ("plain", "dlc"):
                for seed in range(3):
                    ident = dict(run_id=f"{task}-{model}-{objective}-s{seed}", task=task,
                                 model=model, objective=objective, seed=seed)
                    good = (objective == "dlc") == dlc_better
                    rows = _alignment_rows({**ident, "model": model}, good, seed, model, rng)
                    _publish(folder, ident, rows, sha="b" * 40 if seed == 2 else "a" * 40)
    for objective, accuracy in (("plain", 60.0), ("dlc", 50.0)):
        for seed in range(3):
            ident = dict(run_id=f"seqtoy_a-rnn-{objective}-s{seed}", task="seqtoy_a", model="rnn",
                         objective=objective, seed=seed)
            rows = [{**ident, "phase": "test", "step": 1, "metric": m, "value": v}
                    for m, v in (("accuracy", accuracy + seed), ("trivial_accuracy", 10.0))]
            _publish(folder, ident, rows)
    _publish(folder, dict(run_id="alignment1d_a-conv1d-margin-s0", task="alignment1d_a",
                          model="conv1d", objective="margin", seed=0), [], status="failed",
             reason="because failed")
    for seed in range(3):
        _publish(folder, dict(run_id=f"alignment1d_a-other-plain-s{seed}", task="alignment1d_a",
                              model="other", objective="plain", seed=seed), [], status="skipped",
                 reason="other cannot run here")
    collect(folder)  # what `bench run` does when it ends


def _listing(results: Path) -> str:
    """Every file outside `report/` with its size and modification time."""
    return "\n".join(f"{p.relative_to(results)} {p.stat().st_size} {p.stat().st_mtime_ns}"
                     for p in sorted(results.rglob("*"))
                     if p.is_file() and "report" not in p.relative_to(results).parts
                     and p.name != "before.txt")


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("results")
    _fake_results(folder)
    (folder / "before.txt").write_text(_listing(folder))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = write_report(folder)
    out.joinpath("warnings.txt").write_text("\n".join(f"{w.category.__name__}: {w.message}"
                                                      for w in caught))
    return out


def _table(path: Path) -> tuple[list[str], dict[tuple[str, str, str], list[str]]]:
    lines = path.read_text().splitlines()
    header = [c.strip() for c in lines[0].split("|")[1:-1]]
    rows = {}
    for line in lines[2:]:
        cells = [c.strip() for c in line.split("|")[1:-1]]
        rows[tuple(cells[:3])] = cells
    return header, rows


def _find(report: Path, prefix: str, column: str, suffix: str = ".md") -> Path:
    """The table `tables/<prefix>*<suffix>` whose header names `column`."""
    for path in sorted((report / "tables").glob(f"{prefix}*.md")):
        if column in path.read_text().splitlines()[0]:
            return path.with_suffix(suffix)
    raise AssertionError(f"no {prefix} table with a {column} column")


def test_final_table_bolds_the_best_only_where_a_direction_is_declared(report: Path) -> None:
    header, rows = _table(_find(report, "alignment1d_final", "distance"))
    assert set(rows) == {("alignment1d_a", "conv1d", "plain"), ("alignment1d_a", "conv1d", "dlc"),
                         ("alignment1d_a", "mlp", "plain"), ("alignment1d_a", "mlp", "dlc"),
                         ("alignment1d_b", "conv1d", "plain"), ("alignment1d_b", "conv1d", "dlc")}
    dist = header.index("distance ↓ (samples)")
    assert rows[("alignment1d_a", "conv1d", "dlc")][dist].startswith("**")
    assert not rows[("alignment1d_a", "conv1d", "plain")][dist].startswith("**")
    assert rows[("alignment1d_b", "conv1d", "plain")][dist].startswith("**")
    assert "±" in rows[("alignment1d_a", "conv1d", "dlc")][dist]
    col = header.index("mystery")  # no declared direction: no arrow, never bold
    assert not any(r[col].startswith("**") for r in rows.values())
    header, rows = _table(_find(report, "alignment1d_final", "success@1"))
    succ = header.index("success@1 ↑ (%)")
    assert rows[("alignment1d_b", "conv1d", "plain")][succ].startswith("**")  # max is best
    assert rows[("alignment1d_a", "conv1d", "dlc")][succ].startswith("**")


def test_success_columns_in_numeric_order(report: Path) -> None:
    header, _ = _table(_find(report, "alignment1d_final", "success@"))
    success = [h.split()[0] for h in header if h.startswith("success@")]
    assert success == ["success@0.5", "success@1", "success@2", "success@10"]
    assert sorted(["success@10", "success@3", "success@20", "success@5"], key=natural_key) == [
        "success@3", "success@5", "success@10", "success@20"]


def test_constant_baselines_are_never_bold_and_get_no_difference_rows(report: Path) -> None:
    for path in (report / "tables").glob("*.md"):
        header = path.read_text().splitlines()[0]
        assert "trivial_" not in header, path.name
    for path in (report / "tables").glob("*.csv"):
        assert not pd.read_csv(path).get("metric", pd.Series(dtype=str)).astype(str)\
            .str.startswith("trivial_").any(), path.name
    index = (report / "index.md").read_text()
    assert "seqtoy_a accuracy = 10.0" in index  # listed once as a note, unformatted
    _, rows = _table(_find(report, "seqtoy_final", "accuracy"))
    assert rows[("seqtoy_a", "rnn", "plain")][3].startswith("**61.0")
    diff = pd.read_csv(_find(report, "seqtoy_vs_plain", "accuracy", ".csv"))
    assert diff.metric.tolist() == ["accuracy"] and diff["diff"].iloc[0] == pytest.approx(-10.0)


def test_skipped_and_failed_cells_are_notes_not_rows(report: Path) -> None:
    text = (report / "index.md").read_text()
    for path in (report / "tables").glob("alignment1d_final_*.md"):
        assert "other" not in path.read_text() and "margin" not in path.read_text()
    assert text.count("alignment1d_a · other · plain: 0/3 done, 3 skipped "
                      "(other cannot run here)") == 1
    assert "alignment1d_a · conv1d · margin: 0/1 done, 1 failed (because failed)" in text
    tex = _find(report, "alignment1d_final", "distance", ".tex").read_text()
    assert r"0/3 done, 3 skipped" in tex
    cells = (report / "tables" / "cells.md").read_text()
    assert "because failed" in cells and "other cannot run here" in cells


def test_captions_state_scale_seeds_interval_and_definitions(report: Path) -> None:
    tex = _find(report, "alignment1d_final", "distance", ".tex").read_text()
    caption = re.search(r"\\caption\{(.*)\}", tex).group(1)
    for needle in ("smoke scale", "3 seeds", "std with ddof=1", "distance: distance"):
        assert needle in caption.replace(r"\_", "_"), needle
    diff = _find(report, "alignment1d_vs_plain", "distance", ".tex").read_text()
    assert "95" in diff and "Student-t confidence interval" in diff and "Holm" in diff
    assert "With 3 pairs the smallest possible p is 0.25" in diff
    assert seeds_text([1]) == "1 seed" and seeds_text([3]) == "3 seeds"
    assert seeds_text([2, 3]) == "2–3 seeds"


def test_numbers_have_sensible_precision() -> None:
    assert format_mean_std(1.0, 6.7e-05, 3) == "1.00 ± 0.00"
    assert format_mean_std(61.3, 3.8, 3) == "61.3 ± 3.8"
    assert format_mean_std(0.0019, 0.00052, 3) == "0.00190 ± 0.00052"
    assert format_mean_std(7.62, 0.089, 3) == "7.62 ± 0.09"
    assert format_mean_std(12.5, 0.0, 3) == "12.5 ± 0.0"
    assert format_mean_std(0.5, float("nan"), 1) == "0.500"
    assert format_interval(-6.79, -6.91, -6.67) == "-6.79 [-6.91, -6.67]"
    assert format_interval(-4.88e-04, -0.032, 0.036) == "+0.000 [-0.032, +0.036]"
    assert format_interval(5.2, -0.3, 15.1) == "+5 [+0, +15]"
    assert format_interval(2e-05, 1e-05, 3e-05) == "+2.0e-05 [+1.0e-05, +3.0e-05]"


def test_legacy_signed_gap_is_not_reported(report: Path) -> None:
    for path in (report / "tables").glob("*.md"):
        assert "optimality_gap" not in path.read_text(), path.name
    assert not list((report / "figures").glob("*optimality_gap*"))
    assert "old signed gap" in (report / "index.md").read_text()


def test_violation_figure_data_are_per_task_and_model(report: Path) -> None:
    bars = pd.read_csv(report / "figures" / "violation_rate.csv")
    a = bars[bars.task == "alignment1d_a"].set_index(["model", "objective"])
    assert len(a) == 4  # never pooled over models
    for (model, objective), value in VIOLATION.items():
        # seeds add 0, 0.01, 0.02: the mean over 3 seeds is value + 0.01
        assert a.loc[(model, objective), "mean"] == pytest.approx(value + 0.01)
        assert a.loc[(model, objective), "n"] == 3


def test_figures_are_written_per_task_and_model(report: Path) -> None:
    figures = report / "figures"
    for stem in ("alignment1d_a__conv1d_train", "alignment1d_a__mlp_train",
                 "alignment1d_a__conv1d_test_iter_distance", "alignment1d_a__mlp_landscape_slice",
                 "alignment1d_a__conv1d_success_vs_threshold", "violation_rate",
                 "profile_distance"):
        for suffix in (".png", ".pdf", ".csv"):
            path = figures / f"{stem}{suffix}"
            assert path.exists() and path.stat().st_size > 100, path
    train = pd.read_csv(figures / "alignment1d_a__conv1d_train.csv")
    base = train[(train.panel == "base") & (train.objective == "dlc")]
    assert base["mean"].tolist() == pytest.approx([1.0, 0.5, 1 / 3])  # train_original, not total
    assert set(train.epoch) == {0, 1, 2}
    assert set(train[train.panel == "hinge"]["mean"].round(6)) == {4.0, 2.0, round(4 / 3, 6)}
    index = (report / "index.md").read_text()
    assert "figures/alignment1d_a__conv1d_test_iter_distance.png" in index
    assert "test-cpu" in index  # provenance


def test_same_objective_same_colour_in_reports_with_different_objectives(
        tmp_path: Path) -> None:
    def results(name: str, objectives: tuple[str, ...]) -> pd.DataFrame:
        folder = tmp_path / name
        for objective in objectives:
            for seed in range(2):
                ident = dict(run_id=f"alignment1d_a-conv1d-{objective}-s{seed}",
                             task="alignment1d_a", model="conv1d", objective=objective, seed=seed)
                rows = [{**ident, "phase": "test_iter", "step": it, "metric": "distance",
                         "value": 1.0 / (it + 1 + seed)} for it in range(3)]
                _publish(folder, ident, rows)
        collect(folder)
        out = write_report(folder, formats=["md"])
        frame = pd.read_csv(out / "figures" / "alignment1d_a__conv1d_test_iter_distance.csv")
        return frame.groupby("objective")[["colour", "marker"]].first()

    small = results("small", ("plain", "dlc"))
    large = results("large", ("zeta_custom", "margin", "dlc", "plain", "alpha_custom"))
    for objective in ("plain", "dlc"):
        assert tuple(small.loc[objective]) == tuple(large.loc[objective])
    assert small.loc["plain", "colour"] != small.loc["dlc", "colour"]
    assert style("zeta_custom") == style("zeta_custom")  # hashed, not order-dependent
    assert len({c for c, _ in KNOWN_STYLES.values()}) == len(KNOWN_STYLES)
    assert len({style(o) for o in large.index}) == len(large)


def test_mixed_commits_warn_and_are_listed(report: Path) -> None:
    assert "MixedCommitsWarning: " in (report / "warnings.txt").read_text()
    assert "2 commits" in (report / "warnings.txt").read_text()
    assert "warning: the runs come from 2 commits" in (report / "index.md").read_text()


def test_hinge_dominated_runs_are_flagged_once_each(report: Path) -> None:
    caught = (report / "warnings.txt").read_text().splitlines()
    flagged = sorted(line.split(": ")[1] for line in caught if "HingeDominated" in line)
    assert flagged == [f"alignment1d_b-conv1d-dlc-s{seed}" for seed in range(3)]
    assert "smallest ratio 18" in (report / "index.md").read_text()  # 20, 19, 18 over epochs
    summary = pd.read_csv(report / "tables" / "hinge_diagnostics.csv")
    assert len(summary) == 9  # every dlc run: 2 models on alignment1d_a, 1 on alignment1d_b


def test_report_writes_only_into_its_folder(report: Path) -> None:
    results = report.parent
    before = (results / "before.txt").read_text()
    assert before == _listing(results) and "results.parquet" in before


def test_tables_compile_with_pdflatex(report: Path, tmp_path: Path) -> None:
    if shutil.which("pdflatex") is None:
        pytest.skip("pdflatex not installed")
    tables = sorted(p.stem for p in (report / "tables").glob("*.tex") if p.stem != "preamble")
    shutil.copytree(report / "tables", tmp_path / "tables")
    body = "\n".join(rf"\input{{tables/{name}}}\clearpage" for name in tables)
    (tmp_path / "doc.tex").write_text(
        "\\documentclass{article}\n\\input{tables/preamble}\n\\begin{document}\n"
        f"{body}\n\\end{{document}}\n")
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:]
    assert (tmp_path / "doc.pdf").stat().st_size > 1000
    assert "Overfull \\hbox" not in done.stdout, "a table is wider than the text"


def test_paired_difference_and_bootstrap_are_the_shared_definitions(report: Path) -> None:
    diffs = pd.read_csv(_find(report, "alignment1d_vs_plain", "distance", ".csv"))
    row = diffs[(diffs.task == "alignment1d_a") & (diffs.model == "conv1d")
                & (diffs.metric == "distance")].iloc[0]
    assert row["diff"] < 0 and row.hi < 0 and row.n == 3 and row.interval == "t"
    assert row.verdict == "no evidence" and row.p == pytest.approx(0.25)  # 3 pairs: p >= 2/2^3
    row = diffs[(diffs.task == "alignment1d_b") & (diffs.metric == "distance")].iloc[0]
    assert row["diff"] > 0 and row.lo > 0 and row.verdict == "no evidence"
    assert stats.bootstrap_ci([1.0, 2.0, 3.0]) == stats.bootstrap_ci([1.0, 2.0, 3.0])
    lo, hi = stats.bootstrap_ci([1.0, 2.0, 3.0, 4.0])
    assert 1.0 <= lo < 2.5 < hi <= 4.0
    mean, std, n = stats.mean_std([1.0, 2.0, 3.0])
    assert (mean, n) == (2.0, 3) and std == pytest.approx(1.0)  # ddof=1
    assert stats.median_iqr([1.0, 2.0, 3.0, 4.0]) == (2.5, 1.75, 3.25)


def test_difference_verdicts_with_enough_seeds() -> None:
    from bench.report.tables import difference_table, render

    rows = []
    for seed in range(12):
        for objective, shift in (("plain", 0.0), ("dlc", -1.0)):
            for metric in ("distance", "mystery"):
                rows.append(dict(task="t_a", model="m", objective=objective, seed=seed,
                                 metric=metric, value=5.0 + shift + 0.01 * ((seed * 7) % 5)))
    diffs = difference_table(pd.DataFrame(rows), "plain", {"distance": "min"}).set_index("metric")
    assert diffs.loc["distance", "diff"] == pytest.approx(-1.0)
    assert diffs.loc["distance", "p"] == pytest.approx(2 / 2 ** 12)  # every pair agrees
    assert diffs.loc["distance", "verdict"] == "better" and diffs.loc["distance", "interval"] \
        == "degenerate"  # identical differences: the interval is the point
    assert diffs.loc["mystery", "verdict"] == "—"  # no declared direction: no verdict
    text = render(diffs.reset_index(), ["distance", "mystery"], {"distance": "min"})
    assert text.iloc[0, 3].startswith("**-1") and not text.iloc[0, 4].startswith("**")


def test_performance_profile_on_known_costs() -> None:
    costs = pd.DataFrame({"a": [1.0, 2.0], "b": [2.0, 1.0], "c": [4.0, 4.0]})
    profile = stats.performance_profile(costs, np.array([1.0, 2.0, 4.0]))
    assert profile.loc[1.0].tolist() == [0.5, 0.5, 0.0]
    assert profile.loc[2.0].tolist() == [1.0, 1.0, 0.0]
    assert profile.loc[4.0].tolist() == [1.0, 1.0, 1.0]
    area = stats.profile_area(profile)
    assert area["a"] == area["b"] > area["c"]


def test_every_unit_and_definition_is_latex_safe() -> None:
    from bench.report.metadata import DEFINITIONS, UNITS
    from bench.report.tables import latex_text

    for text in [*UNITS.values(), *DEFINITIONS.values(), "a − b ± c · d – e (w*, ŵ)"]:
        assert latex_text(text).isascii(), text


def test_latex_is_structurally_valid(report: Path) -> None:
    for path in (report / "tables").glob("*.tex"):
        if path.stem == "preamble":
            continue
        tex = path.read_text()
        depth = 0
        for char in tex.replace(r"\{", "").replace(r"\}", ""):
            depth += {"{": 1, "}": -1}.get(char, 0)
            assert depth >= 0, path
        assert depth == 0, path
        assert tex.index(r"\toprule") < tex.index(r"\midrule") < tex.index(r"\bottomrule")
        assert not re.findall(r"(?<!\\)_", tex), f"unescaped underscore in {path.name}"
        assert tex.isascii(), path.name
    final = _find(report, "alignment1d_final", "distance", ".tex").read_text()
    assert "without the prefix alignment1d\\_" in final and "\nb & conv1d & plain" in final
    assert r"\textbf{" in final and r"$\pm$" in final
    assert r"\usepackage{booktabs}" in (report / "tables" / "preamble.tex").read_text()


def test_runs_without_a_declared_base_loss_get_a_note(report: Path) -> None:
    # the fake runs declare no direction for train_original: they predate the explicit base loss
    assert "predate the explicit base loss" in (report / "index.md").read_text()
    from bench.report.reading import legacy_base_loss

    declared = pd.DataFrame({"status": ["done"], "metric_directions": ['{"train_original": "min"}']})
    assert not legacy_base_loss(declared)


def test_family_of_prefers_the_recorded_family() -> None:
    from bench.report.metadata import family_of

    frame = pd.DataFrame({"task": ["my_points", "other"], "family": ["registration", ""]})
    assert family_of("my_points", frame) == "registration"  # a plugin task named freely
    # no record: the registry's (the task class its gin file binds), never the name's prefix
    assert family_of("other_task", frame) == "" and family_of("other", frame) == ""
    assert family_of("alignment1d_same") == "alignment1d"
    assert family_of("homography_synthetic_dem") == "homography"

