"""Validation splits: carved from the training data by a fixed data seed, disjoint from train."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from bench.tasks.alignment1d import Alignment1D
from bench.tasks.homography import DLKNProtocol, HomographyTask, SyntheticPairs
from bench.tasks.registration import Registration
from bench.tasks.sequence.classification import MNIST1D, Digits
from bench.tasks.sequence.task import Adding
from bench.tasks.splits import carve, select


def _row_hashes(dataset) -> list[str]:
    """One content hash per row (every column's bytes), to compare splits by content."""
    columns = dataset[:]
    n = len(next(iter(columns.values())))
    return [hashlib.sha1(b"".join(np.ascontiguousarray(columns[k][i].numpy()).tobytes()
                                  for k in sorted(columns))).hexdigest() for i in range(n)]


def test_carve_sizes_disjoint_and_fixed_by_the_data_seed() -> None:
    parts = carve(50, data_seed=3)
    assert len(parts["val"]) == 5 and len(parts["train"]) == 45  # round(0.1 * 50)
    assert set(parts["val"]).isdisjoint(parts["train"])
    assert sorted({*parts["val"], *parts["train"]}) == list(range(50))
    again = carve(50, data_seed=3)
    assert (again["val"] == parts["val"]).all()
    assert not (carve(50, data_seed=4)["val"] == parts["val"]).all()
    assert len(carve(3, data_seed=0)["val"]) == 1  # at least one example, at most n - 1
    assert len(carve(2, data_seed=0, fraction=0.9)["val"]) == 1


@pytest.mark.parametrize(("n", "fraction", "message"), [
    (1, 0.1, "cannot carve"), (10, -0.1, "must be 0 or in \\(0, 1\\)"), (10, 1.0, "must be 0 or in")])
def test_carve_rejects_bad_input(n: int, fraction: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        carve(n, data_seed=0, fraction=fraction)


def test_select_reads_an_official_val_split_when_the_source_has_one() -> None:
    calls: list[str] = []

    def source(split: str) -> str:
        calls.append(split)
        return f"<{split}>"

    assert select("val", source, data_seed=0, official_val=True) == "<val>"
    assert calls == ["val"]
    with pytest.raises(ValueError, match="split must be one of"):
        select("validation", source, data_seed=0)


FAMILIES = {
    "alignment1d": lambda: Alignment1D(length=64, n_train=40, n_test=8),
    "sequence_adding": lambda: Adding(length=10, n_train=40, n_test=8),
    "sequence_digits": lambda: Digits(n_train=60),
    "sequence_mnist1d": lambda: MNIST1D(samples=200),
    "registration": lambda: Registration(num_points=32, raw_points=64, partial=24, n_train=20,
                                         n_test=8),
    "homography": lambda: HomographyTask(
        data=SyntheticPairs(), protocol=DLKNProtocol(input_size=48, template_size=32, rho=4.0),
        n_train=20, n_test=4),
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_family_has_a_val_split_disjoint_from_train(family: str) -> None:
    task = FAMILIES[family]()
    source = task._source("train")
    train, val, test = (task.dataset(s) for s in ("train", "val", "test"))
    assert len(val) == max(1, round(0.1 * len(source)))
    assert len(train) + len(val) == len(source)
    train_rows, val_rows = _row_hashes(train), _row_hashes(val)
    assert set(train_rows).isdisjoint(val_rows)
    assert sorted(train_rows + val_rows) == sorted(_row_hashes(source))
    assert _row_hashes(test) == _row_hashes(task._source("test"))
    torch.manual_seed(123)  # the training seed does not move the split
    assert _row_hashes(FAMILIES[family]().dataset("val")) == val_rows
