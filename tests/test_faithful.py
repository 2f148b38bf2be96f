"""DLC as the authors define it: h and base forms per family, faithful presets, sanity limits.

Expected numbers come from the formulas (paper and the authors' code as described in the README's
family table), never from the code under test.
"""

from __future__ import annotations

import math

import gin
import pytest
import torch

from bench.objectives import DLC, Plain
from bench.runner.config import GIN_ROOT, setup_gin
from bench.tasks.alignment1d import Alignment1D, ConvFeatures
from bench.tasks.registration import DCPNet, EntryNoise, Outputs, Registration
from bench.tasks.registration import geometry as geo
from bench.tasks.sequence.classification import Digits
from bench.tasks.sequence.models import Recurrent
from bench.tasks.sequence.task import Adding
from dlc import StarConvexLoss


def _rigid(angle_deg: float, axis: tuple[float, float, float],
           t: tuple[float, float, float]) -> torch.Tensor:
    import roma

    vec = torch.tensor(axis, dtype=torch.float64)
    rot = roma.rotvec_to_rotmat(vec / vec.norm() * math.radians(angle_deg))
    out = torch.eye(4, dtype=torch.float64)
    out[:3, :3], out[:3, 3] = rot, torch.tensor(t, dtype=torch.float64)
    return out


# --- item 6a: DLC with weight 0 is plain ----------------------------------------------------------
def _grads(task, model, objective, batch) -> list[torch.Tensor]:
    model.zero_grad(set_to_none=True)
    objective.setup(task)
    outputs = task.forward(model, batch)
    objective(task, model, outputs, batch).loss.backward()
    return [p.grad.clone() for p in model.parameters() if p.grad is not None]


def _cases():
    torch.manual_seed(0)
    adding = Adding(length=8, n_train=40, n_test=8)
    digits = Digits(n_train=40)
    align = Alignment1D(length=64, max_shift=4.0, n_train=20, n_test=4)
    reg = Registration(num_points=32, raw_points=64, partial=24, n_train=10, n_test=4)
    return [
        ("sequence_adding", adding, Recurrent(cell="gru", hidden=8, input_size=2, output_size=1)),
        ("sequence_digits", digits, Recurrent(cell="gru", hidden=8, input_size=1, output_size=10)),
        ("alignment1d", align, ConvFeatures()),
        ("registration", reg, DCPNet(dims=16, widths=(16,), feedforward=32)),
    ]


@pytest.mark.parametrize("index", range(4), ids=lambda i: ["adding", "digits", "align", "reg"][i])
def test_dlc_with_weight_zero_gives_the_gradients_of_plain(index: int) -> None:
    _, task, model = _cases()[index]
    batch = task.dataset("train")[:6]
    plain = _grads(task, model, Plain(), batch)
    dlc = _grads(task, model, DLC(weight=0.0), batch)
    assert len(plain) == len(dlc) > 0
    for a, b in zip(plain, dlc):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # and a positive weight moves them (the comparison can fail)
    moved = _grads(task, model, DLC(weight=1.0, mu=50.0), batch)
    assert any(not torch.equal(a, b) for a, b in zip(plain, moved))


# --- item 6b: registration, h = 'output', quadratic loss ------------------------------------------
def _registration_at_truth() -> tuple[Registration, Outputs, torch.Tensor]:
    task = Registration(h="output")
    truth = torch.stack([_rigid(30.0, (1, 2, 3), (0.1, -0.2, 0.3)),
                         _rigid(-70.0, (0, 1, 0), (0.4, 0.0, -0.1))])  # [2, 4, 4]
    src = torch.randn(2, 16, 3, dtype=torch.float64)
    outputs = Outputs(src, geo.apply(truth, src), None, truth[None])  # one pass that hit w*
    return task, outputs, truth


def test_registration_output_h_is_the_dcp_loss_at_the_label() -> None:
    task, outputs, truth = _registration_at_truth()
    delta = torch.zeros(1, 2, 4, 4, dtype=torch.float64)
    delta[0, 0, 0, 1] = 0.3  # one rotation entry of example 0
    delta[0, 1, 2, 3] = 0.6  # one translation entry of example 1
    h = task.h(outputs, truth[None] + delta)
    # R*^T (R* + d) - I = R*^T d has the Frobenius norm of d: 0.3^2 / 9 entries; 0.6^2 / 3
    torch.testing.assert_close(h, torch.tensor([[0.09 / 9, 0.36 / 3]], dtype=torch.float64))


