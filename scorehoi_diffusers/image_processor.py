"""Turns a user's pictures (image, human mask, object mask) into the regressor's cropped input.

Accepts PIL images, numpy arrays and torch tensors, one sample or a list (a batch), or reads them from files
(:func:`load_image`); checks them and says which input is wrong and what to do; then crops each sample around
its person-and-object box with the same crop as training (:func:`scorehoi_diffusers.data.crop.crop_sample`), so
the crop camera differs from the original one only by its intrinsics.
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import PIL.Image
import PIL.ImageOps
import torch
from diffusers.utils import logging

from .camera import default_intrinsics, depth_for_extent
from .data.crop import CropConfig, crop_sample, to_model_input
from .input_checks import check_bbox, check_intrinsics, mask_inside

logger = logging.get_logger(__name__)

ImageInput = PIL.Image.Image | np.ndarray | torch.Tensor

# A mask with fewer pixels than this cannot place a person or an object: it is a stray click, not a mask.
MIN_MASK_PIXELS = 16

# Depths (m) outside which the box around person and object implies a picture the models were not made for.
PLAUSIBLE_DEPTH_RANGE = (0.3, 20.0)

# Longer side (m) of the box around a person and the object they hold, used to turn the box's size in pixels
# into the depth it implies (a standing adult is about 1.7 m tall).
TYPICAL_SUBJECT_EXTENT = 1.7

# PIL modes of 16-bit grey pictures; PIL's own conversion to 8 bits clips them, so they read as all white.
_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")


@dataclass
class HOIImageBatch:
    """Preprocessed pictures of a batch.

    Attributes:
        pixel_values: ``(B, 5, S, S)`` normalised RGB + human mask + object mask of the crops.
        crop_intrinsics: ``(B, 3, 3)`` pinhole matrices of the crops (same camera axes as the originals).
        human_mask: ``(B, S, S)`` bool crop of the human mask.
        object_mask: ``(B, S, S)`` bool crop of the object mask.
        intrinsics: ``(B, 3, 3)`` pinhole matrices of the original pictures.
    """

    pixel_values: torch.Tensor
    crop_intrinsics: torch.Tensor
    human_mask: torch.Tensor
    object_mask: torch.Tensor
    intrinsics: torch.Tensor

    @property
    def image_size(self) -> tuple:
        return tuple(self.pixel_values.shape[-2:])


def as_picture_list(value, name: str, batch: int | None) -> list:
    """One picture (or mask) per sample: a list or tuple as it is, a 4-D array or tensor split along its first
    axis, anything else as a single item; with ``batch``, a count other than ``batch`` is a one-line error."""
    if isinstance(value, (list, tuple)):
        items = list(value)
    elif isinstance(value, torch.Tensor) and value.dim() == 4 or isinstance(value, np.ndarray) and value.ndim == 4:
        items = list(value)
    else:
        items = [value]
    if batch is not None and len(items) != batch:
        raise ValueError(f"`{name}` has {len(items)} entries but `image` has {batch}; give one per image.")
    return items


def _to_8bit(picture: PIL.Image.Image) -> PIL.Image.Image:
    """A 16-bit grey picture (or a 32-bit one holding 16-bit values) scaled to 8 bits; others as they are.

    0/1 pictures are left as they are: they are binary masks, which 0/255 scaling would empty.
    """
    if picture.mode not in _SIXTEEN_BIT_MODES and picture.mode != "I":
        return picture
    values = np.asarray(picture).astype(np.float64)
    sixteen_bit = picture.mode in _SIXTEEN_BIT_MODES or values.max() > 255
    if sixteen_bit and values.max() > 1:
        values = values / 257.0  # 65535 -> 255
    return PIL.Image.fromarray(np.clip(values, 0, 255).round().astype(np.uint8), mode="L")


def load_image(path: str | os.PathLike, name: str = "image", mask: bool = False) -> np.ndarray:
    """Read a picture file as the user sees it displayed.

    EXIF orientation is applied (so masks drawn on the displayed photo line up with it), 16-bit grey pictures
    are scaled to 8 bits, and a picture over PIL's decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``)
    is refused with a one-line error.

    Args:
        path: the file.
        name: how errors refer to it, e.g. ``"human_mask"`` or ``"--human-mask"``.
        mask: read a mask: grey instead of RGB.

    Returns:
        ``(H, W, 3)`` uint8 RGB, or ``(H, W)`` uint8 grey for a mask (pass it to the pipeline as it is: 0/1 and
        0/255 masks are both read as binary).
    """
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"`{name}`: no file at {file}; give the path of a picture file.")
    try:
        with warnings.catch_warnings():
            # Between one and two times the limit PIL only warns; the picture is refused all the same.
            warnings.simplefilter("error", PIL.Image.DecompressionBombWarning)
            with PIL.Image.open(file) as picture:
                # Orientation first: the 8-bit copy of a 16-bit picture no longer carries the EXIF data. Turned in
                # place and converted only when needed, so a large photo is not copied twice more in memory.
                picture.load()
                PIL.ImageOps.exif_transpose(picture, in_place=True)
                picture = _to_8bit(picture)
                mode = "L" if mask else "RGB"
                return np.asarray(picture if picture.mode == mode else picture.convert(mode))
    except (PIL.Image.DecompressionBombError, PIL.Image.DecompressionBombWarning) as error:
        raise ValueError(
            f"`{name}`: {file} has more pixels than PIL's limit of {PIL.Image.MAX_IMAGE_PIXELS} "
            f"(PIL.Image.MAX_IMAGE_PIXELS, a guard against decompression bombs); downscale it first."
        ) from error
    except OSError as error:
        raise ValueError(f"`{name}`: {file} is not a readable picture ({error}); give a PNG or JPEG file.") from error


def to_rgb_array(image: ImageInput, name: str = "image") -> np.ndarray:
    """One picture to ``(H, W, 3)`` uint8. Grey is repeated to RGB; an alpha channel is dropped with a warning.

    Float arrays and tensors are read as values in ``[0, 1]``; tensors may be ``(3, H, W)`` or ``(H, W, 3)``.
    16-bit grey PIL pictures are scaled to 8 bits.
    """
    if isinstance(image, PIL.Image.Image):
        if image.mode in ("RGBA", "LA", "PA"):
            logger.warning(f"`{name}` has an alpha channel; it is ignored.")
        return np.asarray(_to_8bit(image).convert("RGB"))
    if isinstance(image, torch.Tensor):
        array = image.detach().cpu().numpy()
        if array.ndim == 3 and array.shape[0] in (1, 3, 4) and array.shape[-1] not in (1, 3, 4):
            array = np.moveaxis(array, 0, -1)
    elif isinstance(image, np.ndarray):
        array = image
    else:
        hint = "; read files with `load_image`" if isinstance(image, (str, os.PathLike)) else ""
        raise TypeError(
            f"`{name}` must be a PIL image, numpy array or torch tensor, got {type(image).__name__}{hint}."
        )
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[-1] not in (1, 3, 4):
        raise ValueError(
            f"`{name}` must be (H, W), (H, W, 3) or (H, W, 4) (or (3, H, W) as a tensor), got {array.shape}."
        )
    if array.shape[0] < 8 or array.shape[1] < 8:
        raise ValueError(f"`{name}` is only {array.shape[1]}x{array.shape[0]} pixels; give a real picture.")
    if array.shape[-1] == 4:
        logger.warning(f"`{name}` has an alpha channel; it is ignored.")
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
        raise ValueError(
            f"`{name}` values must lie in [0, 1] (floats) or [0, 255]; got [{array.min()}, {array.max()}]."
        )
    return array.round().astype(np.uint8)


def to_mask_array(mask: ImageInput, name: str, shape: Sequence[int]) -> np.ndarray:
    """One mask to ``(H, W)`` bool, with the rules of :func:`~scorehoi_diffusers.input_checks.mask_inside`.

    0/1 and 0/255 masks are both binary; floats are inside from 0.5; an RGB mask is read from its first channel.
    A mask must mark at least ``MIN_MASK_PIXELS`` pixels.
    """
    if isinstance(mask, PIL.Image.Image):
        array = np.asarray(_to_8bit(mask).convert("L"))
    elif isinstance(mask, (torch.Tensor, np.ndarray)):
        array = np.squeeze(mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else mask)
        if array.ndim == 3 and array.shape[-1] in (3, 4):
            array = array[..., 0]
    else:
        raise TypeError(f"`{name}` must be a PIL image, numpy array or torch tensor, got {type(mask).__name__}.")
    array = mask_inside(array, name)
    if array.shape != tuple(shape):
        raise ValueError(
            f"`{name}` is {array.shape[1] if array.ndim == 2 else '?'}x{array.shape[0]} but the image is "
            f"{shape[1]}x{shape[0]}; masks must have the image's size."
        )
    what = name.split("_")[0]
    if not array.any():
        raise ValueError(f"`{name}` is empty (no pixel inside); give a mask that marks the {what}.")
    if array.sum() < MIN_MASK_PIXELS:
        raise ValueError(
            f"`{name}` marks only {int(array.sum())} pixels, fewer than the {MIN_MASK_PIXELS} needed to place the "
            f"{what}; give a mask that covers the whole {what}."
        )
    if array.all():
        logger.warning(f"`{name}` covers the whole image; the crop will be the whole picture.")
    return array


def bounded_size(height: int, width: int, max_side: int) -> tuple[int, int] | None:
    """``(W, H)`` of a ``height x width`` picture scaled down to at most ``max_side`` pixels on its longer side, or
    ``None`` when it already fits."""
    scale = max_side / max(height, width)
    if scale >= 1:
        return None
    return max(1, round(width * scale)), max(1, round(height * scale))


def area_resized(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``(H, W, 3)`` uint8 ``image`` scaled down to ``size = (W, H)`` by OpenCV's area filter.

    The filter reads the array in place: a PIL copy of a 10000 x 8000 photo alone would take a third of a gigabyte.
    """
    import cv2  # installed with mediapipe; imported here, as the detector does, to keep start-up light

    return cv2.resize(np.ascontiguousarray(image), size, interpolation=cv2.INTER_AREA)


