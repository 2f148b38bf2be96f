"""Sweeps declared in gin: search spaces per objective, samplers, and trials as ordinary cells.

A sweep file (`gin/sweeps/<name>.gin`) binds `bench.sweep.Sweep`; a matrix points to it with
`bench.matrix.Matrix.sweep = 'sweeps/<name>.gin'`:

    bench.sweep.Sweep:
        spaces = {
            'plain': {'bench.run.Experiment.lr': {'min': 1e-3, 'max': 3e-2, 'scaling': 'log'}},
            'dlc': {'bench.run.Experiment.lr': {'min': 1e-3, 'max': 3e-2, 'scaling': 'log'},
                    'bench.objectives.DLC.weight': {'feasible_points': [0.1, 1.0, 10.0]}},
        }
        trials = 8               # or {'plain': 8, 'dlc': 8}: equal unless --allow-unequal-budgets
        sampler = 'halton'       # 'halton' | 'sobol' (scipy.stats.qmc) | 'random' | 'tpe' (Optuna)
        seed = 0
        metric = {'alignment1d': 'distance', 'sequence_digits': 'accuracy'}  # task or family
        direction = {'alignment1d': 'min', 'sequence_digits': 'max'}       # (or one for all;
                                 # unset: the task's facts, `bench.tasks.facts.Facts.selection`)
        iterate = 'final'        # 'final' | 'best' (over the validation evaluations recorded)
        final_seeds = [100, 101, 102, 103, 104]
        budgets = [1, 4]         # smaller budgets whose winners (best of the first b trials) also
                                 # run on the final seeds: the test-score-vs-budget figure
        budget0 = True           # the one-shot defaults also run on the final seeds
        tuning_seeds = [0, 1]    # each trial's seeds (at least 2; selection on their mean);
                                 # empty: the matrix's seeds
        design = 'nested'        # 'quasirandom' (above) | 'nested': every axis a grid of
        resolution = {'bench.run.Experiment.lr': 8, 'bench.objectives.DLC.weight': 3}
                                 # points per range axis, trials = the product of the axes' grids
        rungs = [0.2]            # successive halving at these fractions of the epochs
        reduction_factor = {'plain': 2, 'dlc': 24}  # (bench.protocol.halving; one int for all)

Search spaces use AlgoPerf's vocabulary: `{'min', 'max', 'scaling': 'log'|'linear'}` or
`{'feasible_points': [...]}`; keys are ordinary gin bindings (a feasible point written as a string
starting with `@` or `%` is a gin reference or macro, e.g. `'@torch.optim.SGD'`).

Nested design: every axis is a grid (feasible points, or `resolution[axis]` points spaced on its
scaling, both ends included) and an objective's trials are the product of its axes' grids, shared
axes varying fastest: every DLC weight is crossed with every learning rate plain gets.

The protocol's budget rule (`check_budgets`): every objective of a comparison gets the same tuning
COMPUTE, counted in full-budget-equivalent trials (`bench.protocol.halving.planned_compute`: epochs summed
over trials, pruned ones and restarts included, over the full epochs), equal to within one trial;
not the same number of points. The resolution rule (`check_resolution`): every objective gets, at
each value of its own axes, every point plain gets on the shared axes.

Quasi-random points: every axis of the sweep gets one dimension of ONE scrambled Halton (or Sobol)
sequence of fixed seed. Axes every objective shares (the learning rate) come first, sorted by
name, then the others, sorted: a shared axis therefore has the same dimension, hence the same
points, for every objective, whatever other axes an objective adds.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gin
import numpy as np
from scipy.stats import qmc

from bench.runner import recorded_facts as facts
from bench.runner.config import ConfigError, parsed

SAMPLERS = ("halton", "sobol", "random", "tpe")
DESIGNS = ("quasirandom", "nested")
BASELINE = "plain"
MIN_TUNING_SEEDS = 2
ITERATES = ("final", "best")
DIRECTIONS = ("min", "max")
MAX_AXES = 32  # quasi-random dimensions drawn (see unit_points)
EVAL_SPLIT = "bench.run.Experiment.eval_split"  # the binding that picks the evaluated split


@gin.configurable(module="bench.sweep")
@dataclass
class Sweep:
    """A sweep file's content (see the module docstring). `source` is the file it came from."""

    spaces: Mapping[str, Mapping[str, Mapping[str, Any]]] = field(default_factory=dict)
    trials: int | Mapping[str, int] = 0
    sampler: str = "halton"
    seed: int = 0
    metric: str | Mapping[str, str] = ""
    direction: str | Mapping[str, str] = ""
    iterate: str = "final"
    final_seeds: Sequence[int] = ()
    budgets: Sequence[int] = ()
    budget0: bool = True
    tuning_seeds: Sequence[int] = ()
    design: str = "quasirandom"
    resolution: Mapping[str, int] = field(default_factory=dict)
    rungs: Sequence[float] = ()
    reduction_factor: int | Mapping[str, int] = 3
    source: str = ""

    def budget(self, objective: str) -> int:
        """Number of trials (points) of `objective`: the product of its grids in a nested design."""
        if self.design == "nested":
            return math.prod(len(grid(self, objective, key)) for key in self.spaces[objective])
        return int(self.trials[objective] if isinstance(self.trials, Mapping) else self.trials)

    def eta(self, objective: str) -> int:
        """The successive-halving reduction factor of `objective`."""
        value = self.reduction_factor
        return int(value[objective] if isinstance(value, Mapping) else value)

    def compute(self, objective: str) -> float:
        """Planned tuning compute of `objective` per tuning seed, in full-budget-equivalent
        trials (`bench.protocol.halving.planned_compute`; the number of trials without rungs)."""
        from bench.protocol.halving import planned_compute

        return planned_compute(self.budget(objective), self.eta(objective), self.rungs)

    def metric_of(self, task: str) -> tuple[str, str]:
        """(selection metric, direction) for a task: the sweep's entry for the task's name, else
        for its family (`bench.runner.recorded_facts.family_of`), else the task's facts
        (`Facts.selection`). A metric the sweep names without a direction is refused."""
        metric, direction = _per_task(self.metric, task), _per_task(self.direction, task)
        if not metric:
            metric, direction = facts.lookup(task).selection
        elif not direction:
            raise ConfigError(f"{line_of(self.source, 'direction')}: bench.sweep.Sweep.direction "
                              f"has no entry for task {task!r} or its family, whose metric "
                              f"{metric!r} the sweep names")
        return metric, direction


