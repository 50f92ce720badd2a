"""Refining the camera translation alongside the guided steps, from the same guidance loss.

The camera translation (where the pelvis sits in the camera) is not part of the diffusion sample ``x0``: the prior
says nothing about it, and the regressor's estimate of it stays fixed unless something moves it. With detected
keypoints the image says where the person is, so each guided step that differentiates the guidance loss also
takes its gradient with respect to the translation (the same autograd pass; only the image terms, keypoints and
masks, depend on it) and moves the translation by one gradient-descent step:

``t <- t - clip(step_size * dL/dt, MAX_CAMERA_STEP)``

per sample. The keypoint term is measured in person-box sizes, so ``dL/dt`` along the image axes is about
``(residual in box sizes) / (person height in metres)`` whatever the resolution and distance, and one step size fits
every picture (depth gets a smaller gradient: it changes the projected size, not the position). The clip bounds a
single step, so a bad gradient cannot throw the person metres away, and a non-finite gradient moves nothing.
"""
from __future__ import annotations

import torch

__all__ = ["MAX_CAMERA_STEP", "CameraRefinement"]

# Largest move of the camera translation in one guided step (metres): the regressor is rarely off by more than a
# few decimetres, which a cycle of 10 guided steps can still cover.
MAX_CAMERA_STEP = 0.05


class CameraRefinement:
    """Gradient steps on the camera translation ``(B, 3)`` during refinement.

    Args:
        translation: ``(B, 3)`` the starting camera translation (metres).
        step_size: metres per unit of loss gradient, > 0 (``GuidanceConfig.camera_step_size``).
    """

    def __init__(self, translation: torch.Tensor, step_size: float):
        if not step_size > 0:
            raise ValueError(f"`step_size` must be > 0, got {step_size!r}.")
        self.translation = translation.detach()
        self.step_size = float(step_size)

    def step(self, gradient: torch.Tensor) -> None:
        """Move the translation by ``-step_size * gradient`` (``(B, 3)``), at most :data:`MAX_CAMERA_STEP` per sample;
        a sample with a non-finite gradient stays where it is."""
        move = self.step_size * gradient.detach().to(self.translation.dtype)
        finite = torch.isfinite(move).all(dim=-1, keepdim=True)
        move = torch.where(finite, move, torch.zeros_like(move))
        length = torch.linalg.vector_norm(move, dim=-1, keepdim=True)
        move = move * (MAX_CAMERA_STEP / length.clamp(min=MAX_CAMERA_STEP))
        self.translation = self.translation - move
