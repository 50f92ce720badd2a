"""The denoiser's noise prediction ε(x_t, t) under one encoded condition, read by every inversion and denoising."""
from __future__ import annotations

import torch

from ..models.denoiser import ConditionCache, ScoreHOIDenoiser

__all__ = ["NoisePrediction"]


class NoisePrediction:
    """``ε(x_t, t)`` of ``denoiser`` under one fixed ``condition``, callable as ``predict(latents, timestep)``.

    The denoiser runs in its own dtype; ε comes back in the latents' dtype. The timestep goes in as a tensor so that
    a ``torch.compile``-d denoiser compiles once per shape instead of once per timestep value.

    Args:
        denoiser ([`ScoreHOIDenoiser`]): the ε-prediction prior.
        condition ([`ConditionCache`]): from ``denoiser.encode_condition``, batch B (or 1, broadcast).
    """

    def __init__(self, denoiser: ScoreHOIDenoiser, condition: ConditionCache):
        self.denoiser, self.condition = denoiser, condition
        self.model_dtype = denoiser.dtype

    def __call__(self, latents: torch.Tensor, timestep: int) -> torch.Tensor:
        """``latents (B, 331)`` at ``timestep`` -> ε ``(B, 331)``."""
        timestep = torch.tensor(timestep, device=latents.device)
        output = self.denoiser(latents.to(self.model_dtype), timestep, condition=self.condition)
        return output.sample.to(latents.dtype)
