"""The DLC loss module: the task loss plus hinge penalties from mu-strong star-convexity.

The maths lives in :mod:`dlc.functional`; :class:`StarConvexLoss` holds the configuration
(space, samples, lam, mu, ...) and the learnable parameters, and composes those functions.

For a per-sample loss ``h(w)`` of the target ``w`` with ground truth ``w*`` and perturbations
``delta_s`` (``s = 1..S``), ``w~ = retract(w*, delta, 1)``, ``w_l = retract(w*, delta, lam)``,
``n2 = |delta|^2``::

    T1 = relu(h* - h_l)
    T2 = relu(h* - h~ + mu/2 * n2)
    T3 = relu(h_l - (1 - lam) h* - lam h~ + mu/2 * lam (1 - lam) n2)
    hinge = mean_b AGG_s sum_terms T(s, b)        AGG = sum or max
    total = mean_b h*(b) + weight * hinge

The aggregation over samples is per example: the inner max of the min-max problem is taken for
each data point separately, then averaged over the batch. (The authors' PRNet demo averaged over
the batch first and took the max over samples of the batch means.)
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from dlc.adversarial import projected_ascent
from dlc.functional import (
    TERMS,
    LossFn,
    aggregate_hinge,
    ascent_objective,
    hinge_terms,
    loss_at,
    margins,
    star_convex_points,
)
from dlc.spaces import Euclidean, Space

__all__ = ["StarConvexLoss", "StarConvexResult"]

_LAM_EPS = 1e-4  # learnable lam = eps + (1 - 2 eps) sigmoid(logit): strictly inside (0, 1)
# chunk_size=None: one call of h unless the stacked targets exceed this many bytes; then chunks
# of at most this size. Measured by `python -m bench.perf dlc` (MSE h, 1 CPU thread): one call is
# faster up to ~1.3 MB of stacked targets (S=16, B=1024, D=10); 2-3 chunks are 1.1-1.6x faster at
# 2.8-5.4 MB (S=8/16, B=4096), where each call's temporaries otherwise go back to the OS.
AUTO_CHUNK_BYTES = 2 * 2**20


@dataclass
class StarConvexResult:
    """What one call of :class:`StarConvexLoss` computed (``S`` samples, batch ``B``).

    ``total``, ``h_star_mean`` (mean of ``h*``) and ``hinge`` (aggregated, *unweighted*) are scalars;
    ``terms`` maps each selected term name to ``[S, B]``; ``h_star [B]``, ``h_tilde [S, B]``,
    ``h_lam [S, B]``; ``delta [S, B, *tangent]``; ``lam`` and ``mu`` are 0-dim tensors.
    """

    total: Tensor
    h_star_mean: Tensor
    hinge: Tensor
    terms: dict[str, Tensor]
    h_star: Tensor
    h_tilde: Tensor
    h_lam: Tensor
    delta: Tensor
    lam: Tensor
    mu: Tensor


def _inverse_softplus(x: float) -> float:
    return x + math.log(-math.expm1(-x))


class StarConvexLoss(nn.Module):
    """Deep Loss Convexification loss (Zhang et al., arXiv:2411.10649).

    Call as ``loss(h, target)``: ``target [B, *event]`` is the ground truth and ``h`` maps targets
    with one extra leading dim ``[K, B, *event]`` to per-sample losses ``[K, B]`` (a loss written
    with broadcasting, e.g. ``((pred[None] - w) ** 2).sum(-1)``, works unchanged). ``h`` is called
    once with ``K = 2S + 1`` (``[w*, w~_1..S, w_l_1..S]``), or in chunks (see ``chunk_size``).
    Gradients flow to whatever ``h`` closes over; targets and perturbations are constants.

    Args:
        space: label geometry (default :class:`dlc.spaces.Euclidean`).
        samples: perturbations ``S`` per example.
        lam: interpolation fraction in (0, 1); with ``learn_lam`` it is
            ``sigmoid(logit)`` squeezed into ``[1e-4, 1 - 1e-4]`` so it never reaches 0 or 1.
        mu: strong star-convexity modulus (>= 0); with ``learn_mu`` it is ``softplus(raw)``.
        weight: balance ``beta`` of the hinge against the task loss.
        terms: which of ``"t1", "t2", "t3"`` to use.
        t1_margin: add ``mu/2 * lam^2 * |delta|^2`` inside T1 (PRISE's default "option1",
            see :func:`dlc.functional.margins`).
        aggregate: ``"sum"`` or ``"max"`` over samples, per example.
        perturbation: ``"random"`` (as the public code) or ``"adversarial"`` (projected ascent on
            the hinge w.r.t. ``delta``, see :mod:`dlc.adversarial`).
        adversarial_steps, adversarial_step_size: ascent steps and their length (fraction of the
            space radius).
        chunk_size: evaluate ``h`` on at most this many of the ``K`` stacked targets at a time.
            ``None``: one call, unless the stacked targets exceed ``AUTO_CHUNK_BYTES`` (2 MiB),
            where chunks of at most that size were measured faster; an int ``>= 2S + 1``
            forces a single call.
    """

    def __init__(self, space: Space | None = None, samples: int = 4, lam: float = 0.5,
                 mu: float = 0.0, weight: float = 1.0, terms: Sequence[str] = TERMS,
                 aggregate: str = "sum", learn_lam: bool = False, learn_mu: bool = False,
                 perturbation: str = "random", adversarial_steps: int = 3,
                 adversarial_step_size: float = 0.5, chunk_size: int | None = None,
                 t1_margin: bool = False) -> None:
        super().__init__()
        _validate(samples, lam, mu, weight, terms, aggregate, learn_mu, perturbation,
                  adversarial_steps, adversarial_step_size, chunk_size)
        self.space = Euclidean() if space is None else space
        self.samples = int(samples)
        self.weight = float(weight)
        self.terms = tuple(t for t in TERMS if t in terms)
        self.t1_margin = bool(t1_margin)
        self.aggregate = aggregate
        self.perturbation = perturbation
        self.adversarial_steps = int(adversarial_steps)
        self.adversarial_step_size = float(adversarial_step_size)
        self.chunk_size = chunk_size
        self._lam, self._mu = float(lam), float(mu)
        self.lam_logit = None
        self.mu_raw = None
        if learn_lam:
            p = (lam - _LAM_EPS) / (1 - 2 * _LAM_EPS)
            self.lam_logit = nn.Parameter(torch.tensor(math.log(p / (1 - p))))
        if learn_mu:
            warnings.warn(
                "learn_mu=True: the hinge terms always decrease as mu decreases, so a learnable "
                "mu tends to the degenerate solution mu -> 0 (no strong star-convexity). In the "
                "authors' PRNet demo mu fell from exp(0.3) within one epoch while the network "
                "was frozen by a no_grad bug. Prefer a fixed mu.", UserWarning, stacklevel=2)
            self.mu_raw = nn.Parameter(torch.tensor(_inverse_softplus(mu)))

    @property
    def lam(self) -> Tensor:
        """The current interpolation fraction (0-dim; differentiable when learnable)."""
        if self.lam_logit is None:
            return torch.tensor(self._lam)
        return _LAM_EPS + (1 - 2 * _LAM_EPS) * torch.sigmoid(self.lam_logit)

    @property
    def mu(self) -> Tensor:
        """The current strong-convexity modulus (0-dim; differentiable when learnable)."""
        if self.mu_raw is None:
            return torch.tensor(self._mu)
        return nn.functional.softplus(self.mu_raw)

    def extra_repr(self) -> str:
        return (f"space={self.space!r}, samples={self.samples}, lam={float(self.lam):.4g}, "
                f"mu={float(self.mu):.4g}, weight={self.weight}, terms={self.terms}, "
                f"aggregate={self.aggregate!r}, perturbation={self.perturbation!r}")

    def _current(self, like: Tensor) -> tuple[Tensor, Tensor]:
        """``(lam, mu)`` in ``like``'s dtype/device: fixed values exactly, learnable ones
        differentiably."""
        def fixed(value: float) -> Tensor:
            return torch.tensor(value, dtype=like.dtype, device=like.device)

        lam = fixed(self._lam) if self.lam_logit is None else self.lam.to(like)
        mu = fixed(self._mu) if self.mu_raw is None else self.mu.to(like)
        return lam, mu

    def _chunk_size(self, target: Tensor) -> int | None:
        """``chunk_size`` if given, else the automatic rule (see ``AUTO_CHUNK_BYTES``)."""
        if self.chunk_size is not None:
            return self.chunk_size
        slice_bytes = target.numel() * target.element_size()
        if (2 * self.samples + 1) * slice_bytes <= AUTO_CHUNK_BYTES:
            return None
        return max(1, AUTO_CHUNK_BYTES // slice_bytes)

    def _margins(self, h: LossFn, target: Tensor, delta: Tensor, lam: Tensor,
                 mu: Tensor) -> tuple[dict[str, Tensor], Tensor, Tensor, Tensor]:
        """Evaluate ``h`` once at ``[w*, w~, w_l]``; returns margins, h_star, h_tilde, h_lam."""
        s = delta.shape[0]
        points = star_convex_points(self.space, target, delta, lam)
        values = loss_at(h, points, self._chunk_size(target))
        h_star, h_tilde, h_lam = values[0], values[1:s + 1], values[s + 1:]
        n2 = self.space.sqnorm(target, delta)
        return margins(h_star, h_tilde, h_lam, n2, lam, mu, self.terms,
                       self.t1_margin), h_star, h_tilde, h_lam

    def forward(self, h: LossFn, target: Tensor,
                generator: torch.Generator | None = None) -> StarConvexResult:
        """DLC loss of ``h`` around ``target [B, *event]``; see the class docstring."""
        self.space.check(target)
        target = target.detach()
        lam, mu = self._current(target)
        with torch.no_grad():
            delta = self.space.sample(target, self.samples, generator)
        if self.perturbation == "adversarial":
            def objective(d: Tensor) -> Tensor:
                return ascent_objective(self._margins(h, target, d, lam.detach(),
                                                      mu.detach())[0])

            delta = projected_ascent(objective, delta, self.space, target,
                                     self.adversarial_steps, self.adversarial_step_size)
        margin, h_star, h_tilde, h_lam = self._margins(h, target, delta, lam, mu)
        terms = hinge_terms(margin)
        hinge = aggregate_hinge(terms, self.aggregate)
        h_star_mean = h_star.mean()
        return StarConvexResult(total=h_star_mean + self.weight * hinge, h_star_mean=h_star_mean, hinge=hinge,
                                terms=terms, h_star=h_star, h_tilde=h_tilde, h_lam=h_lam,
                                delta=delta, lam=lam, mu=mu)


def _validate(samples: int, lam: float, mu: float, weight: float, terms: Sequence[str],
              aggregate: str, learn_mu: bool, perturbation: str, adversarial_steps: int,
              adversarial_step_size: float, chunk_size: int | None) -> None:
    """Raise ``ValueError`` naming what was expected and what was got."""
    checks = [
        (isinstance(samples, int) and samples >= 1, f"samples must be an int >= 1, got {samples!r}"),
        (0 < lam < 1, f"lam must be in (0, 1), got {lam!r}"),
        (mu >= 0, f"mu must be >= 0, got {mu!r}"),
        (not learn_mu or mu > 0, f"learn_mu=True needs mu > 0 (softplus), got mu={mu!r}"),
        (weight >= 0, f"weight must be >= 0, got {weight!r}"),
        (not isinstance(terms, str) and len(terms) > 0 and set(terms) <= set(TERMS),
         f"terms must be a non-empty subset of {TERMS}, got {terms!r}"),
        (aggregate in ("sum", "max"), f"aggregate must be 'sum' or 'max', got {aggregate!r}"),
        (perturbation in ("random", "adversarial"),
         f"perturbation must be 'random' or 'adversarial', got {perturbation!r}"),
        (isinstance(adversarial_steps, int) and adversarial_steps >= 1,
         f"adversarial_steps must be an int >= 1, got {adversarial_steps!r}"),
        (adversarial_step_size > 0, f"adversarial_step_size must be > 0, got "
                                    f"{adversarial_step_size!r}"),
        (chunk_size is None or (isinstance(chunk_size, int) and chunk_size >= 1),
         f"chunk_size must be None or an int >= 1, got {chunk_size!r}"),
    ]
    for ok, message in checks:
        if not ok:
            raise ValueError(message)