def _per_task(value: str | Mapping[str, str], task: str) -> str:
    """The entry of `value` (one for all, or by task, then by family) for `task`; '' if none."""
    if isinstance(value, str):
        return value
    for key in (task, facts.family_of(task)):
        if key in value:
            return value[key]
    return ""


def line_of(path: str, text: str) -> str:
    """'file, line N' of the first line of `path` containing `text` (else just the file)."""
    try:
        for num, line in enumerate(Path(path).read_text().splitlines(), start=1):
            if text in line:
                return f"{path}, line {num}"
    except OSError:
        pass
    return path


def load_sweep(path: Path) -> Sweep:
    """Parse a sweep file in a clean gin state and check it; raises `ConfigError` (file, line)."""
    with parsed([path]):
        sweep = Sweep()
    sweep.source = str(path)
    check_sweep(sweep)
    return sweep


def check_sweep(sweep: Sweep) -> None:
    """Every field well-formed: known sampler/iterate/direction, a positive budget per objective,
    and every search space in AlgoPerf's vocabulary."""
    where = sweep.source
    if sweep.sampler not in SAMPLERS:
        raise ConfigError(f"{line_of(where, 'sampler')}: sampler {sweep.sampler!r}: expected one "
                          f"of {', '.join(SAMPLERS)}")
    if sweep.iterate not in ITERATES:
        raise ConfigError(f"{line_of(where, 'iterate')}: iterate {sweep.iterate!r}: expected "
                          "'final' or 'best'")
    directions = [sweep.direction] if isinstance(sweep.direction, str) else sweep.direction.values()
    for direction in directions:
        if direction not in DIRECTIONS:
            raise ConfigError(f"{line_of(where, 'direction')}: direction {direction!r}: expected "
                              "'min' or 'max'")
    if not sweep.spaces:
        raise ConfigError(f"{where}: bench.sweep.Sweep.spaces is empty")
    if sweep.design not in DESIGNS:
        raise ConfigError(f"{line_of(where, 'design')}: design {sweep.design!r}: expected one of "
                          f"{', '.join(DESIGNS)}")
    for objective, space in sweep.spaces.items():
        if sweep.design == "nested":
            for key, spec in space.items():
                count = sweep.resolution.get(key)
                if "feasible_points" not in spec and not (isinstance(count, int) and count >= 2):
                    raise ConfigError(f"{line_of(where, 'resolution')}: a nested design needs "
                                      f"resolution[{key!r}] (an integer >= 2), got {count!r}")
        try:
            budget = sweep.budget(objective)
        except KeyError:
            raise ConfigError(f"{line_of(where, 'trials')}: trials has no entry for objective "
                              f"{objective!r}") from None
        if budget < 1:
            raise ConfigError(f"{line_of(where, 'trials')}: objective {objective!r} has {budget} "
                              "trials; a sweep needs at least 1")
        if not space:
            raise ConfigError(f"{line_of(where, repr(objective))}: objective {objective!r} has an "
                              "empty search space")
        for key, spec in space.items():
            _check_spec(key, spec, f"{line_of(where, repr(key))}: {objective!r} axis {key!r}")
    _check_protocol(sweep)
    smallest = min(sweep.budget(o) for o in sweep.spaces)
    for budget in sweep.budgets:
        if not (isinstance(budget, int) and 1 <= budget < smallest):
            raise ConfigError(f"{line_of(where, 'budgets')}: budget {budget!r}: expected an "
                              f"integer from 1 to {smallest - 1} (below the number of trials)")


