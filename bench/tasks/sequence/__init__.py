"""Task family `sequence`: training RNNs (tanh RNN, GRU, LSTM) with and without DLC.

Modules: `generators` (adding, copy memory, 8x8 digits, MNIST-1D; offline), `mnist` (IDX parser
and local MNIST loader), `models` (`Recurrent`), `task` (the family's conventions, `Adding`,
`Copy`, `escaped`, `Escaped`), `classification` (`Digits`, `MNIST1D`, `MNIST`), `reference`
(`FlatGRU`, the MNIST-1D reference model).
"""

from bench.tasks.sequence import classification, generators, mnist, models, reference, task
from bench.tasks.sequence.task import escaped

__all__ = ["classification", "generators", "mnist", "models", "reference", "task", "escaped"]
