"""Figures, one file per (task, model): models are never pooled.

Every figure is written as PNG + PDF + the CSV of exactly the numbers drawn (mean and 95%
percentile-bootstrap band over seeds, from `bench.stats`). Colours and markers come from
`style(objective)`: fixed for the known objectives, a deterministic hash of the name for any
other, so an objective looks the same in every report whatever the other objectives are.
Legends sit outside the axes; axes carry units (`bench.report.metadata`).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

import numpy as np
import pandas as pd

from bench import stats
from bench.report.metadata import (
    NARROW_SPAN,
    REFERENCE_METRICS,
    display_name,
    figure_text,
    label,
    objective_order,
    reference_models,
    refinement_start,
    unit_of,
)
from bench.report.palette import (  # noqa: F401 - KNOWN_STYLES re-exported
    KNOWN_STYLES,  # noqa: F401
    REFERENCE_STYLE,
    style,
)
from bench.runner import recorded_facts as facts


def _model_title(task: str, model: str) -> str:
    return f"{model} alone (nothing trained)" if model in reference_models(task) else model


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def band(data: pd.DataFrame, x: str, keys: Sequence[str] = ("objective",)) -> pd.DataFrame:
    """Mean and 95% bootstrap band over seeds of `value` per (keys, x)."""
    rows = []
    for key, group in data.groupby([*keys, x], sort=True):
        lo, hi = stats.bootstrap_ci(group["value"].to_numpy())
        rows.append((*key, float(group["value"].mean()), lo, hi, int(len(group))))
    return pd.DataFrame(rows, columns=[*keys, x, "mean", "lo", "hi", "n"])


def _draw(ax, curves: pd.DataFrame, x: str, reference: pd.DataFrame | None = None) -> None:
    order = objective_order(curves.objective)
    for k, objective in enumerate(order):
        curve = curves[curves.objective == objective]
        colour, marker = style(objective)
        every = max(1, len(curve) // 8)
        # markers of different objectives at different x, so coinciding lines stay readable
        ax.plot(curve[x], curve["mean"], color=colour, marker=marker, markersize=4,
                markevery=(k % every, every), label=objective, linewidth=1.3)
        if (curve["n"] > 1).any():  # one seed: no band (it would have width 0)
            ax.fill_between(curve[x], curve["lo"], curve["hi"], color=colour, alpha=0.15,
                            linewidth=0)
    if reference is not None:
        for name, curve in reference.groupby("model"):
            ax.plot(curve[x], curve["mean"], label=f"{name} alone", linewidth=1.3,
                    **REFERENCE_STYLE)


def _note_narrow(ax, curves: pd.DataFrame) -> None:
    """Say so on the axis when its y-range is narrower than NARROW_SPAN of the values' size (a
    zoom that makes noise look like a trend), with the widest 95% band over seeds beside it.
    curves: `band` rows (mean, lo, hi, n)."""
    if ax.get_yscale() == "log":
        return
    low, high = ax.get_ylim()
    size = float(np.nanmax(np.abs(curves["mean"]))) if len(curves) else 0.0
    if size > 0 and high - low < NARROW_SPAN * size:
        seeds = curves[curves["n"] > 1]
        noise = (f"; 95% band ≤ {float((seeds['hi'] - seeds['lo']).max()):.2g}" if len(seeds)
                 else "; 1 seed: noise unknown")
        ax.text(0.99, 0.02, f"y-axis zoomed: spans {high - low:.2g} ({(high - low) / size:.1%} "
                f"of the values{noise})", transform=ax.transAxes, ha="right", va="bottom",
                fontsize=6.5, color="#555555")


def _wrap(text: str, width_in: float, fontsize: float) -> str:
    """`text` wrapped to lines that fit `width_in` inches at `fontsize` points (about 0.55 em
    per character, 90% of the width)."""
    import textwrap

    chars = max(12, int(0.9 * width_in * 72 / (0.6 * fontsize)))
    return "\n".join(textwrap.fill(line, chars) for line in text.split("\n"))


def fit_text(fig, axes) -> None:
    """Wrap the axis labels to the axes' size and the title to the figure's width, so that no
    two texts overlap (`tests/test_figures_layout.py`)."""
    width, height = fig.get_size_inches()
    for ax in axes:
        box = ax.get_position()
        for get, set_, span in ((ax.get_xlabel, ax.set_xlabel, box.width * width),
                                (ax.get_ylabel, ax.set_ylabel, box.height * height)):
            size = (ax.xaxis if get == ax.get_xlabel else ax.yaxis).label.get_fontsize()
            if get():
                set_(_wrap(get(), span, size))
    if fig._suptitle is not None:
        fig._suptitle.set_text(_wrap(fig._suptitle.get_text(), width * 0.95,
                                     fig._suptitle.get_fontsize()))


def lay_out(fig, axes=None):
    """`fig` with the labels of `axes` (default: all) wrapped by `fit_text` and a tight layout."""
    fit_text(fig, fig.axes if axes is None else axes)
    fig.tight_layout()
    return fig


def _finish(fig, axes, title: str) -> None:
    handles, labels = {}, []
    for ax in axes:
        for handle, text in zip(*ax.get_legend_handles_labels()):
            if text not in handles:
                handles[text] = handle
                labels.append(text)
    axes[-1].legend([handles[t] for t in labels], labels, loc="upper left", fontsize=7,
                    bbox_to_anchor=(1.02, 1.0), frameon=False, borderaxespad=0)
    fig.suptitle(title, fontsize=9)
    lay_out(fig, axes)
    width = fig.get_size_inches()[0]
    for ax in axes:  # notes inside the axes, wrapped to their final width
        for note in ax.texts:
            note.set_text(_wrap(note.get_text(), ax.get_position().width * width,
                                note.get_fontsize()))


#: the image files `save_figure` writes (PNG for Markdown, PDF for LaTeX); see `figure_formats`
IMAGE_SUFFIXES: ContextVar[tuple[str, ...]] = ContextVar("IMAGE_SUFFIXES", default=(".png", ".pdf"))


@contextmanager
def figure_formats(table_formats: Sequence[str]):
    """Within the block, figures are drawn as PNG when `table_formats` has 'md' and as PDF when
    it has 'tex' (their CSV always)."""
    token = IMAGE_SUFFIXES.set(tuple(s for f, s in (("md", ".png"), ("tex", ".pdf"))
                                     if f in table_formats))
    try:
        yield
    finally:
        IMAGE_SUFFIXES.reset(token)


def save_figure(fig, data: pd.DataFrame, path: Path) -> list[Path]:
    """The images of `fig` (`IMAGE_SUFFIXES`) and the CSV of `data` (with the colour and marker
    of each objective's line); returns the paths written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if "objective" in data:
        styles = [REFERENCE_STYLE["color"] if ref is True else style(o)[0]
                  for o, ref in zip(data["objective"], data.get("reference", [None] * len(data)))]
        data = data.assign(colour=styles, marker=[style(o)[1] for o in data["objective"]])
    written = []
    for suffix, metadata in ((".png", {}), (".pdf", {"CreationDate": None})):  # reproducible
        if suffix not in IMAGE_SUFFIXES.get():
            continue
        fig.savefig(path.with_suffix(suffix), dpi=150, bbox_inches="tight", metadata=metadata)
        written.append(path.with_suffix(suffix))
    pyplot().close(fig)
    data.to_csv(path.with_suffix(".csv"), index=False, float_format="%.12g")
    return [*written, path.with_suffix(".csv")]


def _log_if_positive(ax, values: pd.Series) -> None:
    finite = values[np.isfinite(values)]
    if len(finite) and (finite > 0).all() and finite.max() / finite.min() > 20:
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

        ax.set_yscale("log")
        if finite.max() / finite.min() < 100:  # under two decades: label 1, 2, 5 x 10^k
            ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())


