"""The suite's headline finding, as a regression test at smoke scale (seconds).

On `alignment1d_nonlinear_energy` (base loss = the energy at the ground truth, the paper's
L = h(w*) form) DLC must make the learned energy markedly more star-convex and Gauss-Newton
markedly more accurate than the plain loss, on the same data and seeds. If a change to the loss,
the spaces, the task or the runner breaks DLC, this fails.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import bench_cli


@pytest.mark.slow  # seconds of real runs or resampling; .ci/run runs it too
def test_dlc_convexifies_the_alignment_energy(tmp_path: Path) -> None:
    results = tmp_path / "out"
    assert bench_cli("run", "smoke", "--results", str(results), "--tasks",
                     "alignment1d_nonlinear_energy", "--models", "conv1d", "--objectives",
                     "plain,dlc", "--seeds", "0,1,2", "--no-progress") == 0
    table = pd.read_parquet(results / "results.parquet")
    final = table[table.phase.isin(["test", "landscape"])]
    means = final.groupby(["objective", "metric"])["value"].mean()
    assert means["dlc", "distance"] < 0.5 * means["plain", "distance"]
    assert means["dlc", "violation_rate"] < means["plain", "violation_rate"] - 0.1
    assert means["dlc", "success@1"] > means["plain", "success@1"] + 5
