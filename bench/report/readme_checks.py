"""The README's numbers from `results/validation_checks` (validation split only): the DeepLK
budget check, the learned-feature ICP check, the KL form of the sequence family and the
feasibility tables, as generated blocks (`BLOCKS`) and inline numbers (`NUMBERS`)."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from bench.report.readme_source import listed, markdown, mean_std, span, tables, values, walls

CHECKS = "validation_checks"
#: (folder under homography_budget/, training epochs; 0: raw LK, nothing trained)
BUDGET_RUNS = [("rawlk_s0", 0), ("e6_s0", 6), ("e12_s0", 12), ("e12_s1", 12), ("e12_s2", 12),
               ("e24_s0", 24)]
BUDGET_NOTES = {"e12_s2": " (quiet machine, merged main)"}
ICP = f"{CHECKS}/registration_feature_icp"
#: the same check at the cpu scale (12 epochs, 691 training pairs, landscape on)
ICP_CPU = f"{CHECKS}/registration_feature_icp_cpu"
KL = f"{CHECKS}/sequence_kl"
#: (label, task, objective) of the KL-form table's rows
KL_ROWS = [("plain (`sequence_mnist1d`)", "sequence_mnist1d", "plain"),
           ("dlc, KL form (`sequence_mnist1d_kl`)", "sequence_mnist1d_kl", "dlc"),
           ("dlc, softmax form (`sequence_mnist1d`)", "sequence_mnist1d", "dlc")]
#: feasibility table (file suffix) -> the command that wrote it
FEASIBILITY = {
    "R": "--tasks registration_synthetic_dcp --out /tmp/feas_R",
    "K": "--tasks sequence_digits_kl,sequence_mnist1d_kl --out /tmp/feas_K",
    "A": "--tasks alignment1d_nonlinear_energy,alignment1d_nonlinear,alignment1d_same "
         "--out /tmp/feas_A",
    "S": "--tasks sequence_adding,sequence_copy,sequence_digits,sequence_mnist1d --out /tmp/feas_S",
    "H": "--tasks homography_synthetic_thermal --out /tmp/feas_H",
}


def _budget(repo: Path, run: str, metric: str) -> float:
    return float(values(repo, f"{CHECKS}/homography_budget/{run}", metric, phase="val").mean())


def homography_budget(repo: Path) -> str:
    """DeepLK plain at 6, 12, 24 epochs and raw LK: validation MACE, success and walls."""
    trivial = next(_budget(repo, r, "trivial_mace") for r, _ in BUDGET_RUNS
                   if "trivial_mace" in set(tables(repo, f"{CHECKS}/homography_budget/{r}")[0]
                                            .metric))
    rows = [("identity (w = 0, `trivial_mace`)", "–", "–", f"{trivial:.2f}", "–", "–", "–", "–")]
    for run, epochs in BUDGET_RUNS:
        _, runs = tables(repo, f"{CHECKS}/homography_budget/{run}")
        seconds = float(runs.wall_time_s.iloc[0])
        rows.append((f"`{runs.model.iloc[0]}`", epochs, int(runs.seed.iloc[0]),
                     f"{_budget(repo, run, 'mace'):.3f}",
                     *(f"{_budget(repo, run, m):.1f}" for m in
                       ("success@1", "success@3", "spurious_minimum")),
                     f"{seconds:.0f} s{BUDGET_NOTES.get(run, '')}"))
    return markdown(rows, ["model", "epochs", "seed", "val MACE (px)", "success@1 (%)",
                           "success@3 (%)", "spurious_minimum (%)", "wall"])


def _e12(repo: Path) -> pd.Series:
    return pd.Series([_budget(repo, r, "mace") for r, e in BUDGET_RUNS if e == 12])


def _icp(repo: Path, metric: str, objective: str, step: int | None = None,
         folder: str = ICP) -> pd.Series:
    return values(repo, folder, metric, phase="val_iter" if step is not None else "val",
                  step=step, objective=objective)


def feature_icp_table(folder: str) -> Callable[[Path], str]:
    """Learned-feature ICP, plain vs DLC, in `folder`: rotation errors along the solver, mean ± sd
    over seeds."""
    def block(repo: Path) -> str:
        rows = []
        for name, objective in (("plain", "plain"), ("DLC (β = 1, μ = 0.2)", "dlc")):
            rows.append((name, *(mean_std(s) + "°" for s in (
                _icp(repo, "rot_iso_deg", objective, 1, folder),
                _icp(repo, "rot_network_deg", objective, folder=folder),
                _icp(repo, "rot_iso_deg", objective, folder=folder))),
                mean_std(_icp(repo, "trans_network", objective, folder=folder)),
                mean_std(_icp(repo, "optimality_gap", objective, folder=folder)),
                f"{_icp(repo, 'spurious_minimum', objective, folder=folder).mean():.0f} %"))
        return markdown(rows, ["`val`, mean ± sd over 3 seeds", "DCP pass (step 1)",
                               "network's own: after learned-feature ICP (step 11, "
                               "`rot_network_deg`)", "after ICP (step 31, `rot_iso_deg`)",
                               "`trans_network`", "optimality gap (final)", "spurious minimum"])
    return block


def _dlc_train(repo: Path, metric: str, folder: str = ICP) -> pd.Series:
    """Per-epoch mean over seeds of a DLC training metric of a feature-ICP check (by epoch)."""
    metrics, _ = tables(repo, folder)
    rows = metrics[(metrics.phase == "train") & (metrics.metric == metric)
                   & (metrics.objective == "dlc")]
    return rows.groupby("step")["value"].mean()


def _kl(repo: Path, metric: str, task: str, objective: str, phase: str = "val") -> pd.Series:
    return values(repo, KL, metric, phase=phase, task=task, objective=objective)


def sequence_kl(repo: Path) -> str:
    """MNIST-1D, LSTM: plain, the KL form and the softmax form of DLC on validation."""
    rows = []
    for label, task, objective in KL_ROWS:
        accuracy = _kl(repo, "accuracy", task, objective)
        hinge = "–"
        if objective != "plain":
            h, t2, t3 = (_kl(repo, m, task, objective, "train").mean() * scale for m, scale in
                         (("train_hinge", 1), ("train_active_t2", 100),
                          ("train_active_t3", 100)))
            word = "active " if "KL" in label else ""
            hinge = f"{h:.{3 if h >= 10 else 2}g} (T2 {word}{t2:.0f} %, T3 {t3:.3g} %)"
        rows.append((label, listed(accuracy), f"{accuracy.mean():.1f}",
                     f"{_kl(repo, 'ce', task, objective).mean():.3g}", hinge))
    return markdown(rows, ["objective (task)", "val accuracy % (seeds 0, 1, 2)", "mean",
                           "val CE (mean)", "final-epoch train hinge (mean)"])


def _kl_mean(repo: Path, row: int) -> float:
    return float(_kl(repo, "accuracy", *KL_ROWS[row][1:]).mean())


def _feasibility(repo: Path, part: str) -> pd.DataFrame:
    return pd.read_csv(repo / "results" / CHECKS / "feasibility" / f"feasibility_{part}.csv")


def feasibility_block(part: str) -> Callable[[Path], str]:
    def block(repo: Path) -> str:
        from bench.protocol.feasibility import format_table  # imports torch: only when asked

        return (f"```\n$ python -m bench feasibility cpu_tuned {FEASIBILITY[part]}\n"
                f"{format_table(_feasibility(repo, part))}\n```\n")
    return block


def _feas(repo: Path, part: str, task: str, objective: str, column: str) -> float:
    """One number of a committed feasibility table."""
    table = _feasibility(repo, part)
    return float(table[(table.task == task) & (table.objective == objective)][column].iloc[0])


def _feas_text(part: str, task: str, objective: str, column: str, fmt: str,
               scale: float = 1) -> Callable[[Path], str]:
    return lambda repo: f"{scale * _feas(repo, part, task, objective, column):{fmt}}"


def _icp_numbers(prefix: str, folder: str, wall: str) -> dict[str, Callable[[Path], str]]:
    """The numbers both feature-ICP checks quote: plain's gap and error at the DCP pass and after
    the learned-feature ICP steps, DLC's active hinge terms, the wall minutes per objective."""
    return {
        f"{prefix}.gap.pass": lambda r: f"{_icp(r, 'optimality_gap', 'plain', 1, folder).mean():.2g}",
        f"{prefix}.gap.steps":
            lambda r: f"{_icp(r, 'optimality_gap', 'plain', 11, folder).mean():.2g}",
        f"{prefix}.rot.pass": lambda r: f"{_icp(r, 'rot_iso_deg', 'plain', 1, folder).mean():.3g}",
        **{f"{prefix}.{t}": (lambda r, t=t: f"{100 * values(r, folder, f'train_active_{t}', 'train', -1, objective='dlc').mean():.0f}")
           for t in ("t2", "t3")},
        **{f"{prefix}.wall.{o}": (lambda r, o=o: span(walls(r, folder, objective=o) / 60, wall))
           for o in ("plain", "dlc")},
    }


