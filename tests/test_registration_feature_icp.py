"""Learned-feature ICP (`FeatureICP`): w* a fixed point, descent on h, DLC's gradients, and which
metrics each registration model reports."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

import bench.tasks.registration  # noqa: F401 - registers the gin configurables
from bench.metrics import Distance, Extra, OptimalityGap, reported
from bench.objectives import DLC
from bench.tasks.registration import geometry as geo
from bench.tasks.registration.feature_icp import FeatureICP
from bench.tasks.registration.models import DCPNet, ICPOnly
from bench.tasks.registration.task import Registration
from tests.test_registration import run_tiny_matrix

GAP = {"optimality_gap", "spurious_minimum"}


@pytest.fixture(scope="module")
def case():
    """A tiny noise-free DCP-protocol task, 4 training pairs and an untrained FeatureICP model."""
    torch.manual_seed(0)
    task = Registration(num_points=64, raw_points=256, n_train=8, n_test=8, icp_iterations=2)
    batch = task.dataset("train")[:4]
    model = FeatureICP(DCPNet(dims=16, widths=(16,), feedforward=32), steps=6)
    return task, batch, model


def test_w_star_is_a_fixed_point_of_the_solver_on_noise_free_pairs(case) -> None:
    task, batch, model = case
    outputs = task.forward(model.eval(), batch)
    target = task.target(batch)
    iterates = model.descend(outputs.src, outputs.tgt, target)
    assert iterates.shape == (6, 4, 4, 4)
    assert geo.rotation_error_deg(iterates, target[None]).max() < 1e-3
    assert geo.translation_error(iterates, target[None]).max() < 1e-5
    assert task.h(outputs, target[None]).abs().max() < 1e-6  # h(w*) = 0 = min h


def test_solver_decreases_h_from_a_perturbed_start(case) -> None:
    task, batch, model = case
    outputs = task.forward(model.eval(), batch)
    target = task.target(batch)
    start = task.space.retract(target, task.space.sample(
        target, 1, torch.Generator().manual_seed(1))[0], 0.5)
    iterates = torch.cat([start[None], model.descend(outputs.src, outputs.tgt, start)])
    h = task.h(outputs, iterates)  # [1 + steps, B]
    assert (h[-1] < 0.5 * h[0]).all() and (h[0] > 1e-4).all()
    assert (geo.rotation_error_deg(iterates[-1], target) <
            geo.rotation_error_deg(start, target)).all()
    # h is recomputed at w: not the Procrustes energy at fixed matches, so the network's own pass
    # is not argmin h (the solver moves it)
    moved = model.descend(outputs.src, outputs.tgt, outputs.estimates[-1])
    assert (moved - outputs.estimates[-1]).abs().amax() > 1e-3


def test_gradients_reach_the_network_through_the_dlc_hinge_on_this_h(case) -> None:
    task, batch, model = case
    model.train().zero_grad()
    outputs = task.forward(model, batch)
    objective = DLC(samples=2, mu=5.0)
    objective.setup(task)
    star = objective.star(lambda w: task.h(outputs, w), task.target(batch))
    assert star.hinge > 0
    star.hinge.backward()  # the hinge alone, no DCP loss
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0


def test_models_declare_the_metrics_that_carry_no_information(case) -> None:
    metrics = [Distance(), OptimalityGap(), Extra("rot_network_deg"), Extra("trans_network")]
    names = {m.name for m in metrics} | GAP  # with the gap's companion, spurious_minimum
    assert {m.name for m in reported(metrics, case[2])} == names
    assert {m.name for m in reported(metrics, DCPNet())} == names - GAP
    assert {m.name for m in reported(metrics, ICPOnly())} == names - {"rot_network_deg",
                                                                         "trans_network"}


@pytest.mark.slow  # two training cells end to end (the unit tests above are the fast check)
def test_smoke_cells_report_network_error_and_gap_only_where_informative(tmp_path: Path) -> None:
    results = run_tiny_matrix(tmp_path, ["dcp", "feature_icp"], ["dlc"])
    records = [json.loads(p.read_text()) for p in (results / "runs").glob("*/run.json")]
    assert sorted((r["model"], r["objective"], r["status"]) for r in records) == [
        ("dcp", "dlc", "done"), ("feature_icp", "dlc", "done")]
    frame = pd.read_parquet(results / "results.parquet")
    final = frame[frame.phase == "test"]
    for model, steps in (("dcp", 1), ("feature_icp", 1 + 3)):  # smoke: 3 learned-feature steps
        mine = frame[frame.model == model]
        assert (set(mine.metric) >= GAP) == (model == "feature_icp")
        rot = mine[(mine.phase == "test_iter") & (mine.metric == "rot_iso_deg")]
        assert sorted(set(rot.step)) == list(range(1 + steps + 3))  # identity, learned, 3 ICP
        for seed_obj, part in rot.groupby(["objective", "seed"]):
            network = final[(final.model == model) & (final.metric == "rot_network_deg")
                            & (final.objective == seed_obj[0]) & (final.seed == seed_obj[1])]
            assert network.value.item() == pytest.approx(
                part[part.step == steps].value.item(), rel=1e-6)
