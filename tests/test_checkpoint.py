"""Final weights of a cell: safetensors round trip, strict loading, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from bench.runner.checkpoint import FORMAT, CheckpointError, load_model, read, save


def test_round_trip_restores_every_tensor_and_keeps_metadata(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    model(torch.randn(8, 3))  # moves the batch-norm buffers away from their initial values
    objective = nn.Module()
    objective.lam_logit = nn.Parameter(torch.tensor(0.3))
    path = save(tmp_path / "run" / "weights.safetensors", model, objective,
                {"run_id": "r1", "key": "abc"})
    tensors, metadata = read(path)
    assert metadata == {"format": FORMAT, "run_id": "r1", "key": "abc"}
    assert set(tensors) == {f"model.{k}" for k in model.state_dict()} | {"objective.lam_logit"}
    assert [p.name for p in path.parent.iterdir()] == ["weights.safetensors"]  # no temp left
    fresh = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    assert not torch.equal(fresh[0].weight, model[0].weight)
    load_model(path, fresh)
    for (name, a), b in zip(model.state_dict().items(), fresh.state_dict().values()):
        assert torch.equal(a, b), name


def test_mismatched_models_and_missing_files_are_named(tmp_path: Path) -> None:
    path = save(tmp_path / "weights.safetensors", nn.Linear(3, 4))
    with pytest.raises(CheckpointError, match=r"tensor model\.(weight|bias) has shape \[4.*the model expects \[5"):
        load_model(path, nn.Linear(3, 5))
    with pytest.raises(CheckpointError, match="missing"):
        load_model(path, nn.Sequential(nn.Linear(3, 4)))
    with pytest.raises(CheckpointError, match="no weights file"):
        read(tmp_path / "absent.safetensors")
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(1)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(CheckpointError, match="format None"):
        read(tmp_path / "foreign.safetensors")


def test_the_weights_file_gets_the_umask_mode_like_every_run_file(tmp_path: Path) -> None:
    import os

    from bench.runner.store import file_mode

    old = os.umask(0o036)  # 0o640, not mkstemp's 0o600 nor the usual 0o644
    try:
        path = save(tmp_path / "weights.safetensors", nn.Linear(3, 4))
        assert file_mode() == 0o640 and path.stat().st_mode & 0o777 == 0o640
    finally:
        os.umask(old)
