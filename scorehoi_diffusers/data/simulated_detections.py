"""Simulated 2D body-keypoint detections: what a BlazePose detector would report for a ground-truth body.

The learned parts take detected keypoints as input, but synthetic scenes come with the true body only. These
functions turn the true body into detections that look like the detector's: the 33 BlazePose landmarks
(:data:`~scorehoi_diffusers.skeleton.BLAZEPOSE_BODY_INDEX`) projected through the camera, with position noise
scaled by the person's size in the picture, occasional gross errors, landmarks reported with low visibility,
landmarks outside the picture reported invisible, whole people missed, and whole-body left/right swaps.

The rates (:class:`DetectionNoise`) default to what mediapipe's pose model (complexity 1, static images) did on
synthetic renders of the validation slice of the train stream, measured by ``training/measure_detection_noise.py``
(which writes ``training/detection_noise.json``).

Detections are ``(B, 33, 3)`` tensors of ``(u, v, visibility)`` in pixels of the picture the intrinsics belong to,
in BlazePose order, as the pipeline's ``keypoints`` argument takes them. Visibility is in ``[0, 1]``; 0 means
"not reported": landmarks without a body point, outside the picture, or of a missed person, whose ``(u, v)`` are
0 as well.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from ..camera import project_points
from ..person_detection import VISIBLE  # the detector's threshold, shared by the real detector and its simulation
from ..skeleton import BLAZEPOSE_FITTED, BLAZEPOSE_MIRRORED, NUM_BLAZEPOSE

__all__ = ["DetectionNoise", "person_box_heights", "simulate_detections"]



@dataclass(frozen=True)
class DetectionNoise:
    """How simulated detections differ from the truth. Lengths are fractions of the person's box height (the
    vertical extent of the projected true landmarks).

    The defaults were measured by ``training/measure_detection_noise.py`` (mediapipe 0.10.21 pose, complexity 1,
    static images) on 512 default-style synthetic renders (192 px) of the validation slice of the train
    stream (indices 20000-20511, seed 0); ``training/detection_noise.json`` holds the measurement. On the
    randomised renders of the same scenes the detector does worse (``training/detection_noise_randomized.json``:
    misses 8.6 %, swaps 10.7 %, low visibility 18.8 %, error 2.6 %, outliers 10.3 % at 24 %); the defaults keep the
    plainer pictures' rates, which are closer to a detector's on clear photos.

    Attributes:
        position_error: standard deviation of each coordinate's error on a reported landmark (robust estimate:
            1.4826 x the median absolute error).
        outlier_rate: probability that a reported landmark is off by a gross error instead.
        outlier_error: standard deviation of each coordinate of a gross error.
        low_visibility_rate: probability that a landmark inside the picture is reported with visibility below
            0.5 (the detector's "probably not there"); its position gets a gross error.
        miss_rate: probability that the person is not detected at all (every visibility 0).
        swap_rate: probability that a detected person's left and right are swapped.
    """

    position_error: float = 0.0211
    outlier_rate: float = 0.0853
    outlier_error: float = 0.1718
    low_visibility_rate: float = 0.146
    miss_rate: float = 0.0312
    swap_rate: float = 0.0363

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= value < float("inf"):
                raise ValueError(f"DetectionNoise.{field.name} must be a finite number >= 0, got {value!r}.")
            if field.name.endswith("_rate") and value > 1.0:
                raise ValueError(f"DetectionNoise.{field.name} is a probability: it must be in [0, 1], got {value}.")

    @classmethod
    def none(cls) -> DetectionNoise:
        """Perfect detections: every landmark with a body point inside the picture, exactly, visibility 1."""
        return cls(**{field.name: 0.0 for field in fields(cls)})


_FITTED = torch.tensor(BLAZEPOSE_FITTED)
_MIRRORED = torch.tensor(BLAZEPOSE_MIRRORED)


def person_box_heights(pixels: torch.Tensor) -> torch.Tensor:
    """``(B,)`` vertical extent in pixels (at least 1) of the projected landmarks that have a body point.

    Args:
        pixels: ``(B, 33, 2)`` projected landmarks, BlazePose order.
    """
    v = pixels[:, _FITTED.to(pixels.device), 1]
    return (v.amax(1) - v.amin(1)).clamp(min=1.0)


def simulate_detections(
    points: torch.Tensor,
    intrinsics: torch.Tensor,
    image_size: tuple[int, int],
    noise: DetectionNoise | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Simulated BlazePose detections of the bodies whose landmarks are ``points``.

    Every random draw has a fixed shape, so the result depends only on the inputs and the generator's state.

    Args:
        points: ``(B, 33, 3)`` camera-space landmark points from
            :func:`~scorehoi_diffusers.body.blazepose_points` (x right, y down, z forward, metres).
        intrinsics: ``(B, 3, 3)`` camera matrices of the picture.
        image_size: ``(height, width)`` of the picture in pixels; landmarks outside it are not reported.
        noise: the detector's error rates (default: the measured :class:`DetectionNoise`);
            ``DetectionNoise.none()`` gives the exact projections.
        generator: random stream of the noise (default: torch's global one).

    Returns:
        ``(B, 33, 3)`` float32 ``(u, v, visibility)``, in pixels, BlazePose order.
    """
    if not isinstance(points, torch.Tensor) or points.dim() != 3 or points.shape[1:] != (NUM_BLAZEPOSE, 3):
        raise ValueError(f"`points` must be a (B, {NUM_BLAZEPOSE}, 3) tensor from blazepose_points, "
                         f"got {_shape(points)}.")
    if not isinstance(intrinsics, torch.Tensor) or intrinsics.shape != (points.shape[0], 3, 3):
        raise ValueError(f"`intrinsics` must be a ({points.shape[0]}, 3, 3) tensor (one camera per body), "
                         f"got {_shape(intrinsics)}.")
    if (not isinstance(image_size, (tuple, list)) or len(image_size) != 2
            or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in image_size)):
        raise ValueError(f"`image_size` must be (height, width) in pixels, two positive ints, got {image_size!r}.")
    if noise is None:
        noise = DetectionNoise()
    if not isinstance(noise, DetectionNoise):
        raise TypeError(f"`noise` must be a DetectionNoise or None, got {type(noise).__name__}.")
    device = points.device
    batch = points.shape[0]
    points = points.float()
    fitted = _FITTED.to(device)[None].expand(batch, -1)

    pixels = project_points(points, intrinsics.float())  # (B, 33, 2)
    scale = person_box_heights(pixels)[:, None, None]  # (B, 1, 1)

    draw_device = generator.device if generator is not None else torch.device("cpu")

    def uniform(*shape: int) -> torch.Tensor:
        return torch.rand(shape, generator=generator, device=draw_device).to(device)

    def normal(*shape: int) -> torch.Tensor:
        return torch.randn(shape, generator=generator, device=draw_device).to(device)

    # Draw everything up front, in one fixed order, so results never depend on the values.
    small, gross = normal(batch, NUM_BLAZEPOSE, 2), normal(batch, NUM_BLAZEPOSE, 2)
    is_outlier, is_low = uniform(batch, NUM_BLAZEPOSE), uniform(batch, NUM_BLAZEPOSE)
    confidence = uniform(batch, NUM_BLAZEPOSE)
    missed, swapped = uniform(batch), uniform(batch)

    low = fitted & (is_low < noise.low_visibility_rate)
    wild = low | (is_outlier < noise.outlier_rate)
    error = torch.where(wild[..., None], gross * noise.outlier_error, small * noise.position_error)
    uv = pixels + error * scale
    # Reported landmarks have visibility in [0.5, 1), low-visibility ones in [0, 0.5), as the detector's do.
    visibility = torch.where(low, VISIBLE * confidence, VISIBLE + (1 - VISIBLE) * confidence)

    height, width = image_size
    inside = ((pixels[..., 0] >= 0) & (pixels[..., 0] < width) & (pixels[..., 1] >= 0) & (pixels[..., 1] < height)
              & (points[..., 2] > 1e-3))
    reported = fitted & inside & (missed >= noise.miss_rate)[:, None]
    detections = torch.cat([uv, visibility[..., None]], dim=-1) * reported[..., None]
    mirrored = detections.index_select(1, _MIRRORED.to(device))
    return torch.where((swapped < noise.swap_rate)[:, None, None], mirrored, detections)


def _shape(value) -> str:
    return f"shape {tuple(value.shape)}" if isinstance(value, torch.Tensor) else type(value).__name__
