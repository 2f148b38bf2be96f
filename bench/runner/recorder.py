"""`Recorder`: the tidy metric rows (`bench.schema.COLUMNS`) one cell records while it trains and
is evaluated."""

from __future__ import annotations

from typing import Any

from bench.schema import Phase


class Recorder:
    """Collects the tidy metric rows (`bench.schema.COLUMNS`) of one cell."""

    def __init__(self, run_id: str, task: str, model: str, objective: str, seed: int,
                 only_split: str = "") -> None:
        self.ident = dict(run_id=run_id, task=task, model=model, objective=objective, seed=seed)
        self.rows: list[dict[str, Any]] = []
        self.only_split = only_split  # 'val': a tuning cell, which must never record a test row

    def add(self, phase: Phase, step: int, metric: str, value: float) -> None:
        if self.only_split == "val" and str(phase).startswith("test"):
            raise RuntimeError(f"a tuning cell (eval_split='val') tried to record {phase} {metric}")
        self.rows.append({**self.ident, "phase": str(phase), "step": int(step), "metric": metric,
                          "value": float(value)})