def nearest_resized_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``(H, W)`` ``mask`` at ``size = (W, H)`` by nearest neighbour, as bool."""
    picture = PIL.Image.fromarray(np.asarray(mask, dtype=bool).view(np.uint8))
    return np.asarray(picture.resize(size, PIL.Image.Resampling.NEAREST)) > 0


def mask_bbox(*masks: np.ndarray) -> np.ndarray:
    """``(4,)`` ``x, y, w, h`` box around every pixel of the given ``(H, W)`` masks."""
    # Row and column occupancy per mask, then their union: no (H, W) union and no stacked copy of the masks
    # (a 10000 x 8000 photo's masks would take a quarter of a gigabyte).
    rows = np.flatnonzero(np.logical_or.reduce([mask.any(axis=1) for mask in masks]))
    cols = np.flatnonzero(np.logical_or.reduce([mask.any(axis=0) for mask in masks]))
    return np.array([cols[0], rows[0], cols[-1] - cols[0] + 1, rows[-1] - rows[0] + 1], dtype=np.float32)


def _warn_if_implausible_depth(box: np.ndarray, intrinsics: np.ndarray, name: str) -> None:
    """Warn when the box's size in pixels implies a person-sized subject nearer or further than is plausible."""
    side = float(max(box[2], box[3]))
    depth = depth_for_extent(float(intrinsics[0, 0]), TYPICAL_SUBJECT_EXTENT, side)
    low, high = PLAUSIBLE_DEPTH_RANGE
    if not low <= depth <= high:
        logger.warning(
            f"`{name}`: person and object span {side:.0f} pixels, which with a focal length of "
            f"{intrinsics[0, 0]:.0f} pixels puts a person-sized subject ({TYPICAL_SUBJECT_EXTENT} m) about "
            f"{depth:.2g} m away, outside the plausible {low} to {high} m; check the masks, the box and the "
            "focal length (`intrinsics`, CLI `--focal`)."
        )


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
        image: ImageInput | Sequence[ImageInput],
        human_mask: ImageInput | Sequence[ImageInput],
        object_mask: ImageInput | Sequence[ImageInput],
        bbox: Sequence[float] | Sequence[Sequence[float]] | None = None,
        intrinsics: np.ndarray | torch.Tensor | None = None,
    ) -> HOIImageBatch:
        """Check and crop one sample or a batch (lists, or 4-D arrays/tensors, of equal length).

        Args:
            image: RGB picture(s); grey is repeated, alpha dropped.
            human_mask, object_mask: ``(H, W)`` masks of the same size as their image.
            bbox: ``x, y, w, h`` per image; defaults to the box around both masks.
            intrinsics: ``(3, 3)`` or ``(B, 3, 3)`` camera matrices, with focal lengths plausible for their
                pictures (:func:`~scorehoi_diffusers.input_checks.check_focal`); defaults to
                :func:`~scorehoi_diffusers.camera.default_intrinsics`.
        """
        images = [to_rgb_array(item, f"image[{i}]") for i, item in enumerate(as_picture_list(image, "image", None))]
        batch = len(images)
        human_masks = as_picture_list(human_mask, "human_mask", batch)
        object_masks = as_picture_list(object_mask, "object_mask", batch)
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
            if bbox is not None:
                box = check_bbox(bbox[i], f"bbox[{i}]", (height, width)).astype(np.float32)
            else:
                box = mask_bbox(human, obj)
            if intrinsics is not None:
                K = check_intrinsics(intrinsics[i], f"intrinsics[{i}]", (height, width)).astype(np.float32)
            else:
                K = default_intrinsics(height, width)
            _warn_if_implausible_depth(box, K, f"image[{i}]")
            sample = crop_sample(
                {"image": rgb, "human_mask": human, "object_mask": obj, "intrinsics": K, "bbox": box},
                self.crop_config,
            )
            for key, what in (("human_mask", "person"), ("object_mask", "object")):
                if not sample[key].any():
                    raise ValueError(
                        f"`bbox[{i}]` {box.tolist()} leaves the {what} (`{key}`) out of the crop; give a box around "
                        "the person and the object (`bbox`, CLI `--bbox X Y W H`), or none to use the box around "
                        "both masks."
                    )
            samples.append(sample | {"original_intrinsics": K})
        stacked = {key: np.stack([s[key] for s in samples]) for key in ("image", "human_mask", "object_mask")}
        return HOIImageBatch(
            pixel_values=to_model_input(stacked),
            crop_intrinsics=torch.from_numpy(np.stack([s["intrinsics"] for s in samples])),
            human_mask=torch.from_numpy(stacked["human_mask"]),
            object_mask=torch.from_numpy(stacked["object_mask"]),
            intrinsics=torch.from_numpy(np.stack([s["original_intrinsics"] for s in samples])),
        )
