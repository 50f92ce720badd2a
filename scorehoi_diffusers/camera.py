"""Pinhole cameras: intrinsics, projection, and orbiting viewpoints.

Cameras follow OpenCV: the camera sits at the origin looking along +z, x right, y down; the centre of pixel
``(u, v)`` is at integer coordinates, so a ``W``-pixel-wide picture's centre is at ``u = (W - 1) / 2``. ``K`` is
the ``(3, 3)`` pinhole matrix ``[[fx, s, cx], [0, fy, cy], [0, 0, 1]]`` mapping camera space to those pixels.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .input_checks import check_focal, check_image_size, check_tensor, check_unit_vector, to_numpy

__all__ = [
    "CAMERA_UP",
    "DEFAULT_FOCAL_FACTOR",
    "default_intrinsics",
    "depth_for_extent",
    "intrinsics_from_focal",
    "look_at_camera",
    "move_pixels",
    "project_points",
]

# Without calibration, assume a focal length of 1.2 x the longer side (about a 45 degree field of view).
DEFAULT_FOCAL_FACTOR = 1.2

# "Up" in camera space: -y for an upright OpenCV camera.
CAMERA_UP = np.array([0.0, -1.0, 0.0])


def intrinsics_from_focal(focal: float, height: int, width: int, name: str = "focal") -> np.ndarray:
    """``(3, 3)`` float32 pinhole matrix with focal length ``focal`` (pixels) and the principal point centred.

    Args:
        focal: focal length in pixels, checked to be plausible for the picture
            (:func:`~scorehoi_diffusers.input_checks.check_focal`).
        height, width: the picture's size in pixels.
        name: how errors refer to the focal length, e.g. ``"--focal"``.
    """
    focal = check_focal(focal, (height, width), name)
    return np.array([[focal, 0, (width - 1) / 2], [0, focal, (height - 1) / 2], [0, 0, 1]], dtype=np.float32)


def default_intrinsics(height: int, width: int) -> np.ndarray:
    """A plausible ``(3, 3)`` float32 pinhole matrix for an uncalibrated picture (see ``DEFAULT_FOCAL_FACTOR``)."""
    return intrinsics_from_focal(DEFAULT_FOCAL_FACTOR * max(height, width), height, width)


def resized_intrinsics(intrinsics: np.ndarray, scale_x: float, scale_y: float) -> np.ndarray:
    """The ``(3, 3)`` pinhole matrix of the same camera once its picture is resized by ``scale_x`` x ``scale_y``.

    Pixel centres stay on integers: a pixel at ``u`` moves to ``u'`` with ``u' + 0.5 = (u + 0.5) * scale_x``.
    """
    scaled = np.diag([scale_x, scale_y, 1.0]) @ intrinsics
    scaled[0, 2], scaled[1, 2] = (intrinsics[0, 2] + 0.5) * scale_x - 0.5, (intrinsics[1, 2] + 0.5) * scale_y - 0.5
    return scaled


def depth_for_extent(focal: float, extent_m: float, extent_px: float) -> float:
    """Depth (m) at which something ``extent_m`` metres across spans ``extent_px`` pixels (``z = f X / x``)."""
    return focal * extent_m / extent_px


def move_pixels(pixels: torch.Tensor, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Pixels of one camera to the pixels of another with the same centre and axes: ``p' = K_t K_s^-1 p``.

    (A crop or a resize of a picture changes only the intrinsics.) Computed in float64.

    Args:
        pixels: ``(B, N, 2)`` pixel coordinates ``(u, v)`` in the ``source`` camera.
        source: ``(B, 3, 3)`` the camera matrices the pixels belong to.
        target: ``(B, 3, 3)`` the camera matrices to move them to.

    Returns:
        ``(B, N, 2)`` float64 pixel coordinates in the ``target`` camera.
    """
    dtype = torch.float64
    homogeneous = torch.cat([pixels.to(dtype), torch.ones_like(pixels[..., :1], dtype=dtype)], dim=-1)
    moved = homogeneous @ (target.to(dtype) @ torch.linalg.inv(source.to(dtype))).transpose(1, 2)
    return moved[..., :2] / moved[..., 2:]


