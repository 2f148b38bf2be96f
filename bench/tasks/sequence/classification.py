"""Sequence classification tasks: one label per sequence, read out after the last step.

`Digits` (scikit-learn's 8x8 digits as a sequence), `MNIST1D` and `MNIST`. w* is the one-hot label
`[B, C]` on the simplex; `h(w) = -sum_c w_c log softmax(z_L)_c` `[K, B]` (or KL(w || p) with
`SequenceTask.divergence = 'kl'`); the loss is the usual cross-entropy. Registered in gin under `bench.tasks.sequence.task` (their historical name), like the
rest of the family (see `bench.tasks.sequence.task` for the family's conventions).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import gin
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bench.tasks.base import Batch
from bench.tasks.dataset_cache import in_memory_dataset
from bench.tasks.sequence import generators, mnist
from bench.tasks.sequence.task import SequenceTask
from dlc import Space


class _Classification(SequenceTask):
    """One label per sequence, read out after the last step."""

    kind = "classification"
    classes: int = 10

    @property
    def output_size(self) -> int:  # type: ignore[override]
        return self.classes

    @property
    def trivial(self) -> dict[str, float]:
        return {"accuracy": 100.0 / self.classes, "ce": math.log(self.classes)}

    def target(self, batch: Batch) -> torch.Tensor:
        return F.one_hot(batch["y"].long(), self.classes).float()

    def h(self, outputs: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        logp = torch.log_softmax(outputs[:, -1].float(), dim=-1)  # [B, C]
        return self.label_h(logp, w)  # [K, B]

    def _checkpoint_logp(self, outputs: torch.Tensor) -> torch.Tensor:
        """log-probabilities [K + 1, B, C] at the checkpoints."""
        index = self.positions(outputs.shape[1] - 1).to(outputs.device)
        return torch.log_softmax(outputs[:, index].float(), dim=-1).transpose(0, 1)

    def solve(self, model: nn.Module, outputs: torch.Tensor, batch: Batch) -> torch.Tensor:
        return self._checkpoint_logp(outputs).exp()

    def extras(self, model: nn.Module, outputs: torch.Tensor, batch: Batch,
               iterates: torch.Tensor) -> dict[str, torch.Tensor]:
        logp = self._checkpoint_logp(outputs)
        labels = batch["y"].long()
        ce = -logp.gather(-1, labels[None, :, None].expand(len(logp), -1, 1))[..., 0]
        accuracy = 100.0 * (logp.argmax(-1) == labels[None]).float()
        trivial = self.trivial
        return {"accuracy": accuracy, "ce": ce,
                "trivial_accuracy": self._constant(ce, trivial["accuracy"]),
                "trivial_ce": self._constant(ce, trivial["ce"])}


@gin.configurable(module="bench.tasks.sequence.task")
class Digits(_Classification):
    """scikit-learn's 8x8 digits read as a sequence (offline analogue of sequential MNIST).

    Args:
        mode: 'pixel' (64 x 1), 'row' (8 x 8) or 'permuted' (64 x 1, fixed order `perm_seed`).
        perm_seed: seed of the fixed pixel permutation (mode 'permuted').
        n_test: size of the stratified test split (1797 images in all; `data_seed` seeds it).
        n_train: use only the first n_train training images (None: all 1797 - n_test).
        Others: see `SequenceTask`.
    """

    name = "digits"

    def __init__(self, mode: Literal["pixel", "row", "permuted"] = "pixel",
                 perm_seed: int = 12008, n_test: int = 360, n_train: int | None = None,
                 checkpoints: int = 8, space: Space | None = None, metrics: Sequence[Any] = (),
                 mu: float = 10.0, data_seed: int = 0) -> None:
        super().__init__(checkpoints, space, metrics, mu, data_seed)
        if mode not in ("pixel", "row", "permuted"):
            raise ValueError(f"mode must be 'pixel', 'row' or 'permuted', got {mode!r}")
        self.mode, self.perm_seed, self.n_test, self.n_train = mode, perm_seed, n_test, n_train
        self.input_size = 8 if mode == "row" else 1

    def _params(self, split: str) -> dict[str, Any]:
        return {"mode": self.mode, "perm_seed": self.perm_seed, "n_test": self.n_test,
                "n_train": self.n_train if split == "train" else None, "seed": self.data_seed}

    def _build(self, split: str) -> dict[str, np.ndarray]:
        columns = generators.digits(split, self.mode, self.perm_seed, self.data_seed, self.n_test)
        if split == "train" and self.n_train is not None:
            columns = {k: v[:self.n_train] for k, v in columns.items()}
        return columns


@gin.configurable(module="bench.tasks.sequence.task")
class MNIST1D(_Classification):
    """MNIST-1D (Greydanus 2020): 40-step 1-D digits, generated procedurally (no download).

    Args:
        samples: total samples (80 % train, 20 % test; the published set has 5000).
        shuffle_seq: shuffle the spatial dimension (the package's harder variant).
        data_seed: generator seed (42 = the published dataset).
        Others: see `SequenceTask`.
    """

    name = "mnist1d"
    input_size = 1

    def __init__(self, samples: int = 5000, shuffle_seq: bool = False, checkpoints: int = 8,
                 space: Space | None = None, metrics: Sequence[Any] = (), mu: float = 10.0,
                 data_seed: int = 42) -> None:
        super().__init__(checkpoints, space, metrics, mu, data_seed)
        self.samples, self.shuffle_seq = samples, shuffle_seq

    def _params(self, split: str) -> dict[str, Any]:
        return {"samples": self.samples, "shuffle_seq": self.shuffle_seq, "seed": self.data_seed}

    def _build(self, split: str) -> dict[str, np.ndarray]:
        return generators.mnist1d(split, self.samples, self.data_seed, self.shuffle_seq)


@gin.configurable(module="bench.tasks.sequence.task")
class MNIST(_Classification):
    """Sequential (pixel) or permuted MNIST from the user's files (Le et al. 2015 protocol).

    Pixels are scaled to [0, 1] and normalised with (0.1307, 0.3081); 'pixel' mode reads 784
    steps of 1 pixel, 'row' mode 28 steps of 28. `permute` applies the fixed permutation
    `np.random.RandomState(perm_seed).permutation(784)` (pMNIST; 12008 as in the SBO-RNN code).

    Args:
        root: folder with the IDX files (or torchvision's `MNIST/raw` under it); nothing is
            downloaded. A missing file is a `mnist.MissingDataError` naming files and folders.
        source: 'idx' (local files) or 'hf' (`datasets.load_dataset('ylecun/mnist')`).
        n_train, n_test: use only the first n examples of a split (None: all).
        Others: see `SequenceTask`.
    """

    name = "mnist"

    def __init__(self, root: str = "data/mnist", source: Literal["idx", "hf"] = "idx",
                 permute: bool = False, perm_seed: int = 12008,
                 mode: Literal["pixel", "row"] = "pixel", n_train: int | None = None,
                 n_test: int | None = None, checkpoints: int = 8, space: Space | None = None,
                 metrics: Sequence[Any] = (), mu: float = 10.0, data_seed: int = 0) -> None:
        super().__init__(checkpoints, space, metrics, mu, data_seed)
        if source not in ("idx", "hf"):
            raise ValueError(f"source must be 'idx' or 'hf', got {source!r}")
        if mode not in ("pixel", "row"):
            raise ValueError(f"mode must be 'pixel' or 'row', got {mode!r}")
        self.root, self.source, self.permute, self.perm_seed = root, source, permute, perm_seed
        self.mode = mode
        self.sizes = {"train": n_train, "test": n_test}
        self.input_size = 28 if mode == "row" else 1
        self._order: torch.Tensor | None = None

    def missing_data(self) -> str:
        return "" if self.source == "hf" else mnist.missing_mnist(self.root)

    def stand_in(self, folder: Path) -> list[str]:
        if self.source == "hf":
            return []
        mnist.write_stand_in(folder)
        return [f"bench.tasks.sequence.task.MNIST.root = '{folder}'",
                "bench.tasks.sequence.task.MNIST.source = 'idx'"]

    def _source(self, split: str):
        """The official 'train' or 'test' split (before the validation split is carved)."""
        if self.source == "hf":
            images, labels = mnist.load_hf_mnist(split)
        else:
            images, labels = mnist.load_mnist(self.root, split)
        n = self.sizes[split]  # pixels and labels both fit uint8: 4x less memory than int64
        return in_memory_dataset({"x": images[:n], "y": labels[:n].astype(np.uint8)},
                                 dtype=torch.uint8)

    def order(self) -> torch.Tensor:
        """Pixel order [784]: the fixed permutation, or the identity."""
        if self._order is None:
            perm = (np.random.RandomState(self.perm_seed).permutation(784)  # noqa: NPY002
                    if self.permute else np.arange(784))
            self._order = torch.from_numpy(perm)
        return self._order

    def inputs(self, batch: Batch) -> torch.Tensor:
        x = (batch["x"].float() / 255.0 - mnist.MEAN) / mnist.STD  # [B, 784]
        x = x[:, self.order().to(x.device)]
        return x.reshape(len(x), 28, 28) if self.mode == "row" else x[:, :, None]

