"""Task `alignment1d`: generator, warp, energy and Gauss-Newton solver on known inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.objectives import DLC, Margin, Plain, TargetNoise
from bench.tasks.alignment1d import Alignment1D, ConvFeatures, RawSignal, make_pairs, warp


def test_generator_is_deterministic_and_in_range() -> None:
    a = make_pairs(16, 64, 6.0, "nonlinear", 0.05, 3, seed=3)
    b = make_pairs(16, 64, 6.0, "nonlinear", 0.05, 3, seed=3)
    c = make_pairs(16, 64, 6.0, "nonlinear", 0.05, 3, seed=4)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["ref"], c["ref"])
    assert a["ref"].shape == (16, 64) and a["mov"].shape == (16, 64) and a["shift"].shape == (16, 1)
    assert np.abs(a["shift"]).max() <= 6.0


def test_ground_truth_shift_aligns_the_signals() -> None:
    """Without noise and modality change, mov(t + s) = ref(t) up to linear interpolation error,
    and the energy at w* is far below the energy 2 samples away."""
    pairs = make_pairs(8, 64, 5.0, "same", 0.0, 3, seed=0)
    ref, mov, shift = (torch.from_numpy(pairs[k]).double() for k in ("ref", "mov", "shift"))
    task = Alignment1D(length=64, max_shift=5.0, modality="same", noise=0.0)
    start, stop = task.window
    aligned = warp(mov[:, None], shift[None], start, stop)[0, :, 0]
    assert (aligned - ref[:, start:stop]).abs().mean() < 0.02
    wrong = warp(mov[:, None], (shift + 2)[None], start, stop)[0, :, 0]
    assert (wrong - ref[:, start:stop]).abs().mean() > 0.2
    outputs = RawSignal().double()(ref, mov)
    energy = task.h(outputs, torch.stack([shift, shift + 2, shift - 2]))
    assert energy.shape == (3, 8)
    assert (energy[0] < 0.2 * energy[1:].min(dim=0).values).all()


def test_warp_at_integer_shift_is_a_shift() -> None:
    features = torch.randn(2, 3, 32, dtype=torch.float64)
    w = torch.tensor([[[2.0], [-3.0]]], dtype=torch.float64)  # [K=1, B=2, 1]
    out = warp(features, w, 5, 20)
    torch.testing.assert_close(out[0, 0], features[0, :, 7:22])
    torch.testing.assert_close(out[0, 1], features[1, :, 2:17])


def test_gauss_newton_converges_from_a_small_offset_on_same_modality() -> None:
    task = Alignment1D(length=64, max_shift=2.0, modality="same", noise=0.0, iterations=15)
    pairs = make_pairs(64, 64, 2.0, "same", 0.0, 2, seed=1)
    batch = {k: torch.from_numpy(v).double() for k, v in pairs.items()}
    outputs = RawSignal().double()(batch["ref"], batch["mov"])
    iterates = task.solve(None, outputs, batch)
    assert iterates.shape == (16, 64, 1)
    start = task.space.distance(iterates[0], batch["shift"])
    final = task.space.distance(iterates[-1], batch["shift"])
    assert final.median() < 0.1 < start.median()
    assert (final < 0.25).float().mean() > 0.9


@pytest.mark.parametrize("objective", [Plain(), DLC(samples=3), DLC(aggregate="max"),
                                       DLC(perturbation="adversarial", adversarial_steps=2),
                                       TargetNoise(), Margin()])
def test_every_objective_trains_the_features(objective: torch.nn.Module) -> None:
    torch.manual_seed(0)
    task = Alignment1D(length=64, max_shift=6.0, n_train=32, n_test=8, unroll=3)
    pairs = make_pairs(16, 64, 6.0, "nonlinear", 0.05, 3, seed=2)
    batch = {k: torch.from_numpy(v) for k, v in pairs.items()}
    model = ConvFeatures(width=8, depth=2)
    objective.setup(task)

    def loss() -> torch.Tensor:  # the same perturbations/noise at every evaluation
        torch.manual_seed(1)
        return objective(task, model, task.forward(model, batch), batch).loss

    first = loss()
    assert first.ndim == 0 and torch.isfinite(first)
    first.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum() for g in grads) > 0
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(8):
        optimizer.zero_grad()
        loss().backward()
        optimizer.step()
    assert loss().item() < 0.9 * first.item()  # the gradient steps lowered the loss


def test_dlc_objective_uses_the_task_mu_unless_bound() -> None:
    task = Alignment1D(mu=0.07)
    implicit, explicit = DLC(), DLC(mu=0.5)
    implicit.setup(task)
    explicit.setup(task)
    assert float(implicit.star.mu) == pytest.approx(0.07)
    assert float(explicit.star.mu) == pytest.approx(0.5)


def test_energy_loss_is_the_energy_at_the_ground_truth() -> None:
    task = Alignment1D(length=64, max_shift=6.0, loss="energy")
    pairs = make_pairs(8, 64, 6.0, "nonlinear", 0.05, 3, seed=5)
    batch = {k: torch.from_numpy(v) for k, v in pairs.items()}
    outputs = task.forward(ConvFeatures(width=8, depth=2), batch)
    expected = task.h(outputs, batch["shift"][None]).mean()
    torch.testing.assert_close(task.loss(None, outputs, batch, batch["shift"]), expected)
    with pytest.raises(ValueError, match="loss must be 'unrolled' or 'energy'"):
        Alignment1D(loss="mse")
