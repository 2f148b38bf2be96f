"""Task family `homography`: generator/label consistency, LK convergence, metrics, loaders' errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from kornia.geometry.linalg import transform_points
from kornia.geometry.transform import warp_perspective

from bench.metrics import Extra, Trace
from bench.objectives import DLC, Plain
from bench.tasks.homography import (
    DeepLKFeatures,
    DHNRegressor,
    DLKNFolder,
    DLKNProtocol,
    HomographyTask,
    ImageFolderPairs,
    RawPyramid,
    SyntheticPairs,
    make_pairs,
    sources,
)
from bench.tasks.homography.data import MODALITIES
from bench.tasks.homography.geometry import mace, offsets_to_homography, pixel_grid, sample_at

PROTOCOL = DLKNProtocol(input_size=48, template_size=32, rho=4.0)


def _textured(n: int, size: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    from scipy import ndimage

    return [np.clip(0.5 + 0.15 * ndimage.gaussian_filter(rng.standard_normal((size, size)), 2.0)
                    / 0.05, 0, 1).astype(np.float32) for _ in range(n)]


@pytest.mark.parametrize("modality", MODALITIES)
def test_every_modality_generates_pairs_in_range(modality: str) -> None:
    pairs = make_pairs(4, PROTOCOL, modality, seed=0, images=_textured(2, 80, 0))
    assert pairs["input"].shape == (4, 48, 48) and pairs["template"].shape == (4, 32, 32)
    assert np.abs(pairs["offsets"]).max() <= 4.0
    assert 0 <= pairs["template"].min() and pairs["template"].max() <= 1


def test_pairs_are_consistent_with_their_corner_labels() -> None:
    """Same modality, no noise: the input sampled at H(label) is the template (an independent
    grid_sample path), a 1 px wrong label is not, and warping the template back onto the input
    (kornia) matches the input inside the template's footprint."""
    pairs = make_pairs(8, PROTOCOL, "same", seed=1, noise=0.0, images=_textured(3, 96, 1))
    image, template, w = (torch.from_numpy(pairs[k]).double() for k in ("input", "template", "offsets"))
    hom = offsets_to_homography(w, 48, 32)
    points = transform_points(hom, pixel_grid(32, 32, w).expand(8, -1, -1))
    resampled = sample_at(image[:, None], points).reshape(8, 32, 32)
    assert (resampled - template).abs().max() < 1e-4
    wrong = offsets_to_homography(w + 1.0, 48, 32)
    points = transform_points(wrong, pixel_grid(32, 32, w).expand(8, -1, -1))
    assert (sample_at(image[:, None], points).reshape(8, 32, 32) - template).abs().mean() > 0.01
    back = warp_perspective(template[:, None], hom, dsize=(48, 48), align_corners=True)[:, 0]
    footprint = warp_perspective(torch.ones_like(template[:, None]), hom, dsize=(48, 48),
                                 align_corners=True)[:, 0] > 0.999
    assert footprint.sum() > 8 * 500
    back_wrong = warp_perspective(template[:, None], wrong, dsize=(48, 48), align_corners=True)[:, 0]
    error = (back - image)[footprint].abs().mean()
    assert error < 0.05 and error < 0.5 * (back_wrong - image)[footprint].abs().mean()


def test_texture_poor_crops_are_rejected() -> None:
    flat = [np.full((80, 80), 0.5, np.float32)]
    with pytest.raises(RuntimeError, match="textured"):
        make_pairs(1, PROTOCOL, "same", seed=0, images=flat)
    pairs = make_pairs(4, PROTOCOL, "same", seed=0, images=flat + _textured(1, 80, 2))
    assert min(np.abs(np.diff(x, axis=1)).mean() for x in pairs["input"]) > 0.01


def test_lk_converges_on_same_modality_from_a_small_offset() -> None:
    pairs = make_pairs(16, PROTOCOL, "same", seed=2, noise=0.0, images=_textured(4, 96, 3))
    batch = {k: torch.from_numpy(v).double() for k, v in pairs.items()}
    task = HomographyTask(data=SyntheticPairs(), protocol=PROTOCOL, iterations=15)
    outputs = RawPyramid(levels=2).double()(batch["input"], batch["template"])
    iterates = task.solve(None, outputs, batch)
    assert iterates.shape == (31, 16, 4, 2)
    err = mace(iterates, batch["offsets"][None])
    assert err[-1].median() < 0.1 < err[0].median()
    energy = task.h(outputs, iterates[[0, -1]])
    assert (energy[1] <= energy[0] + 1e-9).float().mean() > 0.9
    extras = task.extras(None, outputs, batch, iterates)
    assert extras["success@1"].shape == (31, 16) and extras["success@1"][-1].mean() > 80


