"""Turns a user's pictures (image, human mask, object mask) into the regressor's cropped input.

Accepts PIL images, numpy arrays and torch tensors, one sample or a list (a batch); checks them and says
which input is wrong and what to do; then crops each sample around its person-and-object box with the same
crop as training (:func:`scorehoi_diffusers.data.crop.crop_sample`), so the crop camera differs from the
original one only by its intrinsics.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import List, Optional, Sequence, Union

import numpy as np
import PIL.Image
import torch

from .data.crop import CropConfig, crop_sample, to_model_input

ImageInput = Union[PIL.Image.Image, np.ndarray, torch.Tensor]

# Without calibration, assume a focal length of 1.2 x the longer side (about a 45 degree field of view).
DEFAULT_FOCAL_FACTOR = 1.2


@dataclass
class HOIImageBatch:
    """Preprocessed pictures of a batch.

    Attributes:
        pixel_values: ``(B, 5, S, S)`` normalised RGB + human mask + object mask of the crops.
        crop_intrinsics: ``(B, 3, 3)`` pinhole matrices of the crops (same camera axes as the originals).
        human_mask: ``(B, S, S)`` bool crop of the human mask.
        object_mask: ``(B, S, S)`` bool crop of the object mask.
        intrinsics: ``(B, 3, 3)`` pinhole matrices of the original pictures.
        images: the original RGB pictures, ``(H, W, 3)`` uint8 each.
        bboxes: ``(B, 4)`` the ``x, y, w, h`` boxes that were cropped.
    """

    pixel_values: torch.Tensor
    crop_intrinsics: torch.Tensor
    human_mask: torch.Tensor
    object_mask: torch.Tensor
    intrinsics: torch.Tensor
    images: List[np.ndarray]
    bboxes: np.ndarray

    @property
    def image_size(self) -> tuple:
        return tuple(self.pixel_values.shape[-2:])


def _as_list(value, name: str, batch: Optional[int]) -> list:
    if isinstance(value, (list, tuple)):
        items = list(value)
    elif isinstance(value, torch.Tensor) and value.dim() == 4 or isinstance(value, np.ndarray) and value.ndim == 4:
        items = list(value)
    else:
        items = [value]
    if batch is not None and len(items) != batch:
        raise ValueError(f"`{name}` has {len(items)} entries but `image` has {batch}; give one per image.")
    return items


def to_rgb_array(image: ImageInput, name: str = "image") -> np.ndarray:
    """One picture to ``(H, W, 3)`` uint8. Grey is repeated to RGB; an alpha channel is dropped with a warning.

    Float arrays and tensors are read as values in ``[0, 1]``; tensors may be ``(3, H, W)`` or ``(H, W, 3)``.
    """
    if isinstance(image, PIL.Image.Image):
        if image.mode in ("RGBA", "LA", "PA"):
            warnings.warn(f"`{name}` has an alpha channel; it is ignored.", UserWarning, stacklevel=3)
        return np.asarray(image.convert("RGB"))
    if isinstance(image, torch.Tensor):
        array = image.detach().cpu().numpy()
        if array.ndim == 3 and array.shape[0] in (1, 3, 4) and array.shape[-1] not in (1, 3, 4):
            array = np.moveaxis(array, 0, -1)
    elif isinstance(image, np.ndarray):
        array = image
    else:
        raise TypeError(f"`{name}` must be a PIL image, numpy array or torch tensor, got {type(image).__name__}.")
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[-1] not in (1, 3, 4):
        raise ValueError(f"`{name}` must be (H, W), (H, W, 3) or (H, W, 4) (or (3, H, W) as a tensor), got {array.shape}.")
    if array.shape[0] < 8 or array.shape[1] < 8:
        raise ValueError(f"`{name}` is only {array.shape[1]}x{array.shape[0]} pixels; give a real picture.")
    if array.shape[-1] == 4:
        warnings.warn(f"`{name}` has an alpha channel; it is ignored.", UserWarning, stacklevel=3)
        array = array[..., :3]
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    if array.dtype == np.uint8:
        return np.ascontiguousarray(array)
    if array.dtype.kind not in "fiu":
        raise TypeError(f"`{name}` must hold numbers, got dtype {array.dtype}.")
    array = array.astype(np.float64)
    if not np.isfinite(array).all():
        raise ValueError(f"`{name}` contains NaN or Inf values.")
    if array.dtype.kind == "f" and array.max() <= 1.0 and array.min() >= 0.0:
        array = array * 255.0
    if array.min() < 0 or array.max() > 255:
        raise ValueError(f"`{name}` values must lie in [0, 1] (floats) or [0, 255]; got [{array.min()}, {array.max()}].")
    return array.round().astype(np.uint8)


def to_mask_array(mask: ImageInput, name: str, shape: Sequence[int]) -> np.ndarray:
    """One mask to ``(H, W)`` bool: non-zero (or >= 0.5 for floats, >= 128 for uint8) is inside."""
    if isinstance(mask, PIL.Image.Image):
        array = np.asarray(mask.convert("L")) >= 128
    else:
        if isinstance(mask, torch.Tensor):
            mask = mask.detach().cpu().numpy()
        if not isinstance(mask, np.ndarray):
            raise TypeError(f"`{name}` must be a PIL image, numpy array or torch tensor, got {type(mask).__name__}.")
        array = np.squeeze(mask)
        if array.ndim == 3 and array.shape[-1] in (3, 4):
            array = array[..., 0]
        if array.dtype == bool:
            pass
        elif array.dtype == np.uint8:
            array = array >= 128
        elif array.dtype.kind in "fiu":
            if not np.isfinite(array).all():
                raise ValueError(f"`{name}` contains NaN or Inf values.")
            array = array >= 0.5
        else:
            raise TypeError(f"`{name}` must hold numbers or booleans, got dtype {array.dtype}.")
    if array.shape != tuple(shape):
        raise ValueError(
            f"`{name}` is {array.shape[1] if array.ndim == 2 else '?'}x{array.shape[0]} but the image is "
            f"{shape[1]}x{shape[0]}; masks must have the image's size."
        )
    if not array.any():
        raise ValueError(f"`{name}` is empty (no pixel inside); give a mask that marks the {name.split('_')[0]}.")
    if array.all():
        warnings.warn(f"`{name}` covers the whole image; the crop will be the whole picture.", UserWarning, stacklevel=3)
    return array


def mask_bbox(*masks: np.ndarray) -> np.ndarray:
    """``(4,)`` ``x, y, w, h`` box around every pixel of the given ``(H, W)`` masks."""
    union = np.logical_or.reduce(masks)
    rows, cols = np.flatnonzero(union.any(axis=1)), np.flatnonzero(union.any(axis=0))
    return np.array([cols[0], rows[0], cols[-1] - cols[0] + 1, rows[-1] - rows[0] + 1], dtype=np.float32)


def default_intrinsics(height: int, width: int) -> np.ndarray:
    """A plausible ``(3, 3)`` pinhole matrix for an uncalibrated picture (see ``DEFAULT_FOCAL_FACTOR``)."""
    focal = DEFAULT_FOCAL_FACTOR * max(height, width)
    return np.array([[focal, 0, (width - 1) / 2], [0, focal, (height - 1) / 2], [0, 0, 1]], dtype=np.float32)


def _check_bbox(bbox, height: int, width: int, index: int) -> np.ndarray:
    box = np.asarray(bbox, dtype=np.float64).reshape(-1)
    if box.shape != (4,) or not np.isfinite(box).all():
        raise ValueError(f"`bbox[{index}]` must be 4 finite numbers x, y, w, h; got {bbox!r}.")
    x, y, w, h = box
    if w <= 0 or h <= 0:
        raise ValueError(f"`bbox[{index}]` must have positive width and height; got w={w}, h={h}.")
    if x >= width or y >= height or x + w <= 0 or y + h <= 0:
        raise ValueError(f"`bbox[{index}]` {box.tolist()} lies outside the {width}x{height} image.")
    return box.astype(np.float32)


def _check_intrinsics(value, index: int) -> np.ndarray:
    matrix = np.asarray(value.detach().cpu() if isinstance(value, torch.Tensor) else value, dtype=np.float64)
    if matrix.shape != (3, 3) or not np.isfinite(matrix).all():
        raise ValueError(f"`intrinsics[{index}]` must be a finite (3, 3) pinhole matrix, got shape {matrix.shape}.")
    if matrix[0, 0] <= 0 or matrix[1, 1] <= 0 or not np.allclose(matrix[2], [0, 0, 1]):
        raise ValueError(f"`intrinsics[{index}]` must have positive focal lengths and last row (0, 0, 1).")
    return matrix.astype(np.float32)


class HOIImageProcessor:
    """Checks and crops (image, human mask, object mask) for the regressor.

    Args:
        crop_size: side of the square crop in pixels (the regressor's training resolution).
        scale_factor: crop side = ``max(bbox w, bbox h) * scale_factor``.
    """

    def __init__(self, crop_size: int = 256, scale_factor: float = 1.2):
        self.crop_config = CropConfig(out_size=crop_size, scale_factor=scale_factor)

    def preprocess(
        self,
        image: Union[ImageInput, Sequence[ImageInput]],
        human_mask: Union[ImageInput, Sequence[ImageInput]],
        object_mask: Union[ImageInput, Sequence[ImageInput]],
        bbox: Optional[Union[Sequence[float], Sequence[Sequence[float]]]] = None,
        intrinsics: Optional[Union[np.ndarray, torch.Tensor]] = None,
    ) -> HOIImageBatch:
        """Check and crop one sample or a batch (lists, or 4-D arrays/tensors, of equal length).

        Args:
            image: RGB picture(s); grey is repeated, alpha dropped.
            human_mask, object_mask: ``(H, W)`` masks of the same size as their image.
            bbox: ``x, y, w, h`` per image; defaults to the box around both masks.
            intrinsics: ``(3, 3)`` or ``(B, 3, 3)`` camera matrices; defaults to :func:`default_intrinsics`.
        """
        images = [to_rgb_array(item, f"image[{i}]") for i, item in enumerate(_as_list(image, "image", None))]
        batch = len(images)
        human_masks = _as_list(human_mask, "human_mask", batch)
        object_masks = _as_list(object_mask, "object_mask", batch)
        if bbox is not None:
            bbox = [bbox] if np.asarray(bbox).ndim == 1 else list(bbox)
            if len(bbox) != batch:
                raise ValueError(f"`bbox` has {len(bbox)} boxes but `image` has {batch}; give one per image.")
        if intrinsics is not None:
            stacked = np.asarray(intrinsics.detach().cpu() if isinstance(intrinsics, torch.Tensor) else intrinsics)
            intrinsics = [stacked] * batch if stacked.ndim == 2 else list(stacked)
            if len(intrinsics) != batch:
                raise ValueError(f"`intrinsics` has {len(intrinsics)} matrices but `image` has {batch}.")
        samples = []
        for i, rgb in enumerate(images):
            height, width = rgb.shape[:2]
            human = to_mask_array(human_masks[i], f"human_mask[{i}]" if batch > 1 else "human_mask", (height, width))
            obj = to_mask_array(object_masks[i], f"object_mask[{i}]" if batch > 1 else "object_mask", (height, width))
            box = _check_bbox(bbox[i], height, width, i) if bbox is not None else mask_bbox(human, obj)
            K = _check_intrinsics(intrinsics[i], i) if intrinsics is not None else default_intrinsics(height, width)
            samples.append(crop_sample(
                {"image": rgb, "human_mask": human, "object_mask": obj, "intrinsics": K, "bbox": box},
                self.crop_config,
            ) | {"original_intrinsics": K, "original_bbox": box, "original_image": rgb})
        stacked = {key: np.stack([s[key] for s in samples]) for key in ("image", "human_mask", "object_mask")}
        return HOIImageBatch(
            pixel_values=to_model_input(stacked),
            crop_intrinsics=torch.from_numpy(np.stack([s["intrinsics"] for s in samples])),
            human_mask=torch.from_numpy(stacked["human_mask"]),
            object_mask=torch.from_numpy(stacked["object_mask"]),
            intrinsics=torch.from_numpy(np.stack([s["original_intrinsics"] for s in samples])),
            images=[s["original_image"] for s in samples],
            bboxes=np.stack([s["original_bbox"] for s in samples]),
        )