def project_points(points: torch.Tensor, intrinsics: torch.Tensor, min_depth: float = 1e-3) -> torch.Tensor:
    """Pinhole projection of camera-space points to pixel coordinates.

    Depths are clamped to at least ``min_depth`` metres, so points at or behind the camera project to
    large but finite coordinates (and get no gradient through their depth) instead of dividing by 0.

    Args:
        points: ``(B, N, 3)`` camera-space points (x right, y down, z forward).
        intrinsics: ``(B, 3, 3)`` camera matrices ``K``.
        min_depth: smallest depth used in the division (m).

    Returns:
        ``(B, N, 2)`` pixel coordinates ``(u, v)``.
    """
    check_tensor("points", points, (None, None, 3), "(B, N, 3)")
    check_tensor("intrinsics", intrinsics, (points.shape[0], 3, 3), "(B, 3, 3)")
    depth = points[..., 2:].clamp(min=min_depth)  # (B, N, 1)
    image_plane = torch.cat([points[..., :2] / depth, torch.ones_like(depth)], dim=-1)
    return (image_plane @ intrinsics.to(points.dtype).transpose(1, 2))[..., :2]


def look_at_camera(
    center,
    distance: float,
    azimuth_deg: float,
    elevation_deg: float,
    image_size: tuple[int, int],
    fov_deg: float = 40.0,
    up=CAMERA_UP,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An OpenCV camera orbiting `center`, for seeing camera-space meshes from another viewpoint.

    At azimuth 0 and elevation 0 the new camera sits where the original one looks from (on its side of
    `center`, same orientation); positive azimuth swings it round `up` towards the original camera's
    right (+x), positive elevation raises it along `up`.

    Args:
        center: `(3,)` point looked at, in the original camera space.
        distance: distance from the new camera to `center`, > 0.
        azimuth_deg: rotation about `up`, in degrees.
        elevation_deg: height angle in degrees, strictly between -90 and 90.
        image_size: `(H, W)` of the new view.
        fov_deg: vertical field of view in degrees.
        up: `(3,)` up direction in the original camera space (OpenCV: -y).

    Returns:
        `(R (3, 3), t (3,), K (3, 3))` with `p_view = R @ p + t`; `center` projects to the image centre.
    """
    center = to_numpy(center, np.float64).reshape(-1)
    if center.shape != (3,) or not np.isfinite(center).all():
        raise ValueError(f"`center` must be a finite 3-vector, got {center!r}.")
    if not distance > 0:
        raise ValueError(f"`distance` must be > 0, got {distance!r}.")
    if not -90.0 < elevation_deg < 90.0:
        raise ValueError(f"`elevation_deg` must lie strictly between -90 and 90, got {elevation_deg!r}.")
    if not 0.0 < fov_deg < 180.0:
        raise ValueError(f"`fov_deg` must lie in (0, 180), got {fov_deg!r}.")
    height, width = check_image_size(image_size)
    up = check_unit_vector(up, "up")

    forward0 = check_unit_vector(
        np.array([0.0, 0.0, 1.0]) - up[2] * up, "up (it must not be parallel to the optical axis)"
    )
    right0 = np.cross(forward0, up)
    azimuth, elevation = math.radians(azimuth_deg), math.radians(elevation_deg)
    horizontal = -math.cos(azimuth) * forward0 + math.sin(azimuth) * right0
    eye_dir = math.cos(elevation) * horizontal + math.sin(elevation) * up
    eye = center + distance * eye_dir

    z_axis = -eye_dir
    y_axis = -(up - up.dot(z_axis) * z_axis)
    y_axis /= np.linalg.norm(y_axis)
    x_axis = np.cross(y_axis, z_axis)
    R = np.stack([x_axis, y_axis, z_axis])
    t = -R @ eye

    focal = 0.5 * height / math.tan(0.5 * math.radians(fov_deg))
    K = np.array([[focal, 0.0, 0.5 * (width - 1)], [0.0, focal, 0.5 * (height - 1)], [0.0, 0.0, 1.0]])
    return R, t, K
