"""Task family `registration`: rigid 3-D point-cloud registration, DCP / PRNet style, + ICP.

w* is the rigid transform [B, 4, 4] mapping the source cloud onto the target (`dlc.RigidTransform`
space: perturbations along SO(3) x R^3 geodesics, not on matrix entries). A network pass embeds
both clouds (`models.DCPNet`), forms soft correspondences y_hat_i = sum_j softmax_j(<fx_i, fy_j> /
(tau sqrt(D))) y_j and fits the transform in closed form by weighted Procrustes (DCP's SVD head,
Wang & Solomon 2019). PRNet-like refinement (Wang & Solomon 2019) applies the network `iterations`
times, each time on the source moved by the current (detached) estimate. A `FeatureICP` model then
descends its own learned energy (learned-feature ICP, `feature_icp.py`) for `steps` iterations.
Test time then runs `icp_iterations` of point-to-point ICP from the network's estimate.

DLC's h (the authors' choice: the registration loss as a function of the target transform) is the
energy the SVD head minimises in closed form, at the last pass's correspondences:

    h(w) = mean_i |R_w x_i + t_w - y_hat_i|^2,

so the last network estimate is exactly argmin_w h (`DCPNet` declares the optimality gap and the
spurious-minimum rate uninformative). For a `FeatureICP` model h is instead recomputed at w: the
learned-feature correspondence energy mean_i min_j c_ij(w) of `feature_icp.py`, which its
test-time solver descends. The base ('plain') loss is DCP's
|R_hat^T R* - I|^2 + |t_hat - t*|^2 (entry means), summed over passes with PRNet's discount.
For the ICP-only model (no network), h is ICP's energy mean_i min_j |w(x_i) - y_j|^2.

Iterates from `solve` are [1 + K + L + I, B, 4, 4]: step 0 the identity, steps 1..K the network
passes, steps K+1..K+L learned-feature ICP (L = 0 but for `FeatureICP`), then the I ICP iterations;
"without ICP" is step K + L, "with ICP" the last step (phase `test`).
Per-iteration metrics (`extras`, each [T+1, B]): RPM-Net's isotropic errors (Yew & Lee 2020)
`rot_iso_deg`, `trans_iso`; DCP's Euler ('zyx', degrees) `euler_mae_deg`, `euler_sq_deg2` and
translation `trans_mae`, `trans_sq` (RMSE via `RootMean`); RPM-Net's modified `chamfer`;
`success_1deg` / `success_5deg` (100 when err_R < 1 deg and err_t < 0.01 / 5 deg and 0.05);
`rot_network_deg` / `trans_network`: the isotropic errors of the network's own estimate (step K + L,
before ICP), the same at every step, so their final value is the network's error before ICP.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal

import gin
import numpy as np
import torch
from torch import nn

from bench.metrics import Metric, Trace
from bench.tasks.base import Batch, FixedPoint, Task
from bench.tasks.dataset_cache import cached_dataset
from bench.tasks.facts import Facts, ModelFacts
from bench.tasks.forms import Base, Forms, HForm
from bench.tasks.registration import geometry as geo
from bench.tasks.registration.feature_icp import LearnedSolver
from bench.tasks.registration.modelnet import (
    load_modelnet40,
    missing_modelnet40,
    write_stand_in,
)
from bench.tasks.registration.pairs import PROTOCOLS, make_pairs
from bench.tasks.registration.shapes import FAMILIES, make_shapes
from dlc import RigidTransform, Space

RECIPE_VERSION = 1  # bump when the shape generator or pair sampler changes (part of the cache key)


@dataclass
class Outputs:
    """Network outputs for one batch.

    src [B, N, 3], tgt [B, M, 3]: the input clouds; matched [B, N, 3]: soft correspondences of the
    last network pass (None without a network); estimates [K, B, 4, 4]: the transform after each
    pass (K = 0 without a network); energy: the model's own h recomputed at w, [K, B, 4, 4] ->
    [K, B] (`FeatureICP.energy` on these clouds; None for models without one).
    """

    src: torch.Tensor
    tgt: torch.Tensor
    matched: torch.Tensor | None
    estimates: torch.Tensor
    energy: Callable[[torch.Tensor], torch.Tensor] | None = None


@gin.configurable(module="bench.tasks.registration")
class RootMean(Metric):
    """sqrt(mean over examples of `trace.extras[key]`): an RMSE from per-example squared errors
    (e.g. DCP's RMSE(R) from `euler_sq_deg2`). Named `name`."""

    def __init__(self, key: str = "", name: str = "", direction: Literal["min", "max"] = "min"):
        self.key, self.name, self.direction = key, name or f"rms_{key}", direction

    def __call__(self, trace: Trace) -> torch.Tensor:
        if self.key not in trace.extras:
            raise KeyError(f"metric {self.name!r}: the task records only {sorted(trace.extras)}")
        return trace.extras[self.key].mean(dim=1).sqrt()


#: what reports, verdicts and sweeps know about the family (`bench.tasks.facts`); the refinement
#: starts where the network's passes end (dcp 1, prnet 3; feature_icp: its learned-feature ICP)
FACTS = Facts(
    family="registration",
    units={"distance": "rad ⊕ unit-sphere radius", "rot_iso_deg": "degrees",
           "euler_mae_deg": "degrees", "euler_rmse_deg": "degrees",
           "trans_iso": "unit-sphere radius", "rot_network_deg": "degrees",
           "trans_network": "unit-sphere radius", "trans_mae": "unit-sphere radius",
           "trans_rmse": "unit-sphere radius", "chamfer": "unit-sphere radius²", "success_": "%",
           "slice": "× sampling radius", "base_loss": "rotation + translation MSE"},
    iteration="step (0: identity, then network passes, learned-feature ICP, then ICP)",
    figure_metrics=("distance", "rot_iso_deg", "optimality_gap"),
    selection=("rot_iso_deg", "min"),
    reference_models=("icp",),
    models={
        "dcp": ModelFacts(non_iterative="one SVD on soft correspondences (Deep Closest Point)",
                          refinement=(1, "ICP")),
        "prnet": ModelFacts(non_iterative="a fixed number of correspondence passes, not a "
                                          "descent on h", refinement=(3, "ICP")),
        "feature_icp": ModelFacts(refinement=(1, "learned-feature ICP on h, then ICP")),
    },
)


@gin.configurable(module="bench.tasks.registration")
class Registration(Forms, Task):
    """Rigid point-cloud registration (see the module docstring).

    Args:
        source: 'synthetic' (the offline ModelNet-like set of `shapes.py`) or 'modelnet40' (the
            HDF5 files in `root`; Wu et al. 2015).
        root: folder of the ModelNet40 HDF5 files (source 'modelnet40' only; never downloaded).
        protocol: 'dcp', 'prnet', 'rpmnet' or 'so3' (see `pairs.py`).
        split: 'seen' (all categories in both splits, different shapes) or 'unseen' (train on the
            first half of the categories, test on the second: ModelNet labels < 20 / >= 20).
        num_points: points per cloud N before cropping; raw_points: points per synthetic shape.
        n_train, n_test: pairs per split (None: one per shape, ModelNet40 only).
        max_angle_deg, max_translation, jitter, clip, partial, crop: pair sampler options.
        asymmetry: strength of the synthetic shapes' symmetry-breaking warp.
        iterations: network passes at test time (K); train_iterations: in training.
        icp_iterations: ICP iterations after the network at test time (I; 0 = no ICP).
        icp_max_distance: ICP's correspondence rejection distance.
        temperature: soft-correspondence temperature tau (logits / (tau sqrt(D))).
        discount: PRNet's per-pass loss discount (pass k of K weighs discount^(K-k)).
        space: DLC target space (default `RigidTransform()`), bound in the task gin file.
        metrics, mu, data_seed: see `bench.tasks.base.Task`.
        h: DLC's h, 'energy' (the Procrustes energy at the last pass's soft correspondences, the
            model's own energy recomputed at w for `FeatureICP`, or ICP's energy without a
            network) or 'output' (the base loss below, per example, at a
            perturbed label w: the authors' PRNet demo). See `bench.tasks.forms`.
        base: DLC's base term, 'method' (`loss`, DCP's) or 'h' (h(w*)).
    """

    family = "registration"
    facts = FACTS
    #: noise-free, fully overlapping pairs with exact correspondences (the DCP protocol without
    #: jitter) and ICP alone: w* is an exact fixed point of ICP
    fixed_point = FixedPoint(
        bindings=("bench.tasks.registration.Registration.jitter = 0.0",
                  "bench.tasks.registration.Registration.protocol = 'dcp'",
                  "bench.run.Experiment.model = @bench.tasks.registration.ICPOnly()"),
        tolerance=1e-4,
        why="ICP from w* on noise-free pairs: every nearest neighbour is the point's own image, "
            "so Procrustes returns w* up to float32 round-off (4e-8 at most on 8 smoke test "
            "pairs, in rad + unit-sphere radius)")

    def __init__(
        self,
        source: Literal["synthetic", "modelnet40"] = "synthetic",
        root: str = "",
        protocol: str = "dcp",
        split: Literal["seen", "unseen"] = "seen",
        num_points: int = 256,
        raw_points: int = 512,
        n_train: int | None = 1024,
        n_test: int | None = 256,
        max_angle_deg: float = 45.0,
        max_translation: float = 0.5,
        jitter: float = 0.0,
        clip: float = 0.05,
        partial: int = 192,
        crop: float = 0.7,
        asymmetry: float = 0.2,
        iterations: int = 1,
        train_iterations: int = 1,
        icp_iterations: int = 10,
        icp_max_distance: float = 0.2,
        temperature: float = 1.0,
        discount: float = 0.9,
        space: Space | None = None,
        metrics: Sequence[Any] = (),
        mu: float = 0.2,
        data_seed: int = 0,
        h: HForm = "energy",
        base: Base = "method",
    ) -> None:
        super().__init__(metrics=metrics, mu=mu, data_seed=data_seed)
        self.set_forms(h, base)
        if source not in ("synthetic", "modelnet40"):
            raise ValueError(f"source must be 'synthetic' or 'modelnet40', got {source!r}")
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
        if split not in ("seen", "unseen"):
            raise ValueError(f"split must be 'seen' or 'unseen', got {split!r}")
        if source == "synthetic" and (n_train is None or n_test is None):
            raise ValueError("synthetic data need n_train and n_test")
        self.source, self.root, self.protocol, self.split = source, root, protocol, split
        self.num_points, self.raw_points = num_points, raw_points
        self.sizes = {"train": n_train, "test": n_test}
        self.pair_options = dict(max_angle_deg=max_angle_deg, max_translation=max_translation,
                                 jitter=jitter, clip=clip, partial=partial, crop=crop)
        self.asymmetry = asymmetry
        self.iterations, self.train_iterations = iterations, train_iterations
        self.icp_iterations, self.icp_max_distance = icp_iterations, icp_max_distance
        self.temperature, self.discount = temperature, discount
        self._space = space if space is not None else RigidTransform()

    @property
    def space(self) -> Space:
        return self._space

    # --- data ----------------------------------------------------------------------------------
    def _categories(self, split: str) -> tuple[int, ...]:
        half = len(FAMILIES) // 2
        if self.split == "seen":
            return tuple(range(len(FAMILIES)))
        return tuple(range(half)) if split == "train" else tuple(range(half, len(FAMILIES)))

    def missing_data(self) -> str:
        return missing_modelnet40(self.root) if self.source == "modelnet40" else ""

    def stand_in(self, folder: Path) -> list[str]:
        if self.source != "modelnet40":
            return []
        write_stand_in(folder, self.raw_points)
        return [f"bench.tasks.registration.Registration.root = '{folder}'"]

    def _shapes(self, split: str) -> dict[str, np.ndarray]:
        """Shapes of `split`: `data` [S, P, 3], `label` [S] (numpy)."""
        if self.source == "modelnet40":
            shapes = load_modelnet40(self.root, split)
            if self.split == "unseen":
                keep = shapes["label"] < 20 if split == "train" else shapes["label"] >= 20
                shapes = {k: v[keep] for k, v in shapes.items()}
            return shapes
        families = self._categories(split)
        per_family = math.ceil(self.sizes[split] / len(families))
        params = dict(recipe=RECIPE_VERSION, families=families, per_family=per_family,
                      points=self.raw_points, asymmetry=self.asymmetry,
                      seed=self.data_seed * 2 + (split == "test"))
        data = cached_dataset("registration-shapes", params, lambda: make_shapes(
            per_family, families, self.raw_points, params["seed"], self.asymmetry))
        columns = data.with_format("numpy")[:]
        order = np.random.default_rng(params["seed"]).permutation(len(columns["label"]))
        return {"data": np.asarray(columns["data"])[order],
                "label": np.asarray(columns["label"])[order]}

    def _source(self, split: str):
        """The source's 'train' or 'test' split (before the validation split is carved)."""
        params = dict(recipe=RECIPE_VERSION, source=self.source, root=str(self.root),
                      protocol=self.protocol, split=self.split, part=split,
                      n=self.sizes[split], points=self.num_points, raw=self.raw_points,
                      asymmetry=self.asymmetry, seed=self.data_seed, **self.pair_options)

        def build() -> dict[str, np.ndarray]:
            shapes = self._shapes(split)
            n = self.sizes[split] or len(shapes["label"])
            return make_pairs(shapes["data"], shapes["label"], n, self.protocol, self.num_points,
                              seed=1000 + self.data_seed * 2 + (split == "test"),
                              **self.pair_options)

        return cached_dataset("registration", params, build)

    # --- the learning problem ------------------------------------------------------------------
    def forward(self, model: nn.Module, batch: Batch) -> Outputs:
        src, tgt = batch["src"], batch["tgt"]
        current = geo.identity(src.shape[0], src)
        if not model.learned:
            return Outputs(src, tgt, None, current.new_zeros((0, *current.shape)))
        passes = self.train_iterations if model.training else self.iterations
        estimates, matched = [], None
        for _ in range(passes):
            moved = geo.apply(current.detach(), src)
            fx, fy = model(moved, tgt)  # gradients kept: no torch.no_grad around the network
            logits = fx @ fy.transpose(-1, -2) / (self.temperature * math.sqrt(fx.shape[-1]))
            matched = torch.softmax(logits, dim=-1) @ tgt  # [B, N, 3]
            current = geo.procrustes(moved, matched) @ current.detach()
            estimates.append(current)
        energy = model.energy if isinstance(model, LearnedSolver) else None
        return Outputs(src, tgt, matched, torch.stack(estimates),
                       None if energy is None else partial(energy, src, tgt))

    def target(self, batch: Batch) -> torch.Tensor:
        return batch["transform"]

    def h(self, outputs: Outputs, w: torch.Tensor) -> torch.Tensor:
        if self.h_form == "output" and outputs.estimates.shape[0]:
            return self.per_example_loss(outputs, w)
        if outputs.energy is not None:
            return outputs.energy(w)
        moved = geo.apply(w, outputs.src[None])  # [K, B, N, 3]
        if outputs.matched is not None:
            return (moved - outputs.matched[None]).pow(2).sum(-1).mean(-1)
        k, b, n = moved.shape[:3]
        chunk = max(1, int(2e7 // max(b * n * outputs.tgt.shape[1], 1)))
        return torch.cat([torch.cdist(part, outputs.tgt[None].expand(part.shape[0], -1, -1, -1))
                          .amin(-1).pow(2).mean(-1) for part in moved.split(chunk)])

    def per_example_loss(self, outputs: Outputs, w: torch.Tensor) -> torch.Tensor:
        """DCP's loss per example at labels w [K, B, 4, 4] -> [K, B]: over the K_p passes,
        sum_k discount^(K_p-1-k) (mean_ij (R_k^T R_w - I)_ij^2 + mean_i (t_k - t_w)_i^2).
        `w` need not be rigid (the authors' demo perturbs matrix entries)."""
        passes = outputs.estimates.shape[0]
        eye = torch.eye(3, dtype=w.dtype, device=w.device)
        total = w.new_zeros(w.shape[:2])
        for i, est in enumerate(outputs.estimates):
            rot = (est[None, :, :3, :3].transpose(-1, -2) @ w[..., :3, :3] - eye).pow(2)
            trans = (est[None, :, :3, 3] - w[..., :3, 3]).pow(2)
            total = total + self.discount ** (passes - 1 - i) * (
                rot.mean((-1, -2)) + trans.mean(-1))
        return total

    def loss(self, model: nn.Module, outputs: Outputs, batch: Batch,
             target: torch.Tensor) -> torch.Tensor:
        if outputs.estimates.shape[0] == 0:
            return model.unused * 0.0
        return self.per_example_loss(outputs, target[None]).mean()

    def solve(self, model: nn.Module, outputs: Outputs, batch: Batch,
              start: torch.Tensor | None = None) -> torch.Tensor:
        """From the identity: the network's passes, the learned solver's steps, then ICP. From
        `start` [B, 4, 4]: the learned solver's steps and ICP (the passes take no start)."""
        if start is not None:
            iterates = start[None]
        else:
            first = geo.identity(outputs.src.shape[0], outputs.src)[None]
            iterates = torch.cat([first, outputs.estimates])
        if isinstance(model, LearnedSolver):
            iterates = torch.cat([iterates, model.descend(outputs.src, outputs.tgt, iterates[-1])])
        refined = geo.icp(outputs.src, outputs.tgt, iterates[-1], self.icp_iterations,
                          self.icp_max_distance)
        return torch.cat([iterates, refined])

    def extras(self, model: nn.Module, outputs: Outputs, batch: Batch,
               iterates: torch.Tensor) -> dict[str, torch.Tensor]:
        gt = self.target(batch)
        rot = geo.rotation_error_deg(iterates, gt[None])
        trans = geo.translation_error(iterates, gt[None])
        euler = geo.wrap_deg(geo.euler_zyx_deg(iterates) - geo.euler_zyx_deg(gt)[None])
        dt = iterates[..., :3, 3] - gt[None, :, :3, 3]
        network = max(iterates.shape[0] - 1 - self.icp_iterations, 0)  # last step before ICP
        return {
            "rot_iso_deg": rot, "trans_iso": trans,
            "rot_network_deg": rot[network].expand_as(rot),
            "trans_network": trans[network].expand_as(trans),
            "euler_mae_deg": euler.abs().mean(-1), "euler_sq_deg2": euler.pow(2).mean(-1),
            "trans_mae": dt.abs().mean(-1), "trans_sq": dt.pow(2).mean(-1),
            "chamfer": geo.modified_chamfer(iterates, gt, outputs.src, outputs.tgt, batch["raw"]),
            "success_1deg": 100.0 * ((rot < 1.0) & (trans < 0.01)).to(rot.dtype),
            "success_5deg": 100.0 * ((rot < 5.0) & (trans < 0.05)).to(rot.dtype),
        }