BLOCKS: dict[str, Callable[[Path], str]] = {
    "homography-budget": homography_budget, "feature-icp": feature_icp_table(ICP),
    "feature-icp-cpu": feature_icp_table(ICP_CPU), "sequence-kl": sequence_kl,
    **{f"feasibility-{p}": feasibility_block(p) for p in FEASIBILITY},
}

NUMBERS: dict[str, Callable[[Path], str]] = {
    "hom.e12_s2.mace": lambda r: f"{_budget(r, 'e12_s2', 'mace'):.3f}",
    "hom.e12_s2.success3": lambda r: f"{_budget(r, 'e12_s2', 'success@3'):.1f}",
    "hom.e12.mean": lambda r: f"{_e12(r).mean():.3f}",
    "hom.e12.median": lambda r: f"{_e12(r).median():.3f}",
    "hom.rawlk.mace": lambda r: f"{_budget(r, 'rawlk_s0', 'mace'):.3f}",
    **_icp_numbers("ficp", ICP, wall=".3g"),
    "ficp.rot.steps": lambda r: f"{_icp(r, 'rot_iso_deg', 'plain', 11).mean():.2g}",
    "ficp.hinge": lambda r: f"{_dlc_train(r, 'train_hinge').mean():.2g}",
    "ficp.base": lambda r: span(_dlc_train(r, "train_base_term"), ".1g"),
    **_icp_numbers("ficp12", ICP_CPU, wall=".2g"),
    "ficp12.rot.start": lambda r: f"{_icp(r, 'rot_iso_deg', 'plain', 0, ICP_CPU).mean():.3g}",
    "ficp12.rot.steps": lambda r: f"{_icp(r, 'rot_network_deg', 'plain', folder=ICP_CPU).mean():.2g}",
    "ficp12.hinge": lambda r: f"{_dlc_train(r, 'train_hinge', ICP_CPU).iloc[-1]:.2g}",
    "ficp12.base": lambda r: f"{_dlc_train(r, 'train_base_term', ICP_CPU).iloc[-1]:.2g}",
    **{f"ficp12.violation.{o}": (lambda r, o=o: f"{100 * values(r, ICP_CPU, 'violation_rate', 'landscape', objective=o).mean():.1f}")
       for o in ("plain", "dlc")},
    **{f"ficp12.step.{o}": (lambda r, o=o: span(tables(r, ICP_CPU)[1].query(
        "objective == @o").step_time_s, ".2g")) for o in ("plain", "dlc")},
    "kl.gap.kl": lambda r: f"{_kl_mean(r, 0) - _kl_mean(r, 1):.1f}",
    "kl.gap.softmax": lambda r: f"{_kl_mean(r, 0) - _kl_mean(r, 2):.0f}",
    "kl.softmax.low": lambda r: f"{_kl(r, 'accuracy', *KL_ROWS[2][1:]).min():.0f}",
    "kl.wall": lambda r: span(walls(r, KL) / 60, ".2g"),
    "feas.softmax.hinge": _feas_text("S", "sequence_digits", "dlc", "hinge_floor", ".3g"),
    "feas.softmax.ratio": _feas_text("S", "sequence_digits", "dlc", "ratio", ".0f"),
    "feas.softmax.base": _feas_text("S", "sequence_digits", "dlc", "base_at_floor", ".1g"),
    "feas.kl.percent": _feas_text("K", "sequence_digits_kl", "dlc", "ratio", ".1g", 100),
    "feas.generic.lam": _feas_text("K", "sequence_digits_kl", "dlc_authors_generic", "lam", ".3f"),
    "feas.prise.ratio": lambda r: "1e{:d}".format(round(math.log10(
        _feas(r, "H", "homography_synthetic_thermal", "dlc_prise", "ratio")))),
}
