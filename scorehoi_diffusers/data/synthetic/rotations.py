"""Small batched float64 rotation helpers of the scene builder."""
from __future__ import annotations

import math
from collections.abc import Sequence

import roma
import torch

_UP = (0.0, 1.0, 0.0)  # world up: the floor is a horizontal plane


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def _vec(values: Sequence[float], n: int) -> torch.Tensor:
    """A constant 3-vector repeated ``(n, 3)`` (float64)."""
    return torch.tensor(values, dtype=torch.float64).expand(n, 3).clone()


def _rot(rotvec: torch.Tensor) -> torch.Tensor:
    """Axis-angle ``(..., 3)`` to rotation matrices ``(..., 3, 3)`` (Rodrigues' formula in a few batched ops:
    the recipes call this thousands of times on small batches)."""
    angle = rotvec.norm(dim=-1, keepdim=True)
    axis = rotvec / angle.clamp_min(1e-12)
    sin, cos = angle.sin()[..., None], angle.cos()[..., None]
    x, y, z = axis.unbind(-1)
    zero = torch.zeros_like(x)
    cross = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(*axis.shape, 3)
    outer = axis[..., :, None] * axis[..., None, :]
    eye = torch.eye(3, dtype=rotvec.dtype, device=rotvec.device)
    return cos * eye + sin * cross + (1 - cos) * outer


def _axis_rot(axis: Sequence[float], angle: torch.Tensor) -> torch.Tensor:
    """Rotations ``(n, 3, 3)`` about a fixed unit axis by ``angle (n,)``."""
    return _rot(torch.tensor(axis, dtype=torch.float64) * angle[:, None])


def _frame(a: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    """Orthonormal frame with columns ``a``, ``n`` (made orthogonal to ``a``) and ``a x n``."""
    a = _unit(a)
    n = _unit(n - (n * a).sum(-1, keepdim=True) * a)
    return torch.stack([a, n, torch.cross(a, n, dim=-1)], dim=-1)


def _align(a_from, n_from, a_to, n_to) -> torch.Tensor:
    """The rotation taking ``a_from`` to ``a_to`` and the plane of ``(a_from, n_from)`` to ``(a_to, n_to)``."""
    return _frame(a_to, n_to) @ _frame(a_from, n_from).transpose(-1, -2)


def _rotation_between(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Smallest rotation taking unit vectors ``a`` to ``b`` (both ``(n, 3)``)."""
    axis = torch.cross(a, b, dim=-1)
    sin = axis.norm(dim=-1)
    angle = torch.atan2(sin, (a * b).sum(-1))
    return _rot(axis / sin.clamp_min(1e-12)[:, None] * angle[:, None])


def _yaw(angle: torch.Tensor) -> torch.Tensor:
    return _axis_rot(_UP, angle)


def _twist_angle(rotation: torch.Tensor, axis: torch.Tensor) -> torch.Tensor:
    """Angle ``(n,)`` of the twist of ``rotation`` about ``axis`` (swing-twist decomposition)."""
    quat = roma.rotmat_to_unitquat(rotation)  # (x, y, z, w)
    along = (quat[:, :3] * axis).sum(-1)
    angle = 2.0 * torch.atan2(along, quat[:, 3])
    return torch.remainder(angle + math.pi, 2 * math.pi) - math.pi
