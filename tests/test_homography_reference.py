"""Homography references and the fixed point of LK (issue 22, item 4): shared feature normalisation
keeps w* a fixed point on noise-free pairs, `rawlk` (classical LK on raw intensities) runs as a
model with nothing to train in every homography matrix, the identity prediction's MACE is recorded
as a constant baseline, and `spurious_minimum` sits beside MACE in the report's tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import ndimage

from bench.protocol.trial_cells import tuned_combinations
from bench.protocol.verdicts import is_reference
from bench.report import figures, tables
from bench.report.metadata import group_of
from bench.runner.config import GIN_ROOT, expand, parsed_text
from bench.runner.matrix import expand_cells, load_matrix
from bench.tasks.homography import (
    DeepLKFeatures,
    DLKNProtocol,
    HomographyTask,
    RawPyramid,
    SyntheticPairs,
    make_pairs,
)
from bench.tasks.homography.geometry import mace

PROTOCOL = DLKNProtocol(input_size=48, template_size=32, rho=4.0)
HOMOGRAPHY_PARTS = sorted((GIN_ROOT / "matrices").glob("*/homography*.gin"))


def _textured(n: int, size: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [np.clip(0.5 + 3 * ndimage.gaussian_filter(rng.standard_normal((size, size)), 2.0),
                    0, 1).astype(np.float32) for _ in range(n)]


def _moved_from_truth(outputs, task: HomographyTask, w: torch.Tensor, level: int) -> torch.Tensor:
    """[B] MACE (px) between w* and where 10 IC-LK steps at `level` started at w* end."""
    final = task._lk_level(outputs.inputs[level], outputs.templates[level], level, w, 10, None)[-1]
    return mace(final, w)


# --- (b) w* is a fixed point on noise-free pairs --------------------------------------------------
def test_lk_started_at_the_truth_stays_there_on_noise_free_pairs_level_0() -> None:
    """General homographies, same modality, no noise: the template IS the input sampled at
    H(w*) x, so with shared statistics the level-0 maps agree exactly at w* and LK does not move.
    (Per-map statistics, the old `_normalise`, moved it by tenths of a pixel.)"""
    pairs = make_pairs(8, PROTOCOL, "same", seed=4, noise=0.0, images=_textured(3, 96, 5))
    batch = {k: torch.from_numpy(v).double() for k, v in pairs.items()}
    task = HomographyTask(data=SyntheticPairs(), protocol=PROTOCOL)
    outputs = RawPyramid(levels=2).double()(batch["input"], batch["template"])
    w = batch["offsets"]
    assert task._level_energy(outputs.inputs[0], outputs.templates[0], 0, w[None]).max() < 1e-6
    assert _moved_from_truth(outputs, task, w, 0).max() < 0.01


def test_lk_started_at_the_truth_stays_there_at_every_pyramid_level() -> None:
    """Pure translations by an even number of px, where 2x average pooling commutes with the
    warp, so the pair is noise-free at level 1 too: no level moves w*."""
    image = torch.from_numpy(np.stack(_textured(4, 48, 6))).double()
    shifts = torch.tensor([[2.0, -4.0], [-2.0, 2.0], [4.0, 0.0], [0.0, -2.0]], dtype=torch.float64)
    m = (48 - 32) // 2
    template = torch.stack([img[m + int(dy):m + int(dy) + 32, m + int(dx):m + int(dx) + 32]
                            for img, (dx, dy) in zip(image, shifts)])
    w = shifts[:, None, :].expand(4, 4, 2).clone()
    task = HomographyTask(data=SyntheticPairs(), protocol=PROTOCOL)
    outputs = RawPyramid(levels=2).double()(image, template)
    for level in (0, 1):
        assert _moved_from_truth(outputs, task, w, level).max() < 0.01, level
    torch.testing.assert_close(task.energy(outputs, w[None]), torch.zeros(1, 4).double(),
                               atol=1e-10, rtol=0)


def test_shared_normalisation_keeps_equal_maps_equal_and_the_template_standardised() -> None:
    from bench.tasks.homography.models import normalise_pair

    torch.manual_seed(0)
    inputs = 3.0 + 2.0 * torch.randn(2, 1, 12, 12, dtype=torch.float64)
    template = inputs[:, :, 2:10, 3:11].clone()  # the input's values, not its statistics
    fi, ft = normalise_pair(inputs, template)
    torch.testing.assert_close(fi[:, :, 2:10, 3:11], ft)
    torch.testing.assert_close(ft.mean(dim=(-1, -2)), torch.zeros(2, 1, dtype=torch.float64))
    torch.testing.assert_close(ft.std(dim=(-1, -2), unbiased=False),
                               torch.ones(2, 1, dtype=torch.float64), atol=1e-5, rtol=0)
    out = DeepLKFeatures(width=4, depth=1, levels=2).double()(inputs[:, 0], template[:, 0])
    for ft_level in out.templates:  # the learned features are standardised the same way
        assert ft_level.mean().abs() < 1e-8 and abs(ft_level.pow(2).mean().item() - 1) < 1e-3


# --- (a) raw-intensity LK, a model with nothing to train ------------------------------------------
@pytest.mark.parametrize("path", HOMOGRAPHY_PARTS, ids=lambda p: p.parent.name)
def test_rawlk_runs_once_as_plain_where_a_matrix_lists_it(path: Path, tmp_path: Path) -> None:
    """Every homography part lists `rawlk` (the tuned one too: the `floor` class reads it); its
    cells are plain only (0 epochs, or the part's own epochs binding), every other objective is
    skipped with the reason."""
    (part,) = load_matrix(path)
    assert "rawlk" in part.models
    part.models, part.seeds = ["rawlk"], part.seeds[:1]
    cells = expand_cells(part, tmp_path)
    runnable = {c.objective for c in cells if not c.skip_reason}
    assert runnable == {"plain"}
    skipped = [c for c in cells if c.skip_reason]
    assert len(skipped) == len(part.objectives) * len(part.tasks) - len(part.tasks)
    presets = [c for c in skipped if c.objective == "dlc_authors_generic"]  # not for this task
    assert all("applies to targets in a Simplex space only" in c.skip_reason for c in presets)
    assert all("RawPyramid has nothing to train" in c.skip_reason for c in skipped
               if c not in presets)
    assert len(presets) < len(skipped)


def test_the_tuned_reference_gets_no_trials_and_runs_its_defaults_on_the_final_seeds(
        tmp_path: Path) -> None:
    """rawlk in the tuned part: no trials (nothing to tune; on validation pairs where raw LK
    fails, its trials would only fail), and in the final phase its default plain cell on every
    final seed, in `final/`, with no selected config to read."""
    from bench.protocol.tune import final_cells, load_plan

    parts, sweep = load_plan(GIN_ROOT / "matrices" / "cpu_tuned.gin")
    assert is_reference("homography_synthetic_thermal", "models/rawlk.gin")
    assert not is_reference("homography_synthetic_thermal", "deeplk")
    tuned = {(Path(t).stem, Path(m).stem) for _, t, m, _ in tuned_combinations(parts)}
    assert ("homography_synthetic_thermal", "deeplk") in tuned
    assert not any(m == "rawlk" for _, m in tuned)
    (part,) = [p for p in parts if any("rawlk" in m for m in p.models)]
    part.models = [m for m in part.models if "rawlk" in m]
    cells = [c for c in final_cells([part], sweep, tmp_path, "cpu") if not c.skip_reason]
    assert {c.objective for c in cells} == {"plain"}
    assert sorted(c.seed for c in cells) == sorted(sweep.final_seeds)
    assert all(Path(c.results) == tmp_path / "final" for c in cells)


def test_rawlk_and_deeplk_share_the_pyramid_and_the_solver() -> None:
    """Same pyramid sizes and the same LK run by the task: on a noise-free same-modality pair
    raw LK converges from the identity (iteration 0 = the identity prediction)."""
    pairs = make_pairs(8, PROTOCOL, "same", seed=2, noise=0.0, images=_textured(3, 96, 3))
    batch = {k: torch.from_numpy(v).double() for k, v in pairs.items()}
    raw = RawPyramid(levels=2).double()(batch["input"], batch["template"])
    deep = DeepLKFeatures(width=4, depth=1, levels=2).double()(batch["input"], batch["template"])
    assert [x.shape for x in raw.inputs] == [x.shape for x in deep.inputs]
    assert [x.shape for x in raw.templates] == [x.shape for x in deep.templates]
    task = HomographyTask(data=SyntheticPairs(), protocol=PROTOCOL, iterations=15)
    iterates = task.solve(None, raw, batch)
    extras = task.extras(None, raw, batch, iterates)
    assert extras["mace"][-1].median() < 0.1


# --- the identity prediction as a constant baseline -----------------------------------------------
def test_trivial_mace_is_the_identity_predictions_error_at_every_iteration() -> None:
    truth = torch.tensor([[[3.0, 4.0]] * 4, [[0.0, 1.0]] * 4])  # mace of w = 0: 5 and 1
    iterates = torch.stack([torch.zeros_like(truth), truth + 0.5, truth])
    task = HomographyTask(data=SyntheticPairs(), protocol=PROTOCOL)
    extras = task.extras(None, None, {"offsets": truth}, iterates)
    torch.testing.assert_close(extras["trivial_mace"], torch.tensor([[5.0, 1.0]] * 3))
    torch.testing.assert_close(extras["trivial_mace"][0], extras["mace"][0])
    assert extras["mace"][-1].abs().max() == 0
    with parsed_text(expand([GIN_ROOT / "tasks" / "homography_synthetic_thermal.gin"])):
        names = [m.name for m in HomographyTask().metrics]
    assert "trivial_mace" in names  # every homography task records it (their files include it)


# --- (d) spurious_minimum beside MACE; rawlk drawn as a reference -------------------------------
def test_spurious_minimum_shares_the_error_table_with_mace() -> None:
    metrics = ["distance", "mace", "trivial_mace", "optimality_gap", "violation_rate",
               "spurious_minimum", *(f"success@{t}" for t in (0.1, 0.5, 1, 3, 5, 10, 20))]
    assert group_of("spurious_minimum") == "error" and group_of("optimality_gap") == "landscape"
    groups = tables.column_groups(sorted(metrics))
    (holding,) = [members for _, members in groups if "mace" in members]
    assert "spurious_minimum" in holding and "optimality_gap" not in holding


def test_rawlk_is_drawn_as_the_reference_in_deeplk_figures() -> None:
    frame = pd.DataFrame({"task": ["homography_synthetic_same"] * 2, "model": ["deeplk", "rawlk"],
                          "metric": ["mace", "mace"],
                          "value": [2.0, 1.5]})
    ref = figures.reference_for(frame, "deeplk")
    assert ref is not None and set(ref.model) == {"rawlk"}
    assert figures.reference_for(frame, "rawlk") is None
