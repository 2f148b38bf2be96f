"""The MNIST-1D reference model (Greydanus 2020, "Scaling down deep learning"): a small
bidirectional GRU whose outputs at every step are flattened into one linear read-out.

The protocol of the mnist1d repository's GRU baseline (91 % test accuracy in its README table):
hidden size 6 per direction, zero initial state, torch's default initialisation, the `[B, L, 2H]`
outputs of all L = 40 steps flattened to `[B, 2 H L]` and mapped to the 10 logits by one
`nn.Linear`. Trained by the `reference` scale (Adam 1e-2, batch 100 in order, 8000 steps).

The read-out needs the whole sequence, so the model has a single read-out: it returns
`[B, 1, O]`, and the sequence tasks' checkpoints (`SequenceTask.positions(0)`) all read that one
final prediction (the `test_iter` trace is flat). `h` and the loss read `outputs[:, -1]` as for
`Recurrent`, so every objective of the family runs unchanged.
"""

from __future__ import annotations

import gin
import torch
from torch import nn

from bench.tasks.sequence.models import SequenceModel


@gin.configurable(module="bench.tasks.sequence.reference")
class FlatGRU(SequenceModel):
    """(Bi)directional GRU, all steps' outputs flattened into one linear read-out.

    Args:
        hidden: units per direction (6 in the reference).
        steps: sequence length L the read-out is sized for (40 for MNIST-1D).
        bidirectional: run the GRU both ways (True in the reference).
        input_size: features per step F (the task's: 1).
        output_size: classes O (the task's: 10).
    """

    family = "sequence"

    def __init__(self, hidden: int = 6, steps: int = 40, bidirectional: bool = True,
                 input_size: int = 1, output_size: int = 10) -> None:
        super().__init__()
        if hidden < 1 or steps < 1:
            raise ValueError(f"hidden and steps must be >= 1, got {hidden} and {steps}")
        self.hidden, self.steps, self.bidirectional = hidden, steps, bidirectional
        self.input_size, self.output_size = input_size, output_size
        self.gru = nn.GRU(input_size, hidden, batch_first=True, bidirectional=bidirectional)
        directions = 2 if bidirectional else 1
        self.head = nn.Linear(directions * hidden * steps, output_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, L, F] -> logits [B, 1, O] (one read-out, after the whole sequence)."""
        if x.ndim != 3 or x.shape[1:] != (self.steps, self.input_size):
            raise ValueError(f"FlatGRU expects [B, {self.steps}, {self.input_size}] inputs, "
                             f"got {list(x.shape)}")
        states, _ = self.gru(x)  # [B, L, D H], zero initial state
        return self.head(states.flatten(1))[:, None]