def test_mace_and_success_rate_on_known_inputs() -> None:
    truth = torch.zeros(3, 4, 2)
    pred = truth.clone()
    pred[0, :, 0] = 0.3  # every corner off by 0.3 px
    pred[1, 0] = torch.tensor([3.0, 4.0])  # one corner off by 5 px -> mace 1.25
    pred[2] = torch.tensor([6.0, 8.0])  # all corners off by 10 px
    torch.testing.assert_close(mace(pred, truth), torch.tensor([0.3, 1.25, 10.0]))
    task = HomographyTask(data=SyntheticPairs(), protocol=PROTOCOL)
    iterates = torch.stack([truth, pred])
    extras = task.extras(None, None, {"offsets": truth}, iterates)
    trace = Trace(distance=torch.zeros(2, 3), h=torch.zeros(2, 3), h_star=torch.zeros(3),
                  extras=extras)
    assert Extra(key="success@0.5")(trace).tolist() == pytest.approx([100.0, 100 / 3])
    assert Extra(key="success@3")(trace).tolist() == pytest.approx([100.0, 200 / 3])
    assert Extra(key="success@20")(trace).tolist() == pytest.approx([100.0, 100.0])
    assert Extra(key="mace")(trace)[-1].item() == pytest.approx((0.3 + 1.25 + 10) / 3)


@pytest.mark.parametrize("model", [DeepLKFeatures(width=4, depth=1), DHNRegressor(width=8, depth=2)])
@pytest.mark.parametrize("loss", ["energy", "unrolled"])
def test_plain_and_dlc_give_finite_gradients(model: torch.nn.Module, loss: str) -> None:
    torch.manual_seed(0)
    pairs = make_pairs(4, PROTOCOL, "thermal", seed=3, images=_textured(2, 80, 4))
    batch = {k: torch.from_numpy(v) for k, v in pairs.items()}
    task = HomographyTask(data=SyntheticPairs(), protocol=PROTOCOL, loss=loss, unroll=2)
    for objective in (Plain(), DLC(samples=2)):
        objective.setup(task)
        model.zero_grad()
        out = objective(task, model, task.forward(model, batch), batch)
        assert out.loss.ndim == 0 and torch.isfinite(out.loss)
        out.loss.backward()
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads)
        assert sum(g.abs().sum() for g in grads) > 0
    w = task.space.sample(task.target(batch), 3)
    assert task.h(task.forward(model, batch), w).shape == (3, 4)


def _write_dlkn(root: Path, split: str, n: int, size: int = 96, t: int = 64) -> None:
    """DLKN triples with corners shifted by (2, -1) px (`HomographyTask.stand_in`'s writer)."""
    sources.write_stand_in_dlkn(root, split, n, size, t)


def test_dlkn_folder_reads_labels_and_downscales_exactly(tmp_path: Path) -> None:
    _write_dlkn(tmp_path, "val2014", 2)
    full = DLKNFolder(root=str(tmp_path)).load("test", 0, DLKNProtocol(96, 64, 8.0), 0)[:]
    expected = torch.tensor([[2.0, -1.0]] * 4)
    torch.testing.assert_close(full["offsets"][0], expected)
    half = DLKNFolder(root=str(tmp_path)).load("test", 0, DLKNProtocol(48, 32, 4.0), 0)[:]
    assert half["input"].shape == (2, 48, 48) and half["template"].shape == (2, 32, 32)
    # a pure translation of (dx, dy) at full size is (dx / 2, dy / 2) at half size
    torch.testing.assert_close(half["offsets"][0], torch.tensor([[1.0, -0.5]] * 4), atol=1e-4, rtol=0)


def test_dlkn_folder_errors_name_the_missing_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="val2014_input"):
        DLKNFolder(root=str(tmp_path)).triples("test")
    _write_dlkn(tmp_path, "val2014", 1)
    (tmp_path / "val2014_label" / "0_label.txt").unlink()
    with pytest.raises(FileNotFoundError, match="0_label.txt"):
        DLKNFolder(root=str(tmp_path)).triples("test")
    (tmp_path / "val2014_label" / "0_label.txt").write_text('{"location": [1, 2]}')
    with pytest.raises(ValueError, match="malformed DLKN label"):
        DLKNFolder(root=str(tmp_path)).load("test", 0, DLKNProtocol(96, 64, 8.0), 0)[:]
    (tmp_path / "val2014_template" / "0.png").write_bytes(b"not an image")
    (tmp_path / "val2014_label" / "0_label.txt").write_text(json.dumps({"location": [
        {"top_left_u": 16, "top_left_v": 16}, {"top_right_u": 79, "top_right_v": 16},
        {"bottom_left_u": 16, "bottom_left_v": 79}, {"bottom_right_u": 79, "bottom_right_v": 79}]}))
    with pytest.raises(ValueError, match="cannot read image"):
        DLKNFolder(root=str(tmp_path)).load("test", 0, DLKNProtocol(96, 64, 8.0), 1)


def test_image_folder_pairs(tmp_path: Path) -> None:
    from PIL import Image

    with pytest.raises(FileNotFoundError, match="does not exist"):
        ImageFolderPairs(root=str(tmp_path / "nope")).files("train")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no .jpg"):
        ImageFolderPairs(root=str(tmp_path / "empty")).files("train")
    (tmp_path / "train").mkdir()
    (tmp_path / "test").mkdir()
    for i, img in enumerate(_textured(3, 80, 5)):
        Image.fromarray((img * 255).astype(np.uint8)).save(tmp_path / ("train" if i else "test") / f"{i}.jpg")
    source = ImageFolderPairs(root=str(tmp_path / "train"), test_root=str(tmp_path / "test"))
    a = source.load("test", 4, PROTOCOL, 0)[:]
    b = source.load("test", 4, PROTOCOL, 0)[:]
    assert a["input"].shape == (4, 48, 48)
    torch.testing.assert_close(a["offsets"], b["offsets"])  # fixed-seed test set