@pytest.mark.parametrize("lam", [0.25, 0.5, 0.8])
def test_registration_output_hinges_vanish_up_to_the_modulus_of_the_quadratic(lam: float) -> None:
    """At the truth, h(w* + d) = |d_R|^2 / 9 + |d_t|^2 / 3 (DCP's entry means): a quadratic whose
    strong-convexity modulus along rotation entries is 2/9; T1..T3 are 0 for mu <= 2/9 and T2 is
    positive beyond it. For the sum of squares |d|^2 the same holds up to mu = 2."""
    task, outputs, truth = _registration_at_truth()
    space = EntryNoise(rotation=0.125, translation=1e-6)  # rotation entries only
    generator = torch.Generator().manual_seed(0)
    def hinge(mu: float, h) -> torch.Tensor:
        loss = StarConvexLoss(space, samples=16, lam=lam, mu=mu)
        return loss(h, truth, generator=generator).hinge

    def output_h(w: torch.Tensor) -> torch.Tensor:
        return task.h(outputs, w)

    assert hinge(2 / 9 * (1 - 1e-6), output_h) < 1e-12
    assert hinge(2 / 9 * 1.2, output_h) > 1e-4

    def squares(w: torch.Tensor) -> torch.Tensor:
        return (w - truth[None]).pow(2).sum((-1, -2))

    assert hinge(2.0 * (1 - 1e-6), squares) < 1e-12
    assert hinge(2.2, squares) > 1e-3


# --- forms declared in gin -------------------------------------------------------------------------
def test_each_family_declares_h_and_base_in_its_gin_files() -> None:
    roots = {"alignment1d_nonlinear": "Alignment1D", "homography_synthetic_same": "HomographyTask",
             "registration_synthetic_dcp": "Registration", "sequence_adding": "SequenceTask",
             "sequence_copy": "SequenceTask", "sequence_digits": "SequenceTask"}
    for stem, configurable in roots.items():
        text = (GIN_ROOT / "tasks" / f"{stem}.gin").read_text()
        for key in ("h", "base"):
            assert any(line.strip().startswith(f"{key} =") or
                       line.startswith(f"bench.tasks.sequence.task.{configurable}.{key} =")
                       for line in text.splitlines()), (stem, key)


def test_sequence_family_offers_output_only_and_says_dlc_style() -> None:
    assert Adding().describe() == {"family": "sequence", "h": "output", "base": "method",
                                   "dlc_style": True}
    setup_gin()
    gin.clear_config()
    gin.parse_config("bench.tasks.sequence.task.SequenceTask.h = 'energy'")
    try:
        with pytest.raises(ValueError, match=r"SequenceTask.h must be one of \('output',\)"):
            Adding()
    finally:
        gin.clear_config()
    assert Registration(h="output", base="h").describe()["dlc_style"] is False
    with pytest.raises(ValueError, match="Registration.base must be one of"):
        Registration(base="both")


def test_base_h_makes_the_dlc_base_term_h_at_the_truth() -> None:
    """base = 'h': the DLC objective's `original` is mean h(w*), not the method's loss."""
    torch.manual_seed(0)
    task = Registration(num_points=32, raw_points=64, partial=24, n_train=10, n_test=4,
                        base="h")
    model = DCPNet(dims=16, widths=(16,), feedforward=32)
    batch = task.dataset("train")[:4]
    outputs = task.forward(model, batch)
    objective = DLC(weight=0.0)
    objective.setup(task)
    logged = objective(task, model, outputs, batch).logs["base_term"]
    energy = task.h(outputs, task.target(batch)[None]).mean()
    torch.testing.assert_close(logged, energy.detach())
    assert not torch.isclose(logged, task.loss(model, outputs, batch, task.target(batch)))


def test_presets_bind_the_authors_settings() -> None:
    setup_gin()
    expected = {
        "dlc_prise": dict(samples=8, lam=0.5, mu=1.0, weight=5.0, aggregate="sum"),
        "dlc_authors_generic": dict(samples=10, mu=0.3, weight=0.5, learn_lam=True),
        "dlc_prnet_demo": dict(samples=3, aggregate="max", weight=1.5, learn_lam=True,
                               learn_mu=True),
    }
    for name, values in expected.items():
        gin.clear_config()
        gin.parse_config_file(str(GIN_ROOT / "objectives" / f"{name}.gin"))
        objective = DLC()
        for key, value in values.items():
            got = objective.mu if key == "mu" else objective.options[key]
            assert got == value, (name, key, got)
    gin.clear_config()



