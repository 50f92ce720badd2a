"""The pictures' evidence for the image guidance terms: the camera, mask distance maps and detected 2D keypoints.

:func:`mask_evidence` gives the camera matrices, the masks' distance maps and the person mask's pixel sample of
the mask-coverage term; :func:`keypoint_evidence` the
keypoints, once :func:`check_keypoints` has checked the ``keypoints`` argument.

Keypoints are mediapipe's 33 BlazePose landmarks, ``(33, 3)`` or ``(B, 33, 3)`` rows of ``(u, v, visibility)``
in the pixels of the full picture (``u`` right, ``v`` down, pixel centres on integers), visibility in [0, 1].
The guidance may work in another camera with the same axes (the regressor's crop): a pinhole camera's pixels map
to another's of the same rays by ``K_to K_from^-1``, so the keypoints move exactly with the crop.

The person's box size, the unit of the keypoint term, is the larger side of the box around the visible landmarks
that have a body point, measured in the guidance camera's pixels.
"""
from __future__ import annotations

import numpy as np
import torch

from .camera import move_pixels
from .guidance import mask_distance_transform
from .input_checks import to_numpy
from .mask_coverage import COVERAGE_SAMPLES, sample_mask_pixels
from .skeleton import BLAZEPOSE_FITTED, NUM_BLAZEPOSE

__all__ = ["MIN_BOX_SIZE", "check_keypoints", "keypoint_evidence", "keypoints_box_size", "mask_evidence"]

# Smallest person box (pixels) the keypoint term divides by: a box of fewer pixels means at most one visible
# landmark (all at one spot), and 1 pixel keeps the division finite.
MIN_BOX_SIZE = 1.0


def mask_evidence(intrinsics, human_mask, object_mask, batch: int, device, dtype) -> dict[str, torch.Tensor]:
    """Camera matrices ``(B, 3, 3)``, mask distance maps ``(B, H, W)`` and the person mask's pixel sample
    ``(B, M, 2)`` for the image guidance terms.

    Args:
        intrinsics: ``(3, 3)`` or ``(B, 3, 3)`` the guidance camera, or ``None``.
        human_mask, object_mask: ``(H, W)`` or ``(B, H, W)`` masks (arrays or tensors), or ``None``.
        batch: the number of samples ``B``.
        device, dtype: where the evidence goes.

    Returns:
        The present ones of ``intrinsics``, ``human_distance_map``, ``human_mask_pixels`` (with the person mask:
        :data:`~scorehoi_diffusers.mask_coverage.COVERAGE_SAMPLES` of its pixels, sampled once here for every step
        of the call) and ``object_distance_map`` (:class:`~scorehoi_diffusers.guidance.GuidanceInputs` fields).
    """
    evidence = {}
    if intrinsics is not None:
        evidence["intrinsics"] = torch.as_tensor(intrinsics, device=device, dtype=dtype).expand(batch, 3, 3)
    for name, mask in (("human", human_mask), ("object", object_mask)):
        if mask is not None:
            mask = torch.as_tensor(np.asarray(mask) if not isinstance(mask, torch.Tensor) else mask)
            mask = mask.expand(batch, *mask.shape[-2:])
            evidence[f"{name}_distance_map"] = mask_distance_transform(mask, f"{name}_mask").to(device, dtype)
    if "human_distance_map" in evidence:
        evidence["human_mask_pixels"] = sample_mask_pixels(evidence["human_distance_map"], COVERAGE_SAMPLES)
    return evidence


