"""Family `sequence`, learning problem: models, h / loss / solve / extras, the generic objectives,
plateau escape, and tiny end-to-end runs through the runner."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from bench.metrics import Trace
from bench.objectives import DLC, Margin, Plain, TargetNoise
from bench.tasks.sequence.classification import MNIST1D, Digits
from bench.tasks.sequence.models import Recurrent
from bench.tasks.sequence.task import Adding, Copy, Escaped, SequenceTask, escaped
from dlc import Simplex
from tests.conftest import bench_cli, run_records, write_matrix


def tiny_tasks() -> list[SequenceTask]:
    return [Adding(length=12, n_train=64, n_test=32), Copy(delay=6, n_train=64, n_test=32),
            Digits(n_train=64), Digits(mode="row", n_train=64),
            Digits(n_train=64, space=Simplex(scale=0.5, mode="mixture", norm="noise"))]


def model_for(task: SequenceTask, cell: str = "gru") -> Recurrent:
    return Recurrent(cell=cell, hidden=8, input_size=task.input_size, output_size=task.output_size)


def batch_of(task: SequenceTask, n: int = 6) -> dict[str, torch.Tensor]:
    return {k: v[:n] for k, v in task.dataset("train")[:].items()}


# --- model ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_model_reads_out_every_step_causally(cell: str) -> None:
    torch.manual_seed(0)
    model = Recurrent(cell=cell, hidden=8, layers=2, input_size=3, output_size=4)
    x = torch.randn(5, 9, 3)
    out = model(x)
    assert out.shape == (5, 10, 4)
    changed = x.clone()
    changed[:, 6:] += 1.0  # steps 7.. (read-outs 7..9) may change, earlier ones may not
    out2 = model(changed)
    torch.testing.assert_close(out[:, :7], out2[:, :7])
    assert not torch.allclose(out[:, 7:], out2[:, 7:])
    torch.testing.assert_close(out[:, 0], model.head.bias.expand(5, 4))  # zero initial state
    with pytest.raises(ValueError, match="inputs"):
        model(torch.randn(5, 9, 2))


def test_skip_names_mismatched_sizes() -> None:
    task = Copy(delay=5)
    assert task.skip(model_for(task), None) == (False, "")
    skip, reason = task.skip(Recurrent(input_size=1, output_size=10), None)
    assert skip and "(10, 9)" in reason
    assert task.skip(torch.nn.Linear(2, 2), None)[0]


# --- h, loss, solve, extras -------------------------------------------------------------------------
@pytest.mark.parametrize("task", tiny_tasks(), ids=lambda t: f"{t.name}-{t.kind}")
def test_contract_shapes_and_loss_is_h_at_the_target(task: SequenceTask) -> None:
    torch.manual_seed(0)
    model = model_for(task)
    batch = batch_of(task)
    outputs = task.forward(model, batch)
    target = task.target(batch)
    task.space.check(target)
    rows = target.shape[0]
    assert rows == (6 * task.length if task.kind == "per_step" else 6)
    w = torch.stack([target, task.space.retract(target, task.space.sample(target, 1), 1.0)[0]])
    assert task.h(outputs, w).shape == (2, rows)
    loss = task.loss(model, outputs, batch, target)
    if task.kind == "regression":
        expected = F.mse_loss(outputs[:, -1, :1], batch["y"])
    elif task.kind == "per_step":
        expected = F.cross_entropy(outputs[:, 1:].flatten(0, 1), batch["y"].flatten())
    else:
        expected = F.cross_entropy(outputs[:, -1], batch["y"])
    torch.testing.assert_close(loss, expected)

    iterates = task.solve(model, outputs, batch)
    assert iterates.shape == (task.checkpoints + 1, *target.shape)
    distance = task.space.distance(iterates, target[None])
    assert distance.shape == (task.checkpoints + 1, rows)
    final = outputs[:, -1, :1] if task.kind == "regression" else None
    if task.kind == "classification":
        final = outputs[:, -1].softmax(-1)
    elif task.kind == "per_step":
        final = outputs[:, 1:].softmax(-1).flatten(0, 1)
    torch.testing.assert_close(iterates[-1], final)
    extras = task.extras(model, outputs, batch, iterates)
    for name, value in extras.items():
        assert value.shape == (task.checkpoints + 1, rows), name
    for key, baseline in task.trivial.items():
        torch.testing.assert_close(extras[f"trivial_{key}"],
                                   torch.full_like(extras[key], baseline))


def test_classification_extras_match_direct_computation() -> None:
    task = Digits(n_train=64)
    torch.manual_seed(1)
    model = model_for(task)
    batch = batch_of(task, 20)
    outputs = task.forward(model, batch)
    extras = task.extras(model, outputs, batch, task.solve(model, outputs, batch))
    last = outputs[:, -1]
    torch.testing.assert_close(extras["ce"][-1], F.cross_entropy(last, batch["y"], reduction="none"))
    torch.testing.assert_close(extras["accuracy"][-1],
                               100.0 * (last.argmax(-1) == batch["y"]).float())
    positions = task.positions(64)
    assert positions[0] == 0 and positions[-1] == 64 and len(positions) == task.checkpoints + 1
    assert (positions.diff() == 8).all()


def test_copy_checkpoints_and_recall_accuracy() -> None:
    task = Copy(delay=6, n_train=64, checkpoints=4)
    torch.manual_seed(2)
    model = model_for(task)
    batch = batch_of(task, 7)
    outputs = task.forward(model, batch)
    iterates = task.solve(model, outputs, batch).reshape(5, 7, task.length, 9)
    initial = outputs[:, :1].softmax(-1).expand(7, task.length, 9)
    torch.testing.assert_close(iterates[0], initial)  # nothing read yet
    half = int(task.positions(task.length)[2])
    torch.testing.assert_close(iterates[2][:, :half], outputs[:, 1:half + 1].softmax(-1))
    torch.testing.assert_close(iterates[2][:, half:], initial[:, half:])
    extras = task.extras(model, outputs, batch, task.solve(model, outputs, batch))
    predicted = outputs[:, 1:].argmax(-1)[:, -task.symbols:]
    direct = 100.0 * (predicted == batch["y"][:, -task.symbols:]).float().mean()
    torch.testing.assert_close(extras["recall_accuracy"][-1].mean(), direct)


def test_trivial_baselines_are_what_a_memoryless_predictor_scores() -> None:
    task = Copy(delay=30, n_train=300)  # 270 training rows after the val split
    batch = batch_of(task, 256)
    length, classes = task.length, task.output_size
    logits = torch.full((256, length + 1, classes), -1e4)
    logits[:, :, 0] = 0.0  # blank while nothing can be recalled
    logits[:, -task.symbols:, 1:] = 0.0  # then uniform over the alphabet (blank excluded)
    logits[:, -task.symbols:, 0] = -1e4
    ce = task.h(logits, task.target(batch)[None]).mean()
    assert math.isclose(float(ce), task.trivial["ce"], rel_tol=1e-5)
    assert math.isclose(task.trivial["ce"], 10 * math.log(8) / 50)
    assert Adding().trivial["mse"] == pytest.approx(1 / 6)
    assert MNIST1D().trivial["accuracy"] == pytest.approx(10.0)


# --- the generic objectives run unchanged ---------------------------------------------------------
OBJECTIVES = {
    "plain": Plain, "dlc": DLC, "dlc_max": lambda: DLC(aggregate="max"),
    "dlc_adversarial": lambda: DLC(perturbation="adversarial"),
    "target_noise": TargetNoise, "margin": Margin,
}


@pytest.mark.parametrize("task", tiny_tasks()[:3], ids=lambda t: t.name)
@pytest.mark.parametrize("name", list(OBJECTIVES))
def test_generic_objectives_give_finite_gradients(task: SequenceTask, name: str) -> None:
    torch.manual_seed(0)
    model = model_for(task)
    objective = OBJECTIVES[name]()
    objective.setup(task)
    batch = batch_of(task, 4)
    result = objective(task, model, task.forward(model, batch), batch)
    assert torch.isfinite(result.loss)
    result.loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


def test_dlc_hinges_are_active_at_initialisation() -> None:
    """The bound scales make the hinges fire on an untrained network (uniform predictions)."""
    for task in (Digits(n_train=64, space=Simplex(scale=1.0)), Adding(length=12, n_train=64)):
        model = model_for(task)
        objective = DLC()
        objective.setup(task)
        batch = batch_of(task, 32)
        result = objective(task, model, task.forward(model, batch), batch)
        assert result.logs["hinge_t2"] > 0, task.name


# --- plateau escape -----------------------------------------------------------------------------------
def test_escaped() -> None:
    assert escaped(0.05, 1 / 6, "min") and not escaped(0.1, 1 / 6, "min")
    assert escaped(0.1, 1 / 6, "min", margin=0.3)
    assert escaped(60.0, 10.0, "max") and not escaped(50.0, 10.0, "max")
    assert not escaped(float("nan"), 1 / 6, "min")
    assert escaped(0.5, 1.0, "min", best=0.4, margin=0.8)
    with pytest.raises(ValueError):
        escaped(1.0, 1.0, "up")  # type: ignore[arg-type]
    trace = Trace(distance=torch.zeros(3, 4), h=torch.zeros(3, 4), h_star=torch.zeros(4),
                  extras={"mse": torch.tensor([[0.2] * 4, [0.1] * 4, [0.0, 0.0, 0.1, 0.1]]),
                          "trivial_mse": torch.full((3, 4), 1 / 6)})
    metric = Escaped(key="mse", direction="min")
    assert metric.name == "escaped_mse" and metric.direction == "max"
    assert metric(trace).tolist() == [0.0, 0.0, 1.0]


# --- end to end ----------------------------------------------------------------------------------------
TINY = [
    "bench.run.Experiment.epochs = 1",
    "bench.run.Experiment.landscape_examples = 8",
    "bench.run.Experiment.landscape_rays = 4",
    "bench.run.Experiment.landscape_points = 4",
    "bench.tasks.sequence.models.Recurrent.hidden = 8",
    "bench.tasks.sequence.task.Adding.n_train = 96",
    "bench.tasks.sequence.task.Adding.n_test = 32",
    "bench.tasks.sequence.task.Copy.n_train = 96",
    "bench.tasks.sequence.task.Copy.n_test = 32",
]


def test_plain_and_dlc_run_end_to_end(tmp_path: Path) -> None:
    matrix = write_matrix(tmp_path, ["plain", "dlc"], models=["lstm"],
                          tasks=["sequence_adding", "sequence_copy"], tiny=TINY)
    results = tmp_path / "out"
    assert bench_cli("run", str(matrix), "--results", str(results), "--no-progress") == 0
    records = run_records(results)
    assert len(records) == 4
    for record in records.values():
        assert record["status"] == "done", record.get("traceback")
    table = pd.read_parquet(results / "results.parquet")
    test = table[table.phase == "test"]
    adding = set(test[test.task == "sequence_adding"].metric)
    assert {"mse", "trivial_mse", "escaped_mse", "distance"} <= adding
    copy = set(test[test.task == "sequence_copy"].metric)
    assert {"ce", "trivial_ce", "recall_accuracy", "escaped_ce", "escaped_recall_accuracy"} <= copy
    iters = table[(table.phase == "test_iter") & (table.metric == "mse")]
    assert sorted(iters.step.unique()) == list(range(9))  # 8 checkpoints + the initial state
    dlc = table[(table.objective == "dlc") & (table.phase == "train")]
    assert {"train_hinge", "train_original", "train_optimality_gap"} <= set(dlc.metric)
    train = table[table.phase == "train"].pivot_table(index=["run_id", "step"], columns="metric",
                                                      values="value")
    # the declared optimum is 0, so the gap is the base training loss itself
    assert (train["train_optimality_gap"] == train["train_original"]).all()


def test_mnist_cell_without_files_fails_with_the_missing_files(tmp_path: Path) -> None:
    root = tmp_path / "no-mnist-here"
    matrix = write_matrix(tmp_path, ["plain"], models=["rnn"], tasks=["sequence_pmnist"],
                          tiny=[f"bench.tasks.sequence.task.MNIST.root = '{root}'"])
    results = tmp_path / "out"
    assert bench_cli("run", str(matrix), "--results", str(results), "--no-progress") == 1
    (record,) = run_records(results).values()
    assert record["status"] == "failed"
    assert "MissingDataError" in record["reason"] and "train-images-idx3-ubyte" in record["reason"]
    assert str(root) in record["reason"]


# --- the satisfiable classification form: h = KL(w || p) ------------------------------------------
def _kl_digits() -> Digits:
    import gin

    with gin.unlock_config():
        gin.bind_parameter("bench.tasks.sequence.task.SequenceTask.divergence", "kl")
    try:
        return Digits(n_train=64)
    finally:
        gin.clear_config()


def test_kl_h_is_the_ce_at_the_one_hot_label_and_1_strongly_convex_in_w() -> None:
    torch.manual_seed(0)
    kl, ce = _kl_digits(), Digits(n_train=64)
    assert (kl.divergence, ce.divergence) == ("kl", "ce")
    outputs = torch.randn(5, 7, 10)
    onehot = F.one_hot(torch.arange(5), 10).float()
    assert torch.allclose(kl.h(outputs, onehot[None]), ce.h(outputs, onehot[None]))
    a, b = torch.distributions.Dirichlet(torch.ones(10)).sample((2, 5))
    mid = (a + b) / 2
    values = kl.h(outputs, torch.stack([a, b, mid]))
    gap = (values[0] + values[1]) / 2 - values[2]  # >= |a - b|^2 / 8 for 1-strong convexity
    assert (gap >= (a - b).pow(2).sum(-1) / 8 - 1e-5).all()
    linear = ce.h(outputs, torch.stack([a, b, mid]))  # the CE is linear: no curvature at all
    assert torch.allclose((linear[0] + linear[1]) / 2, linear[2], atol=1e-5)


def test_kl_h_stays_finite_off_the_simplex() -> None:
    w = torch.full((1, 2, 10), 0.15)
    w[..., 0] = -0.35
    assert torch.isfinite(_kl_digits().h(torch.randn(2, 4, 10), w)).all()


def test_kl_divergence_is_refused_for_regression() -> None:
    import gin

    with gin.unlock_config():
        gin.bind_parameter("bench.tasks.sequence.task.SequenceTask.divergence", "kl")
    try:
        with pytest.raises(ValueError, match="divergence.*class labels only"):
            Adding(length=12, n_train=8, n_test=8)
    finally:
        gin.clear_config()


def test_sequence_digits_kl_binds_the_satisfiable_form() -> None:
    from bench.runner.config import parsed_text
    from bench.runner.experiment import Experiment
    from bench.runner.matrix import Matrix, expand_cells

    cell = expand_cells(Matrix(tasks=["sequence_digits_kl"], models=["gru"], objectives=["dlc"]),
                        Path("/nonexistent"))[0]
    with parsed_text(cell.config_text):
        exp = Experiment()
        exp.objective.setup(exp.task)
        space = exp.objective.star.space
        assert exp.task.divergence == "kl" and float(exp.objective.star.mu) == 1.0
        assert (space.mode, space.scale) == ("mixture", 0.5)
