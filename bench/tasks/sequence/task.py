"""Task family `sequence`: training recurrent networks, with and without DLC.

Protocols: the adding and copy-memory problems (Hochreiter & Schmidhuber 1997, in the form of
Arjovsky et al. 2016), sequential and permuted MNIST (Le et al. 2015; pixels normalised with
(0.1307, 0.3081), permutation seed 12008 as in the SBO-RNN code), their offline analogue on
scikit-learn's 8x8 digits, and MNIST-1D (Greydanus 2020).

How the family maps onto `bench.tasks.base.Task` (outputs are the network's read-outs
`[B, L + 1, O]`, see `bench.tasks.sequence.models.Recurrent`):

* classification (`Digits`, `MNIST1D`, `MNIST`, in `bench.tasks.sequence.classification`): w* = one-hot label `[B, C]` on the simplex;
  `h(w) = -sum_c w_c log softmax(z_L)_c`, the cross-entropy of the last read-out against a target
  distribution w (linear in w); `loss` = mean h(w*), the usual CE.
* regression (`Adding`): w* = the sum `[B, 1]`, Euclidean; `h(w) = (y_L - w)^2`; `loss` = MSE.
* per-step classification (`Copy`): w* = the one-hot target of every step, flattened into the
  batch: `[B * L, C]` (the `dlc.Simplex` space is per row, so each step is one DLC example);
  `h` is the per-step CE and `loss` its mean over all B * L steps, the usual copy-task loss.
* `solve`: the test-time iterative method of an RNN is its recurrence. The iterates are the
  predictions read out after `checkpoints` evenly spaced portions of the sequence (after 0, L/K,
  ..., L steps): class probabilities / the scalar; for `Copy`, steps not read yet carry the
  initial state's read-out. `[K + 1, B, ...]`, the last one the final prediction.
* `extras`: per checkpoint `accuracy` (percent) / `mse` / `ce` (copy: `ce` and
  `recall_accuracy`), each beside `trivial_<name>`, its trivial baseline as a constant row, so
  that tables can show both and `Escaped` can tell whether a run left the plateau.

Trivial baselines (`task.trivial`): adding MSE 1/6 (predict 1), copy CE 10 ln 8 / (T + 20)
(blank, then uniform over the alphabet) and recall accuracy 1/8, C-way classification accuracy
1/C and CE ln C. The optimum of every loss is `task.optimum = 0`, so the per-epoch training
`train_original` recorded by the runner is the optimality gap (`optimality_gap`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import gin
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bench.metrics import Metric, Trace
from bench.tasks.base import Batch, Task
from bench.tasks.dataset_cache import cached_dataset
from bench.tasks.facts import Facts, TaskFacts
from bench.tasks.forms import Base, Forms, HForm
from bench.tasks.sequence import generators
from bench.tasks.sequence.models import SequenceModel
from dlc import Euclidean, Simplex, Space

RECIPE_VERSION = 1  # bump when a generator changes: it is part of the cache key


# --- plateau escape ---------------------------------------------------------------------------
def escaped(value: float, trivial: float, direction: Literal["min", "max"],
            margin: float = 0.5, best: float | None = None) -> bool:
    """Whether a final metric `value` left the trivial plateau.

    True when `value` closes at least `margin` of the gap between the trivial baseline and the
    best possible value `best` (default 0 for direction 'min', e.g. MSE / CE, and 100 for 'max',
    e.g. accuracy in percent): for 'min', value <= trivial - margin * (trivial - best).
    A non-finite value never escapes.
    """
    if direction not in ("min", "max"):
        raise ValueError(f"direction must be 'min' or 'max', got {direction!r}")
    if not math.isfinite(value):
        return False
    best = (0.0 if direction == "min" else 100.0) if best is None else best
    threshold = trivial + margin * (best - trivial)
    return value <= threshold if direction == "min" else value >= threshold


@gin.configurable(module="bench.tasks.sequence.task")
class Escaped(Metric):
    """1.0 where the mean of `trace.extras[key]` escapes its trivial baseline
    `trace.extras['trivial_' + key]` (see `escaped`), else 0.0, per checkpoint; named
    `escaped_<key>`. Averaged over seeds it is the share of seeds that escape the plateau.

    Args:
        key: the extra to judge ('mse', 'ce', 'accuracy', ...).
        direction: that extra's direction ('min' or 'max'); this metric itself is 'max'.
        margin, best: see `escaped`.
    """

    direction = "max"

    def __init__(self, key: str = "accuracy", direction: Literal["min", "max"] = "max",
                 margin: float = 0.5, best: float | None = None) -> None:
        self.key, self.key_direction, self.margin, self.best = key, direction, margin, best
        self.name = f"escaped_{key}"

    def __call__(self, trace: Trace) -> torch.Tensor:
        for name in (self.key, f"trivial_{self.key}"):
            if name not in trace.extras:
                raise KeyError(f"metric {self.name!r}: the task records only {sorted(trace.extras)}")
        values = trace.extras[self.key].mean(dim=1).tolist()
        trivials = trace.extras[f"trivial_{self.key}"].mean(dim=1).tolist()
        return torch.tensor([float(escaped(v, t, self.key_direction, self.margin, self.best))
                             for v, t in zip(values, trivials)], dtype=torch.float64)


# --- the family's base class --------------------------------------------------------------------
#: what reports, verdicts and sweeps know about the family (`bench.tasks.facts`)
FACTS = Facts(
    family="sequence",
    units={"ce": "nats", "distance": "probability (ℓ2)", "h": "nats", "base_loss": "nats",
           "slice": "× sampling radius",
           "slice_note": "softmax projection: t = 0 is softmax(w*), not w*,\n"
                         "so the curve need not pass through 0"},
    iteration="read-out checkpoint along the sequence (0: initial state)",
    figure_metrics=("distance", "optimality_gap"),
    selection=("accuracy", "max"),
    tasks={"sequence_adding": TaskFacts(units={"distance": "absolute error", "h": "squared error",
                                               "base_loss": "squared error", "slice_note": ""},
                                        selection=("mse", "min")),
           "sequence_copy": TaskFacts(selection=("recall_accuracy", "max"))},
)


@gin.configurable(module="bench.tasks.sequence.task")
class SequenceTask(Forms, Task):
    """Shared machinery; subclasses define the data, `input_size`, `output_size` and `trivial`.

    Args:
        checkpoints: K, the number of evenly spaced read-outs after the initial one (iterates
            [K + 1, B, ...]).
        space: DLC target space (bound in the task's gin file).
        metrics, mu, data_seed: see `bench.tasks.base.Task`.
        h, base: DLC's h and base term (`bench.tasks.forms`), bound for the whole family as
            `bench.tasks.sequence.task.SequenceTask.h`. Only h = 'output' (the loss of the
            read-out at a perturbed label) exists: no test-time solver descends it (the
            recurrence is not an optimiser of h), so DLC on this family is DLC-style, not DLC.
            base 'h' and 'method' coincide (the method's loss is mean h(w*)).
        divergence: the class-label `h` (classification and copy): 'ce', the cross-entropy
            `-sum_c w_c log p_c` (linear in w, never strongly star-convex), or 'kl',
            `KL(w || p) = sum_c w_c log w_c - sum_c w_c log p_c`, which equals the CE at a one-hot
            w* (the same loss for `plain`) and is 1-strongly convex in w on the simplex
            (Hessian diag(1/w_c) >= I). Bound as `bench.tasks.sequence.task.SequenceTask.divergence`.
    """

    family = "sequence"
    facts = FACTS
    offered_h = ("output",)
    dlc_style = True
    forms_configurable = "SequenceTask"
    kind: ClassVar[Literal["classification", "regression", "per_step"]] = "classification"
    optimum: ClassVar[float] = 0.0  # the minimum of every loss of the family (CE, MSE)
    name: ClassVar[str] = ""

    def __init__(self, checkpoints: int = 8, space: Space | None = None,
                 metrics: Sequence[Any] = (), mu: float = 0.0, data_seed: int = 0,
                 h: HForm = "output", base: Base = "method",
                 divergence: Literal["ce", "kl"] = "ce") -> None:
        super().__init__(metrics=metrics, mu=mu, data_seed=data_seed)
        self.set_forms(h, base)
        if divergence not in ("ce", "kl") or (divergence == "kl" and self.kind == "regression"):
            raise ValueError("SequenceTask.divergence must be 'ce' or 'kl' ('kl' for class "
                             f"labels only), got {divergence!r} for {type(self).__name__}")
        self.divergence = divergence
        if checkpoints < 1:
            raise ValueError(f"checkpoints must be >= 1, got {checkpoints}")
        self.checkpoints = checkpoints
        default = Euclidean(scale=0.5) if self.kind == "regression" else Simplex(scale=1.0)
        self._space = space if space is not None else default

    # --- to define in subclasses ----------------------------------------------------------------
    input_size: int
    output_size: int

    @property
    def trivial(self) -> dict[str, float]:
        """Trivial baseline of each extra (a memoryless / constant predictor)."""
        raise NotImplementedError

    def _params(self, split: str) -> dict[str, Any]:
        """Everything that determines the data of `split` (the cache key)."""
        raise NotImplementedError

    def _build(self, split: str) -> dict[str, np.ndarray]:
        """Generate `split`: columns `x` and `y`."""
        raise NotImplementedError

    def inputs(self, batch: Batch) -> torch.Tensor:
        """Network inputs [B, L, F] from a batch."""
        return batch["x"]

    # --- contract -------------------------------------------------------------------------------
    @property
    def space(self) -> Space:
        return self._space

    def skip(self, model: nn.Module, objective: Any) -> tuple[bool, str]:
        skip, reason = super().skip(model, objective)
        if skip:
            return skip, reason
        sizes = ((model.input_size, model.output_size) if isinstance(model, SequenceModel)
                 else (None, None))
        if sizes != (self.input_size, self.output_size):
            return True, (f"model {type(model).__name__} has (input, output) sizes {sizes}, "
                          f"task {type(self).__name__} needs {(self.input_size, self.output_size)}")
        return False, ""

    def _source(self, split: str):
        """The generated 'train' or 'test' split (before the validation split is carved)."""
        params = {"recipe": RECIPE_VERSION, "split": split, **self._params(split)}
        return cached_dataset(f"sequence-{self.name}", params, lambda: self._build(split))

    def forward(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        return model(self.inputs(batch))

    def loss(self, model: nn.Module, outputs: torch.Tensor, batch: Batch,
             target: torch.Tensor) -> torch.Tensor:
        return self.h(outputs, target[None]).mean()

    def positions(self, length: int) -> torch.Tensor:
        """Read-out indices [K + 1] of the checkpoints: round(k L / K), k = 0..K (0 = initial)."""
        return torch.linspace(0, length, self.checkpoints + 1).round().long()

    def _constant(self, like: torch.Tensor, value: float) -> torch.Tensor:
        return torch.full_like(like, value)

    def label_h(self, logp: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """The class-label `h` of `divergence` for log-probabilities `logp [N, C]` and target
        distributions `w [K, N, C]` -> `[K, N]`: CE, or KL(w || p) = CE - entropy(w). Off the
        simplex (the landscape slices cross it) the entropy term uses `max(w, 0)`, so h stays
        finite there."""
        value = -(w * logp).sum(-1)
        if self.divergence == "kl":
            positive = w.clamp_min(0)
            value = value + torch.special.xlogy(positive, positive).sum(-1)
        return value


# --- the tasks ----------------------------------------------------------------------------------
@gin.configurable(module="bench.tasks.sequence.task")
class Adding(SequenceTask):
    """The adding problem: regress the sum of the two marked values of a length-T sequence.

    Args:
        length: T.
        markers: 'halves' (one marker per half) or 'uniform' (see `generators.adding`).
        n_train, n_test: dataset sizes.
        Others: see `SequenceTask`.
    """

    kind = "regression"
    name = "adding"
    input_size = 2
    output_size = 1

    def __init__(self, length: int = 200, markers: Literal["halves", "uniform"] = "halves",
                 n_train: int = 10000, n_test: int = 1000, checkpoints: int = 8,
                 space: Space | None = None, metrics: Sequence[Any] = (), mu: float = 1.0,
                 data_seed: int = 0) -> None:
        super().__init__(checkpoints, space, metrics, mu, data_seed)
        if markers not in ("halves", "uniform"):
            raise ValueError(f"markers must be 'halves' or 'uniform', got {markers!r}")
        self.length, self.markers = length, markers
        self.sizes = {"train": n_train, "test": n_test}

    @property
    def trivial(self) -> dict[str, float]:
        return {"mse": 1.0 / 6.0}

    def _params(self, split: str) -> dict[str, Any]:
        return {"n": self.sizes[split], "length": self.length, "markers": self.markers,
                "seed": self.data_seed}

    def _build(self, split: str) -> dict[str, np.ndarray]:
        seed = 2 * self.data_seed + (split == "test")
        return generators.adding(self.sizes[split], self.length, seed, self.markers)

    def target(self, batch: Batch) -> torch.Tensor:
        return batch["y"]

    def h(self, outputs: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return (outputs[:, -1, :1].float() - w).pow(2).sum(-1)

    def solve(self, model: nn.Module, outputs: torch.Tensor, batch: Batch) -> torch.Tensor:
        index = self.positions(outputs.shape[1] - 1).to(outputs.device)
        return outputs[:, index, :1].float().transpose(0, 1)  # [K + 1, B, 1]

    def extras(self, model: nn.Module, outputs: torch.Tensor, batch: Batch,
               iterates: torch.Tensor) -> dict[str, torch.Tensor]:
        mse = (iterates - batch["y"][None]).pow(2).sum(-1)
        return {"mse": mse, "trivial_mse": self._constant(mse, self.trivial["mse"])}


@gin.configurable(module="bench.tasks.sequence.task")
class Copy(SequenceTask):
    """The copy-memory problem: reproduce `symbols` symbols after a delay T.

    Per-step targets are flattened into the batch (`target` is `[B * L, C]`, `h` `[K, B * L]`,
    L = T + 2 * symbols), so each step is one example for DLC and for the metrics; all sequences
    have the same length, so means over rows are means over sequences.

    Extras: `ce` per step (trivial 10 ln 8 / (T + 20)); `recall_accuracy`, the accuracy on the
    last `symbols` steps (trivial 100 / alphabet), stored as 100 * correct * L / symbols on those
    rows and 0 on the others, so that its mean over rows is the recall accuracy.

    Args:
        delay: T.
        symbols, alphabet: symbols to remember and their alphabet size.
        n_train, n_test: dataset sizes.
        Others: see `SequenceTask`.
    """

    kind = "per_step"
    name = "copy"

    def __init__(self, delay: int = 100, symbols: int = 10, alphabet: int = 8,
                 n_train: int = 10000, n_test: int = 1000, checkpoints: int = 8,
                 space: Space | None = None, metrics: Sequence[Any] = (), mu: float = 10.0,
                 data_seed: int = 0) -> None:
        super().__init__(checkpoints, space, metrics, mu, data_seed)
        self.delay, self.symbols, self.alphabet = delay, symbols, alphabet
        self.sizes = {"train": n_train, "test": n_test}
        self.input_size = alphabet + 2  # blank, symbols, delimiter
        self.output_size = alphabet + 1  # blank, symbols

    @property
    def length(self) -> int:
        return self.delay + 2 * self.symbols

    @property
    def trivial(self) -> dict[str, float]:
        return {"ce": self.symbols * math.log(self.alphabet) / self.length,
                "recall_accuracy": 100.0 / self.alphabet}

    def _params(self, split: str) -> dict[str, Any]:
        return {"n": self.sizes[split], "delay": self.delay, "symbols": self.symbols,
                "alphabet": self.alphabet, "seed": self.data_seed}

    def _build(self, split: str) -> dict[str, np.ndarray]:
        seed = 2 * self.data_seed + (split == "test")
        return generators.copy_memory(self.sizes[split], self.delay, seed, self.symbols,
                                      self.alphabet)

    def inputs(self, batch: Batch) -> torch.Tensor:
        return F.one_hot(batch["x"].long(), self.input_size).float()

    def target(self, batch: Batch) -> torch.Tensor:
        return F.one_hot(batch["y"].long(), self.output_size).float().flatten(0, 1)

    def h(self, outputs: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        logp = torch.log_softmax(outputs[:, 1:].float(), dim=-1).flatten(0, 1)  # [B * L, C]
        return self.label_h(logp, w)

    def _checkpoint_logp(self, outputs: torch.Tensor) -> torch.Tensor:
        """log-probabilities [K + 1, B * L, C]: step s uses its own read-out once the checkpoint
        has read it, the initial state's read-out before."""
        logp = torch.log_softmax(outputs.float(), dim=-1)  # [B, L + 1, C]
        length = logp.shape[1] - 1
        index = self.positions(length).to(outputs.device)  # [K + 1]
        steps = torch.arange(1, length + 1, device=outputs.device)
        read = (steps[None] <= index[:, None])[:, None, :, None]  # [K + 1, 1, L, 1]
        out = torch.where(read, logp[None, :, 1:], logp[None, :, :1])  # [K + 1, B, L, C]
        return out.flatten(1, 2)

    def solve(self, model: nn.Module, outputs: torch.Tensor, batch: Batch) -> torch.Tensor:
        return self._checkpoint_logp(outputs).exp()

    def extras(self, model: nn.Module, outputs: torch.Tensor, batch: Batch,
               iterates: torch.Tensor) -> dict[str, torch.Tensor]:
        logp = self._checkpoint_logp(outputs)
        labels = batch["y"].long().flatten()  # [B * L]
        ce = -logp.gather(-1, labels[None, :, None].expand(len(logp), -1, 1))[..., 0]
        recall = torch.zeros(batch["y"].shape, dtype=torch.bool, device=labels.device)
        recall[:, -self.symbols:] = True
        correct = (logp.argmax(-1) == labels[None]).float()
        weight = 100.0 * self.length / self.symbols
        trivial = self.trivial
        return {"ce": ce, "recall_accuracy": correct * recall.flatten()[None] * weight,
                "trivial_ce": self._constant(ce, trivial["ce"]),
                "trivial_recall_accuracy": self._constant(ce, trivial["recall_accuracy"])}
