"""The MNIST-1D reference (Greydanus 2020): the model, the scale's in-order batches, the published
4000 / 1000 split without a validation carve, and the `reference` matrix end to end on a tiny
stand-in (200 generated samples instead of 5000; nothing is downloaded)."""

from __future__ import annotations

import math
from pathlib import Path

import gin
import numpy as np
import pytest
import torch
from mnist1d.data import get_dataset_args
from torch import nn

from bench.objectives import ObjectiveOutput
from bench.runner.config import ConfigError, parsed, resolve
from bench.runner.experiment import Experiment
from bench.runner.matrix import expand_cells, load_matrix
from bench.runner.recorder import Recorder
from bench.runner.train import train
from bench.tasks.sequence.classification import MNIST1D
from bench.tasks.sequence.reference import FlatGRU
from tests.conftest import bench_cli, run_records

REFERENCE = [resolve("scales", "reference"), resolve("tasks", "sequence_mnist1d_ref"),
             resolve("models", "gru_mnist1d_ref"), resolve("objectives", "plain")]
TINY = ["bench.tasks.sequence.task.MNIST1D.samples = 200", "bench.run.Experiment.epochs = 2",
        "bench.run.Experiment.landscape_examples = 8", "bench.run.Experiment.landscape_rays = 4",
        "bench.run.Experiment.landscape_points = 4"]


def reference_experiment(bindings: list[str] = ()) -> tuple[Experiment, float]:
    """The plain reference cell's `Experiment` and its bound carve fraction."""
    with parsed(REFERENCE, bindings):
        exp = Experiment()
        return exp, exp.task.val_fraction


# --- the model ----------------------------------------------------------------------------------
def test_flat_gru_reads_every_step_of_both_directions_into_one_readout() -> None:
    torch.manual_seed(0)
    model = FlatGRU(hidden=6, steps=40)
    x = torch.randn(5, 40, 1)
    out = model(x)
    assert out.shape == (5, 1, 10)
    per_direction = 3 * (6 * 1 + 6 * 6 + 2 * 6)  # torch's GRU: 3 gates, input + hidden weights, 2 biases
    assert sum(p.numel() for p in model.parameters()) == 2 * per_direction + (2 * 6 * 40 + 1) * 10
    for step in (0, 39):  # the first and the last step both reach the read-out
        moved = x.clone()
        moved[:, step] += 1.0
        assert not torch.allclose(model(moved), out)
    with pytest.raises(ValueError, match=r"expects \[B, 40, 1\]"):
        model(torch.randn(5, 39, 1))


# --- in-order batches ---------------------------------------------------------------------------
class _Rows:
    def __init__(self, n: int) -> None:
        self.n = n

    def __getitem__(self, _: slice) -> dict[str, torch.Tensor]:
        return {"i": torch.arange(self.n)}


