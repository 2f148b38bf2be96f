"""Which `h` and which base term a task family gives DLC, declared in gin.

The paper's loss is `L = h(w*) + beta * hinge(h)`; the authors' code reads `h` in two ways, and a
benchmark has to say which one it tests:

* `h = 'output'`: the method's own loss evaluated at a perturbed label `w` (the authors' generic
  loss and their PRNet demo): DLC then shapes the loss of the network's *output* around `w*`.
* `h = 'energy'`: the energy the family's test-time solver descends (Lucas-Kanade's feature
  residual, the Procrustes / ICP energy, Gauss-Newton's alignment energy): DLC then shapes the
  landscape the solver actually walks on (PRISE's Deep-LK).

and the base term of the DLC objective:

* `base = 'h'`: `h(w*)`, the paper's form `L = h(w*) + beta * hinge`;
* `base = 'method'`: the method's own training loss (`task.loss`), `+ beta * hinge` on `h`.

`Plain` always trains the method's own loss. A family whose `h` is not descended by any
test-time solver (the recurrent read-out of the `sequence` family) offers `'output'` only and is
marked `dlc_style` (DLC-style, not DLC). `Task.describe()` is what the runner records in run.json.
"""

from __future__ import annotations

from typing import ClassVar, Literal

HForm = Literal["output", "energy"]
Base = Literal["h", "method"]
H_FORMS: tuple[str, ...] = ("output", "energy")
BASES: tuple[str, ...] = ("h", "method")


class Forms:
    """Mixin of a task: the `h` and `base` it was built with, validated against what the family
    offers (`offered_h`); `dlc_style` marks an `h` no test-time solver descends."""

    offered_h: ClassVar[tuple[str, ...]] = H_FORMS
    #: the configurable whose `h` / `base` bindings set them (default: the task's class name)
    forms_configurable: ClassVar[str] = ""
    family: str

    def set_forms(self, h: str, base: str) -> None:
        """Validate and store `h` (as `h_form`) and `base`; ValueError names the gin binding."""
        name = self.forms_configurable or type(self).__name__
        if h not in self.offered_h:
            raise ValueError(f"{name}.h must be one of {self.offered_h} for family "
                             f"{self.family!r}, got {h!r}")
        if base not in BASES:
            raise ValueError(f"{name}.base must be one of {BASES}, got {base!r}")
        self.h_form, self.base = h, base

