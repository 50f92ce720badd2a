"""The pipeline's ``keypoints`` argument as the learned parts read it: crop-normalised BlazePose landmarks.

``keypoints`` are ``(33, 3)`` or ``(B, 33, 3)`` ``(u, v, visibility)`` in the pictures' pixels, BlazePose order
(a detector's output, e.g. :class:`~scorehoi_diffusers.person_detection.PersonDetection`). A regressor or denoiser
built with ``body_keypoints=True`` reads them in the crop's coordinates
(:func:`~scorehoi_diffusers.models.body_keypoints.image_to_crop_keypoints`); models built without keypoint input
never see them.
"""
from __future__ import annotations

import torch

from ..image_evidence import check_keypoints
from ..image_processor import HOIImageBatch
from ..models.body_keypoints import image_to_crop_keypoints

__all__ = ["as_keypoint_batch", "crop_body_keypoints"]


def as_keypoint_batch(keypoints, batch: int) -> torch.Tensor | None:
    """``keypoints`` (array or tensor, ``(33, 3)`` or ``(batch, 33, 3)``) as a float64 ``(batch, 33, 3)`` tensor,
    or None; checked by :func:`~scorehoi_diffusers.image_evidence.check_keypoints` (the guidance reads the same
    argument)."""
    if keypoints is None:
        return None
    values = check_keypoints(keypoints)
    if values.shape[0] not in (1, batch):
        raise ValueError(f"`keypoints` holds {values.shape[0]} sets of landmarks for {batch} pictures; give one "
                         "(33, 3) set or one per picture.")
    return values.expand(batch, -1, -1)


def crop_body_keypoints(keypoints, pictures: HOIImageBatch, model=None) -> torch.Tensor | None:
    """The models' ``(B, 33, 3)`` keypoint input for preprocessed ``pictures``; None without ``keypoints`` or for a
    ``model`` (regressor or denoiser) built without keypoint input. Bad ``keypoints`` raise either way."""
    values = as_keypoint_batch(keypoints, pictures.pixel_values.shape[0])
    if values is None or (model is not None and not model.config.body_keypoints):
        return None
    crop = image_to_crop_keypoints(values, pictures.intrinsics.to(torch.float64).cpu(),
                                   pictures.crop_intrinsics.to(torch.float64).cpu(), pictures.image_size)
    return crop.to(device=pictures.pixel_values.device, dtype=torch.float32)
