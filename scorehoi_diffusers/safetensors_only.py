"""Weights load from safetensors only: pickled weight files (``.bin``, ``.pt``, ...) can run code when read.

diffusers falls back to ``diffusion_pytorch_model.bin`` (read with ``torch.load``, which unpickles) when a folder
has no safetensors file. The loaders of this package check the folder before diffusers reads anything and pass
``use_safetensors=True``, so a pickled file is never opened.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

PICKLED_WEIGHT_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


def check_safetensors_only(folder: str | os.PathLike, name: str) -> None:
    """Refuse a local weights folder whose weights are only pickled files.

    A folder that also holds ``.safetensors`` weights passes (those are the ones loaded); a path that is not a
    local folder (a Hub id) is left to ``use_safetensors=True``.

    Args:
        folder: the component folder (e.g. ``pipeline/denoiser``).
        name: how the user named it, for the error message (e.g. ``"denoiser"``).

    Raises:
        ValueError: the folder holds pickled weights and no safetensors weights.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return
    files = [path for path in folder.iterdir() if path.is_file()]
    if any(path.name.endswith((".safetensors", ".safetensors.index.json")) for path in files):
        return
    pickled = sorted(path.name for path in files if path.suffix in PICKLED_WEIGHT_SUFFIXES)
    if pickled:
        raise ValueError(
            f"`{name}` weights {str(folder / pickled[0])!r} are pickled, which can run code when loaded, so they "
            "are refused; convert them to diffusion_pytorch_model.safetensors (safetensors.torch.save_file)."
        )


def safetensors_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """``from_pretrained`` keyword arguments with ``use_safetensors=True`` (an explicit ``False`` is refused)."""
    if kwargs.get("use_safetensors") not in (None, True):
        raise ValueError("`use_safetensors` must be True or None: this package loads safetensors weights only.")
    return {**kwargs, "use_safetensors": True}


class SafetensorsOnlyMixin:
    """Mix into a ``ModelMixin`` subclass (before it) so its ``from_pretrained`` loads safetensors weights only."""

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        """[`ModelMixin.from_pretrained`] of safetensors weights only; a local folder holding only pickled weights
        (``.bin``, ``.pt``, ...) is refused before anything is read."""
        subfolder = kwargs.get("subfolder") or ""
        check_safetensors_only(os.path.join(pretrained_model_name_or_path, subfolder), cls.__name__)
        return super().from_pretrained(pretrained_model_name_or_path, **safetensors_kwargs(kwargs))
