"""Registration family: pair sampler, Procrustes head, ICP, metrics, loader, h, end to end."""

from __future__ import annotations

import json
import math
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import roma
import torch
from scipy.spatial import cKDTree

import bench.tasks.registration  # noqa: F401 - registers the gin configurables
from bench.tasks.registration import geometry as geo
from bench.tasks.registration.modelnet import load_modelnet40
from bench.tasks.registration.models import DCPNet
from bench.tasks.registration.pairs import make_pair
from bench.tasks.registration.shapes import FAMILIES, make_shapes
from bench.tasks.registration.task import Registration
from tests.conftest import bench_cli


@pytest.fixture(scope="module")
def shapes() -> dict[str, np.ndarray]:
    return make_shapes(2, tuple(range(len(FAMILIES))), 256, seed=3)


def _rigid(angle_deg: float, axis: tuple[float, float, float], trans: tuple[float, float, float]):
    axis_t = torch.tensor(axis, dtype=torch.float64)
    rot = roma.rotvec_to_rotmat(axis_t / axis_t.norm() * math.radians(angle_deg))
    return geo.make_transform(rot, torch.tensor(trans, dtype=torch.float64))


def test_shapes_are_normalised_with_unit_normals_and_asymmetric(shapes) -> None:
    radius = np.linalg.norm(shapes["data"], axis=2).max(axis=1)
    np.testing.assert_allclose(radius, 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(shapes["normal"], axis=2), 1.0, atol=1e-4)
    assert sorted(set(shapes["label"].tolist())) == list(range(len(FAMILIES)))
    for cloud in shapes["data"]:  # no 180-degree symmetry about the principal axes
        centred = cloud - cloud.mean(0)
        tree = cKDTree(centred)
        for axis in np.linalg.eigh(centred.T @ centred)[1].T:
            turned = centred @ (2 * np.outer(axis, axis) - np.eye(3)).T  # rotation by pi
            assert tree.query(turned)[0].mean() > 0.02


@pytest.mark.parametrize("protocol", ["dcp", "prnet", "so3"])
def test_pair_ground_truth_maps_source_onto_target_exactly(shapes, protocol: str) -> None:
    rng = np.random.default_rng(0)
    pair = make_pair(shapes["data"][5], protocol, 128, rng, partial=96)
    moved = pair["src"] @ pair["transform"][:3, :3].T + pair["transform"][:3, 3]
    dist, idx = cKDTree(pair["tgt"]).query(moved)
    assert dist.max() < 1e-5 and len(set(idx.tolist())) == len(moved)  # a bijection
    assert len(pair["src"]) == (96 if protocol == "prnet" else 128)
    rot = pair["transform"][:3, :3]
    np.testing.assert_allclose(rot @ rot.T, np.eye(3), atol=1e-5)
    assert np.abs(pair["transform"][:3, 3]).max() <= 0.5
    if protocol != "so3":  # Euler angles in [0, 45] degrees, DCP's R = Rx Ry Rz
        euler = geo.euler_zyx_deg(torch.from_numpy(pair["transform"]))
        assert (euler > -1e-3).all() and (euler < 45 + 1e-3).all()


def test_rpmnet_pairs_are_resampled_cropped_and_still_consistent(shapes) -> None:
    rng = np.random.default_rng(1)
    pair = make_pair(shapes["data"][0], "rpmnet", 128, rng, jitter=0.0, crop=0.7)
    assert pair["src"].shape == pair["tgt"].shape == (90, 3) and pair["raw"].shape == (128, 3)
    clean_ref = pair["raw"] @ pair["transform"][:3, :3].T + pair["transform"][:3, 3]
    moved = pair["src"] @ pair["transform"][:3, :3].T + pair["transform"][:3, 3]
    assert cKDTree(clean_ref).query(moved)[0].max() < 1e-5  # source = cropped clean shape
    assert cKDTree(pair["src"]).query(pair["tgt"])[0].mean() > 1e-3  # different samples


def test_procrustes_recovers_a_known_transform_with_zero_weight_outliers() -> None:
    torch.manual_seed(0)
    truth = _rigid(70.0, (1.0, -2.0, 0.5), (0.3, -0.2, 0.1))
    src = torch.randn(2, 50, 3, dtype=torch.float64)
    dst = geo.apply(truth, src)
    weights = torch.ones(2, 50, dtype=torch.float64)
    dst[:, :10] += 5.0  # outliers, weighted 0
    weights[:, :10] = 0.0
    fit = geo.procrustes(src, dst, weights)
    torch.testing.assert_close(fit, truth.expand(2, 4, 4), atol=1e-8, rtol=0)
    assert not torch.allclose(geo.procrustes(src, dst), truth.expand(2, 4, 4), atol=1e-2)