def _integer_ticks(ax) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=8))


def base_loss_name(metrics: pd.DataFrame) -> str | None:
    """`train_original` (the task's original loss at w*, `ObjectiveOutput.original`) when logged."""
    return "train_original" if "train_original" in set(metrics.metric.unique()) else None


def training_figure(task: str, model: str, metrics: pd.DataFrame, path: Path) -> list[Path]:
    """Base loss per epoch (left) and the hinge penalty per epoch (right, DLC-like objectives)."""
    train = metrics[metrics.phase == "train"]
    base = base_loss_name(train)
    if base is None:
        return []
    base_curves = band(train[train.metric == base], "step").rename(columns={"step": "epoch"})
    hinge = train[train.metric == "train_hinge"]
    hinge_curves = band(hinge, "step").rename(columns={"step": "epoch"})
    plt = pyplot()
    panels = 2 if not hinge_curves.empty else 1
    fig, axes = plt.subplots(1, panels, figsize=(3.6 * panels, 2.8), squeeze=False)
    axes = list(axes[0])
    _draw(axes[0], base_curves, "epoch")
    unit = figure_text(task, model, "base_loss")
    axes[0].set_ylabel("task's base loss" + (f"\n({unit})" if unit else ""))
    _log_if_positive(axes[0], base_curves["mean"])
    _note_narrow(axes[0], base_curves)
    if panels == 2:
        _draw(axes[1], hinge_curves, "epoch")
        axes[1].set_ylabel("hinge penalty (unweighted)")
        _log_if_positive(axes[1], hinge_curves["mean"])
        _note_narrow(axes[1], hinge_curves)
    for ax in axes:
        ax.set_xlabel("epoch")
        _integer_ticks(ax)
    _finish(fig, axes, f"{task} · {_model_title(task, model)}: training")
    data = pd.concat([base_curves.assign(panel="base"), hinge_curves.assign(panel="hinge")])
    return save_figure(fig, data, path)