def _check_protocol(sweep: Sweep) -> None:
    """Tuning seeds, rungs and reduction factors well-formed and compatible with the sampler."""
    where = sweep.source
    seeds = list(sweep.tuning_seeds)
    if seeds and (len(set(seeds)) < MIN_TUNING_SEEDS
                  or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)):
        raise ConfigError(f"{line_of(where, 'tuning_seeds')}: tuning_seeds {seeds!r}: expected at "
                          f"least {MIN_TUNING_SEEDS} distinct integers")
    rungs = list(sweep.rungs)
    if not rungs:
        return
    if not all(isinstance(r, (int, float)) and 0 < r < 1 for r in rungs) \
            or any(b <= a for a, b in zip(rungs, rungs[1:])):
        raise ConfigError(f"{line_of(where, 'rungs')}: rungs {rungs!r}: expected increasing "
                          "fractions of the epochs between 0 and 1")
    if sweep.sampler == "tpe" or sweep.budgets:
        raise ConfigError(f"{line_of(where, 'rungs')}: rungs (successive halving) need a batch "
                          "sampler (not 'tpe') and no smaller `budgets`")
    for objective in sweep.spaces:
        try:
            eta = sweep.eta(objective)
        except KeyError:
            eta = None
        if not (isinstance(eta, int) and eta >= 2):
            raise ConfigError(f"{line_of(where, 'reduction_factor')}: reduction_factor of "
                              f"{objective!r} is {eta!r}: expected an integer >= 2")


def grid(sweep: Sweep, objective: str, key: str) -> list[Any]:
    """The nested design's points of axis `key` of `objective`: its feasible points, or
    `sweep.resolution[key]` points spaced on its scaling with both ends included."""
    spec = sweep.spaces[objective][key]
    if "feasible_points" in spec:
        return list(spec["feasible_points"])
    count = int(sweep.resolution[key])
    return [scale_value(spec, i / (count - 1)) for i in range(count)]