def test_icp_converges_from_small_and_fails_gracefully_from_large(shapes) -> None:
    src = torch.from_numpy(shapes["data"][:2]).double()
    truth = _rigid(30.0, (0.2, 1.0, 0.3), (0.2, 0.1, -0.3))
    tgt = geo.apply(truth, src)[:, torch.randperm(src.shape[1])]
    small = truth @ _rigid(5.0, (1.0, 0.0, 1.0), (0.02, -0.02, 0.01))
    far = truth @ _rigid(10.0, (1.0, 0.0, 0.0), (3.0, 0.0, 0.0))  # no pair within 0.2
    trace = geo.icp(src, tgt, torch.stack([small, far]), iterations=30, max_distance=0.2)
    assert trace.shape == (30, 2, 4, 4) and torch.isfinite(trace).all()
    rot = geo.rotation_error_deg(trace, truth[None])
    trans = geo.translation_error(trace, truth[None])
    assert rot[-1, 0] < 0.05 and trans[-1, 0] < 1e-3  # converged
    assert rot[0, 0] < 5.0  # and improved from the first step
    torch.testing.assert_close(trace[-1, 1], far)  # no pairs: stays put, no NaN, no error
    empty = geo.icp(src, tgt, torch.stack([small, far]), iterations=0)
    assert empty.shape == (0, 2, 4, 4)


def test_metrics_on_known_inputs() -> None:
    gt = _rigid(0.0, (0, 0, 1), (0.1, 0.2, 0.3))[None].float()  # [1, 4, 4]
    iterates = torch.stack([gt, _rigid(10.0, (0, 0, 1), (0.1, 0.2, 0.3))[None].float(),
                            _rigid(0.5, (0, 0, 1), (0.1, 0.2, 0.305))[None].float(),
                            _rigid(3.0, (1, 0, 0), (0.1, 0.24, 0.3))[None].float()])
    task = Registration()
    src = torch.randn(1, 64, 3)
    outputs = bench.tasks.registration.Outputs(src, geo.apply(gt, src), None,
                                               torch.zeros(0, 1, 4, 4))
    extras = task.extras(None, outputs, {"transform": gt, "raw": src}, iterates)
    torch.testing.assert_close(extras["rot_iso_deg"][:, 0], torch.tensor([0.0, 10.0, 0.5, 3.0]),
                               atol=2e-3, rtol=0)
    torch.testing.assert_close(extras["trans_iso"][:, 0], torch.tensor([0.0, 0.0, 0.005, 0.04]),
                               atol=1e-5, rtol=0)
    # rotation about z by 10 deg = Euler [z, y, x] = [10, 0, 0]: MAE 10/3, mean square 100/3
    torch.testing.assert_close(extras["euler_mae_deg"][1, 0], torch.tensor(10 / 3), atol=1e-3,
                               rtol=0)
    torch.testing.assert_close(extras["euler_sq_deg2"][1, 0], torch.tensor(100 / 3), atol=1e-2,
                               rtol=0)
    assert extras["success_1deg"][:, 0].tolist() == [100.0, 0.0, 100.0, 0.0]
    assert extras["success_5deg"][:, 0].tolist() == [100.0, 0.0, 100.0, 100.0]
    assert extras["chamfer"][0, 0] < 1e-6 and (extras["chamfer"][1:, 0] > 2e-5).all()
    euler = geo.euler_zyx_deg(_rigid(20.0, (1, 0, 0), (0, 0, 0)))
    torch.testing.assert_close(euler, torch.tensor([0.0, 0.0, 20.0], dtype=torch.float64))


def test_loader_names_missing_files_and_folder(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match=r"ply_data_train\*\.h5.*shape_names\.txt") as err:
        load_modelnet40(missing, "train")
    assert str(missing) in str(err.value)
    (tmp_path / "shape_names.txt").write_text("airplane\n")
    with pytest.raises(FileNotFoundError, match=r"missing ply_data_train\*\.h5, ply_data_test"):
        load_modelnet40(tmp_path, "test")


