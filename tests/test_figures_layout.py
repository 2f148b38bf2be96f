"""Figures: no two texts overlap (long names included), labels come from the model, a reference
line shares an axis only for a quantity it measures the same way, and new objectives get colours
far from the known ones."""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.report import figures
from bench.report.palette import KNOWN_STYLES, MIN_COLOUR_DISTANCE, colour_distance, style

pytestmark = pytest.mark.slow  # renders every figure kind (seconds); CI runs it in its slow step

LONG_TASK = "registration_synthetic_dcp_with_a_rather_long_task_name"
OBJECTIVES = ("plain", "dlc", "dlc_authors_generic_with_long_name")


def _rows(task: str, model: str, family: str) -> pd.DataFrame:
    """Per-iteration, training, success and slice rows for 3 objectives x 2 seeds."""
    rows = []
    for objective in OBJECTIVES:
        for seed in (0, 1):
            ident = dict(task=task, model=model, objective=objective, seed=seed, family=family,
                         run_id=f"{objective}-{seed}")
            for step in range(6):
                for metric in ("distance", "rot_iso_deg", "optimality_gap"):
                    rows.append({**ident, "phase": "test_iter", "step": step, "metric": metric,
                                 "value": 1.0 / (step + 1) + 0.01 * seed})
            for epoch in range(4):
                for metric, value in (("train_original", 1.0 / (epoch + 1)), ("train_hinge", 0.1)):
                    rows.append({**ident, "phase": "train", "step": epoch, "metric": metric,
                                 "value": value})
            for thr in (1, 5, 10):
                rows.append({**ident, "phase": "test", "step": 5, "metric": f"success@{thr}",
                             "value": 10.0 * thr})
            for i, t in enumerate(np.linspace(-1, 1, 5)):
                rows += [{**ident, "phase": "landscape", "step": i, "metric": "slice_t",
                          "value": t},
                         {**ident, "phase": "landscape", "step": i, "metric": "slice_h",
                          "value": t * t}]
            rows.append({**ident, "phase": "landscape", "step": 0, "metric": "violation_rate",
                         "value": 0.3})
    return pd.DataFrame(rows)


def _overlaps(fig) -> list[tuple[str, str]]:
    """Pairs of visible, non-empty texts whose window boxes overlap by more than a pixel."""
    renderer = fig.canvas.get_renderer()
    texts = [*fig.texts, *([fig._suptitle] if fig._suptitle else [])]
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):  # the ticks drawn (inside the view), and the label
            texts += [tick.label1 for tick in axis._update_ticks()] + [axis.label]
        texts += [ax.title, *ax.texts]
        if ax.get_legend() is not None:
            texts += ax.get_legend().get_texts()
    texts = list({id(t): t for t in texts if t.get_visible() and t.get_text().strip()}.values())
    boxes = [(t.get_text(), t.get_window_extent(renderer).expanded(1.0, 1.0).shrunk(0.98, 0.9))
             for t in texts]
    return [(a, b) for (a, ba), (b, bb) in combinations(boxes, 2) if ba.overlaps(bb)]


@pytest.fixture
def drawn(monkeypatch, tmp_path: Path) -> dict[str, object]:
    """name -> figure, for every figure kind of one (task, model) with long names."""
    made: dict[str, object] = {}
    save = figures.save_figure

    def keep(fig, data, path):
        fig.canvas.draw()
        made[Path(path).name] = (fig, _overlaps(fig))
        return save(fig, data, path)

    monkeypatch.setattr(figures, "save_figure", keep)
    metrics = _rows(LONG_TASK, "dcp", "registration")
    reference = _rows(LONG_TASK, "icp", "registration").assign(objective="plain")
    figures.task_model_figures(LONG_TASK, "dcp", metrics, tmp_path, reference)
    figures.violation_figure(metrics[metrics.metric == "violation_rate"], tmp_path / "violation")
    profile = pd.DataFrame({o: np.linspace(0, 1, 5) for o in OBJECTIVES}, index=np.arange(5.0))
    figures.profile_figure(profile, pd.Series(0.5, index=list(OBJECTIVES)), 7, "distance",
                           tmp_path / "profile")
    return made


