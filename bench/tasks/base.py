"""The task contract: what every task family gives the runner.

A task is one member of a family (`alignment1d`, `sequence`, ...). The runner only talks to it
through this interface, in plain tensors and dicts, BenchOpt-style:

* `dataset(split)` -> `datasets.Dataset` in torch format (rows are dicts of tensors), for `split`
  in 'train', 'val', 'test' (`bench.tasks.splits.Split`): 'val' is the source's official validation
  split, or else carved out of its training data by a fixed data seed, disjoint from 'train'
  (`bench.tasks.splits.select`); tuning reads 'val' only, 'test' is for final numbers. A task
  implements `_source(split)` (its 'train' and 'test' data, and 'val' where the source has one);
  `Task.dataset` does the carving;
* `forward(model, batch)` -> network outputs, whatever `h` closes over;
* `target(batch)` -> the ground truth w* `[B, ...]`, a point of `space`;
* `h(outputs, w)` -> the loss as a function of the target, `w` `[K, B, ...]` -> `[K, B]` (DLC's h);
* `loss(model, outputs, batch, target)` -> scalar: the base method's own training loss, at `target`;
* `solve(model, outputs, batch, start=None)` -> `[T+1, B, ...]`: the test-time iterative
  solver's iterates, the initial point included (its own, or `start`); `fixed_point` says how the
  solver started at w* stays there (the contract test, `tests/test_task_contract.py`);
* `space` (a `dlc.Space`) gives the perturbations, the retraction and `distance(a, b)`;
* `metrics`: the `bench.metrics.Metric` list bound in the task's gin file;
* optionally `extras(model, outputs, batch, iterates)` -> task-specific per-iteration values
  `{name: [T+1, B]}` (accuracy, corner error, ...), read by `bench.metrics.Extra`;
* `family`: the family's name, recorded in every cell, `run.json` and the runs table;
* `facts`: the family's `bench.tasks.facts.Facts` (units, labels, selection metric, reference
  models, ...), resolved per (task, model) into `run.json`;
* `h_form`, `base`, `dlc_style` and `describe()`: which `h` and base term DLC reads
  (`bench.tasks.forms`).

A model is a `Model` (a `torch.nn.Module` that declares its family and capabilities); a task
refuses (skips) a model of another family.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import torch
from torch import nn

from bench.tasks import splits
from bench.tasks.facts import Facts
from dlc import Space

Batch = Mapping[str, torch.Tensor]


class Model(nn.Module):
    """The model contract: a `torch.nn.Module` whose class declares the task `family` it is built
    for and its capabilities (class attributes, read directly, never probed):

    * `learned`: False for a model with nothing to train (classical ICP, raw-intensity LK): it
      runs once, with the 'plain' objective and 0 epochs;
    * `uninformative_metrics`: metric names that carry no information for it (e.g. the
      optimality gap when its output is argmin h in closed form); evaluation does not record
      them for it (`bench.metrics.reported`).

    A task skips a model that is not a `Model` or is of another family.
    """

    family: ClassVar[str] = ""
    learned: ClassVar[bool] = True
    uninformative_metrics: ClassVar[tuple[str, ...]] = ()


@dataclass(frozen=True)
class FixedPoint:
    """How to pose a task so that w* is a fixed point of its test-time solver (the contract test
    starts the solver at w* and checks that it stays within `tolerance`, in `space.distance`
    units): gin `bindings` applied after the task's own files (noise-free data of one modality,
    a model with nothing learned); `why` justifies the tolerance."""

    bindings: tuple[str, ...]
    tolerance: float
    why: str


@runtime_checkable
class SizedByTask(Protocol):
    """A target space that needs the task's sizes before use (a preset's space, e.g. PRISE's
    homography perturbations): the objective uses `for_task(task)` in its place."""

    def for_task(self, task: Task) -> Space: ...


class Task(abc.ABC):
    """Base class of every task. Subclasses are gin configurables; construction must be cheap
    (the driver builds each cell once to check compatibility), so data is made lazily."""

    family: ClassVar[str] = ""
    #: the family's facts for reports, verdicts and sweeps (`bench.tasks.facts`)
    facts: ClassVar[Facts] = Facts(family="")
    #: which h DLC reads ('output' or 'energy') and its base term ('h' or 'method'): see
    #: `bench.tasks.forms`, whose `Forms.set_forms` validates and sets them per instance
    h_form: str = "output"
    base: str = "method"
    #: an h no test-time solver descends (DLC-style, not DLC)
    dlc_style: ClassVar[bool] = False
    #: how w* becomes a fixed point of the solver (`solve(..., start=w*)`); None only for a
    #: DLC-style family whose iterates do not start from a point (a read-out along a sequence)
    fixed_point: ClassVar[FixedPoint | None] = None
    #: the minimum of the base loss when the task declares one (e.g. 0 for CE/MSE); the runner then
    #: records `train_optimality_gap` = training base loss - optimum per epoch
    optimum: float | None = None
    #: parameters only evaluation reads: changing them re-evaluates saved weights, never retrains
    #: (`bench.runner.identity`); a subclass adds its own (e.g. test-time solver settings) to this set
    EVALUATION_PARAMETERS: ClassVar[frozenset[str]] = frozenset({"metrics"})
    #: share of the training source carved out as 'val' (`bench.tasks.splits.carve.fraction`,
    #: set by `Experiment` from gin; data loading reads no gin)
    val_fraction: float = splits.DEFAULT_FRACTION

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.facts.family and cls.facts.family != cls.family:
            raise TypeError(f"{cls.__name__}.facts is for family {cls.facts.family!r}, "
                            f"the class is {cls.family!r}")

    def __init__(self, metrics: Sequence[Any] = (), mu: float = 0.0, data_seed: int = 0) -> None:
        self.metrics = list(metrics)
        self.mu = mu  # the task's natural strong-convexity constant for DLC, in units of `space`
        self.data_seed = data_seed  # data are fixed across training seeds: paired comparisons

    def describe(self) -> dict[str, object]:
        """`{'family', 'h', 'base', 'dlc_style'}`: how DLC reads this task (recorded in run.json)."""
        return {"family": self.family, "h": self.h_form, "base": self.base,
                "dlc_style": self.dlc_style}

    # --- compatibility -------------------------------------------------------------------------
    def skip(self, model: nn.Module, objective: Any) -> tuple[bool, str]:
        """(True, reason) when this task cannot run with `model` / `objective`."""
        if not isinstance(model, Model):
            return True, (f"model {type(model).__name__} is not a bench.tasks.base.Model "
                          "(declare its family and capabilities by subclassing it)")
        family = model.family
        if family != self.family:
            return True, (
                f"model {type(model).__name__} is for task family {family!r}, "
                f"task {type(self).__name__} is {self.family!r}"
            )
        return False, ""

    # --- data ----------------------------------------------------------------------------------
    def dataset(self, split: str):
        """`datasets.Dataset` (torch format) for split 'train', 'val' or 'test' (see the module
        docstring): `bench.tasks.splits.select` carves 'val' from `_source('train')` unless the
        source has its own."""
        return splits.select(split, self._source, self.data_seed, fraction=self.val_fraction)

    def missing_data(self) -> str:
        """'' when this task's data can be made or read on this machine, else one line naming the
        local files it expects (checked without loading them, so `bench estimate` lists such
        cells up front). Generated data: always ''."""
        return ""

    def stand_in(self, folder: Path) -> list[str]:
        """Write small generated files in the layout of this task's local data under `folder`
        and return the gin bindings that point the task at them (the contract test runs
        real-data tasks on them, offline). Generated data: nothing written, `[]`."""
        return []

    @abc.abstractmethod
    def _source(self, split: str):
        """The source's 'train' or 'test' split (and 'val' where it has an official one), before
        the validation split is carved."""

    # --- the learning problem ------------------------------------------------------------------
    @property
    @abc.abstractmethod
    def space(self) -> Space:
        """Target space of w (perturbations, retraction, distance)."""

    @abc.abstractmethod
    def forward(self, model: nn.Module, batch: Batch) -> Any:
        """Network outputs for `batch` (what `h` closes over)."""

    @abc.abstractmethod
    def target(self, batch: Batch) -> torch.Tensor:
        """Ground truth w*, shape [B, ...]."""

    @abc.abstractmethod
    def h(self, outputs: Any, w: torch.Tensor) -> torch.Tensor:
        """Loss as a function of the target: w [K, B, ...] -> [K, B]."""

    @abc.abstractmethod
    def loss(self, model: nn.Module, outputs: Any, batch: Batch, target: torch.Tensor) -> torch.Tensor:
        """The base method's own training loss (scalar) when the ground truth is `target`."""

    @abc.abstractmethod
    def solve(self, model: nn.Module, outputs: Any, batch: Batch,
              start: torch.Tensor | None = None) -> torch.Tensor:
        """Test-time iterates [T+1, B, ...] (initial point first): from the solver's own start,
        or from `start` [B, ...] where given (a task with `fixed_point`)."""

    def extras(self, model: nn.Module, outputs: Any, batch: Batch,
               iterates: torch.Tensor) -> dict[str, torch.Tensor]:
        """Task-specific per-iteration values, each [T+1, B] (none by default)."""
        return {}
