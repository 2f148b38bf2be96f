"""Where a cell runs and how it is seeded: the device choice, moving a batch there, the RNG seeds,
and the error a non-finite value raises."""

from __future__ import annotations

import random

import numpy as np
import torch

Columns = dict[str, torch.Tensor]


class Diverged(RuntimeError):
    """The training loss (or an evaluation value) became NaN or infinite."""


def seed_everything(seed: int) -> None:
    """Seed python's, numpy's global and torch's RNGs with `seed`."""
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - seeds legacy global-RNG users too
    torch.manual_seed(seed)


def pick_device(name: str) -> torch.device:
    """'auto' -> CUDA when present, else CPU; 'cuda' without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("--device cuda asked for, but torch sees no CUDA device")
    return torch.device(name)


def to_device(batch: Columns, device: torch.device) -> Columns:
    """Every tensor of `batch` moved to `device`."""
    return {k: v.to(device) for k, v in batch.items()}
