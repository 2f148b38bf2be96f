"""Models of the `homography` family.

* `DHNRegressor`: DHN-like (DeTone et al. 2016) CNN regressing the 8 corner offsets from the
  stacked (centre crop of the input, template) pair. Output `Regression(offsets [B, 4, 2])`.
* `DeepLKFeatures`: DeepLK/DLKFM-like (Zhao et al., CVPR 2021) two-branch network producing a
  learned single-channel feature pyramid for the input and the template, on which the task runs
  inverse-compositional Lucas-Kanade coarse to fine. Output `Pyramid(inputs, templates)`, level 0
  finest, level l of size (s / 2^l, t / 2^l).
* `RawPyramid`: no network, the images themselves (classical LK on raw intensities; `learned =
  False`, the `rawlk` reference model).
Every level's pair is normalised with SHARED statistics (`normalise_pair`: the template map's
mean and std applied to both maps), so a noise-free pair (input features at H(w*) x equal to the
template's) stays exactly equal after normalisation and w* is a fixed point of LK (E(w*) = 0).
Normalising each map by its own statistics breaks this: the input's statistics cover the whole
input, the template's only its footprint.
No IHN-like model (Cao et al., CVPR 2022) yet.
"""

from __future__ import annotations

from dataclasses import dataclass

import gin
import torch
import torch.nn.functional as F
from torch import nn

from bench.tasks.base import Model


@dataclass
class Regression:
    offsets: torch.Tensor  # [B, 4, 2] px


@dataclass
class Pyramid:
    inputs: list[torch.Tensor]  # level l: [B, 1, s / 2^l, s / 2^l]
    templates: list[torch.Tensor]  # level l: [B, 1, t / 2^l, t / 2^l]


def normalise_pair(inputs: torch.Tensor, template: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Both maps shifted and scaled by the template map's statistics: inputs [B, C, Hi, Wi],
    template [B, C, Ht, Wt] -> (inputs - m) / s, (template - m) / s with m, s [B, C, 1, 1] the
    template's mean and std (the template has zero mean and unit variance afterwards)."""
    mean = template.mean(dim=(-1, -2), keepdim=True)
    std = ((template - mean).pow(2).mean(dim=(-1, -2), keepdim=True) + 1e-6).sqrt()
    return (inputs - mean) / std, (template - mean) / std


def normalised_pyramid(inputs: list[torch.Tensor], templates: list[torch.Tensor]) -> Pyramid:
    """`Pyramid` of the per-level pairs, each normalised by `normalise_pair`."""
    pairs = [normalise_pair(fi, ft) for fi, ft in zip(inputs, templates)]
    return Pyramid([fi for fi, _ in pairs], [ft for _, ft in pairs])


@gin.configurable(module="bench.tasks.homography")
class DHNRegressor(Model):
    """Conv (stride-2) stack on the 2-channel pair -> global pool -> 8 offsets * `output_scale` px.
    Input: input [B, s, s], template [B, t, t]; the input's centre t x t crop is stacked."""

    family = "homography"

    def __init__(self, width: int = 32, depth: int = 4, output_scale: float = 8.0) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(depth):
            layers += [nn.Conv2d(2 if i == 0 else width, width, 3, padding=1), nn.GELU(),
                       nn.Conv2d(width, width, 3, stride=2, padding=1), nn.GELU()]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, 8)
        self.output_scale = output_scale

    def forward(self, image: torch.Tensor, template: torch.Tensor) -> Regression:
        m = (image.shape[-1] - template.shape[-1]) // 2
        crop = image[:, m:m + template.shape[-1], m:m + template.shape[-1]]
        x = torch.stack([crop, template], dim=1) - 0.5
        feats = self.body(x).mean(dim=(-1, -2))
        return Regression(self.head(feats).reshape(-1, 4, 2) * self.output_scale)


@gin.configurable(module="bench.tasks.homography")
class DeepLKFeatures(Model):
    """Per branch: `depth` 3x3 conv + GELU layers at full resolution, then for each of `levels`
    levels an average pool by 2^l and a 3x3 conv head to one channel. `shared`: one branch for both
    images (same modality); two by default (multimodal, as DLKN's two feature networks)."""

    family = "homography"

    def __init__(self, width: int = 16, depth: int = 3, levels: int = 2, shared: bool = False) -> None:
        super().__init__()
        self.levels = levels

        def branch() -> nn.ModuleDict:
            trunk: list[nn.Module] = []
            for i in range(depth):
                trunk += [nn.Conv2d(1 if i == 0 else width, width, 3, padding=1,
                                    padding_mode="replicate"), nn.GELU()]
            heads = nn.ModuleList(nn.Conv2d(width, 1, 3, padding=1, padding_mode="replicate")
                                  for _ in range(levels))
            return nn.ModuleDict({"trunk": nn.Sequential(*trunk), "heads": heads})

        self.input_branch = branch()
        self.template_branch = self.input_branch if shared else branch()

    def _pyramid(self, branch: nn.ModuleDict, image: torch.Tensor) -> list[torch.Tensor]:
        x = branch["trunk"](image[:, None])
        return [head(F.avg_pool2d(x, 2 ** lvl) if lvl else x)
                for lvl, head in enumerate(branch["heads"])]

    def forward(self, image: torch.Tensor, template: torch.Tensor) -> Pyramid:
        return normalised_pyramid(self._pyramid(self.input_branch, image),
                                  self._pyramid(self.template_branch, template))


@gin.configurable(module="bench.tasks.homography")
class RawPyramid(Model):
    """No learning: the images and their 2^l average pools, normalised per level by
    `normalise_pair` (classical inverse-compositional LK on raw intensities, the `rawlk`
    reference model). One dummy parameter so optimizers accept it; train it with 0 epochs."""

    family = "homography"
    learned = False

    def __init__(self, levels: int = 2) -> None:
        super().__init__()
        self.levels = levels
        self.unused = nn.Parameter(torch.zeros(()))

    def forward(self, image: torch.Tensor, template: torch.Tensor) -> Pyramid:
        def pyr(x: torch.Tensor) -> list[torch.Tensor]:
            return [F.avg_pool2d(x[:, None], 2 ** lvl) if lvl else x[:, None]
                    for lvl in range(self.levels)]

        out = normalised_pyramid(pyr(image), pyr(template))
        return Pyramid([p + 0 * self.unused for p in out.inputs], out.templates)
