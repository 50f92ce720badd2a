"""What a step callback (``callback_on_step_end``) may hand back to the pipeline: checked ``latents``."""
from __future__ import annotations

from typing import Any

import torch

__all__ = ["callback_latents"]


def callback_latents(returned: Any, latents: torch.Tensor) -> torch.Tensor:
    """The ``latents`` a step callback returned, on the pipeline's device and dtype."""
    if not isinstance(returned, torch.Tensor) or returned.shape != latents.shape:
        shape = tuple(returned.shape) if isinstance(returned, torch.Tensor) else type(returned).__name__
        raise ValueError(f"`callback_on_step_end` returned `latents` {shape}; return a tensor of shape "
                         f"{tuple(latents.shape)}.")
    return returned.to(device=latents.device, dtype=latents.dtype)