def check_keypoints(keypoints, name: str = "keypoints") -> torch.Tensor:
    """Raise a one-line error unless ``keypoints`` is a valid keypoint array; return it as ``(B, 33, 3)`` float64.

    Args:
        keypoints: ``(33, 3)`` or ``(B, 33, 3)`` array, tensor or nested list of ``(u, v, visibility)`` rows.
        name: how errors refer to the argument, e.g. ``"--keypoints"``.

    Returns:
        ``(B, 33, 3)`` float64 CPU tensor (``B = 1`` for a single ``(33, 3)`` array).
    """
    if isinstance(keypoints, (str, bytes)) or not isinstance(keypoints, (np.ndarray, torch.Tensor, list, tuple)):
        raise TypeError(f"`{name}` must be a (33, 3) or (B, 33, 3) array of (u, v, visibility) rows, "
                        f"got {type(keypoints).__name__}.")
    try:
        array = to_numpy(keypoints)
    except ValueError as error:
        raise ValueError(f"`{name}` must be a (33, 3) or (B, 33, 3) array of numbers: {error}") from None
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise ValueError(f"`{name}` must hold numbers (u, v, visibility), got dtype {array.dtype}.")
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3 or array.shape[1:] != (NUM_BLAZEPOSE, 3) or array.shape[0] == 0:
        raise ValueError(f"`{name}` must have shape ({NUM_BLAZEPOSE}, 3) or (B, {NUM_BLAZEPOSE}, 3) (BlazePose "
                         f"order, u, v, visibility), got {tuple(to_numpy(keypoints).shape)}.")
    array = array.astype(np.float64)
    if not np.isfinite(array).all():
        raise ValueError(f"`{name}` contains NaN or infinite values; give missing landmarks visibility 0 and any "
                         "finite position.")
    visibility = array[..., 2]
    if ((visibility < 0) | (visibility > 1)).any():
        raise ValueError(f"`{name}` visibilities (third column) must lie in [0, 1], got values in "
                         f"[{visibility.min():.4g}, {visibility.max():.4g}].")
    return torch.from_numpy(array)


def keypoints_box_size(pixels: torch.Tensor, visibility: torch.Tensor) -> torch.Tensor:
    """The person's box size ``(B,)``: the larger side of the box around the landmarks with visibility > 0 (all of
    a sample's landmarks when fewer than two are visible), at least :data:`MIN_BOX_SIZE`.

    Args:
        pixels: ``(B, K, 2)`` keypoint positions.
        visibility: ``(B, K)`` their weights (0 = not counted).
    """
    seen = visibility > 0
    seen = torch.where(seen.sum(-1, keepdim=True) >= 2, seen, torch.ones_like(seen))[..., None]  # (B, K, 1)
    infinity = torch.full_like(pixels, float("inf"))
    low = torch.where(seen, pixels, infinity).amin(1)
    high = torch.where(seen, pixels, -infinity).amax(1)
    return (high - low).amax(-1).clamp(min=MIN_BOX_SIZE)


def keypoint_evidence(
    keypoints,
    camera_intrinsics: torch.Tensor,
    guidance_intrinsics: torch.Tensor,
    batch: int,
    device: torch.device,
    dtype: torch.dtype,
) -> dict[str, torch.Tensor]:
    """The keypoint fields of :class:`~scorehoi_diffusers.guidance.GuidanceInputs`, in the guidance camera.

    Args:
        keypoints: the ``keypoints`` argument, ``(33, 3)`` or ``(B, 33, 3)`` (checked by :func:`check_keypoints`), in
            the pixels of ``camera_intrinsics``.
        camera_intrinsics: ``(3, 3)`` or ``(B, 3, 3)`` the pictures' camera.
        guidance_intrinsics: ``(3, 3)`` or ``(B, 3, 3)`` the camera the guidance projects with (same axes).
        batch: the number of samples ``B``.
        device, dtype: where the evidence goes.

    Returns:
        ``keypoints_2d (B, 33, 2)``, ``keypoints_2d_visibility (B, 33)`` (zero for landmarks without a body
        point, ``skeleton.BLAZEPOSE_FITTED``) and ``keypoints_box_size (B,)``.
    """
    keypoints = check_keypoints(keypoints)
    if keypoints.shape[0] not in (1, batch):
        raise ValueError(f"`keypoints` holds {keypoints.shape[0]} sets of landmarks for {batch} samples; give one "
                         "(33, 3) set or one per sample.")
    keypoints = keypoints.to(device=device, dtype=torch.float64).expand(batch, -1, -1)
    source = torch.as_tensor(camera_intrinsics, device=device, dtype=torch.float64).expand(batch, 3, 3)
    target = torch.as_tensor(guidance_intrinsics, device=device, dtype=torch.float64).expand(batch, 3, 3)
    pixels = move_pixels(keypoints[..., :2], source, target)
    fitted = torch.tensor(BLAZEPOSE_FITTED, device=device)
    visibility = torch.where(fitted, keypoints[..., 2], torch.zeros_like(keypoints[..., 2]))
    return {
        "keypoints_2d": pixels.to(dtype),
        "keypoints_2d_visibility": visibility.to(dtype),
        "keypoints_box_size": keypoints_box_size(pixels, visibility).to(dtype),
    }

