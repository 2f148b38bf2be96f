"""A family's facts (`bench.tasks.facts`): declared once, recorded in run.json, read back by the
report, the verdicts and the sweeps, from the registry only for runs that did not record them."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from bench.protocol.sweep import Sweep
from bench.protocol.verdicts import classify, learned_only, reference_scores
from bench.report.metadata import figure_text, refinement_of, short_name, unit_of
from bench.runner import recorded_facts as facts
from bench.runner.config import ConfigError
from bench.schema import record_problem
from bench.tasks.base import Model, Task
from bench.tasks.facts import Facts, ModelFacts, RunFacts, TaskFacts

TOY = Facts(family="toyfam", units={"distance": "furlongs", "success@": "%"},
            iteration="toy step", selection=("score", "max"), reference_models=("oracle",),
            models={"oneshot": ModelFacts(non_iterative="one pass", refinement=(2, "polish"),
                                          labels={"iteration": "toy pass"})},
            tasks={"toyfam_b": TaskFacts(units={"distance": "leagues"}, selection=("err", "min"))})


def _runs(*pairs: tuple[str, str]) -> pd.DataFrame:
    """A runs table whose runs recorded TOY's facts, as `bench.runner.result_tables` writes it."""
    return pd.DataFrame({"task": [t for t, _ in pairs], "model": [m for _, m in pairs],
                         "family": "toyfam",
                         "facts": [json.dumps(TOY.resolve(t, m).as_dict()) for t, m in pairs]})


def test_recorded_facts_are_what_the_report_verdicts_and_sweeps_read() -> None:
    facts.learn(_runs(("toyfam_a", "net"), ("toyfam_a", "oneshot"), ("toyfam_b", "net")))
    assert unit_of("toyfam_a", "distance") == "furlongs" and unit_of("toyfam_b", "distance") == \
        "leagues"
    assert unit_of("toyfam_a", "success@3") == "%" and unit_of("toyfam_a", "accuracy") == "%"
    assert figure_text("toyfam_a", "oneshot", "iteration") == "toy pass"
    assert figure_text("toyfam_a", "net", "iteration") == "toy step"
    assert refinement_of("toyfam_a", "oneshot") == "polish"
    assert refinement_of("toyfam_a", "oracle") == "ORACLE"  # a reference is its own refinement
    assert refinement_of("toyfam_a", "net") == ""
    assert short_name("toyfam_a") == "a" and short_name("freely_named_task") == "freely_named_task"
    table = pd.DataFrame({"task": ["toyfam_a"] * 2, "model": ["oneshot", "net"],
                          "objective": ["dlc"] * 2, "direction": ["min"] * 2,
                          "mean": [1.0, 1.0], "base_mean": [2.0, 2.0]})
    assert classify(table) == ["non-iterative", "valid"]
    values = pd.DataFrame({"task": ["toyfam_a"] * 3, "model": ["oracle", "oracle", "net"],
                           "value": [1.0, 3.0, 9.0]})
    assert reference_scores(values) == {"toyfam_a": 2.0}
    assert list(learned_only(values)["model"]) == ["net"]  # the floor is no problem of its own
    trivial = values.assign(trivial=[float("nan"), float("nan"), 1.5], direction="min")
    assert reference_scores(trivial) == {"toyfam_a": 1.5}  # the better of oracle (2) and trivial
    assert reference_scores(trivial.assign(direction="max")) == {"toyfam_a": 2.0}
    assert reference_scores(trivial[trivial.model == "net"]) == {"toyfam_a": 1.5}
    sweep = Sweep(metric={"toyfam_b": "mine"}, direction={"toyfam_b": "max"})
    assert sweep.metric_of("toyfam_a") == ("score", "max")  # no entry: the facts' default
    assert sweep.metric_of("toyfam_b") == ("mine", "max")  # the sweep's entry wins
    assert Sweep().metric_of("toyfam_b") == ("err", "min")  # the task's own default
    with pytest.raises(ConfigError, match="direction has no entry for task 'toyfam_a'"):
        Sweep(metric={"toyfam": "mine"}, direction={"toyfam_b": "max"}).metric_of("toyfam_a")


def test_runs_without_recorded_facts_read_the_registry() -> None:
    """A shipped task never recorded: its family from the task class its gin file binds (no name
    parsing), its facts from that family's declaration."""
    got = facts.lookup("registration_synthetic_unseen", "prnet")
    assert got.family == "registration" and got.refinement == [3, "ICP"]
    assert got.non_iterative and "icp" in got.reference_models
    assert facts.lookup("homography_synthetic_dem", "dhn").label("base_loss") == \
        "squared corner error, px²"
    assert facts.lookup("sequence_copy").selection == ["recall_accuracy", "max"]
    assert facts.lookup("no_such_task_anywhere") == RunFacts()


def test_a_run_json_without_facts_still_loads_and_facts_must_be_an_object() -> None:
    record = {"status": "done", "task": "t", "model": "m", "objective": "o", "seed": 0}
    assert record_problem(record) == ""
    assert record_problem({**record, "facts": TOY.resolve("t", "m").as_dict()}) == ""
    assert "facts" in record_problem({**record, "facts": "toyfam"})


def test_facts_are_checked_where_they_are_declared() -> None:
    with pytest.raises(ValueError, match="unknown label"):
        ModelFacts(labels={"colour": "red"})
    with pytest.raises(ValueError, match="expected 'min' or 'max'"):
        Facts(family="x", selection=("score", "up"))
    with pytest.raises(TypeError, match="facts is for family 'toyfam'"):
        type("Mismatched", (Task,), {"family": "other", "facts": TOY})


def test_a_module_that_is_not_a_model_is_skipped_with_a_reason() -> None:
    class Loose(torch.nn.Module):
        family = "alignment1d"

    class Declared(Model):
        family = "alignment1d"

    from bench.tasks.alignment1d import Alignment1D

    task = Alignment1D(length=64, max_shift=4.0)
    skip, reason = task.skip(Loose(), None)
    assert skip and "not a bench.tasks.base.Model" in reason
    assert task.skip(Declared(), None) == (False, "")
    assert Declared.learned and Declared.uninformative_metrics == ()
