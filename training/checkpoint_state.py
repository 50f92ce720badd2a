"""The contents of a training checkpoint folder, without pickles: safetensors for tensors, JSON for the rest.

`accelerator.save_state` writes the optimizer, LR schedule and RNG states with `torch.save` (`optimizer.bin`,
`scheduler.bin`, `random_states_<rank>.pkl`) and objects given to `register_for_checkpointing` as
`custom_checkpoint_<i>.pkl`, which it reloads with `weights_only=False`: a checkpoint folder someone hands you could
run code when resumed. These functions save the same state as safetensors files whose JSON metadata carries the
non-tensor parts, so resuming never unpickles anything:

| file | contents |
|---|---|
| `model.safetensors`, `model_<i>.safetensors` | the prepared models' weights (unwrapped) |
| `optimizer.safetensors` | optimizer state tensors; param groups and scalar state in the metadata |
| `scheduler.json` | LR scheduler state |
| `scaler.json` | gradient scaler state (fp16 mixed precision only) |
| `random_states_<rank>.safetensors` | each process's torch, CUDA, numpy and Python RNG states |
| `<name>_ema/` | EMA weights as a model folder (`save_pretrained`, loads alone); `ema_state.json`: decay state |

The EMA folders follow diffusers' training examples (their `unet_ema/`), minus the EMA fields in the model's
`config.json`, which this package's strict configs refuse: they go to `ema_state.json` instead.
"""
from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from diffusers.training_utils import EMAModel
from safetensors import safe_open
from safetensors.torch import load_file, load_model, save_file, save_model

OPTIMIZER_FILE = "optimizer.safetensors"
SCHEDULER_FILE = "scheduler.json"
SCALER_FILE = "scaler.json"
EMA_STATE_FILE = "ema_state.json"
METADATA_KEY = "json"


def model_file(index: int) -> str:
    """`model.safetensors` for the first prepared model, `model_<index>.safetensors` for the others."""
    return "model.safetensors" if index == 0 else f"model_{index}.safetensors"


def random_states_file(process_index: int) -> str:
    return f"random_states_{process_index}.safetensors"


def ema_folder(name: str) -> str:
    return f"{name}_ema"


@dataclass
class CheckpointState:
    """What a checkpoint saves and a resumed run loads.

    Attributes:
        models: the prepared (possibly DDP-wrapped) models, in a fixed order.
        optimizer: the prepared optimizer.
        lr_scheduler: the prepared LR scheduler.
        emas: EMA weights by name (each saved to `<name>_ema/`); they need `model_cls` and `model_config`.
    """

    models: Sequence[torch.nn.Module]
    optimizer: torch.optim.Optimizer
    lr_scheduler: Any
    emas: Mapping[str, EMAModel] = field(default_factory=dict)


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2) + "\n")


def _save_tensors_and_json(path: Path, tensors: dict[str, torch.Tensor], metadata: Any) -> None:
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(path),
              metadata={METADATA_KEY: json.dumps(metadata)})


def _load_tensors_and_json(path: Path) -> tuple[dict[str, torch.Tensor], Any]:
    with safe_open(str(path), framework="pt") as handle:
        metadata = json.loads(handle.metadata()[METADATA_KEY])
    return load_file(str(path)), metadata


def _save_optimizer(optimizer: torch.optim.Optimizer, path: Path) -> None:
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, values in state["state"].items():
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}.{key}"] = value
            else:
                scalars[f"{index}.{key}"] = value
    _save_tensors_and_json(path, tensors, {"param_groups": state["param_groups"], "scalars": scalars})


def _load_optimizer(optimizer: torch.optim.Optimizer, path: Path) -> None:
    tensors, metadata = _load_tensors_and_json(path)
    state: dict[int, dict[str, Any]] = {}
    for name, value in [*tensors.items(), *metadata["scalars"].items()]:
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    optimizer.load_state_dict({"state": state, "param_groups": metadata["param_groups"]})


def _save_random_states(accelerator: Accelerator, path: Path) -> None:
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        tensors.update({f"cuda.{i}": state for i, state in enumerate(torch.cuda.get_rng_state_all())})
    kind, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    tensors["numpy"] = torch.from_numpy(keys.astype(np.int64))
    python_version, python_state, python_gauss = random.getstate()
    _save_tensors_and_json(path, tensors, {
        "step": accelerator.step,
        "numpy": [kind, int(position), int(has_gauss), float(cached_gaussian)],
        "python": [python_version, list(python_state), python_gauss],
    })


