"""Checkpoints as safetensors (never pickle): model, optimiser, RNG and loop state, written atomically."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from synthaug.utils import atomic_path


class CheckpointError(RuntimeError):
    pass


def flatten_optimizer(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for pid, state in sd["state"].items():
        for key, value in state.items():
            if torch.is_tensor(value):
                tensors[f"optim.{pid}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{pid}.{key}"] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, pid, key = name.split(".", 2)
            state.setdefault(int(pid), {})[key] = value
    for name, value in meta["scalars"].items():
        pid, key = name.split(".", 1)
        state.setdefault(int(pid), {})[key] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer | None = None,
                    state: dict[str, Any] | None = None, tensors: dict[str, torch.Tensor] | None = None) -> None:
    """Write model (+ optimiser, + extra tensors such as RNG states, + JSON-able loop state) atomically."""
    out = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta: dict[str, Any] = {"state": state or {}}
    if optimizer is not None:
        opt_tensors, meta["optimizer"] = flatten_optimizer(optimizer)
        out.update(opt_tensors)
    for k, v in (tensors or {}).items():
        out[f"extra.{k}"] = v.detach().cpu().contiguous()
    with atomic_path(path) as tmp:
        save_file(out, str(tmp), metadata={"synthaug": json.dumps(meta)})


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        tensors = load_file(str(path))
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {}).get("synthaug", "{}"))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc} (corrupt or truncated?)") from exc
    return tensors, meta


def load_checkpoint(path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer | None = None,
                    ) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Restore model (and optimiser) in place; return the loop state and the extra tensors."""
    tensors, meta = read_checkpoint(path)
    model_sd = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    try:
        model.load_state_dict(model_sd)
    except RuntimeError as exc:
        raise CheckpointError(f"checkpoint {path} does not fit this model: {exc}") from exc
    if optimizer is not None and "optimizer" in meta:
        optimizer.load_state_dict(unflatten_optimizer(tensors, meta["optimizer"]))
    extra = {k[len("extra."):]: v for k, v in tensors.items() if k.startswith("extra.")}
    return meta.get("state", {}), extra


def read_model_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The model's tensors in a checkpoint (its state dict), without building the model."""
    tensors, _ = read_checkpoint(path)
    return {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, Any] | None = None) -> None:
    """A flat name -> tensor map as safetensors, written atomically."""
    out = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(out, str(tmp), metadata={"synthaug": json.dumps(metadata or {})})


def load_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    tensors, _ = read_checkpoint(path)
    return tensors
