"""The denoiser's noise prediction ε(x_t, t) under one encoded condition, read by every inversion and denoising.

With a condition scale ``w ≠ 1`` it is classifier-free guidance on that condition:
``ε = ε_uncond + w · (ε_cond − ε_uncond)``, where ``ε_uncond`` reads only the denoiser's learned null tokens (the
state condition dropout trained it for). ``w = 1`` is the conditional prediction alone, one pass per step.
"""
from __future__ import annotations

import torch

from ..input_checks import check_finite_number
from ..models.denoiser import ConditionCache, ScoreHOIDenoiser

__all__ = ["NoisePrediction"]


class NoisePrediction:
    """``ε(x_t, t)`` of ``denoiser`` under one fixed ``condition``, callable as ``predict(latents, timestep)``.

    The denoiser runs in its own dtype; ε comes back in the latents' dtype. The timestep goes in as a tensor so that
    a ``torch.compile``-d denoiser compiles once per shape instead of once per timestep value.

    Args:
        denoiser ([`ScoreHOIDenoiser`]): the ε-prediction prior.
        condition ([`ConditionCache`]): from ``denoiser.encode_condition``, batch B (or 1, broadcast).
        unconditional ([`ConditionCache`], *optional*): the null condition (``denoiser.encode_condition()``);
            required when ``condition_scale`` is not 1.
        condition_scale (`float`, defaults to 1.0): the classifier-free guidance weight ``w`` (finite, >= 0;
            0 is the unconditional prior); each call costs two denoiser passes unless it is 1.
    """

    def __init__(
        self,
        denoiser: ScoreHOIDenoiser,
        condition: ConditionCache,
        unconditional: ConditionCache | None = None,
        condition_scale: float = 1.0,
    ):
        self.condition_scale = check_finite_number(condition_scale, "`condition_scale`", allow_zero=True)
        if self.condition_scale != 1 and unconditional is None:
            raise ValueError("`condition_scale` != 1 needs `unconditional` (the null condition: encode_condition()).")
        self.denoiser, self.condition, self.unconditional = denoiser, condition, unconditional
        self.model_dtype = denoiser.dtype

    @classmethod
    def from_inputs(
        cls,
        denoiser: ScoreHOIDenoiser,
        image_tokens: torch.Tensor | None,
        object_keypoints: torch.Tensor | None,
        body_keypoints: torch.Tensor | None = None,
        condition_scale: float = 1.0,
    ) -> NoisePrediction:
        """Encodes the condition (``denoiser.encode_condition``) and, when ``condition_scale`` is not 1, the null one.

        Args:
            denoiser ([`ScoreHOIDenoiser`]): the prior.
            image_tokens (`torch.Tensor` of shape `(B, Ni, D)`, *optional*): the regressor's image tokens.
            object_keypoints (`torch.Tensor` of shape `(B, K, 3)`, *optional*): the object template's keypoints.
            body_keypoints (`torch.Tensor` of shape `(B, 33, 3)`, *optional*): for a keypoint-reading denoiser.
            condition_scale (`float`, defaults to 1.0): see the class.
        """
        condition = denoiser.encode_condition(image_tokens, object_keypoints, body_keypoints=body_keypoints)
        unconditional = None if condition_scale == 1 else denoiser.encode_condition()
        return cls(denoiser, condition, unconditional, condition_scale)

    def __call__(self, latents: torch.Tensor, timestep: int) -> torch.Tensor:
        """``latents (B, 331)`` at ``timestep`` -> ε ``(B, 331)``."""
        timestep = torch.tensor(timestep, device=latents.device)
        model_input = latents.to(self.model_dtype)
        conditional = self.denoiser(model_input, timestep, condition=self.condition).sample.to(latents.dtype)
        if self.condition_scale == 1:
            return conditional
        unconditional = self.denoiser(model_input, timestep, condition=self.unconditional).sample.to(latents.dtype)
        return unconditional + self.condition_scale * (conditional - unconditional)
