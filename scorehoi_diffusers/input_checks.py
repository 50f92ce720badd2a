"""The checks every public function applies to its inputs, with one set of rules and one wording.

Each check raises ``TypeError`` (wrong kind of value) or ``ValueError`` (wrong shape or value) with one line that
names the argument and says what is expected, and returns the value in the form the caller computes with.

Rules shared by every caller:

- **tensors** have a given shape (``None`` matches any size); values are checked for NaN/Inf only where the caller
  asks (``finite=True``): guidance terms let non-finite values through on purpose, so that one diverged sample of
  a batch does not stop the others.
- **intrinsics** are pinhole matrices ``[[fx, s, cx], [0, fy, cy], [0, 0, 1]]``, finite, with ``fx, fy > 0``;
  for a picture of known size the focal lengths must also be plausible for it (:func:`check_focal`).
- **focal lengths** of a picture lie between ``MIN_FOCAL_FACTOR`` and ``MAX_FOCAL_FACTOR`` times its longer side:
  0.1x is a field of view of about 160 degrees (beyond a fisheye's usable range), 20x about 3 degrees (a long
  telephoto); anything outside is a unit mistake (millimetres, metres) that would place the body at ``z = 0`` or
  kilometres away.
- **boxes** are ``x, y, w, h`` in pixels, finite, with ``w, h > 0``, and overlap the picture when its size is known.
- **masks** are binary: booleans; integers (8-bit pictures included) where 0/1 masks are read as 0/1 and any other as
  ``value >= 128`` (0/255 masks, anti-aliased edges); floats as ``value >= 0.5``.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import numpy as np
import torch

__all__ = [
    "MAX_FOCAL_FACTOR",
    "MIN_FOCAL_FACTOR",
    "check_bbox",
    "check_box_layout",
    "check_focal",
    "check_image_size",
    "check_intrinsics",
    "check_last_dims",
    "check_tensor",
    "check_unit_vector",
    "is_int",
    "mask_inside",
    "to_numpy",
]

# Plausible focal lengths, in multiples of the picture's longer side (see the module docstring).
MIN_FOCAL_FACTOR = 0.1
MAX_FOCAL_FACTOR = 20.0


def to_numpy(value, dtype=None) -> np.ndarray:
    """An array-like (NumPy array, torch tensor on any device, nested sequence) as a NumPy array."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    array = np.asarray(value)
    return array if dtype is None else array.astype(dtype, copy=False)


def check_tensor(
    name: str, value, shape: Sequence[int | None], spec: str | None = None, finite: bool = False
) -> None:
    """Raise unless ``value`` is a ``torch.Tensor`` of ``shape`` (``None`` matches any size).

    Args:
        name: the argument's name, as the caller's signature spells it.
        value: the argument.
        shape: expected sizes, ``None`` for "any".
        spec: the shape as the docstring writes it, e.g. ``"(B, N, 3)"``; defaults to ``shape`` with ``?``.
        finite: also raise when a floating-point value is NaN or infinite.
    """
    sizes = ", ".join("?" if size is None else str(size) for size in shape)
    sizes = f"({sizes},)" if len(shape) == 1 else f"({sizes})"
    described = sizes if spec is None or spec == sizes else f"{spec} = {sizes}"
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor of shape {described}, got {type(value).__name__}.")
    if value.dim() != len(shape) or any(size is not None and size != got for size, got in zip(shape, value.shape)):
        raise ValueError(f"`{name}` must have shape {described}, got {tuple(value.shape)}.")
    if finite and value.is_floating_point() and not torch.isfinite(value).all():
        raise ValueError(f"`{name}` contains NaN or infinite values; pass finite numbers.")


def is_int(value) -> bool:
    """Whether ``value`` is an integer (a ``bool`` is not)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_finite_number(value, name: str, allow_zero: bool = False) -> float:
    """``value`` as a float, or a one-line ``ValueError`` naming ``name`` (as the message should spell it, e.g.
    ``"`step_size`"``) unless it is a finite number > 0 (>= 0 with ``allow_zero``; a ``bool`` is not a number)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (
        math.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    ):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}.")
    return float(value)


def check_box_layout(box, name: str = "bbox") -> None:
    """``box`` must be four numbers ``x, y, w, h`` or a list of such boxes, one per picture (values are checked
    against the pictures later, by :func:`check_bbox`)."""
    if isinstance(box, (str, bytes)) or not isinstance(box, (Sequence, np.ndarray, torch.Tensor)):
        raise TypeError(
            f"`{name}` must be x, y, w, h or a list of such boxes, one per image; got {type(box).__name__}."
        )
    rows = box.tolist() if isinstance(box, (np.ndarray, torch.Tensor)) else list(box)
    boxes = [rows] if rows and isinstance(rows[0], numbers.Real) else rows
    for i, one in enumerate(boxes):
        values = one.tolist() if isinstance(one, (np.ndarray, torch.Tensor)) else one
        if (isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) != 4
                or not all(isinstance(value, numbers.Real) for value in values)):
            raise ValueError(
                f"`{name}[{i}]` must be four numbers x, y, w, h; give one such box per image, got {one!r}."
            )


