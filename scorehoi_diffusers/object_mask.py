"""An object mask from a box drawn around the object, by OpenCV's GrabCut (a classical method, no weights).

Pixels outside the box, and the person's pixels, are background for sure; the rest of the box is probably the
object. GrabCut fits a colour model (a 5-component Gaussian mixture) to each side and cuts the box along the
colour edges.

GrabCut's own start (``GC_INIT_WITH_RECT`` / ``GC_INIT_WITH_MASK``) seeds its mixtures by k-means++ with
OpenCV's global random generator, so its masks change from run to run unless that generator is reseeded, which
library code must not do. Here the mixtures are seeded without randomness instead (pixels split into brightness
quantiles, see :func:`_quantile_mixture`) and GrabCut runs in ``GC_EVAL`` mode, which starts from the given
mixtures: the same picture and box give the same mask, bit for bit, whatever the generator's state.
"""
from __future__ import annotations

import numpy as np
from diffusers.utils import logging

from .image_processor import area_resized, bounded_size, nearest_resized_mask
from .input_checks import check_bbox

logger = logging.get_logger(__name__)

# GrabCut's mixture size, fixed inside OpenCV (its model arrays hold 13 numbers per component).
GRABCUT_COMPONENTS = 5

# GrabCut rounds: each re-learns both colour models and recuts; the mask settles after a few.
GRABCUT_ITERATIONS = 5

# GrabCut works on a copy of the picture at most this many pixels on its longer side (area-filtered), and the cut is
# scaled back up by nearest neighbour: on the full 80 megapixels of a 10000 x 8000 photo its graph and the colour
# models' float64 copies took 17 GB, and an object mask needs no finer detail than the regressor's crop can use.
GRABCUT_MAX_SIDE = 1024

# Added to the covariance diagonals of the seed mixtures (OpenCV adds the same to singular covariances), so grey
# pictures, whose three channels are equal, still give invertible covariances.
COVARIANCE_FLOOR = 0.01


def _quantile_mixture(pixels: np.ndarray) -> np.ndarray:
    """GrabCut's ``(1, 65)`` float64 model array for ``pixels (N, 3)``: weights, means, covariances of 5 parts.

    The parts are the pixels split by brightness into equal quantiles: a deterministic seed that the GrabCut
    rounds then re-learn.
    """
    order = np.argsort(pixels.sum(axis=1), kind="stable")
    parts = np.array_split(pixels[order].astype(np.float64), GRABCUT_COMPONENTS)
    weights, means, covariances = [], [], []
    for part in parts:
        if len(part) == 0:  # fewer pixels than parts: an unused component (weight 0 is skipped by OpenCV)
            weights.append(0.0)
            means.append(np.zeros(3))
            covariances.append(np.eye(3))
            continue
        weights.append(len(part) / len(pixels))
        means.append(part.mean(axis=0))
        centred = part - part.mean(axis=0)
        covariances.append(centred.T @ centred / len(part) + COVARIANCE_FLOOR * np.eye(3))
    flat_covariances = np.concatenate([covariance.ravel() for covariance in covariances])
    model = np.concatenate([np.array(weights), np.concatenate(means), flat_covariances])
    return model[None, :]


def object_mask_from_box(image: np.ndarray, box, person_mask: np.ndarray | None = None) -> np.ndarray:
    """The object's mask inside ``box``, cut by GrabCut.

    Args:
        image: ``(H, W, 3)`` uint8 RGB photo.
        box: ``(4,)`` ``x, y, w, h`` in pixels around the object (clipped to the picture).
        person_mask: ``(H, W)`` bool mask of the person, *optional*: its pixels are never the object.

    Returns:
        ``(H, W)`` bool mask. If GrabCut keeps nothing, the box without the person (with a logged warning). A
        picture over :data:`GRABCUT_MAX_SIDE` pixels on its longer side is cut on a downscaled copy, and the mask
        scaled back up.

    Raises:
        ValueError: ``image`` is not ``(H, W, 3)`` uint8, the box lies outside the picture, is empty, covers the
            whole picture (nothing left to learn the background from) or is covered by the person.
    """
    import cv2  # ships with mediapipe; imported here so the package imports without it

    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        what = f"{image.dtype} array of shape {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"`image` must be an (H, W, 3) uint8 RGB array to cut an object mask, got {what}.")
    height, width = image.shape[:2]
    x, y, w, h = check_bbox(box, "object_box", (height, width))
    if person_mask is not None:
        person_mask = np.asarray(person_mask, dtype=bool)
        if person_mask.shape != (height, width):
            raise ValueError(f"`person_mask` has shape {person_mask.shape}; give the image shape {(height, width)}.")
    size = bounded_size(height, width, GRABCUT_MAX_SIDE)
    if size is not None:
        scale = np.array([size[0] / width, size[1] / height] * 2)
        small_person = None if person_mask is None else nearest_resized_mask(person_mask, size)
        small = object_mask_from_box(area_resized(image, size), np.array([x, y, w, h]) * scale, small_person)
        return nearest_resized_mask(small, (width, height))
    if person_mask is None:
        person_mask = np.zeros((height, width), dtype=bool)
    x0, y0 = max(int(np.floor(x)), 0), max(int(np.floor(y)), 0)
    x1, y1 = min(int(np.ceil(x + w)), width), min(int(np.ceil(y + h)), height)

    labels = np.full((height, width), cv2.GC_BGD, dtype=np.uint8)
    labels[y0:y1, x0:x1] = cv2.GC_PR_FGD
    labels[person_mask] = cv2.GC_BGD
    inside = labels == cv2.GC_PR_FGD
    if not inside.any():
        raise ValueError(f"`object_box` {[float(v) for v in (x, y, w, h)]} is covered by the person mask; draw it "
                         "around the object's visible part.")
    if inside.all():
        raise ValueError("`object_box` covers the whole picture, leaving no background to tell the object from; "
                         "draw it tightly around the object.")
    image = np.ascontiguousarray(image)
    background_model = _quantile_mixture(image[~inside])
    object_model = _quantile_mixture(image[inside])
    cv2.grabCut(image, labels, None, background_model, object_model, GRABCUT_ITERATIONS, cv2.GC_EVAL)
    mask = (labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)
    if not mask.any():
        logger.warning(
            "GrabCut kept no object pixel inside `object_box`; using the box without the person as the object mask."
        )
        return inside
    return mask