def iteration_figure(task: str, model: str, metrics: pd.DataFrame, metric: str, path: Path,
                     reference: pd.DataFrame | None = None) -> list[Path]:
    """`metric` per test-time solver iteration; a dotted line where the refinement starts."""
    data = metrics[(metrics.phase == "test_iter") & (metrics.metric == metric)]
    if data.empty:
        return []
    curves = band(data, "step").rename(columns={"step": "iteration"})
    ref = None
    if reference is not None and not reference.empty:
        ref_data = reference[(reference.phase == "test_iter") & (reference.metric == metric)]
        ref = band(ref_data, "step", keys=("model",)).rename(columns={"step": "iteration"})
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.4, 2.8))
    _draw(ax, curves, "iteration", ref)
    start = refinement_start(task, model)
    if start is not None:
        ax.axvline(start[0], color="#777777", linestyle=":", linewidth=1)
        ax.annotate(f"network ← | → {start[1]}", (start[0], 1.0),
                    xycoords=("data", "axes fraction"), xytext=(0, 3), textcoords="offset points",
                    fontsize=7, color="#555555", ha="center", va="bottom")
    _log_if_positive(ax, pd.concat([curves["mean"], ref["mean"] if ref is not None else None]))
    ax.set_xlabel(figure_text(task, model, "iteration"))
    ax.set_ylabel(label(task, metric))
    _integer_ticks(ax)
    _note_narrow(ax, curves)
    _finish(fig, [ax], f"{task} · {_model_title(task, model)}: {display_name(metric)} per iteration")
    drawn = curves if ref is None else pd.concat([curves, ref.rename(columns={"model": "objective"})
                                                  .assign(reference=True)])
    return save_figure(fig, drawn, path)


def success_figure(task: str, model: str, metrics: pd.DataFrame, path: Path) -> list[Path]:
    """Final success rate against its threshold (log x)."""
    data = metrics[(metrics.phase == "test") & metrics.metric.str.startswith("success@")]
    if data.empty or data.metric.nunique() < 2:
        return []
    data = data.assign(threshold=data.metric.str.removeprefix("success@").astype(float))
    curves = band(data, "threshold")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.4, 2.8))
    _draw(ax, curves, "threshold")
    ax.set_xscale("log")
    ax.set_xticks(sorted(curves.threshold.unique()))
    ax.set_xticklabels([f"{t:g}" for t in sorted(curves.threshold.unique())], fontsize=7)
    ax.minorticks_off()
    ax.set_xlabel(f"threshold ({unit_of(task, 'threshold') or 'distance'})")
    ax.set_ylabel("success rate (%)")
    ax.set_ylim(-2, 102)
    _finish(fig, [ax], f"{task} · {_model_title(task, model)}: success rate vs threshold")
    return save_figure(fig, curves, path)


def slice_figure(task: str, model: str, metrics: pd.DataFrame, path: Path) -> list[Path]:
    """Mean h(w* + t d) − h(w*) along random rays d through w* (same rays for every objective)."""
    slices = metrics[(metrics.phase == "landscape") & metrics.metric.isin(["slice_t", "slice_h"])]
    if slices.empty:
        return []
    wide = slices.pivot_table(index=["run_id", "objective", "seed", "step"], columns="metric",
                              values="value").reset_index()
    curves = band(wide.rename(columns={"slice_t": "t", "slice_h": "value"}), "t")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.4, 2.8))
    _draw(ax, curves, "t")
    ax.axhline(0, color="#999999", linewidth=0.6)
    unit = unit_of(task, "slice")
    ax.set_xlabel(f"t ({unit})" if unit else "t (× sampling radius)")
    unit = unit_of(task, "h")
    ax.set_ylabel("h(w* + t d) − h(w*)" + (f" ({unit})" if unit else ""))
    note = unit_of(task, "slice_note")
    if note:
        ax.text(0.5, 0.04, note, transform=ax.transAxes, ha="center", va="bottom", fontsize=6.5,
                color="#555555")
    _finish(fig, [ax], f"{task} · {_model_title(task, model)}: learned h along rays through w*")
    return save_figure(fig, curves, path)