class _RecordingTask:
    """Records the row indices of every training batch."""

    optimum = None

    def __init__(self, n: int) -> None:
        self.n, self.seen = n, []

    def dataset(self, split: str) -> _Rows:
        return _Rows(self.n)

    def forward(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        self.seen.append(batch["i"].tolist())
        return model(batch["i"].float()[:, None])


class _Square(nn.Module):
    log_directions: dict[str, str] = {}

    def forward(self, task, model, outputs, batch) -> ObjectiveOutput:
        loss = outputs.pow(2).mean()
        return ObjectiveOutput(loss, loss.detach(), {})


def _batches_seen(shuffle: bool) -> list[list[int]]:
    task = _RecordingTask(10)
    exp = Experiment(task=task, model=nn.Linear(1, 1), objective=_Square(), epochs=2,
                     batch_size=4, shuffle=shuffle)
    train(exp, torch.device("cpu"), seed=0, rec=Recorder("r", "t", "m", "o", 0))
    return task.seen


def test_shuffle_false_takes_the_batches_in_stored_order_every_epoch() -> None:
    in_order = [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert _batches_seen(shuffle=False) == in_order + in_order
    shuffled = _batches_seen(shuffle=True)
    assert shuffled != in_order + in_order  # the default still draws a new order per epoch
    assert sorted(sum(shuffled[:3], [])) == list(range(10))


# --- the split ----------------------------------------------------------------------------------
def test_carve_fraction_zero_trains_on_the_whole_source_and_has_no_val() -> None:
    task = MNIST1D(samples=200)
    task.val_fraction = 0.0  # what `Experiment` sets from `bench.tasks.splits.carve.fraction = 0`
    source = task._source("train")
    train_rows = task.dataset("train")[:]
    assert torch.equal(train_rows["x"], source[:]["x"])  # every row, in the stored order
    assert torch.equal(train_rows["y"], source[:]["y"])
    with pytest.raises(ValueError, match="no validation split"):
        task.dataset("val")


def test_reference_task_is_the_packages_published_split_without_carve() -> None:
    exp, fraction = reference_experiment()
    task = exp.task
    assert isinstance(task, MNIST1D) and fraction == 0.0
    package = get_dataset_args()  # the package's defaults: what make_dataset publishes
    assert (task.samples, task.data_seed, task.shuffle_seq) == (
        package.num_samples, package.seed, package.shuffle_seq)
    n_train = int(task.samples * package.train_split)
    assert (n_train, task.samples - n_train) == (4000, 1000)
    # the protocol: Adam 1e-2, batch 100 in order, 8000 steps, no clipping or schedule
    assert issubclass(exp.optimizer, torch.optim.Adam) and exp.lr == 1e-2 and not exp.shuffle
    assert exp.epochs * math.ceil(n_train / exp.batch_size) == 8000 and exp.batch_size == 100
    assert exp.grad_clip is None and exp.schedule is None and isinstance(exp.model, FlatGRU)

    tiny, _ = reference_experiment(["bench.tasks.sequence.task.MNIST1D.samples = 200"])
    gin.bind_parameter("bench.tasks.splits.carve.fraction", 0.0)  # the reference's binding
    try:
        train_split, test_split = tiny.task.dataset("train"), tiny.task.dataset("test")
        assert (len(train_split), len(test_split)) == (160, 40)  # the package's 80 / 20
        assert np.array_equal(train_split[:]["y"].numpy(), tiny.task._source("train")[:]["y"])
    finally:
        gin.clear_config()


def test_validation_on_the_uncarved_reference_is_a_config_error(tmp_path: Path) -> None:
    (part,) = load_matrix(resolve("matrices", "reference"))
    with pytest.raises(ConfigError, match=r"sequence_mnist1d_ref.gin, line \d+: .*fraction = 0"):
        expand_cells(part, tmp_path, gin_bindings=["bench.run.Experiment.eval_split = 'val'"])
    carved = expand_cells(part, tmp_path, gin_bindings=[
        "bench.tasks.splits.carve.fraction = 0.1", "bench.run.Experiment.eval_split = 'val'"])
    assert len(carved) == 2 * 3  # plain and DLC, 3 seeds


# --- the matrix ---------------------------------------------------------------------------------
def test_reference_matrix_runs_plain_and_dlc_on_a_tiny_stand_in(tmp_path: Path) -> None:
    results = tmp_path / "ref"
    args = ["run", "reference", "--results", str(results), "--seeds", "0", "--no-progress"]
    assert bench_cli(*args, *[a for b in TINY for a in ("--gin_bindings", b)]) == 0
    records = run_records(results)
    assert {r["objective"] for r in records.values()} == {"plain", "dlc_mnist1d_ref"}
    for record in records.values():
        assert record["status"] == "done", record.get("traceback")
        assert record["task"] == "sequence_mnist1d_ref" and record["model"] == "gru_mnist1d_ref"
        assert record["steps"] == 2 * math.ceil(160 / 100)  # 2 epochs of the 160 training rows