def _load_random_states(accelerator: Accelerator, path: Path) -> None:
    tensors, metadata = _load_tensors_and_json(path)
    torch.set_rng_state(tensors["torch"])
    cuda = [tensors[f"cuda.{i}"] for i in range(len(tensors)) if f"cuda.{i}" in tensors]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    kind, position, has_gauss, cached_gaussian = metadata["numpy"]
    np.random.set_state((kind, tensors["numpy"].numpy().astype(np.uint32), position, has_gauss, cached_gaussian))
    python_version, python_state, python_gauss = metadata["python"]
    random.setstate((python_version, tuple(python_state), python_gauss))
    accelerator.step = metadata["step"]


def save_ema(ema: EMAModel, folder: Path) -> None:
    """EMA weights as a model folder (`model_cls.save_pretrained`) and its decay state in `ema_state.json`."""
    model = ema.model_cls.from_config(ema.model_config)
    ema.copy_to(model.parameters())
    model.save_pretrained(folder)
    _write_json(folder / EMA_STATE_FILE, {k: v for k, v in ema.state_dict().items() if k != "shadow_params"})


def load_ema(ema: EMAModel, folder: Path) -> None:
    """Load what :func:`save_ema` wrote into `ema`, keeping its shadow weights' device."""
    if not (folder / EMA_STATE_FILE).is_file():
        raise FileNotFoundError(f"The checkpoint has no EMA weights in {str(folder)!r} (saved without --use_ema?); "
                                "resume without --use_ema or from a checkpoint of an EMA run.")
    model = ema.model_cls.from_pretrained(folder)
    devices = [shadow.device for shadow in ema.shadow_params]
    shadows = [p.detach().to(device) for p, device in zip(model.parameters(), devices)]
    ema.load_state_dict({**json.loads((folder / EMA_STATE_FILE).read_text()), "shadow_params": shadows})


def save_training_state(accelerator: Accelerator, state: CheckpointState, folder: Path) -> None:
    """Write `state` into `folder` (which must exist). Every process must call it: each saves its RNG states."""
    if accelerator.is_main_process:
        for index, model in enumerate(state.models):
            save_model(accelerator.unwrap_model(model), str(folder / model_file(index)))
        _save_optimizer(state.optimizer, folder / OPTIMIZER_FILE)
        _write_json(folder / SCHEDULER_FILE, state.lr_scheduler.state_dict())
        if accelerator.scaler is not None:
            _write_json(folder / SCALER_FILE, accelerator.scaler.state_dict())
        for name, ema in state.emas.items():
            save_ema(ema, folder / ema_folder(name))
    _save_random_states(accelerator, folder / random_states_file(accelerator.process_index))


def load_training_state(accelerator: Accelerator, state: CheckpointState, folder: Path) -> None:
    """Load what :func:`save_training_state` wrote into the prepared objects of `state`, on every process."""
    needed = [model_file(i) for i in range(len(state.models))]
    needed += [OPTIMIZER_FILE, SCHEDULER_FILE, random_states_file(accelerator.process_index)]
    missing = [name for name in needed if not (folder / name).is_file()]
    if missing:
        pickled = sorted(p.name for p in folder.glob("*") if p.suffix in (".bin", ".pkl"))
        hint = (f"it holds pickled state {pickled} (an older checkpoint format, not read because pickles can run "
                "code); continue from its weights with --init_from instead" if pickled else
                "resume from a complete checkpoint")
        raise FileNotFoundError(f"Checkpoint {str(folder)!r} lacks {missing}: {hint}.")
    for index, model in enumerate(state.models):
        load_model(accelerator.unwrap_model(model), str(folder / model_file(index)))  # copied onto its device
    _load_optimizer(state.optimizer, folder / OPTIMIZER_FILE)
    state.lr_scheduler.load_state_dict(json.loads((folder / SCHEDULER_FILE).read_text()))
    if accelerator.scaler is not None:
        accelerator.scaler.load_state_dict(json.loads((folder / SCALER_FILE).read_text()))
    for name, ema in state.emas.items():
        load_ema(ema, folder / ema_folder(name))
    _load_random_states(accelerator, folder / random_states_file(accelerator.process_index))