def violation_figure(values: pd.DataFrame, path: Path) -> list[Path]:
    """Horizontal bars: violation rate per (task, model) and objective, never pooled over models.

    Each (task, model) gets one bar per objective it ran (no gaps for objectives it did not run);
    the CSV holds exactly the bars: task, model, objective, mean, lo, hi, n.
    """
    data = values[values.metric == "violation_rate"]
    if data.empty:
        return []
    bars = band(data, "objective", keys=("task", "model"))
    order = {o: k for k, o in enumerate(objective_order(bars.objective))}
    bars = bars.sort_values(["task", "model"], kind="stable")
    bars = bars.assign(rank=bars.objective.map(order)).sort_values(["task", "model", "rank"],
                                                                   kind="stable")
    y, ticks, labels, position = [], [], [], 0.0
    for (task, model), group in bars.groupby(["task", "model"], sort=False):
        y += [position + k for k in range(len(group))]
        ticks.append(position + (len(group) - 1) / 2)
        labels.append(f"{task} · {model}")
        position += len(group) + 0.8
    bars = bars.drop(columns="rank").assign(y=y)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.6, max(2.4, 0.16 * position + 0.8)))
    for objective in sorted(bars.objective.unique(), key=order.get):
        rows = bars[bars.objective == objective]
        ax.barh(rows["y"], rows["mean"], height=0.85, color=style(objective)[0], label=objective,
                xerr=[rows["mean"] - rows["lo"], rows["hi"] - rows["mean"]]
                if (rows["n"] > 1).any() else None,
                error_kw=dict(linewidth=0.6, capsize=1.2))
    ax.set_yticks(ticks)
    ax.set_yticklabels(labels, fontsize=7)
    ax.set_ylim(position - 0.3, -1.0)
    ax.set_xlim(0, 1.02)
    ax.set_xlabel("violation rate (share of rays through w*\nwhere the learned h is not star-convex)")
    _finish(fig, [ax], "landscape violation rate per task and model (mean, 95% CI over seeds)")
    return save_figure(fig, bars.drop(columns="y"), path)


def profile_figure(profile: pd.DataFrame, area: pd.Series, problems: int, metric: str,
                   path: Path) -> list[Path]:
    """Dolan-Moré performance profile (computed by `bench.stats`) with its normalised area."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.4, 2.8))
    for col in objective_order(profile.columns):
        colour, marker = style(col)
        ax.plot(profile.index, profile[col], drawstyle="steps-post", color=colour, marker=marker,
                markevery=max(1, len(profile) // 8), markersize=4,
                label=f"{col} (area {area[col]:.2f})")
    ax.set_xlabel("τ (within a factor τ of the best\nfinal distance on a problem)")
    ax.set_ylabel("share of problems")
    ax.set_ylim(-0.02, 1.02)
    _finish(fig, [ax], f"performance profile of final {metric}\nover {problems} (task, model) "
                       "problems that ran every objective")
    return save_figure(fig, profile.reset_index(), path)


def task_model_figures(task: str, model: str, metrics: pd.DataFrame, folder: Path,
                       reference: pd.DataFrame | None = None,
                       iterations: bool = True) -> list[Path]:
    """Every figure of one (task, model); `reference`: metrics of a reference model of the task
    (drawn in its own style); `iterations=False` leaves out the per-iteration figures (for a
    reference model already drawn in the other models' figures). Returns the written files."""
    if "family" in metrics:  # the family the runs recorded (`bench.report.reading.with_family`)
        facts.learn(metrics[["task", "model", "family"]].drop_duplicates())
    stem = folder / f"{task}__{model}"
    made = training_figure(task, model, metrics, Path(f"{stem}_train"))
    for metric in facts.lookup(task, model).figure_metrics if iterations else ():
        same = reference if metric in REFERENCE_METRICS else None  # never another model's h
        made += iteration_figure(task, model, metrics, metric,
                                 Path(f"{stem}_test_iter_{metric}"), same)
    made += success_figure(task, model, metrics, Path(f"{stem}_success_vs_threshold"))
    made += slice_figure(task, model, metrics, Path(f"{stem}_landscape_slice"))
    return made


def reference_for(task_metrics: pd.DataFrame, model: str) -> pd.DataFrame | None:
    """Metrics of the task's reference models (nothing to train, e.g. ICP alone), for `model`."""
    references = set().union(*(reference_models(t) for t in task_metrics.task.unique()))
    if model in references:
        return None
    ref = task_metrics[task_metrics.model.isin(references)]
    return ref if not ref.empty else None
