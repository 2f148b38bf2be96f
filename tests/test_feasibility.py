"""`bench feasibility`: the floor of each hinge on free outputs, and its verdict, both ways."""

from __future__ import annotations

import math

import pytest
import torch

from bench.cli import main
from bench.objectives import DLC, Plain
from bench.protocol import feasibility
from bench.tasks.base import Task
from dlc import Euclidean


class Quadratic(Task):
    """h(w) = |y - w|^2 with y the (free) output: at y = w* it is exactly 2-strongly convex in w."""

    family = "toy"

    def __init__(self) -> None:
        super().__init__()
        self._space = Euclidean(scale=0.5)

    @property
    def space(self):
        return self._space

    def _source(self, split):  # pragma: no cover - never read
        raise NotImplementedError

    def forward(self, model, batch):
        return model(batch["x"])

    def target(self, batch):
        return batch["y"]

    def h(self, outputs, w):
        return (outputs[None] - w).pow(2).sum(-1)

    def loss(self, model, outputs, batch, target):
        return self.h(outputs, target[None]).mean()

    def solve(self, model, outputs, batch):  # pragma: no cover - never called
        return outputs[None]


def _row(objective, steps: int = 300, lr: float = 0.05) -> dict:
    torch.manual_seed(0)
    task = Quadratic()
    model = torch.nn.Linear(3, 2)
    batch = {"x": torch.randn(16, 3), "y": torch.randn(16, 2)}
    objective.setup(task)
    return feasibility.check(task, model, objective, batch, steps=steps, lr=lr)


@pytest.mark.parametrize("mu, verdict", [(1.0, "feasible"), (1.9, "feasible"),
                                         (2.5, "ill-posed"), (4.0, "ill-posed")])
def test_quadratic_is_feasible_below_mu_2_and_ill_posed_above(mu, verdict):
    row = _row(DLC(mu=mu))
    assert row["verdict"] == verdict, row
    if verdict == "ill-posed":  # T2 = relu((mu/2 - 1)|d|^2 + ...) stays on for most draws
        assert row["active_t2"] > 0.5 and row["ratio"] > feasibility.FEASIBLE_RATIO
    else:
        assert row["hinge_floor"] <= feasibility.FEASIBLE_RATIO * row["trivial_base"]


def test_an_optimisation_that_has_not_converged_is_undetermined():
    assert _row(DLC(mu=1.0), steps=4)["verdict"] == "undetermined"


def test_a_floor_reached_by_a_learned_lambda_at_a_bound_is_noted():
    # mu = 3, T1 and T3 only: at y = w*, m3 = lam (1 - lam) |d|^2 (mu/2 - 1) > 0 unless lam -> 0, 1
    fixed = _row(DLC(mu=3.0, terms=("t1", "t3")), steps=400)
    learned = _row(DLC(mu=3.0, terms=("t1", "t3"), learn_lam=True), steps=400)
    assert fixed["verdict"] == "ill-posed" and fixed["note"] == ""
    assert min(learned["lam"], 1 - learned["lam"]) < feasibility.LAM_BOUND
    assert learned["note"] == feasibility.LAM_NOTE


def test_an_objective_without_a_hinge_is_listed_as_such():
    assert _row(Plain())["verdict"] == feasibility.NO_HINGE


@pytest.mark.parametrize("ratio, converged, verdict", [
    (0.0, True, "feasible"), (feasibility.FEASIBLE_RATIO, True, "feasible"),
    (2 * feasibility.FEASIBLE_RATIO, True, "ill-posed"), (0.0, False, "undetermined"),
    (5.0, False, "undetermined"), (math.nan, True, "undetermined")])
def test_classify(ratio, converged, verdict):
    assert feasibility.classify(ratio, converged) == verdict


def test_lam_note_only_for_a_learned_lambda_at_a_bound():
    assert feasibility.lam_note(0.001, True) == feasibility.LAM_NOTE
    assert feasibility.lam_note(0.999, True) == feasibility.LAM_NOTE
    assert feasibility.lam_note(0.5, True) == ""
    assert feasibility.lam_note(0.001, False) == ""


def test_free_outputs_frees_only_what_the_network_computed():
    from bench.tasks.homography.models import Pyramid

    net = torch.nn.Linear(2, 2)
    x = torch.randn(3, 2)
    outputs = (Pyramid([net(x)], [x]), {"a": net(x)}, 7)
    freed, leaves = feasibility.free_outputs(outputs)
    assert len(leaves) == 2 and all(leaf.is_leaf and leaf.requires_grad for leaf in leaves)
    assert not freed[0].templates[0].requires_grad and freed[2] == 7
    assert torch.equal(freed[0].inputs[0], outputs[0].inputs[0])


# --- the shipped tasks (numbers computed by the check, not looked up) --------------------------
def _verdicts(tasks: str, objectives: str = "dlc", matrix: str = "cpu_tuned") -> dict[str, str]:
    table = feasibility.matrix_rows(matrix, tasks.split(","), objectives.split(","),
                                    batch_size=8, steps=400, lr=0.05)
    return dict(zip(table["task"], table["verdict"]))


@pytest.mark.slow
def test_shipped_forms_sequence_classification_ill_posed_the_others_feasible():
    got = _verdicts("sequence_mnist1d,sequence_digits_kl,sequence_adding,"
                    "alignment1d_nonlinear_energy")
    got.update(_verdicts("registration_synthetic_dcp", matrix="matrices/cpu_tuned/registration.gin"))
    assert got == {"sequence_mnist1d": "ill-posed", "sequence_digits_kl": "feasible",
                   "sequence_adding": "feasible", "alignment1d_nonlinear_energy": "feasible",
                   "registration_synthetic_dcp": "feasible"}


def test_cli_writes_only_the_csv(tmp_path, capsys):
    out = tmp_path / "feas"
    code = main(["feasibility", "smoke", "--tasks", "sequence_adding", "--objectives",
                 "plain,dlc", "--steps", "50", "--batch", "4", "--out", str(out)])
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["feasibility.csv"]
    text = (out / "feasibility.csv").read_text()
    assert text.splitlines()[0] == ",".join(feasibility.COLUMNS)
    assert "no hinge" in text and "| sequence_adding" in capsys.readouterr().out


def test_cli_bad_lr_is_one_line_and_exit_2(capsys):
    assert main(["feasibility", "smoke", "--lr", "0"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
