"""The masks a user left out, made from the photo: the person's by a person detector, the object's from a box.

:func:`resolve_photo_inputs` runs before the pipeline's preprocessing. A mask the user gives is used as it is;
for each picture without a ``human_mask`` the detector (``person_detector``, default
:func:`~scorehoi_diffusers.person_detection.default_person_detector`) finds the person and its keypoints; for each
picture without an ``object_mask`` GrabCut cuts one from ``object_box``
(:func:`~scorehoi_diffusers.object_mask.object_mask_from_box`). With both masks given and no box, nothing runs
and the inputs pass through untouched.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..image_processor import (
    area_resized,
    as_picture_list,
    bounded_size,
    nearest_resized_mask,
    to_mask_array,
    to_rgb_array,
)
from ..input_checks import check_bbox, check_box_layout
from ..object_mask import object_mask_from_box
from ..person_detection import PersonDetection, PersonDetector, default_person_detector
from ..skeleton import NUM_BLAZEPOSE

# ``person_box`` is grown by this fraction of its size on each side before the detector looks inside it, so a
# tight box still shows the detector the whole person.
PERSON_BOX_MARGIN = 0.1
# The detector sees a picture at most this many pixels on its longer side (a larger one is downscaled and the
# detections scaled back): BlazePose reads a 256-pixel input anyway, and on a 10000 x 8000 photo the detector's
# own copies and full-size masks would take gigabytes.
DETECTION_MAX_SIDE = 1920


@dataclass
class PhotoInputs:
    """The masks the pipeline preprocesses, and the keypoints of the people the detector found.

    Attributes:
        human_mask: the user's ``human_mask`` unchanged, or a list with one ``(H, W)`` mask per picture.
        object_mask: the user's ``object_mask`` unchanged, or a list with one ``(H, W)`` mask per picture.
        keypoints: ``(B, 33, 3)`` float32 ``(u, v, visibility)`` in full-image pixels, BlazePose order, when the
            detector ran (pictures with a user's ``human_mask`` get visibility 0); else ``None``. This is the
            pipeline's ``keypoints`` argument unless the user gave one.
    """

    human_mask: Any
    object_mask: Any
    keypoints: np.ndarray | None = None


def _boxes(box, name: str, batch: int) -> list:
    """One box (or ``None``) per picture."""
    if box is None:
        return [None] * batch
    check_box_layout(box, name)
    rows = box.tolist() if isinstance(box, (np.ndarray, torch.Tensor)) else list(box)
    boxes = [rows] if isinstance(rows[0], numbers.Real) else rows
    if len(boxes) != batch:
        raise ValueError(f"`{name}` has {len(boxes)} boxes but `image` has {batch}; give one per image.")
    return boxes


def _box_intersection(a: np.ndarray, b: np.ndarray) -> float:
    """Area shared by two ``x, y, w, h`` boxes."""
    width = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    height = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    return float(max(width, 0.0) * max(height, 0.0))


def _checked_detections(found, shape: tuple[int, int], name: str) -> list[PersonDetection]:
    """The detector's answer, checked against the interface (a replaced detector may get it wrong)."""
    if not isinstance(found, (list, tuple)) or not all(isinstance(d, PersonDetection) for d in found):
        raise TypeError(f"`person_detector.detect` must return a list of PersonDetection for `{name}`, "
                        f"got {type(found).__name__}.")
    for person in found:
        if (np.shape(person.keypoints) != (NUM_BLAZEPOSE, 2) or np.shape(person.visibility) != (NUM_BLAZEPOSE,)
                or np.shape(person.mask) != shape):
            raise ValueError(f"`person_detector` returned a PersonDetection for `{name}` with keypoints "
                             f"{np.shape(person.keypoints)}, visibility {np.shape(person.visibility)}, mask "
                             f"{np.shape(person.mask)}; expected ({NUM_BLAZEPOSE}, 2), ({NUM_BLAZEPOSE},), {shape}.")
    return list(found)


def _detect(detector: PersonDetector, picture: np.ndarray, name: str) -> list[PersonDetection]:
    """The detector's people in ``picture (H, W, 3)``, found on a copy at most ``DETECTION_MAX_SIDE`` pixels on
    its longer side and placed back in ``picture``'s pixels (the masks scaled up to ``(H, W)``)."""
    height, width = picture.shape[:2]
    size = bounded_size(height, width, DETECTION_MAX_SIDE)
    if size is None:
        return _checked_detections(detector.detect(picture), (height, width), name)
    small = area_resized(picture, size)
    found = _checked_detections(detector.detect(small), small.shape[:2], name)
    to_full = np.array([width / size[0], height / size[1]], dtype=np.float32)
    return [
        PersonDetection(
            np.asarray(person.keypoints, np.float32) * to_full,
            np.asarray(person.visibility, np.float32),
            nearest_resized_mask(person.mask, (width, height)),
            np.asarray(person.box, np.float32) * np.tile(to_full, 2),
        )
        for person in found
    ]


def _detect_in_box(detector: PersonDetector, image: np.ndarray, box: np.ndarray, name: str) -> list[PersonDetection]:
    """People the detector finds in the crop around ``box`` (grown by ``PERSON_BOX_MARGIN``), in full-image
    coordinates."""
    height, width = image.shape[:2]
    x, y, w, h = box
    x0, y0 = max(int(x - PERSON_BOX_MARGIN * w), 0), max(int(y - PERSON_BOX_MARGIN * h), 0)
    x1 = min(int(np.ceil(x + w + PERSON_BOX_MARGIN * w)), width)
    y1 = min(int(np.ceil(y + h + PERSON_BOX_MARGIN * h)), height)
    crop = np.ascontiguousarray(image[y0:y1, x0:x1])
    found = _detect(detector, crop, name)
    offset = np.array([x0, y0], dtype=np.float32)
    placed = []
    for person in found:
        mask = np.zeros((height, width), dtype=bool)
        mask[y0:y1, x0:x1] = person.mask
        box_full = np.asarray(person.box, dtype=np.float32) + np.concatenate([offset, np.zeros(2, np.float32)])
        placed.append(PersonDetection(np.asarray(person.keypoints, np.float32) + offset,
                                      np.asarray(person.visibility, np.float32), mask, box_full))
    return placed


def choose_person(
    detector: PersonDetector, image: np.ndarray, object_box: np.ndarray | None, person_box: np.ndarray | None,
    name: str,
) -> PersonDetection:
    """The person a picture is about: the one in ``person_box`` if given, else the only one, else the only one
    whose box overlaps ``object_box``.

    Raises:
        ValueError: no person is found, or several are and neither box tells which one to take.
    """
    if person_box is not None:
        found = _detect_in_box(detector, image, person_box, name)
        if not found:
            raise ValueError(f"No person found inside `person_box` {person_box.tolist()} of `{name}`; move the box "
                             "onto the person or give `human_mask`.")
        return max(found, key=lambda person: _box_intersection(person.box, person_box))
    found = _detect(detector, image, name)
    if not found:
        raise ValueError(f"No person found in `{name}`; give `human_mask` (a mask of the person), or a "
                         "`person_box` (CLI `--person-box X Y W H`) around a person the detector missed.")
    if len(found) == 1:
        return found[0]
    if object_box is not None:
        touching = [person for person in found if _box_intersection(person.box, object_box) > 0]
        if len(touching) == 1:
            return touching[0]
    raise ValueError(f"`{name}` shows {len(found)} people and the object box does not tell which one to "
                     "reconstruct; give `person_box` (CLI `--person-box X Y W H`) around that person.")


def resolve_photo_inputs(
    image, human_mask, object_mask, object_box=None, person_box=None, person_detector: PersonDetector | None = None,
) -> PhotoInputs:
    """Fill in the masks the user left out (see the module docstring).

    Args:
        image: the pipeline's ``image`` (one picture or a list), or ``None``.
        human_mask, object_mask: the user's masks (one, a list with ``None`` where left out, or ``None``).
        object_box: ``x, y, w, h`` around the object, or one such box per picture; needed where
            ``object_mask`` is left out, and picks the person touching it among several.
        person_box: ``x, y, w, h`` around the person to reconstruct, or one per picture: the detector looks
            only there.
        person_detector: a :class:`~scorehoi_diffusers.person_detection.PersonDetector`; default: the
            bundled mediapipe detector, built on first use.

    Returns:
        [`PhotoInputs`].

    Raises:
        ValueError / TypeError: one line naming the input: no image for a box, neither object mask nor box, no
            person found, several people and no way to tell which, a box outside its picture.
    """
    if image is None:
        for name, box in (("object_box", object_box), ("person_box", person_box)):
            if box is not None:
                raise ValueError(f"`{name}` only applies to `image`; drop it when refining `initial_params`.")
        return PhotoInputs(human_mask, object_mask)
    if human_mask is not None and object_mask is not None and object_box is None and person_box is None:
        return PhotoInputs(human_mask, object_mask)
    if person_detector is not None and not callable(getattr(person_detector, "detect", None)):
        raise TypeError("`person_detector` must have a `detect(image (H, W, 3) uint8) -> list[PersonDetection]` "
                        f"method, got {type(person_detector).__name__}.")
    pictures = as_picture_list(image, "image", None)
    batch = len(pictures)
    human_masks = [None] * batch if human_mask is None else as_picture_list(human_mask, "human_mask", batch)
    object_masks = [None] * batch if object_mask is None else as_picture_list(object_mask, "object_mask", batch)
    object_boxes = _boxes(object_box, "object_box", batch)
    person_boxes = _boxes(person_box, "person_box", batch)
    keypoints = np.zeros((batch, NUM_BLAZEPOSE, 3), dtype=np.float32)
    detected = False
    for i in range(batch):
        suffix = f"[{i}]" if batch > 1 else ""
        rgb = to_rgb_array(pictures[i], f"image{suffix}")
        shape = rgb.shape[:2]
        boxes = {}
        for name, given in (("object_box", object_boxes[i]), ("person_box", person_boxes[i])):
            boxes[name] = None if given is None else check_bbox(given, f"{name}{suffix}", shape).astype(np.float32)
        if human_masks[i] is None:
            detector = person_detector if person_detector is not None else default_person_detector()
            person = choose_person(detector, rgb, boxes["object_box"], boxes["person_box"], f"image{suffix}")
            human_masks[i] = np.asarray(person.mask, dtype=bool)
            keypoints[i] = person.keypoints_with_visibility()
            detected = True
        if object_masks[i] is None:
            if boxes["object_box"] is None:
                raise ValueError(f"`image{suffix}` has neither `object_mask` nor `object_box`; give a mask of the "
                                 "object or a box around it (CLI `--object-mask` or `--object-box X Y W H`).")
            person_mask = to_mask_array(human_masks[i], f"human_mask{suffix}", shape)
            object_masks[i] = object_mask_from_box(rgb, boxes["object_box"], person_mask)
    return PhotoInputs(human_masks, object_masks, keypoints if detected else None)


def detect_keypoints(
    image: np.ndarray, human_mask: np.ndarray, person_detector: PersonDetector | None = None, name: str = "image"
) -> np.ndarray | None:
    """The detected keypoints of the person a user's ``human_mask`` marks, for a photo whose masks are given.

    The detector looks inside the mask's box (grown as for ``person_box``), so it takes that person.

    Args:
        image: ``(H, W, 3)`` uint8 picture.
        human_mask: ``(H, W)`` the user's person mask.
        person_detector: as for :func:`resolve_photo_inputs`.
        name: the picture's name in messages.

    Returns:
        ``(33, 3)`` float32 ``(u, v, visibility)``, or ``None`` when the detector finds nobody there.
    """
    # Only keypoints are wanted, so a large photo and its mask are downscaled first: no full-size crop or mask.
    height, width = image.shape[:2]
    size = bounded_size(height, width, DETECTION_MAX_SIDE)
    if size is not None:
        image, human_mask = area_resized(image, size), nearest_resized_mask(human_mask, size)
    rows, cols = np.nonzero(human_mask)
    if rows.size == 0:
        return None
    box = np.array([cols.min(), rows.min(), cols.max() + 1 - cols.min(), rows.max() + 1 - rows.min()], np.float32)
    detector = person_detector if person_detector is not None else default_person_detector()
    found = _detect_in_box(detector, image, box, name)
    if not found:
        return None
    keypoints = max(found, key=lambda person: _box_intersection(person.box, box)).keypoints_with_visibility()
    keypoints[:, :2] *= np.array([width / image.shape[1], height / image.shape[0]], dtype=np.float32)
    return keypoints
