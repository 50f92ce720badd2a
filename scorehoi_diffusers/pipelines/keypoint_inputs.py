"""The pipeline's ``keypoints`` argument as the learned parts read it: crop-normalised BlazePose landmarks.

``keypoints`` are ``(33, 3)`` or ``(B, 33, 3)`` ``(u, v, visibility)`` in the pictures' pixels, BlazePose order
(a detector's output, e.g. :class:`~scorehoi_diffusers.person_detection.PersonDetection`). A regressor or denoiser
built with ``body_keypoints=True`` reads them in the crop's coordinates
(:func:`~scorehoi_diffusers.models.body_keypoints.image_to_crop_keypoints`); models built without keypoint input
never see them.
"""
from __future__ import annotations

import numpy as np
import torch

from ..image_processor import HOIImageBatch
from ..models.body_keypoints import image_to_crop_keypoints
from ..skeleton import NUM_BLAZEPOSE

__all__ = ["as_keypoint_batch", "crop_body_keypoints"]


def as_keypoint_batch(keypoints, batch: int) -> torch.Tensor | None:
    """``keypoints`` (array or tensor, ``(33, 3)`` or ``(batch, 33, 3)``) as a float64 ``(batch, 33, 3)`` tensor,
    or None; a clear error for anything else."""
    if keypoints is None:
        return None
    if not isinstance(keypoints, (torch.Tensor, np.ndarray, list, tuple)):
        raise TypeError(f"`keypoints` must be an array or tensor of shape (33, 3) or (B, 33, 3), "
                        f"got {type(keypoints).__name__}.")
    try:
        values = torch.as_tensor(np.asarray(keypoints.detach().cpu() if torch.is_tensor(keypoints) else keypoints,
                                            dtype=np.float64))
    except (TypeError, ValueError) as error:
        raise TypeError(f"`keypoints` must hold numbers (u, v, visibility): {error}") from None
    if values.dim() == 2:
        values = values[None].expand(batch, -1, -1)
    if values.shape != (batch, NUM_BLAZEPOSE, 3):
        raise ValueError(f"`keypoints` must have shape ({NUM_BLAZEPOSE}, 3) or ({batch}, {NUM_BLAZEPOSE}, 3) "
                         f"(u, v, visibility per BlazePose landmark, one set per picture), got {tuple(values.shape)}.")
    if not torch.isfinite(values).all():
        raise ValueError("`keypoints` contains NaN or infinite values; give visibility 0 to landmarks not found.")
    visibility = values[..., 2]
    if ((visibility < 0) | (visibility > 1)).any():
        raise ValueError("`keypoints` visibilities (the last column) must lie in [0, 1].")
    return values


def crop_body_keypoints(keypoints, pictures: HOIImageBatch, model=None) -> torch.Tensor | None:
    """The models' ``(B, 33, 3)`` keypoint input for preprocessed ``pictures``; None without ``keypoints`` or for a
    ``model`` (regressor or denoiser) built without keypoint input. Bad ``keypoints`` raise either way."""
    values = as_keypoint_batch(keypoints, pictures.pixel_values.shape[0])
    if values is None or (model is not None and not model.config.body_keypoints):
        return None
    crop = image_to_crop_keypoints(values, pictures.intrinsics.to(torch.float64).cpu(),
                                   pictures.crop_intrinsics.to(torch.float64).cpu(), pictures.image_size)
    return crop.to(device=pictures.pixel_values.device, dtype=torch.float32)
