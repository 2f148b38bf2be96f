"""Recurrent networks for the `sequence` family: tanh RNN, GRU, LSTM (`torch.nn`) plus a linear
read-out applied at every step.

`Recurrent(x)` maps inputs `x [B, L, F]` to read-outs `[B, L + 1, O]`: index 0 is the read-out of
the initial (zero) state, index t the read-out after t steps. Tasks use the last one (classification,
adding), every step (copy memory), or a few evenly spaced ones (the test-time "iterates": what the
network predicts after reading part of the sequence). The input and output sizes are the task's
(bound in the task's gin file); cell, depth and width are the model's and the scale's.
"""

from __future__ import annotations

from typing import Literal

import gin
import torch
from torch import nn

from bench.tasks.base import Model

CELLS = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}


class SequenceModel(Model):
    """A model of the `sequence` family: declares the features per step it reads
    (`input_size`) and the size of its read-out (`output_size`), which the task checks."""

    family = "sequence"
    input_size: int
    output_size: int


@gin.configurable(module="bench.tasks.sequence.models")
class Recurrent(SequenceModel):
    """A stacked recurrent network with a linear read-out at every step.

    Args:
        cell: 'rnn' (Elman, tanh), 'gru' or 'lstm'.
        hidden: units per layer.
        layers: stacked recurrent layers.
        input_size: features per step F (the task's).
        output_size: read-out size O (the task's: classes, or 1 for regression).
        dropout: between stacked layers (torch semantics; 0 for one layer).
    """

    family = "sequence"

    def __init__(self, cell: Literal["rnn", "gru", "lstm"] = "lstm", hidden: int = 128,
                 layers: int = 1, input_size: int = 1, output_size: int = 10,
                 dropout: float = 0.0) -> None:
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {sorted(CELLS)}, got {cell!r}")
        self.cell, self.hidden, self.layers = cell, hidden, layers
        self.input_size, self.output_size = input_size, output_size
        options = {"nonlinearity": "tanh"} if cell == "rnn" else {}
        self.rnn = CELLS[cell](input_size, hidden, num_layers=layers, batch_first=True,
                               dropout=dropout if layers > 1 else 0.0, **options)
        self.head = nn.Linear(hidden, output_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, L, F] -> read-outs [B, L + 1, O] (index 0: the zero initial state)."""
        if x.ndim != 3 or x.shape[-1] != self.input_size:
            raise ValueError(f"Recurrent expects [B, L, {self.input_size}] inputs, "
                             f"got {list(x.shape)}")
        states, _ = self.rnn(x)  # [B, L, H], top layer
        initial = states.new_zeros(states.shape[0], 1, states.shape[-1])
        return self.head(torch.cat([initial, states], dim=1))