def _check_spec(key: str, spec: Any, where: str) -> None:
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{where}: expected a dict like {{'min': .., 'max': .., 'scaling': "
                          f"'log'}} or {{'feasible_points': [..]}}, got {spec!r}")
    if "." not in key:
        raise ConfigError(f"{where}: a search-space key must be a gin binding such as "
                          "'bench.run.Experiment.lr'")
    if set(spec) == {"feasible_points"}:
        if not isinstance(spec["feasible_points"], (list, tuple)) or not spec["feasible_points"]:
            raise ConfigError(f"{where}: feasible_points must be a non-empty list")
        return
    if set(spec) != {"min", "max", "scaling"}:
        raise ConfigError(f"{where}: expected keys min, max, scaling (or feasible_points alone), "
                          f"got {sorted(spec)}")
    low, high, scaling = spec["min"], spec["max"], spec["scaling"]
    if scaling not in ("log", "linear"):
        raise ConfigError(f"{where}: scaling {scaling!r}: expected 'log' or 'linear'")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)) \
            or not low < high:
        raise ConfigError(f"{where}: expected numbers min < max, got min={low!r}, max={high!r}")
    if scaling == "log" and low <= 0:
        raise ConfigError(f"{where}: log scaling needs min > 0, got {low!r}")


def check_budgets(sweep: Sweep, objectives: Sequence[str], allow_unequal: bool = False) -> None:
    """Every objective of the comparison has a search space and the same planned tuning compute
    (full-budget-equivalent trials per tuning seed, `Sweep.compute`) to within one trial."""
    missing = [o for o in objectives if o not in sweep.spaces]
    if missing:
        raise ConfigError(f"{sweep.source}: no search space for objective(s) {missing} of the "
                          f"matrix (the sweep has {sorted(sweep.spaces)})")
    compute = {o: round(sweep.compute(o), 3) for o in objectives}
    if max(compute.values()) - min(compute.values()) >= 1 and not allow_unequal:
        raise ConfigError(f"{line_of(sweep.source, 'trials')}: unequal tuning budgets: compute "
                          f"in full-budget-equivalent trials {compute}: a fair comparison gives "
                          "every objective the same compute, to within one trial (pass "
                          "--allow-unequal-budgets to run it anyway)")


def check_resolution(sweep: Sweep, points: Mapping[str, Sequence[Mapping[str, Any]]],
                     baseline: str = BASELINE) -> None:
    """Equal resolution on shared axes: for every objective and every value of its own axes, the
    trials hold every point the baseline gets on the axes they share (a nested design does;
    quasi-random points spread over (lr, weight) do not). Nothing to check without a baseline."""
    if baseline not in points:
        return
    for objective, trials in points.items():
        shared = sorted(set(sweep.spaces[baseline]) & set(sweep.spaces[objective]))
        wanted = {tuple(p[k] for k in shared) for p in points[baseline]}
        by_rest: dict[tuple, set] = {}
        for params in trials:
            rest = tuple((k, repr(v)) for k, v in sorted(params.items()) if k not in shared)
            by_rest.setdefault(rest, set()).add(tuple(params[k] for k in shared))
        for rest, seen in by_rest.items():
            if not wanted <= seen:
                raise ConfigError(f"{line_of(sweep.source, 'design')}: objective {objective!r} "
                                  f"at {dict(rest)} gets {len(seen & wanted)} of the "
                                  f"{len(wanted)} points {baseline!r} gets on {shared}: use "
                                  "design = 'nested' (equal resolution on shared axes)")


def axes(sweep: Sweep, objectives: Sequence[str]) -> list[str]:
    """The sweep's axes in quasi-random dimension order: axes shared by every objective first
    (sorted), then the rest (sorted)."""
    spaces = [set(sweep.spaces[o]) for o in objectives]
    shared = set.intersection(*spaces) if spaces else set()
    return sorted(shared) + sorted(set.union(*spaces) - shared) if spaces else []


