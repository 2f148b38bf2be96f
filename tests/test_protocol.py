"""The tuning protocol's rules on known small inputs: synchronous halving decisions (Optuna's
pruner), selection stability over tuning seeds, rung-vs-final rank correlation, and the verdict
classes of a comparison table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bench.protocol.halving import decide, planned_compute, promoted, rung_epochs, survivors
from bench.protocol.stability import rung_correlation, stability
from bench.protocol.verdicts import qualify, reduced_to_plain
from bench.runner.config import ConfigError


def test_promotion_sees_the_whole_rung_whatever_the_order() -> None:
    scores = {0: 4.0, 1: 1.0, 2: 3.0, 3: 2.0}
    assert promoted(scores, "min", 2, 0) == {1, 3}
    assert promoted(dict(reversed(list(scores.items()))), "min", 2, 0) == {1, 3}
    assert promoted(scores, "max", 2, 0) == {0, 2}
    assert promoted(scores, "min", 4, 0) == {1}
    assert promoted({0: np.nan, 1: 2.0, 2: 1.0}, "min", 2, 1) == {2}  # NaN: pruned


def test_schedule_arithmetic() -> None:
    assert rung_epochs([0.13], 15) == [2] and rung_epochs([0.34], 3) == [1]
    with pytest.raises(ValueError, match="expected increasing epochs below 2"):
        rung_epochs([0.2, 0.4], 2)
    assert survivors(24, 12, 1) == [24, 2] and survivors(5, 3, 2) == [5, 1, 1]
    assert planned_compute(8, 2, [0.25]) == pytest.approx(8 * 0.25 + 4)


def _scores(table: dict[tuple[int, int], list[float]]) -> pd.DataFrame:
    """{(stage, trial): [score of seed 0, seed 1, ...]} -> long rows."""
    return pd.DataFrame([dict(stage=s, trial=t, seed=i, score=v)
                         for (s, t), values in table.items() for i, v in enumerate(values)])


def test_stability_on_a_known_example() -> None:
    # rung 0 (keep 1 of 4, lower is better): trial 1 is best on both seeds -> stable
    steady = _scores({(0, 0): [5, 5], (0, 1): [1, 1], (0, 2): [3, 3], (0, 3): [4, 4],
                      (1, 1): [0.5, 0.6]})
    assert stability(steady, "min", 4) == (1, 1.0)
    # trial 2 wins on the mean only because of seed 1: dropping seed 0 keeps it, dropping
    # seed 1 promotes trial 1 instead -> the winner changes in 1 of 2 replays
    shaky = _scores({(0, 0): [5, 5], (0, 1): [1, 9], (0, 2): [2, 1], (0, 3): [4, 4],
                     (1, 2): [0.5, 0.6]})
    assert stability(shaky, "min", 4) == (2, 0.5)
    # without rungs: the mean winner (trial 0) is the winner of every seed but one of three
    flat = _scores({(0, 0): [1, 1, 9], (0, 1): [2, 2, 2]})
    assert decide([{0: 11 / 3, 1: 2.0}], "min", 2)[1] == 1
    assert stability(flat, "min", 2) == (1, pytest.approx(2 / 3))


def test_rung_correlation_by_hand() -> None:
    frame = _scores({(0, 0): [1], (0, 1): [2], (0, 2): [3], (0, 3): [9],
                     (1, 0): [1], (1, 1): [3], (1, 2): [2]})
    frame = frame.assign(task="t", model="m", objective="dlc")
    table = rung_correlation(frame)
    assert table[["rung", "trials"]].values.tolist() == [[0, 3]]
    assert table["spearman"].iloc[0] == pytest.approx(0.5)  # ranks (1,2,3) vs (1,3,2)


def _comparisons() -> pd.DataFrame:
    rows = [  # (task, model, objective, mean, base_mean, diff, p, params)
        ("registration_synthetic_dcp", "dcp", "dlc", 2.0, 3.0, -1.0, 0.001, '{"bench.objectives.DLC.weight": 1.0}'),
        ("registration_synthetic_dcp", "prnetlike", "dlc", 6.0, 7.0, -1.0, 0.001, '{"bench.objectives.DLC.weight": 1.0}'),
        ("alignment1d_x", "conv1d", "dlc", 1.0, 2.0, -1.0, 0.002, '{"bench.objectives.DLC.weight": 0.5}'),
        ("alignment1d_x", "conv1d", "margin", 1.5, 2.0, -0.5, 0.002, '{"bench.objectives.Margin.weight": 0.1}'),
        ("alignment1d_y", "conv1d", "dlc", 3.0, 2.0, 1.0, 0.02, '{"bench.objectives.DLC.weight": 0.5}'),
        ("alignment1d_y", "conv1d", "dlc_prise", 2.1, 2.0, 0.1, 0.001, '{"bench.objectives.DLC.weight": 1e-4}'),
    ]
    frame = pd.DataFrame(rows, columns=["task", "model", "objective", "mean", "base_mean", "diff",
                                        "p", "params"])
    return frame.assign(direction="min")


def test_verdict_classes_from_known_inputs() -> None:
    feasibility = pd.DataFrame({"task": ["alignment1d_x", "alignment1d_y"],
                                "objective": ["margin", "dlc"],
                                "verdict": ["ill-posed", "feasible"]})
    references = {"registration_synthetic_dcp": 5.0}  # ICP alone: prnetlike's 6 and 7 are both worse
    table = qualify(_comparisons(), feasibility, references)
    assert list(table["class"]) == ["non-iterative", "floor", "valid", "ill-posed", "valid",
                                    "valid"]
    # Holm over the two valid rows that are not at the plain limit: p x 2
    assert table["p_holm"].tolist()[2] == pytest.approx(0.004)
    assert table["p_holm"].tolist()[4] == pytest.approx(0.02)  # Holm: the larger p x 1
    assert np.isnan(table["p_holm"].tolist()[5]) and np.isnan(table["p_holm"].tolist()[0])
    assert list(table["verdict"]) == ["non-iterative", "floor", "better", "ill-posed", "worse",
                                      "reduced to plain"]
    assert reduced_to_plain({"bench.objectives.DLC.weight": 1e-4})
    assert not reduced_to_plain({"bench.run.Experiment.lr": 1e-5})


def test_without_inputs_every_iterative_row_is_valid_and_holm_counts_them_all() -> None:
    table = qualify(_comparisons().drop(columns=["params"]))
    assert list(table["class"]) == ["non-iterative"] + ["valid"] * 5
    assert table["p_holm"].iloc[2] == pytest.approx(0.002 * 3)  # third smallest of 5 p-values


def test_the_table_bench_feasibility_writes_reads_back(tmp_path) -> None:
    """`bench feasibility` writes 'no hinge' for objectives without one (plain): the verdicts read
    its table as written (the report of `bench tune` used to refuse it)."""
    from bench.protocol.feasibility import NO_HINGE

    path = tmp_path / "feasibility.csv"
    path.write_text(f"task,objective,verdict\nalignment1d_x,plain,{NO_HINGE}\n"
                    "alignment1d_x,dlc,ill-posed\n")
    table = qualify(_comparisons(), path)
    mine = table[table["task"] == "alignment1d_x"].set_index("objective")["class"]
    assert mine.to_dict() == {"dlc": "ill-posed", "margin": "valid"}


def test_a_bad_feasibility_table_names_its_row(tmp_path) -> None:
    path = tmp_path / "feasibility.csv"
    path.write_text("task,objective,verdict\nalignment1d_x,dlc,feasible\nalignment1d_x,margin,maybe\n")
    with pytest.raises(ConfigError, match=r"feasibility.csv, row 3: verdict 'maybe'"):
        qualify(_comparisons(), path)


def test_compute_and_stage_tables_from_a_hand_made_tuning_folder(tmp_path) -> None:
    import json
    from types import SimpleNamespace

    from bench.protocol.budget_tables import compute_table
    from bench.protocol.stability import stage_scores

    def entry(trial, rung_scores, pruned):
        return dict(task="alignment1d_x", model="conv1d", objective="plain", trial=trial,
                    seeds=[0, 1], run_ids=[f"r{trial}a", f"r{trial}b"], results=f"trials/t{trial}",
                    params="{}", skipped=False, full_epochs=10, pruned_at=0 if pruned else None,
                    reached_full=not pruned, epochs_trained=2 if pruned else 12,
                    rungs=[dict(epochs=2, score=float(np.mean(rung_scores)),
                                seed_scores=rung_scores)])

    (tmp_path / "trials.json").write_text(json.dumps([entry(0, [3.0, 5.0], True),
                                                      entry(1, [1.0, 2.0], False)]))
    (tmp_path / "selected").mkdir()
    pd.DataFrame([dict(task="alignment1d_x", model="conv1d", objective="plain", trial=t,
                       seed=s, status=st, direction="min", score=v)
                  for t, s, st, v in ((0, 0, "pruned", np.nan), (0, 1, "pruned", np.nan),
                                      (1, 0, "done", 0.5), (1, 1, "done", 0.7))]
                 ).to_csv(tmp_path / "selected" / "trial_scores.csv", index=False)
    sweep = SimpleNamespace(rungs=[0.2], compute=lambda o: 1.2, eta=lambda o: 2,
                            metric_of=lambda task: ("distance", "min"))
    table = compute_table(tmp_path, sweep)
    # 2 seeds x (2/10 for the pruned trial + 12/10 for the promoted one, its restart included)
    assert table[["points", "reached_full"]].values.tolist() == [[2, 1]]
    assert table["full_budget_equiv"].iloc[0] == pytest.approx(2 * (0.2 + 1.2))
    assert table["planned_equiv"].iloc[0] == pytest.approx(2.4)
    stages = stage_scores(tmp_path, sweep)
    assert sorted(stages.groupby("stage")["trial"].apply(set).to_dict().items()) == [
        (0, {0, 1}), (1, {1})]
    assert stability(stages, "min", 2) == (1, 1.0)