def test_no_text_overlaps_in_any_figure_kind(drawn: dict[str, object]) -> None:
    kinds = {"train", "test_iter_distance", "test_iter_rot_iso_deg",
             "test_iter_optimality_gap", "success_vs_threshold", "landscape_slice"}
    assert {k for k in kinds if any(name.endswith(k) for name in drawn)} == kinds
    assert not {name: bad for name, (_, bad) in drawn.items() if bad}


def test_reference_line_only_where_it_measures_the_same_quantity(drawn) -> None:
    def labels(name: str) -> list[str]:
        fig = next(f for n, (f, _) in drawn.items() if n.endswith(name))
        return fig.axes[0].get_legend_handles_labels()[1]

    assert "icp alone" in labels("test_iter_distance")
    assert "icp alone" not in labels("test_iter_optimality_gap")  # ICP's own energy


def test_dhn_figures_say_what_dhn_does(monkeypatch, tmp_path: Path) -> None:
    made = {}
    save = figures.save_figure
    monkeypatch.setattr(figures, "save_figure", lambda fig, data, path: made.setdefault(
        Path(path).name, [ax.get_xlabel() + ax.get_ylabel() for ax in fig.axes]) and
        save(fig, data, path))
    figures.task_model_figures("homography_synthetic", "dhn",
                               _rows("homography_synthetic", "dhn", "homography"), tmp_path)
    text = " ".join(" ".join(v) for v in made.values()).replace("\n", " ")
    assert "Lucas-Kanade" not in text and "LK energy" not in text
    assert "corner error" in text


def test_narrow_y_axis_says_so(monkeypatch, tmp_path: Path) -> None:
    """The case of issue 23: a mean that moves over 0.947-0.950 only, seed noise included."""
    metrics = _rows("alignment1d_x", "conv1d", "alignment1d")
    metrics = metrics.assign(value=np.where(
        metrics.metric.isin(["distance", "train_original"]),
        0.947 + 0.0005 * metrics["step"] + 0.0004 * metrics["seed"], metrics["value"]))
    made = {}
    save = figures.save_figure

    def keep(fig, data, path):
        fig.canvas.draw()
        made[Path(path).name] = ([t.get_text() for t in fig.axes[0].texts], fig.axes[0].get_ylim(),
                                 _overlaps(fig))
        return save(fig, data, path)

    monkeypatch.setattr(figures, "save_figure", keep)
    figures.iteration_figure("alignment1d_x", "conv1d", metrics, "distance", tmp_path / "d")
    figures.training_figure("alignment1d_x", "conv1d", metrics, tmp_path / "t")
    for name in ("d", "t"):
        notes, (low, high), overlaps = made[name]
        assert 0.946 < low and high < 0.951, (name, low, high)
        assert any("zoomed" in t and "95% band" in t for t in notes), (name, notes)
        assert overlaps == [], (name, overlaps)


def test_new_objectives_never_look_like_a_known_one() -> None:
    known = [c for c, _ in KNOWN_STYLES.values()]
    for name in ("dlc_t2only", "dlc_t2t3", "my_variant", *(f"obj{k}" for k in range(40))):
        colour = style(name)[0]
        assert min(colour_distance(colour, k) for k in known) >= MIN_COLOUR_DISTANCE, name
    assert colour_distance("#6699CC", KNOWN_STYLES["plain"][0]) < MIN_COLOUR_DISTANCE  # the old


def test_one_seed_draws_no_band_and_no_error_bars(monkeypatch, tmp_path: Path) -> None:
    metrics = _rows("alignment1d_x", "conv1d", "alignment1d")
    metrics = metrics[metrics.seed == 0]
    made = {}
    save = figures.save_figure
    monkeypatch.setattr(figures, "save_figure", lambda fig, data, path: made.setdefault(
        Path(path).name, (len(fig.axes[0].collections), len(fig.axes[0].lines))) and
        save(fig, data, path))
    figures.iteration_figure("alignment1d_x", "conv1d", metrics, "distance", tmp_path / "d")
    figures.violation_figure(metrics[metrics.metric == "violation_rate"], tmp_path / "v")
    assert made["d"][0] == 0  # no fill_between
    assert made["v"] == (0, 0)  # bars only: no error-bar lines or caps
