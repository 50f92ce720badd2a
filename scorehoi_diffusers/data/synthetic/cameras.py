"""Random level cameras that keep the object in view, and how much of the object the body hides."""
from __future__ import annotations

import math

import torch

from .rotations import _unit


def _camera(points: torch.Tensor, draws: torch.Tensor, facing: torch.Tensor, from_behind: bool = False):
    """A level camera looking at the scene: world-to-camera rotation ``(n, 3, 3)``, centre ``(n, 3)`` and
    intrinsics for a 1-pixel image ``(n, 3, 3)`` (multiply the first two rows by the image size).

    ``draws (n, 6)`` are uniforms for: azimuth (mostly in front of the body, which faces ``facing`` radians;
    behind it with ``from_behind``, for objects on the back); elevation (0 to 35 degrees, looking down);
    focal length (500 to 1500 px for 256 px images); distance, so that the scene spans 70 to 92 % of the
    frame along its larger image extent; the principal point's offset (within what keeps the scene inside).
    """
    n = points.shape[0]
    az_u, el_u, focal_u, fill_u, cx_u, cy_u = draws.unbind(1)
    front = az_u < 0.8
    relative = torch.where(
        front, (az_u / 0.8 - 0.5) * math.radians(200), math.radians(100) + (az_u - 0.8) / 0.2 * math.radians(160)
    )
    if from_behind:
        relative = math.radians(80) + az_u * math.radians(200)
    azimuth = facing + relative
    elevation = el_u * math.radians(35)
    focal = (500.0 + 1000.0 * focal_u) / 256.0
    low, high = points.min(1).values, points.max(1).values
    target = 0.5 * (low + high)
    eye_dir = torch.stack([azimuth.sin() * elevation.cos(), elevation.sin(), azimuth.cos() * elevation.cos()], 1)
    z_axis = -eye_dir
    up = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64).expand(n, 3)
    y_axis = _unit(-(up - (up * z_axis).sum(1, keepdim=True) * z_axis))
    x_axis = torch.cross(y_axis, z_axis, dim=-1)
    rotation = torch.stack([x_axis, y_axis, z_axis], dim=1)
    q = (points - target[:, None]) @ rotation.transpose(1, 2)
    half = 0.5 * (0.7 + 0.22 * fill_u)
    # Nearest distance at which every point projects within `half` of the centre along both image axes.
    distance = (focal[:, None] * q[..., :2].abs().amax(-1) / half[:, None] - q[..., 2]).max(1).values
    depth = q[..., 2] + distance[:, None]
    uv = focal[:, None, None] * q[..., :2] / depth[..., None]
    margin = 2.0 / 256.0
    lower = -0.5 + margin - uv.min(1).values
    upper = 0.5 - margin - uv.max(1).values
    shift = 0.8 * (lower + (upper - lower) * torch.stack([cx_u, cy_u], 1))
    centre = target + distance[:, None] * eye_dir
    intrinsics = torch.zeros(n, 3, 3, dtype=torch.float64)
    intrinsics[:, 0, 0] = focal
    intrinsics[:, 1, 1] = focal
    intrinsics[:, :2, 2] = 0.5 + shift
    intrinsics[:, 2, 2] = 1.0
    return rotation, centre, intrinsics


def _visible_fraction(body: torch.Tensor, surface: torch.Tensor, normals: torch.Tensor, rotation: torch.Tensor,
                      centre: torch.Tensor, intrinsics: torch.Tensor, cells: int = 32) -> torch.Tensor:
    """Rough share ``(n,)`` of the object's camera-facing surface points ``(n, m, 3)`` not hidden by the body
    points ``(n, b, 3)`` (world frame), from a coarse depth map of the body splatted into ``cells`` squared."""
    n = body.shape[0]

    def to_cells(points):
        camera = (points - centre[:, None]) @ rotation.transpose(1, 2)
        uv = (camera / camera[..., 2:]) @ intrinsics.transpose(1, 2)
        cell = (uv[..., :2] * cells).floor().long().clamp(0, cells - 1)
        return camera[..., 2], cell[..., 1] * cells + cell[..., 0]

    body_depth, body_cell = to_cells(body)
    depth_map = torch.full((n, cells * cells), float("inf"), dtype=body.dtype)
    depth_map = depth_map.scatter_reduce(1, body_cell, body_depth, reduce="amin")
    # Body points are a few centimetres apart: spread each over its neighbouring cells to close the gaps.
    depth_map = -torch.nn.functional.max_pool2d(-depth_map.reshape(n, 1, cells, cells), 3, stride=1, padding=1)
    depth_map = depth_map.reshape(n, -1)
    object_depth, object_cell = to_cells(surface)
    view = _unit(surface - centre[:, None])
    facing = (normals * view).sum(-1) < 0
    visible = facing & (object_depth < depth_map.gather(1, object_cell) + 0.02)
    return visible.sum(1) / facing.sum(1).clamp_min(1)
