"""Task family `homography`: 4-corner homography estimation between (possibly multimodal) images.

w* = the 4-corner offsets [B, 4, 2] in px (`dlc.Homography` space; `distance` is the space's flat
L2 norm over the 8 numbers). MACE (PRISE/IHN's mean corner error) and the success rates at PRISE's
thresholds are recorded as extras (`mace`, `success@<thr>`, per iteration, [T+1, B]), with
`trivial_mace`, the MACE of the identity prediction w = 0 (the floor reference every model must
beat; a constant baseline in the reports).

* With a `Pyramid` model (DeepLK-like, Zhao et al. CVPR 2021): the energy is the feature warp error
      h(w) = mean_l mean_{x in template_l} (F_T^l(x) - F_I^l(H_l(w) x))^2,
  H_l(w) the homography at level l. The solver is inverse-compositional Lucas-Kanade on the
  8 entries of H (in normalised template coordinates), coarse to fine, `iterations` steps per level
  at most, each sample stopping early once its corners move less than `tol` px. Base loss:
  'unrolled' (smooth L1 between the offsets after `unroll` LK steps per level from w = 0 and w*)
  or 'energy' (h(w*) alone: PRISE's L = h(w*) form, on which DLC adds its hinges).
* With a `Regression` model (DHN-like, DeTone et al. 2016): h(w) = mean_k |w_hat_k - w_k|^2, the
  regression loss itself (so DLC's hinges hold trivially: h is exactly 2-strongly convex in w); the
  "iterates" are [0, w_hat].
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import gin
import torch
import torch.nn.functional as F
from kornia.geometry.linalg import transform_points
from torch import nn

from bench.tasks.base import Batch, FixedPoint, Task
from bench.tasks.facts import Facts, ModelFacts
from bench.tasks.forms import Base, Forms, HForm
from bench.tasks.homography import sources
from bench.tasks.homography.data import DLKNFolder, DLKNProtocol, ImageFolderPairs
from bench.tasks.homography.geometry import (
    homography_to_offsets,
    mace,
    offsets_to_homography,
    pixel_grid,
    sample_at,
)
from bench.tasks.homography.models import Pyramid, Regression
from dlc import Homography, Space

THRESHOLDS = (0.1, 0.5, 1.0, 3.0, 5.0, 10.0, 20.0)  # PRISE's success-rate thresholds (px)
MAX_SAMPLES = 4_000_000  # points per chunk of the energy (bounds memory of landscape scans)


def _level_scale(level: int, like: torch.Tensor) -> torch.Tensor:
    """S_l [3, 3]: level-l px -> full-resolution px (2^l average pooling)."""
    f = 2.0 ** level
    return like.new_tensor([[f, 0, (f - 1) / 2], [0, f, (f - 1) / 2], [0, 0, 1]])


def _unit_to_pixels(size: int, like: torch.Tensor) -> torch.Tensor:
    """A [3, 3]: normalised coordinates u in [-1, 1] -> px 0 .. size-1."""
    c = (size - 1) / 2
    return like.new_tensor([[c, 0, c], [0, c, c], [0, 0, 1]])


#: what reports, verdicts and sweeps know about the family (`bench.tasks.facts`)
FACTS = Facts(
    family="homography",
    units={"distance": "px", "mace": "px", "trivial_mace": "px", "success@": "%",
           "threshold": "px", "slice": "× 8 px", "base_loss": "LK energy, dimensionless"},
    iteration="Lucas-Kanade iteration (coarse to fine)",
    figure_metrics=("distance", "mace", "optimality_gap"),
    selection=("mace", "min"),
    reference_models=("rawlk",),
    models={"dhn": ModelFacts(
        non_iterative="direct 4-point regression (Deep Homography Network)",
        labels={"iteration": "step (0: initial corners, then DHN's one-shot regression; no LK "
                             "solver)",
                "base_loss": "squared corner error, px²"})},
)


@gin.configurable(module="bench.tasks.homography")
class HomographyTask(Forms, Task):
    """Homography estimation (see the module docstring).

    Args:
        data: a pair source (`SyntheticPairs`, `ImageFolderPairs`, `DLKNFolder`).
        protocol: `DLKNProtocol` or `DHNProtocol` (sizes and rho; scales bind them).
        n_train, n_test: dataset sizes (a DLKN folder uses its first n; n <= 0: all).
        iterations: LK steps per pyramid level at test time (cap); T = levels * iterations.
        tol: early stop of a test-time sample when its corners move less than `tol` px (MACE).
        loss: 'unrolled' or 'energy' (Pyramid models; Regression models always regress).
        unroll: LK steps per level unrolled in the 'unrolled' loss.
        space: DLC target space (`dlc.Homography`), bound in the gin file.
        thresholds: success-rate thresholds (px) recorded as extras `success@<thr>`.
        metrics, mu, data_seed: see `bench.tasks.base.Task`.
        h: DLC's h with a `Pyramid` model: 'energy' (the feature warp error LK descends, PRISE's
            choice) or 'output' (the 'unrolled' loss, smooth L1 between the offsets after
            `unroll` LK steps per level and a perturbed label w). A `Regression` model has no
            solver: its h is its regression loss under both names. See `bench.tasks.forms`.
        base: DLC's base term, 'method' (`loss`) or 'h' (h(w*)).
    """

    family = "homography"
    facts = FACTS
    #: raw intensities of the same modality without noise: the LK energy is 0 at w* (generated
    #: pairs at the task's protocol: a folder's pairs carry no exact warp)
    fixed_point = FixedPoint(
        bindings=("bench.tasks.homography.HomographyTask.data = "
                  "@bench.tasks.homography.SyntheticPairs()",
                  "bench.tasks.homography.SyntheticPairs.modality = 'same'",
                  "bench.tasks.homography.SyntheticPairs.noise = 0.0",
                  "bench.tasks.homography.HomographyTask.n_test = 8",
                  "bench.run.Experiment.model = @bench.tasks.homography.RawPyramid()"),
        tolerance=0.1,
        why="inverse-compositional LK on raw, noise-free pairs: bilinear resampling of the warped "
            "input and the pyramid's average pools leave the energy's minimum within a fraction "
            "of a pixel of w* (0.023 px at most on 8 smoke test pairs); offsets span +-rho px")

    def __init__(self, data: Any = gin.REQUIRED, protocol: Any = None, n_train: int = 1024,
                 n_test: int = 256, iterations: int = 10, tol: float = 1e-3,
                 loss: Literal["unrolled", "energy"] = "energy", unroll: int = 3,
                 space: Space | None = None, thresholds: Sequence[float] = THRESHOLDS,
                 metrics: Sequence[Any] = (), mu: float = 0.002, data_seed: int = 0,
                 h: HForm = "energy", base: Base = "method") -> None:
        super().__init__(metrics=metrics, mu=mu, data_seed=data_seed)
        self.set_forms(h, base)
        if loss not in ("unrolled", "energy"):
            raise ValueError(f"loss must be 'unrolled' or 'energy', got {loss!r}")
        self.data = data
        self.protocol = protocol if protocol is not None else DLKNProtocol()
        self.sizes = {"train": n_train, "test": n_test}
        self.iterations, self.tol, self.loss_type, self.unroll = iterations, tol, loss, unroll
        self.thresholds = tuple(thresholds)
        self._space = space if space is not None else Homography(scale=self.protocol.rho)
        self.s, self.t = self.protocol.input_size, self.protocol.template_size
        self.max_offset = 2.0 * self.protocol.rho + (self.s - self.t) / 2

    @property
    def space(self) -> Space:
        return self._space

    def missing_data(self) -> str:
        return self.data.missing()

    def stand_in(self, folder: Path) -> list[str]:
        s, t = self.protocol.input_size, self.protocol.template_size
        if isinstance(self.data, DLKNFolder):
            for split in self.data.splits.values():
                sources.write_stand_in_dlkn(folder, split, 12, s, t)
            return [f"bench.tasks.homography.DLKNFolder.root = '{folder}'"]
        if isinstance(self.data, ImageFolderPairs):
            size = 2 * s  # room for the protocol's crops
            sources.write_stand_in_images(folder / "train", 12, size)
            sources.write_stand_in_images(folder / "test", 6, size, seed=1)
            return [f"bench.tasks.homography.ImageFolderPairs.root = '{folder / 'train'}'",
                    f"bench.tasks.homography.ImageFolderPairs.test_root = '{folder / 'test'}'"]
        return []

    def _source(self, split: str):
        """The source's 'train' or 'test' split (before the validation split is carved)."""
        return self.data.load(split, self.sizes[split], self.protocol, self.data_seed)

    def forward(self, model: nn.Module, batch: Batch) -> Pyramid | Regression:
        return model(batch["input"], batch["template"])

    def target(self, batch: Batch) -> torch.Tensor:
        return batch["offsets"]

    # --- energy ----------------------------------------------------------------------------------
    def _level_energy(self, inputs: torch.Tensor, templates: torch.Tensor, level: int,
                      w: torch.Tensor) -> torch.Tensor:
        """Mean squared feature warp error at one level; w [K, B, 4, 2] -> [K, B]."""
        k, b = w.shape[:2]
        th, tw = templates.shape[-2:]
        scale = _level_scale(level, w)
        hom = torch.linalg.inv(scale) @ offsets_to_homography(w, self.s, self.t) @ scale
        grid = pixel_grid(th, tw, w)  # [N, 2] level-l template px
        points = transform_points(hom.reshape(k * b, 3, 3), grid.expand(k * b, -1, -1))
        src = inputs[None].expand(k, *inputs.shape).reshape(k * b, *inputs.shape[1:])
        warped = sample_at(src, points).reshape(k, b, -1)
        return (warped - templates.reshape(1, b, -1)).pow(2).mean(-1)

    def h(self, outputs: Pyramid | Regression, w: torch.Tensor) -> torch.Tensor:
        if isinstance(outputs, Regression):
            return (outputs.offsets[None] - w).pow(2).sum(-1).mean(-1)
        if self.h_form == "output":  # the unrolled estimate [B, 4, 2] against w [K, B, 4, 2]
            final = self._lucas_kanade(outputs, self.unroll, tol=None)[-1]
            return F.smooth_l1_loss(final[None].expand_as(w), w, reduction="none").mean((-1, -2))
        return self.energy(outputs, w)

    def energy(self, outputs: Pyramid, w: torch.Tensor) -> torch.Tensor:
        """The feature warp error averaged over levels, w [K, B, 4, 2] -> [K, B]."""
        per_point = outputs.templates[0][0].numel()
        chunk = max(1, MAX_SAMPLES // max(per_point * w.shape[1], 1))
        parts = []
        for part in w.split(chunk):
            levels = [self._level_energy(fi, ft, lvl, part) for lvl, (fi, ft) in
                      enumerate(zip(outputs.inputs, outputs.templates))]
            parts.append(torch.stack(levels).mean(0))
        return torch.cat(parts)

    # --- inverse-compositional Lucas-Kanade ------------------------------------------------------
    def _lk_level(self, fi: torch.Tensor, ft: torch.Tensor, level: int, w: torch.Tensor,
                  steps: int, tol: float | None) -> list[torch.Tensor]:
        """`steps` IC-LK steps at one level from w [B, 4, 2]; returns the iterates after each."""
        b, _, th, tw = ft.shape
        a = _unit_to_pixels(tw, w)  # template is square: one A for x and y
        grid = pixel_grid(th, tw, w)  # [N, 2] level px
        u = (grid - (tw - 1) / 2) / ((tw - 1) / 2)  # normalised coordinates
        gy, gx = torch.gradient(ft[:, 0], dim=(-2, -1))  # d F_T / d px  [B, th, tw]
        gx, gy = (g.reshape(b, -1) * (tw - 1) / 2 for g in (gx, gy))  # d F_T / d u
        ux, uy = u[:, 0], u[:, 1]
        zero, one = torch.zeros_like(ux), torch.ones_like(ux)
        jx = torch.stack([ux, uy, one, zero, zero, zero, -ux * ux, -ux * uy], -1)  # [N, 8]
        jy = torch.stack([zero, zero, zero, ux, uy, one, -ux * uy, -uy * uy], -1)
        sd = gx[..., None] * jx + gy[..., None] * jy  # steepest descent images [B, N, 8]
        scale = _level_scale(level, w)
        to_full, from_full = scale @ a, torch.linalg.inv(scale @ a)
        template = ft.reshape(b, -1)
        h_in, w_in = fi.shape[-2:]
        done = torch.zeros(b, dtype=torch.bool, device=w.device)
        out = []
        for _ in range(steps):
            hom = offsets_to_homography(w, self.s, self.t)
            level_hom = torch.linalg.inv(scale) @ hom @ scale
            points = transform_points(level_hom, grid.expand(b, -1, -1))
            inside = ((points[..., 0] >= 0) & (points[..., 0] <= w_in - 1) &
                      (points[..., 1] >= 0) & (points[..., 1] <= h_in - 1)).to(w.dtype)
            residual = (sample_at(fi, points)[:, 0] - template) * inside  # [B, N]
            msd = sd * inside[..., None]
            hess = msd.transpose(1, 2) @ msd
            damping = 1e-4 * hess.diagonal(dim1=-2, dim2=-1).mean(-1) + 1e-6
            hess = hess + damping[:, None, None] * torch.eye(8, dtype=w.dtype, device=w.device)
            dp = torch.linalg.solve(hess, (msd * residual[..., None]).sum(1))  # [B, 8]
            g = torch.cat([dp, torch.zeros_like(dp[:, :1])], -1).reshape(b, 3, 3) + torch.eye(
                3, dtype=w.dtype, device=w.device)
            new_hom = hom @ to_full @ torch.linalg.inv(g) @ from_full
            new = homography_to_offsets(new_hom, self.s, self.t)
            ok = torch.isfinite(new).all(dim=(-1, -2))
            new = torch.where(ok[:, None, None], new, w).clamp(-self.max_offset, self.max_offset)
            if tol is not None:
                new = torch.where(done[:, None, None], w, new)
                done = done | (mace(new, w) < tol)
            w = new
            out.append(w)
            if tol is not None and bool(done.all()):
                out += [w] * (steps - len(out))
                break
        return out

    def _lucas_kanade(self, outputs: Pyramid, steps: int, tol: float | None,
                      start: torch.Tensor | None = None) -> torch.Tensor:
        """Coarse-to-fine IC-LK from `start` (default w = 0); returns [levels * steps + 1, B, 4, 2]."""
        ref = outputs.templates[0]
        w = start if start is not None else ref.new_zeros(ref.shape[0], 4, 2)
        trace = [w]
        for level in reversed(range(len(outputs.inputs))):
            trace += self._lk_level(outputs.inputs[level], outputs.templates[level], level,
                                    trace[-1], steps, tol)
        return torch.stack(trace)

    # --- the base loss, solver and extras --------------------------------------------------------
    def loss(self, model: nn.Module, outputs: Pyramid | Regression, batch: Batch,
             target: torch.Tensor) -> torch.Tensor:
        if isinstance(outputs, Regression):
            return self.h(outputs, target[None]).mean()
        if self.loss_type == "energy":
            return self.energy(outputs, target[None]).mean()
        final = self._lucas_kanade(outputs, self.unroll, tol=None)[-1]
        return F.smooth_l1_loss(final, target)

    def solve(self, model: nn.Module, outputs: Pyramid | Regression, batch: Batch,
              start: torch.Tensor | None = None) -> torch.Tensor:
        if isinstance(outputs, Regression):  # one-shot: the start is only the first iterate
            first = start if start is not None else torch.zeros_like(outputs.offsets)
            return torch.stack([first, outputs.offsets])
        return self._lucas_kanade(outputs, self.iterations, self.tol, start)

    def extras(self, model: nn.Module, outputs: Any, batch: Batch,
               iterates: torch.Tensor) -> dict[str, torch.Tensor]:
        target = self.target(batch)
        err = mace(iterates, target[None])  # [T+1, B]
        identity = mace(torch.zeros_like(target), target)  # [B] the prediction w = 0
        out = {"mace": err, "trivial_mace": identity[None].expand_as(err)}
        for thr in self.thresholds:
            out[f"success@{thr:g}"] = 100.0 * (err < thr).to(err.dtype)
        return out