def check_last_dims(name: str, value, dims: Sequence[int]) -> None:
    """Raise unless ``value`` is a ``torch.Tensor`` whose trailing sizes are ``dims`` (any leading dimensions)."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor, got {type(value).__name__}.")
    if value.dim() < len(dims) or tuple(value.shape[value.dim() - len(dims):]) != tuple(dims):
        expected = ", ".join(["..."] + [str(d) for d in dims])
        raise ValueError(f"`{name}` must have shape ({expected}), got {tuple(value.shape)}.")


def check_image_size(image_size, name: str = "image_size") -> tuple[int, int]:
    """``(H, W)`` as two positive ints."""
    size = tuple(int(s) for s in to_numpy(image_size).reshape(-1))
    if len(size) != 2 or min(size) <= 0:
        raise ValueError(f"`{name}` must be (H, W) with H, W > 0, got {image_size!r}.")
    return size


def check_unit_vector(vector, name: str) -> np.ndarray:
    """A finite, non-zero 3-vector, normalised to length 1 (float64)."""
    vector = to_numpy(vector, np.float64).reshape(-1)
    norm = np.linalg.norm(vector) if vector.shape == (3,) else 0.0
    if not np.isfinite(norm) or norm < 1e-12:
        raise ValueError(f"`{name}` must be a finite, non-zero 3-vector, got {vector!r}.")
    return vector / norm


def check_focal(focal, image_size: tuple[int, int], name: str = "focal") -> float:
    """A focal length in pixels that is finite, positive and plausible for a picture of ``image_size`` ``(H, W)``.

    Plausible means between ``MIN_FOCAL_FACTOR`` and ``MAX_FOCAL_FACTOR`` times the longer side.
    """
    height, width = check_image_size(image_size)
    if isinstance(focal, bool) or not isinstance(focal, (numbers.Real, np.floating, np.integer)):
        raise TypeError(f"`{name}` must be a number (a focal length in pixels), got {type(focal).__name__}.")
    value = float(focal)
    low, high = MIN_FOCAL_FACTOR * max(height, width), MAX_FOCAL_FACTOR * max(height, width)
    if not math.isfinite(value) or not low <= value <= high:
        raise ValueError(
            f"`{name}` is {value:g} pixels but a {width}x{height} picture needs a focal length between {low:g} and "
            f"{high:g} pixels ({MIN_FOCAL_FACTOR:g}x to {MAX_FOCAL_FACTOR:g}x its longer side); give it in pixels, "
            "or leave it out for the default."
        )
    return value


def check_intrinsics(intrinsics, name: str = "intrinsics", image_size: tuple[int, int] | None = None) -> np.ndarray:
    """A ``(3, 3)`` pinhole matrix ``[[fx, s, cx], [0, fy, cy], [0, 0, 1]]`` with ``fx, fy > 0``, as float64.

    Args:
        intrinsics: the matrix (array-like or tensor).
        name: the argument's name in messages, e.g. ``"intrinsics[1]"``.
        image_size: ``(H, W)`` of the picture the matrix belongs to; when given, ``fx`` and ``fy`` must also be
            plausible for it (:func:`check_focal`).
    """
    K = to_numpy(intrinsics, np.float64)
    if K.shape != (3, 3) or not np.isfinite(K).all():
        bad = "non-finite values" if K.shape == (3, 3) else f"shape {K.shape}"
        raise ValueError(f"`{name}` must be a finite (3, 3) pinhole matrix, got {bad}.")
    if not np.allclose(K[2], [0.0, 0.0, 1.0]) or K[1, 0] != 0 or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise ValueError(
            f"`{name}` must be a pinhole matrix [[fx, s, cx], [0, fy, cy], [0, 0, 1]] with positive focal lengths "
            f"fx, fy, got {K.tolist()}."
        )
    if image_size is not None:
        check_focal(K[0, 0], image_size, f"{name}[0, 0] (fx)")
        check_focal(K[1, 1], image_size, f"{name}[1, 1] (fy)")
    return K


def check_bbox(bbox, name: str = "bbox", image_size: tuple[int, int] | None = None) -> np.ndarray:
    """``(4,)`` float64 ``x, y, w, h``: finite, ``w, h > 0``, and overlapping an ``(H, W)`` picture when given."""
    try:
        box = to_numpy(bbox, np.float64).reshape(-1)
    except (TypeError, ValueError):
        box = np.zeros(0)
    if box.shape != (4,) or not np.isfinite(box).all():
        raise ValueError(f"`{name}` must be 4 finite numbers x, y, w, h; got {bbox!r}.")
    x, y, w, h = box
    if w <= 0 or h <= 0:
        raise ValueError(f"`{name}` must have positive width and height; got w={w:g}, h={h:g}.")
    if image_size is not None:
        height, width = check_image_size(image_size)
        if x >= width or y >= height or x + w <= 0 or y + h <= 0:
            raise ValueError(f"`{name}` {box.tolist()} lies outside the {width}x{height} image.")
    return box


def mask_inside(mask, name: str) -> np.ndarray:
    """The pixels inside a binary mask, as a bool array of the mask's shape (rules in the module docstring).

    Args:
        mask: a NumPy array or torch tensor of booleans, integers or floats (PIL images are read into 8-bit
            arrays by :mod:`scorehoi_diffusers.image_processor` first).
        name: the argument's name in messages.
    """
    array = to_numpy(mask)
    if array.dtype == np.bool_:
        return array
    if array.dtype.kind in "iu":
        # A 0/1 mask (e.g. saved straight from a boolean array) is binary as it is; a 0/255 one is thresholded
        # half-way so that anti-aliased or JPEG-compressed edges fall on the nearer side.
        return array == 1 if array.size and array.max() <= 1 and array.min() >= 0 else array >= 128
    if array.dtype.kind == "f":
        if not np.isfinite(array).all():
            raise ValueError(f"`{name}` contains NaN or Inf values; give a finite mask.")
        return array >= 0.5
    raise TypeError(f"`{name}` must hold booleans or numbers, got dtype {array.dtype}.")