# --- item 6c: the PRISE preset on a 2-example batch, by hand --------------------------------------
# s = 8, t = 5: canonical template corners sit at c = (8 - 5) / 2 = 1.5 px. With w* = 0 the label
# is H* = [[1, 0, 1.5], [0, 1, 1.5], [0, 0, 1]]; delta_j = r_j H*_j leaves its zero entries at 0,
# so w* + lam delta maps corner (x, y) in {0, 4}^2 to offsets lam (r0 x + 1.5 r2, r4 y + 1.5 r5).
# With h(w) = sum_k (w_k - 1)^2 over the 8 offsets, h(lam u) = lam^2 |u|^2 - 2 lam sum u + 8.
# Example 1: r = (.05, .03, -.04, .02, .06, -.05, .03, .02): u_x in {-.06, .14}, u_y in
#   {-.075, .165}; sum u = .34, |u|^2 = .1121, sum r^2 = .0128.
#   +r: h~ = 7.4321, h_l = 7.688025 -> T1 = .311975, T2 = .5679 + .0064 = .5743,
#       T3 = 7.688025 - 4 - 3.71605 + .0016 < 0 -> 0.   -r: h~ = 8.7921, h_l = 8.368025 -> all 0.
# Example 2: r = (-.07, .04, .08, -.03, .02, .05, -.06, .025): u_x in {.12, -.16}, u_y in
#   {.075, .155}; sum u = .38, |u|^2 = .1393, sum r^2 = .020925.
#   +r: h~ = 7.3793, h_l = 7.654825 -> T1 = .345175, T2 = .6207 + .0104625 = .6311625, T3 = 0.
#   -r: h~ = 8.9193, h_l = 8.414825 -> all 0.
# PRISE's option1 adds mu lam^2 sum r^2 / 2 inside T1: + .0016 (ex. 1), + .002615625 (ex. 2).
PRISE_R = [[0.05, 0.03, -0.04, 0.02, 0.06, -0.05, 0.03, 0.02],
           [-0.07, 0.04, 0.08, -0.03, 0.02, 0.05, -0.06, 0.025]]
PRISE_EXPECTED = {  # per example, sum over the 2 antithetic samples: (T1, T2, T3)
    "option2": [(0.311975, 0.5743, 0.0), (0.345175, 0.6311625, 0.0)],
    "option1": [(0.313575, 0.5743, 0.0), (0.347790625, 0.6311625, 0.0)],
}


class _Protocol:
    input_size, template_size = 8, 5


class _HomographyStub:
    family, mu, protocol = "homography", 0.0, _Protocol()


def _prise_objective(option: str) -> DLC:
    setup_gin()
    gin.clear_config()
    gin.parse_config_file(str(GIN_ROOT / "objectives" / "dlc_prise.gin"))
    gin.parse_config("bench.objectives.DLC.samples = 2")  # one draw, both signs
    if option == "option2":
        gin.parse_config("bench.objectives.DLC.t1_margin = False")
    try:
        objective = DLC()
    finally:
        gin.clear_config()
    objective.setup(_HomographyStub())
    r = torch.tensor(PRISE_R, dtype=torch.float64)
    objective.star.space._draw = lambda shape, target, generator: r[None]
    return objective


@pytest.mark.parametrize("option", ["option1", "option2"])
def test_prise_preset_reproduces_a_hand_computed_hinge(option: str) -> None:
    objective = _prise_objective(option)
    target = torch.zeros(2, 4, 2, dtype=torch.float64)

    def h(w: torch.Tensor) -> torch.Tensor:
        return (w - 1).pow(2).sum((-1, -2))

    result = objective.star(h, target)
    expected = torch.tensor(PRISE_EXPECTED[option], dtype=torch.float64)  # [B, 3]
    got = torch.stack([result.terms[k].sum(0) for k in ("t1", "t2", "t3")], -1)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(result.hinge, expected.sum(-1).mean(), atol=1e-6, rtol=0)
    total = 8.0 + 5.0 * expected.sum(-1).mean()  # beta = 5
    torch.testing.assert_close(result.total, total, atol=5e-6, rtol=0)


# --- done-when: the presets in the smoke matrix ---------------------------------------------------
def test_presets_run_in_the_smoke_matrix_where_they_apply_and_skip_with_a_reason(
        tmp_path) -> None:
    from bench.runner.matrix import expand_cells, load_matrix

    presets = ["dlc_prise", "dlc_authors_generic", "dlc_prnet_demo", "dlc_prnet_demo_ft"]
    cells = []
    for part in load_matrix(GIN_ROOT / "matrices" / "smoke.gin"):
        part.objectives = presets
        cells += expand_cells(part, tmp_path)
    runs = {(c.task, c.model, c.objective) for c in cells if not c.skip_reason}
    assert runs == {
        ("homography_synthetic_thermal", "deeplk", "dlc_prise"),
        ("homography_synthetic_thermal", "dhn", "dlc_prise"),
        ("sequence_copy", "gru", "dlc_authors_generic"),
        ("sequence_digits", "gru", "dlc_authors_generic"),
        ("registration_synthetic_dcp", "dcp", "dlc_prnet_demo"),
        ("registration_synthetic_dcp", "dcp", "dlc_prnet_demo_ft"),
        ("registration_synthetic_dcp", "dcp", "plain"),  # the fine-tuning parent, added
        ("registration_synthetic_dcp", "feature_icp", "dlc_prnet_demo"),
        ("registration_synthetic_dcp", "feature_icp", "dlc_prnet_demo_ft"),
        ("registration_synthetic_dcp", "feature_icp", "plain"),
    }
    reasons = {c.objective: c.skip_reason for c in cells
               if c.skip_reason and c.model in ("conv1d", "gru", "deeplk", "dcp")}
    assert "PRISE perturbs a homography label" in reasons["dlc_prise"]
    assert "cross-entropy on one-hot class labels" in reasons["dlc_authors_generic"]
    assert "rigid-transform label" in reasons["dlc_prnet_demo"]
