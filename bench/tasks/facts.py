"""What reports, verdicts and sweeps know about a task family, declared in one place per family.

Each family declares one `Facts` beside its task class (`Task.facts`): the units of its metrics,
what one test-time step is, the metrics drawn per iteration, the default selection metric and
direction, its non-learned reference models, and the per-model and per-task facts that differ
from the family's (keyed by the model's or task's name, the gin file's stem: the name every table
uses). The runner resolves them for its (task, model) into `run.json` (`facts`, a `RunFacts` as a
dict); reports, verdicts and sweeps read them from there (`bench.runner.recorded_facts.lookup`), and from
the registry only for run folders written before runs recorded them. Nothing is parsed out of a
task's name. This module imports nothing of the suite (the task contract imports it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

#: the figure texts a model may override (`ModelFacts.labels`): the iteration axis, the base loss
LABELS = ("iteration", "base_loss")
DEFAULT_ITERATION = "test-time solver iteration"


@dataclass(frozen=True)
class ModelFacts:
    """What differs for one model of a family.

    non_iterative: why the model predicts in one forward pass (no test-time solver descends the
        learned h: its comparison rows are 'non-iterative'); '' for a model with a solver.
    refinement: `(step, name)`: the test-time step after which a classical refinement (`name`)
        runs, or None.
    labels: figure texts that differ from the family's (`LABELS`): `iteration` (the per-iteration
        axis) and `base_loss` (the unit of the training figure's base loss).
    """

    non_iterative: str = ""
    refinement: tuple[int, str] | None = None
    labels: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = set(self.labels) - set(LABELS)
        if unknown:
            raise ValueError(f"ModelFacts.labels: unknown label(s) {sorted(unknown)}; "
                             f"expected some of {LABELS}")


@dataclass(frozen=True)
class TaskFacts:
    """What differs for one task of a family: units (merged over the family's) and the default
    selection `(metric, direction)`."""

    units: Mapping[str, str] = field(default_factory=dict)
    selection: tuple[str, str] | None = None


@dataclass(frozen=True)
class Facts:
    """The facts of one task family (see the module docstring).

    units: metric name (or stem: `success@`, `success_`) -> unit; `slice`, `h`, `threshold`,
        `base_loss` and `slice_note` are the figure texts of the same name.
    iteration: what one test-time step is (the per-iteration figures' axis).
    figure_metrics: the metrics drawn per test-time iteration, in order.
    selection: the default `(metric, direction)` a sweep selects on ('min' or 'max').
    reference_models: the models with nothing to train whose scores are the family's floor.
    models, tasks: per-model and per-task differences, by name.
    """

    family: str
    units: Mapping[str, str] = field(default_factory=dict)
    iteration: str = DEFAULT_ITERATION
    figure_metrics: tuple[str, ...] = ("distance", "optimality_gap")
    selection: tuple[str, str] = ("distance", "min")
    reference_models: tuple[str, ...] = ()
    models: Mapping[str, ModelFacts] = field(default_factory=dict)
    tasks: Mapping[str, TaskFacts] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for metric, direction in [self.selection] + [t.selection for t in self.tasks.values()
                                                     if t.selection]:
            if direction not in ("min", "max"):
                raise ValueError(f"Facts({self.family!r}).selection: direction {direction!r} "
                                 f"of {metric!r}: expected 'min' or 'max'")

    def resolve(self, task: str, model: str) -> RunFacts:
        """The facts of `task` run with `model` (per-task, then per-model differences applied)."""
        mine = self.tasks.get(task, TaskFacts())
        own = self.models.get(model, ModelFacts())
        return RunFacts(
            family=self.family, units={**self.units, **mine.units}, iteration=self.iteration,
            labels=dict(own.labels), figure_metrics=list(self.figure_metrics),
            selection=list(mine.selection or self.selection),
            reference_models=list(self.reference_models),
            non_iterative=own.non_iterative,
            refinement=list(own.refinement) if own.refinement else None)


@dataclass(frozen=True)
class RunFacts:
    """The facts of one (task, model), as `run.json` records them under `facts` (`as_dict`)."""

    family: str = ""
    units: dict[str, str] = field(default_factory=dict)
    iteration: str = DEFAULT_ITERATION
    labels: dict[str, str] = field(default_factory=dict)  # the model's own figure texts
    figure_metrics: list[str] = field(default_factory=list)
    selection: list[str] = field(default_factory=lambda: ["distance", "min"])
    reference_models: list[str] = field(default_factory=list)
    non_iterative: str = ""
    refinement: list | None = None  # [step, name]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def label(self, what: str) -> str:
        """The figure text `what` (`LABELS`) of this run's model: its own, else the family's."""
        default = self.iteration if what == "iteration" else self.units.get(what, "")
        return self.labels.get(what, default)

    def without_model(self) -> RunFacts:
        """The task's facts, less what belongs to the model."""
        return replace(self, labels={}, non_iterative="", refinement=None)

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> RunFacts:
        known = {k: record[k] for k in cls.__dataclass_fields__ if k in record}
        return cls(**known)