def test_loader_reads_hdf5_and_splits_unseen_categories(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for part, labels in (("train", [0, 19, 20, 39]), ("test", [3, 25])):
        with h5py.File(tmp_path / f"ply_data_{part}0.h5", "w") as f:
            f["data"] = rng.uniform(-0.5, 0.5, (len(labels), 64, 3)).astype(np.float32)
            f["label"] = np.asarray(labels, dtype=np.uint8)[:, None]
    (tmp_path / "shape_names.txt").write_text("\n".join(f"c{i}" for i in range(40)))
    data = load_modelnet40(tmp_path, "train")
    assert data["data"].shape == (4, 64, 3) and data["label"].tolist() == [0, 19, 20, 39]
    task = Registration(source="modelnet40", root=str(tmp_path), split="unseen", num_points=32,
                        n_train=None, n_test=None)
    train, val = (task.dataset(s)[:]["label"].tolist() for s in ("train", "val"))
    assert len(val) == 1 and sorted(train + val) == [0, 19]  # val carved from the train part
    assert task.dataset("test")[:]["label"].tolist() == [25]


def test_network_estimate_minimises_h_and_gradients_reach_the_network(shapes) -> None:
    torch.manual_seed(0)
    task = Registration(num_points=64, raw_points=256, n_train=8, n_test=8, iterations=2,
                        train_iterations=2)
    batch = task.dataset("train")[:4]
    model = DCPNet(dims=16, widths=(16,), feedforward=32).train()
    outputs = task.forward(model, batch)
    assert outputs.estimates.shape == (2, 4, 4, 4)
    best = outputs.estimates[-1]
    near = task.space.retract(best, task.space.sample(best, 8) * 0.1)
    assert (task.h(outputs, best[None]) <= task.h(outputs, near) + 1e-6).all()
    target = task.target(batch)
    (task.loss(model, outputs, batch, target) + task.h(outputs, target[None]).mean()).backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0


def run_tiny_matrix(tmp_path: Path, models: list[str], objectives: list[str]) -> Path:
    """Run a tiny registration_synthetic_dcp matrix (smoke scale, 48 points, 1 epoch) of
    `models` x `objectives` into `tmp_path / 'out'`; returns that results folder."""
    matrix = tmp_path / "m.gin"
    bindings = ["bench.run.Experiment.epochs = 1", "bench.run.Experiment.batch_size = 16",
                "bench.run.Experiment.landscape_examples = 4",
                "bench.tasks.registration.Registration.num_points = 48",
                "bench.tasks.registration.Registration.raw_points = 64",
                "bench.tasks.registration.Registration.n_train = 32",
                "bench.tasks.registration.Registration.n_test = 16",
                "bench.tasks.registration.Registration.icp_iterations = 3",
                "bench.tasks.registration.DCPNet.dims = 16",
                "bench.tasks.registration.DCPNet.widths = (16,)",
                "bench.tasks.registration.DCPNet.feedforward = 32"]
    matrix.write_text(textwrap.dedent(f"""\
        bench.matrix.Matrix.tasks = ['registration_synthetic_dcp']
        bench.matrix.Matrix.models = {models!r}
        bench.matrix.Matrix.objectives = {objectives!r}
        bench.matrix.Matrix.scale = 'smoke'
        bench.matrix.Matrix.bindings = {bindings!r}
        """))
    results = tmp_path / "out"
    assert bench_cli("run", str(matrix), "--results", str(results), "--no-progress") == 0
    return results


def test_plain_and_dlc_run_on_a_registration_smoke_cell(tmp_path: Path) -> None:
    results = run_tiny_matrix(tmp_path, ["prnet", "icp"], ["plain", "dlc"])
    records = {p.parent.name: json.loads(p.read_text())
               for p in (results / "runs").glob("*/run.json")}
    done = {(r["model"], r["objective"]) for r in records.values() if r["status"] == "done"}
    assert done == {("prnet", "plain"), ("prnet", "dlc"), ("icp", "plain")}, records
    frame = pd.read_parquet(results / "results.parquet")
    iters = frame[(frame.phase == "test_iter") & (frame.metric == "rot_iso_deg")]
    prnet = iters[iters.model == "prnet"]
    assert sorted(set(prnet["step"])) == list(range(1 + 3 + 3))  # identity, 3 passes, 3 ICP
    assert {"success_5deg", "euler_rmse_deg", "chamfer", "trans_iso"} <= set(frame["metric"])
    assert "train_hinge" in set(frame[frame.objective == "dlc"]["metric"])