def unit_points(sampler: str, dimensions: int, count: int, seed: int) -> np.ndarray:
    """(count, dimensions) points in [0, 1): scrambled Halton / Sobol (scipy.stats.qmc), or
    uniform random (numpy), all from `seed`.

    The sequence is always drawn in `MAX_AXES` dimensions and cut to the first `dimensions`, so
    dimension j holds the same points however many axes a sweep has (Sobol's scrambling and a
    random matrix would otherwise change with the dimension count).
    """
    if dimensions > MAX_AXES:
        raise ConfigError(f"a sweep has at most {MAX_AXES} axes, this one has {dimensions}")
    if sampler == "halton":
        points = qmc.Halton(d=MAX_AXES, scramble=True, seed=seed).random(count)
    elif sampler == "sobol":
        with warnings.catch_warnings():  # balance properties need 2^m points; any count is fine here
            warnings.simplefilter("ignore", UserWarning)
            points = qmc.Sobol(d=MAX_AXES, scramble=True, seed=seed).random(count)
    elif sampler == "random":
        points = np.random.default_rng(seed).random((count, MAX_AXES))
    else:
        raise ValueError(f"unit_points: no batch sampler {sampler!r}")
    return points[:, :dimensions]


def scale_value(spec: Mapping[str, Any], u: float) -> Any:
    """Map u in [0, 1) to a value of the axis `spec` (log, linear or a feasible point)."""
    if "feasible_points" in spec:
        points = spec["feasible_points"]
        return points[min(int(u * len(points)), len(points) - 1)]
    low, high = float(spec["min"]), float(spec["max"])
    if spec["scaling"] == "log":
        value = math.exp(math.log(low) + u * (math.log(high) - math.log(low)))
    else:
        value = low + u * (high - low)
    return float(f"{value:.6g}")  # readable gin files; 6 significant digits


def sample_params(sweep: Sweep, objectives: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """objective -> one dict {binding: value} per trial, for the batch samplers (not 'tpe'); in
    a nested design the product of the axes' grids, shared axes varying fastest."""
    order = axes(sweep, objectives)
    if sweep.design == "nested":
        out = {}
        for o in objectives:
            keys = [k for k in reversed(order) if k in sweep.spaces[o]]  # shared axes last
            out[o] = [dict(zip(keys, values))
                      for values in itertools.product(*(grid(sweep, o, k) for k in keys))]
        return out
    count = max(sweep.budget(o) for o in objectives)
    points = unit_points(sweep.sampler, len(order), count, sweep.seed)
    return {o: [{key: scale_value(sweep.spaces[o][key], float(points[t, order.index(key)]))
                 for key in sorted(sweep.spaces[o])} for t in range(sweep.budget(o))]
            for o in objectives}


def binding_text(key: str, value: Any) -> str:
    """`key = value` as a gin binding; strings starting with @ or % stay references/macros."""
    if isinstance(value, str) and value[:1] in ("@", "%"):
        return f"{key} = {value}"
    return f"{key} = {value!r}"


def tpe_params(sweep: Sweep, objective: str, history: Sequence[tuple[dict[str, Any], float]],
               direction: str, trial: int) -> dict[str, Any]:
    """Next point of Optuna's TPE for `objective` given the finished (params, score) history.

    The sampler is seeded with `seed + trial`, so the same history always gives the same point
    (a resumed sweep asks again and gets the same answer).
    """
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = sweep.spaces[objective]
    dists = {k: CategoricalDistribution(list(s["feasible_points"])) if "feasible_points" in s
             else FloatDistribution(float(s["min"]), float(s["max"]), log=s["scaling"] == "log")
             for k, s in space.items()}
    study = optuna.create_study(direction="minimize" if direction == "min" else "maximize",
                                sampler=optuna.samplers.TPESampler(seed=sweep.seed + trial))
    for params, score in history:
        if np.isfinite(score):
            study.add_trial(optuna.trial.create_trial(params=params, distributions=dists,
                                                      value=score))
    asked = study.ask(dists)
    return {k: (float(f"{v:.6g}") if isinstance(v, float) else v) for k, v in asked.params.items()}
