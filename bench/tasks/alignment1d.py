"""Task family `alignment1d`: learn features in which a 1-D shift is found by Gauss-Newton.

The fast demo of the suite (trains in seconds). A pair is a reference signal x(t) and a moving
signal m(t) = g(x(t - s)) + noise, where x is a random sum of sines, s in [-R, R] the unknown shift
(the ground truth w*), and g a per-pair "modality" change (identity, or a non-monotonic
g(x) = cos(a x + b) that makes raw-intensity matching fail). Two 1-D conv branches map x and m to
C-channel features Fx, Fm (normalised per channel); the alignment energy is

    h(w) = E(w) = mean_{c, t in window} (Fx[c, t] - Fm[c, t + w])^2,

with Fm resampled at t + w by `torch.nn.functional.grid_sample` (linear). At test time w is found by
Gauss-Newton iterations from w = 0 (Lucas-Kanade in 1-D: the Jacobian is the warped spatial
gradient of Fm). The base method's own loss is a DeepLK-style regression through `unroll` unrolled
Gauss-Newton steps: |w_U - w*| (smooth L1), `loss='unrolled'`; or, `loss='energy'`, the energy at
the ground truth E(w*) alone, the paper's L = h(w*) form, which says nothing about the basin. DLC
adds hinges on E around w* so that E is star-convex, the property Gauss-Newton from far away needs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import gin
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bench.tasks.base import Batch, FixedPoint, Model, Task
from bench.tasks.dataset_cache import cached_dataset
from bench.tasks.facts import Facts, TaskFacts
from bench.tasks.forms import Base, Forms, HForm
from dlc import Euclidean, Space

Outputs = tuple[torch.Tensor, torch.Tensor]  # Fx, Fm: [B, C, N] each

RECIPE_VERSION = 1  # bump when the generator changes: it is part of the cache key


def make_pairs(
    n: int, length: int, max_shift: float, modality: str, noise: float, sines: int, seed: int
) -> dict[str, np.ndarray]:
    """Generate `n` pairs. Returns `ref` [n, length], `mov` [n, length], `shift` [n, 1] (float32)."""
    rng = np.random.default_rng(seed)
    t = np.arange(length, dtype=np.float64)[None, None, :]  # [1, 1, N]
    freq = rng.uniform(1.0, 6.0, size=(n, sines, 1)) / length  # cycles per sample
    phase = rng.uniform(0, 2 * math.pi, size=(n, sines, 1))
    amp = rng.uniform(0.3, 1.0, size=(n, sines, 1))
    shift = rng.uniform(-max_shift, max_shift, size=(n, 1, 1))

    def signal(times: np.ndarray) -> np.ndarray:
        x = (amp * np.sin(2 * math.pi * freq * times + phase)).sum(axis=1)
        return x / np.sqrt((amp[:, :, 0] ** 2).sum(axis=1, keepdims=True) / 2)  # unit power

    ref = signal(t)
    moved = signal(t - shift)
    if modality == "nonlinear":
        gain = rng.uniform(2.0, 3.0, size=(n, 1))
        offset = rng.uniform(-0.3, 0.3, size=(n, 1))
        moved = np.cos(gain * moved + offset)
    elif modality != "same":
        raise ValueError(f"modality must be 'same' or 'nonlinear', got {modality!r}")
    moved = moved + noise * rng.standard_normal(moved.shape)
    return {
        "ref": ref.astype(np.float32),
        "mov": moved.astype(np.float32),
        "shift": shift[:, 0, :].astype(np.float32),
    }


def warp(features: torch.Tensor, w: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """Sample `features` [B, C, N] at positions t + w for t in [start, stop).

    w: [K, B, 1] shifts in samples. Returns [K, B, C, stop - start] (linear interpolation, border
    clamping). Differentiable w.r.t. `features` and `w`.
    """
    if w.device.type == "cpu" and not torch.isfinite(w).all():
        # grid_sample on the CPU reads out of bounds at NaN coordinates (a segfault, not an error)
        raise FloatingPointError("warp: non-finite shift w")
    k, b = w.shape[:2]
    _, c, n = features.shape
    pos = torch.arange(start, stop, device=w.device, dtype=w.dtype) + w  # [K, B, L]
    x = 2 * pos / (n - 1) - 1  # grid_sample's [-1, 1] coordinates (align_corners=True)
    grid = torch.stack([x, torch.zeros_like(x)], dim=-1).reshape(k * b, 1, -1, 2)
    src = features[None].expand(k, b, c, n).reshape(k * b, c, 1, n)
    out = F.grid_sample(src, grid.to(src.dtype), mode="bilinear", padding_mode="border",
                        align_corners=True)
    return out.reshape(k, b, c, stop - start)


@gin.configurable(module="bench.tasks.alignment1d")
class ConvFeatures(Model):
    """Two 1-D conv branches (reference, moving) -> C-channel features, each channel normalised to
    zero mean and unit variance over time. Input [B, N] each; output two [B, C, N]."""

    family = "alignment1d"

    def __init__(self, width: int = 16, depth: int = 3, kernel: int = 7, channels: int = 4,
                 shared: bool = False) -> None:
        super().__init__()

        def branch() -> nn.Sequential:
            layers: list[nn.Module] = []
            for i in range(depth):
                layers += [nn.Conv1d(1 if i == 0 else width, width, kernel, padding="same",
                                     padding_mode="replicate"), nn.GELU()]
            layers.append(nn.Conv1d(width, channels, 1))
            return nn.Sequential(*layers)

        self.ref_branch = branch()
        self.mov_branch = self.ref_branch if shared else branch()

    @staticmethod
    def _normalise(f: torch.Tensor) -> torch.Tensor:
        f = f - f.mean(dim=-1, keepdim=True)
        return f / (f.pow(2).mean(dim=-1, keepdim=True) + 1e-6).sqrt()

    def forward(self, ref: torch.Tensor, mov: torch.Tensor) -> Outputs:
        return (self._normalise(self.ref_branch(ref[:, None])),
                self._normalise(self.mov_branch(mov[:, None])))


@gin.configurable(module="bench.tasks.alignment1d")
class RawSignal(Model):
    """No learning: the signals themselves as one-channel features (the classical baseline).
    Has one dummy parameter so optimizers accept it; train it with 0 epochs."""

    family = "alignment1d"

    def __init__(self) -> None:
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(()))

    def forward(self, ref: torch.Tensor, mov: torch.Tensor) -> Outputs:
        norm = ConvFeatures._normalise
        return norm(ref[:, None]) + 0 * self.unused, norm(mov[:, None])


#: what reports, verdicts and sweeps know about the family (`bench.tasks.facts`)
FACTS = Facts(
    family="alignment1d",
    units={"distance": "samples", "success@": "%", "threshold": "samples",
           "slice": "× 16 samples", "base_loss": "smooth-L1, samples"},
    iteration="Gauss-Newton iteration",
    figure_metrics=("distance", "optimality_gap"),
    selection=("distance", "min"),
    tasks={"alignment1d_nonlinear_energy": TaskFacts(units={"base_loss": "energy, dimensionless"})},
)


@gin.configurable(module="bench.tasks.alignment1d")
class Alignment1D(Forms, Task):
    """1-D shift estimation across modalities (see the module docstring).

    Args:
        length: samples per signal N.
        max_shift: shifts are drawn from U(-max_shift, max_shift) (samples).
        modality: 'same' or 'nonlinear'.
        noise: std of additive Gaussian noise on the moving signal.
        sines: number of sines per signal.
        n_train, n_test: dataset sizes.
        iterations: Gauss-Newton iterations at test time (T).
        loss: the base method's own loss: 'unrolled' (regression through `unroll` Gauss-Newton
            steps) or 'energy' (E(w*) alone).
        unroll: Gauss-Newton steps unrolled in the 'unrolled' loss (U).
        max_step: each Gauss-Newton step is clipped to +-max_step samples.
        space: DLC target space (perturbations of the shift), bound in the gin file.
        metrics, mu, data_seed: see `bench.tasks.base.Task`.
        h: DLC's h, 'energy' (E(w), what Gauss-Newton descends) or 'output' (the unrolled
            regression loss |w_U - w| at a perturbed label w), see `bench.tasks.forms`.
        base: DLC's base term, 'method' (`loss`) or 'h' (h(w*)).
    """

    family = "alignment1d"
    facts = FACTS
    #: raw signals of the same modality without noise: E(w*) ~ 0 up to linear interpolation and
    #: the per-signal normalisation (the shifted signal's window differs at the borders)
    fixed_point = FixedPoint(
        bindings=("bench.tasks.alignment1d.Alignment1D.modality = 'same'",
                  "bench.tasks.alignment1d.Alignment1D.noise = 0.0",
                  "bench.run.Experiment.model = @bench.tasks.alignment1d.RawSignal()"),
        tolerance=0.1,
        why="Gauss-Newton on raw, noise-free signals: linear interpolation of a sum of slow sines "
            "and the per-window normalisation leave E(w*) near, not at, its minimum (0.022 "
            "samples at most on 8 smoke test pairs); a step of the wrong sign moves 7.8 samples")

    def __init__(
        self,
        length: int = 128,
        max_shift: float = 16.0,
        modality: Literal["same", "nonlinear"] = "nonlinear",
        noise: float = 0.05,
        sines: int = 3,
        n_train: int = 2048,
        n_test: int = 512,
        iterations: int = 20,
        loss: Literal["unrolled", "energy"] = "unrolled",
        unroll: int = 5,
        max_step: float = 2.0,
        space: Space | None = None,
        metrics: Sequence[Any] = (),
        mu: float = 0.003,
        data_seed: int = 0,
        h: HForm = "energy",
        base: Base = "method",
    ) -> None:
        super().__init__(metrics=metrics, mu=mu, data_seed=data_seed)
        self.set_forms(h, base)
        self.length, self.max_shift, self.modality = length, max_shift, modality
        self.noise, self.sines = noise, sines
        self.sizes = {"train": n_train, "test": n_test}
        if loss not in ("unrolled", "energy"):
            raise ValueError(f"loss must be 'unrolled' or 'energy', got {loss!r}")
        self.iterations, self.unroll, self.max_step = iterations, unroll, max_step
        self.loss_type = loss
        self._space = space if space is not None else Euclidean(scale=max_shift)
        margin = math.ceil(max_shift) + 1
        self.window = (margin, length - margin)  # t range where t + w stays inside the signal
        if self.window[1] - self.window[0] < 8:
            raise ValueError(f"length {length} too short for max_shift {max_shift}")

    @property
    def space(self) -> Space:
        return self._space

    def _source(self, split: str):
        """The generated 'train' or 'test' split (before the validation split is carved)."""
        params = dict(recipe=RECIPE_VERSION, split=split, n=self.sizes[split], length=self.length,
                      max_shift=self.max_shift, modality=self.modality, noise=self.noise,
                      sines=self.sines, seed=self.data_seed)
        seed = self.data_seed * 2 + (split == "test")
        return cached_dataset("alignment1d", params, lambda: make_pairs(
            self.sizes[split], self.length, self.max_shift, self.modality, self.noise,
            self.sines, seed))

    def forward(self, model: nn.Module, batch: Batch) -> Outputs:
        return model(batch["ref"], batch["mov"])

    def target(self, batch: Batch) -> torch.Tensor:
        return batch["shift"]

    def h(self, outputs: Outputs, w: torch.Tensor) -> torch.Tensor:
        if self.h_form == "output":  # smooth L1 of the unrolled estimate w_U [B, 1] against w
            final = self._iterate(outputs, self.unroll)[-1]
            return F.smooth_l1_loss(final[None].expand_as(w), w, reduction="none").sum(-1)
        return self.energy(outputs, w)

    def energy(self, outputs: Outputs, w: torch.Tensor) -> torch.Tensor:
        """The alignment energy E(w), w [K, B, 1] -> [K, B]."""
        fx, fm = outputs
        start, stop = self.window
        return (fx[None, :, :, start:stop] - warp(fm, w, start, stop)).pow(2).mean(dim=(-1, -2))

    def _gauss_newton_step(self, outputs: Outputs, w: torch.Tensor) -> torch.Tensor:
        """One Gauss-Newton step on E from w [B, 1]; returns the new w [B, 1]."""
        fx, fm = outputs
        start, stop = self.window
        moved = warp(fm, w[None], start, stop)[0]  # [B, C, L]
        slope = warp(torch.gradient(fm, dim=-1)[0], w[None], start, stop)[0]  # d moved / d w
        residual = moved - fx[..., start:stop]
        step = -(slope * residual).sum(dim=(-1, -2)) / (slope.pow(2).sum(dim=(-1, -2)) + 1e-3)
        step = step.clamp(-self.max_step, self.max_step)
        return (w + step[:, None]).clamp(-self.window[0] + 1, self.window[0] - 1)

    def _iterate(self, outputs: Outputs, steps: int,
                 start: torch.Tensor | None = None) -> torch.Tensor:
        w = start if start is not None else torch.zeros(
            outputs[0].shape[0], 1, device=outputs[0].device, dtype=outputs[0].dtype)
        trace = [w]
        for _ in range(steps):
            w = self._gauss_newton_step(outputs, w)
            trace.append(w)
        return torch.stack(trace)  # [steps + 1, B, 1]

    def loss(self, model: nn.Module, outputs: Outputs, batch: Batch,
             target: torch.Tensor) -> torch.Tensor:
        if self.loss_type == "energy":
            return self.energy(outputs, target[None]).mean()
        final = self._iterate(outputs, self.unroll)[-1]
        return F.smooth_l1_loss(final, target)

    def solve(self, model: nn.Module, outputs: Outputs, batch: Batch,
              start: torch.Tensor | None = None) -> torch.Tensor:
        return self._iterate(outputs, self.iterations, start)
