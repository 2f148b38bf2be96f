"""Synchronous successive halving on validation at epoch checkpoints, decided by Optuna's
`SuccessiveHalvingPruner`, and the compute a halving schedule costs.

A sweep declares `rungs` as fractions of the full training budget (`[0.2]`: one rung at 20 % of
`bench.run.Experiment.epochs`) and a `reduction_factor` (one for all objectives, or one per
objective). Every objective of a task uses the same rungs (the same epochs). At rung k every
surviving trial has run `stop_epoch = rung_epochs(...)[k]` epochs of the full schedule (the same
learning-rate schedule as the full run, stopped early, then evaluated on validation); then the
whole rung is decided at once: a trial is promoted when Optuna's pruner, shown every other trial's
score at that rung, does not prune it. Decisions never depend on which worker finished first.

A promoted trial RESTARTS from scratch at the next rung (no weights, optimiser or RNG state are
carried over): training is deterministic per seed, so its first epochs retrace the rung's run, and
the full-budget cell is the ordinary trial cell whose re-run reproduces its validation score.
Compute is therefore counted with the restarts: a trial pruned after rung k cost
sum_{j<=k} rung_j epochs, a trial that reached the full budget sum_j rung_j + epochs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np


def rung_epochs(fractions: Sequence[float], epochs: int) -> list[int]:
    """The epoch of each rung for a full budget of `epochs` (rounded, at least 1). Raises
    ValueError when two rungs fall on the same epoch or a rung reaches the full budget."""
    made = [max(1, round(f * epochs)) for f in fractions]
    if any(b <= a for a, b in zip(made, made[1:])) or (made and made[-1] >= epochs):
        raise ValueError(f"rungs {list(fractions)} of {epochs} epochs give epochs {made}: "
                         f"expected increasing epochs below {epochs}")
    return made


def survivors(count: int, reduction_factor: int, rungs: int) -> list[int]:
    """Trials alive at each rung and at the full budget (length rungs + 1), without ties: the
    pruner keeps the best max(1, n // reduction_factor) of n."""
    alive = [int(count)]
    for _ in range(rungs):
        alive.append(max(1, alive[-1] // reduction_factor))
    return alive


def planned_compute(count: int, reduction_factor: int, fractions: Sequence[float]) -> float:
    """Full-budget-equivalent trials of a halving schedule per tuning seed (restarts counted):
    sum over rungs of (trials alive) x (rung fraction), plus the trials reaching the full budget."""
    alive = survivors(count, reduction_factor, len(fractions))
    return float(sum(n * f for n, f in zip(alive, fractions)) + alive[-1])


def promoted(scores: Mapping[int, float], direction: str, reduction_factor: int,
             rung: int) -> set[int]:
    """Trials (keys of `scores`: trial -> score at rung `rung`) that Optuna's
    SuccessiveHalvingPruner promotes when every trial of the rung is shown to it (synchronous
    halving: each trial is judged against all the others, whatever order they finished in).
    A non-finite score is pruned. Ties at the threshold are all promoted (Optuna's rule)."""
    import optuna
    from optuna.trial import TrialState, create_trial

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    pruner = optuna.pruners.SuccessiveHalvingPruner(min_resource=1,
                                                    reduction_factor=reduction_factor)
    step = reduction_factor ** rung  # the pruner's own step of rung `rung` (min_resource 1)
    key = f"completed_rung_{rung}"
    earlier = {f"completed_rung_{k}": 0.0 for k in range(rung)}
    finite = {t: float(v) for t, v in scores.items() if math.isfinite(v)}
    kept = set()
    for trial, value in finite.items():
        study = optuna.create_study(direction="minimize" if direction == "min" else "maximize",
                                    pruner=pruner)
        for other, score in finite.items():
            if other != trial:
                study.add_trial(create_trial(state=TrialState.PRUNED,
                                             intermediate_values={step: score},
                                             system_attrs={**earlier, key: score}))
        study.add_trial(create_trial(state=TrialState.RUNNING, intermediate_values={step: value},
                                     system_attrs=earlier))
        if not pruner.prune(study, study.get_trials(deepcopy=False)[-1]):
            kept.add(trial)
    return kept


def best_trial(scores: Mapping[int, float], direction: str) -> int | None:
    """The trial with the best finite score (ties -> lowest trial index); None when none."""
    finite = sorted((t, v) for t, v in scores.items() if math.isfinite(v))
    if not finite:
        return None
    sign = 1.0 if direction == "min" else -1.0
    return min(finite, key=lambda tv: (sign * tv[1], tv[0]))[0]


def decide(stages: Sequence[Mapping[int, float]], direction: str,
           reduction_factor: int) -> tuple[list[set[int]], int | None]:
    """Replay a halving run from its scores: `stages[k]` maps trial -> score at rung k (the last
    stage: the full budget). Returns (the trials promoted out of each rung, the winner among the
    trials whose full-budget score is known and that survived every rung)."""
    alive = set(stages[0]) if stages else set()
    kept = []
    for rung, scores in enumerate(stages[:-1]):
        alive = promoted({t: scores.get(t, np.nan) for t in alive}, direction, reduction_factor,
                         rung)
        kept.append(alive)
    final = stages[-1] if stages else {}
    return kept, best_trial({t: final.get(t, np.nan) for t in alive}, direction)
