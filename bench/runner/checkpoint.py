"""Final weights of a cell, saved with safetensors (no code execution on load).

On disk, inside the run folder (written in the staging folder, published with it):

    <results>/runs/<run_id>/weights.safetensors
        model.<name>        every tensor of `model.state_dict()` (parameters and buffers)
        objective.<name>    every tensor of `objective.state_dict()` (learned lambda / mu)
        metadata (str -> str): format = "dlc-bench-weights/1", run_id, key (the cell's cache key)

A dependent cell (`bench.run.Experiment.init_from = 'plain'`) loads `model.*` from its parent's
file into its own model before training (`load_model`): the names and shapes must match exactly
(same task, model and model bindings), anything else is an error naming the file and tensor.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch
from torch import nn

from bench.runner.store import file_mode

FILENAME = "weights.safetensors"
FORMAT = "dlc-bench-weights/1"


class CheckpointError(ValueError):
    """A weights file that cannot be used for the model at hand (names the file and tensor)."""


def save(path: Path, model: nn.Module, objective: nn.Module | None = None,
         metadata: dict[str, str] | None = None) -> Path:
    """Write `model` (and `objective`) tensors to `path` atomically (temp file + rename)."""
    from safetensors.torch import save_file

    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if objective is not None:
        tensors.update({f"objective.{k}": v.detach().cpu().contiguous()
                        for k, v in objective.state_dict().items()})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={"format": FORMAT, **(metadata or {})})
        os.chmod(tmp, file_mode())  # the umask's mode, as every file of a run folder (mkstemp: 0600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, metadata) of a weights file; `CheckpointError` when missing or not ours."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no weights file (did the parent cell finish?)")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            if metadata.get("format") != FORMAT:
                raise CheckpointError(f"{path}: format {metadata.get('format')!r}, "
                                      f"expected {FORMAT!r}")
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
    except CheckpointError:
        raise
    except Exception as err:  # noqa: BLE001 - SafetensorError, OSError: name the file
        raise CheckpointError(f"{path}: unreadable weights ({type(err).__name__}: {err})") from err
    return tensors, metadata


def load_model(path: Path, model: nn.Module) -> dict[str, str]:
    """Load the `model.*` tensors of `path` into `model` (strict: same names and shapes).

    Returns the file's metadata. Raises `CheckpointError` naming the file and first mismatch.
    """
    tensors, metadata = read(path)
    state = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    if missing or extra:
        raise CheckpointError(f"{path}: tensors do not match the model: missing {missing[:3]}, "
                              f"unexpected {extra[:3]}")
    for name, value in state.items():
        if tuple(value.shape) != tuple(own[name].shape):
            raise CheckpointError(f"{path}: tensor model.{name} has shape {list(value.shape)}, "
                                  f"the model expects {list(own[name].shape)}")
    model.load_state_dict(state)
    return metadata
