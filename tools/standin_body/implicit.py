"""Implicit solids of the stand-in body: signed-distance primitives and the smooth-blend tree joining them.

Primitives (:class:`_RoundCone`, :class:`_Ellipsoid`, :class:`_Palm`, :class:`_Loft`) each belong to the
joint that moves them; nodes (:class:`_Leaf`, :class:`_Union`, :class:`_Attach`, :class:`_Carve`) combine
them with smooth unions and subtractions and skip parts far from their bounding boxes.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _smin(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Polynomial smooth minimum: min(a, b) where |a - b| >= k, a rounded fillet of width k elsewhere."""
    h = np.maximum(k - np.abs(a - b), 0.0) / k
    return np.minimum(a, b) - 0.25 * k * h * h


def _smax(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Polynomial smooth maximum (smooth intersection / subtraction)."""
    return -_smin(-a, -b, k)


def _frame(axis: np.ndarray, up: Sequence[float]) -> np.ndarray:
    """Orthonormal rows (u, e1, e2): u along ``axis``, e1 the part of ``up`` perpendicular to it."""
    u = axis / np.linalg.norm(axis)
    e1 = np.asarray(up, dtype=float) - np.dot(up, u) * u
    e1 /= np.linalg.norm(e1)
    return np.stack([u, e1, np.cross(u, e1)])


class _Primitive:
    """A solid with an approximate signed distance (negative inside) owned by one joint."""

    joint: int = 0
    lo: np.ndarray
    hi: np.ndarray

    def distance(self, p: np.ndarray) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def label(self, p: np.ndarray) -> np.ndarray:
        """Joint owning the surface near points (N, 3) -> (N,)."""
        return np.full(len(p), self.joint, dtype=np.int64)


class _RoundCone(_Primitive):
    """Convex hull of two spheres (a, ra) and (b, rb), cross-section optionally squashed into an ellipse."""

    def __init__(self, a, b, ra, rb, joint, up=(0.0, 1.0, 0.0), scale=(1.0, 1.0)):
        self.a, self.b = np.asarray(a, float), np.asarray(b, float)
        self.ra, self.rb, self.joint = ra, rb, joint
        self.length = float(np.linalg.norm(self.b - self.a))
        self.frame = _frame(self.b - self.a, up)
        self.scale = np.asarray(scale, float)
        reach = max(ra, rb) * max(1.0, *scale)
        self.lo = np.minimum(self.a, self.b) - reach
        self.hi = np.maximum(self.a, self.b) + reach

    def distance(self, p):
        local = (p - self.a) @ self.frame.T
        h = local[:, 0]
        q = np.hypot(local[:, 1] / self.scale[0], local[:, 2] / self.scale[1])
        sin = (self.ra - self.rb) / self.length
        cos = np.sqrt(1.0 - sin * sin)
        # Where the closest point lies: cap a, cap b, or the tangent cone between them.
        along = h * cos - q * sin
        d_side = h * sin + q * cos - self.ra
        d_a = np.hypot(h, q) - self.ra
        d_b = np.hypot(h - self.length, q) - self.rb
        d = np.where(along < 0.0, d_a, np.where(along > self.length * cos, d_b, d_side))
        return d * self.scale.min()


class _Ellipsoid(_Primitive):
    """Ellipsoid with semi-axes ``radii`` along the columns of ``rotation`` (world axes by default)."""

    def __init__(self, center, radii, joint, rotation=None):
        self.center, self.radii, self.joint = np.asarray(center, float), np.asarray(radii, float), joint
        self.rotation = np.eye(3) if rotation is None else np.asarray(rotation, float)
        reach = self.radii.max()
        self.lo, self.hi = self.center - reach, self.center + reach

    def distance(self, p):
        local = (p - self.center) @ self.rotation
        k0 = np.linalg.norm(local / self.radii, axis=1)
        k1 = np.maximum(np.linalg.norm(local / self.radii**2, axis=1), 1e-9)
        return k0 * (k0 - 1.0) / k1


class _Palm(_Primitive):
    """Rounded box in the hand frame whose width tapers from the knuckles towards the wrist."""

    def __init__(self, wrist, rotation, x_range, half_thickness, half_widths, rounding, center_y, joint):
        self.wrist, self.rotation, self.joint = np.asarray(wrist, float), np.asarray(rotation, float), joint
        self.x0, self.x1 = x_range
        self.hy, self.hz0, self.hz1, self.rounding, self.cy = half_thickness, *half_widths, rounding, center_y
        corners = np.array([[x, y, z] for x in x_range for y in (-0.03, 0.03) for z in (-0.05, 0.05)])
        world = self.wrist + corners @ self.rotation.T
        self.lo, self.hi = world.min(0), world.max(0)

    def distance(self, p):
        local = (p - self.wrist) @ self.rotation
        cx = 0.5 * (self.x0 + self.x1)
        hx = 0.5 * (self.x1 - self.x0) - self.rounding
        t = np.clip((local[:, 0] - self.x0) / (self.x1 - self.x0), 0.0, 1.0)
        hz = self.hz0 + (self.hz1 - self.hz0) * t
        q = np.abs(local - np.array([cx, self.cy, 0.0]))
        q = q - np.stack([np.full_like(hz, hx), np.full_like(hz, self.hy), hz], axis=1)
        outside = np.linalg.norm(np.maximum(q, 0.0), axis=1)
        return outside + np.minimum(q.max(axis=1), 0.0) - self.rounding


class _Loft(_Primitive):
    """Torso: super-elliptic cross-sections whose width, front/back depth and centre vary with height.

    The surface belongs to pelvis/spine1/spine2/spine3 in height bands split at the spine joints.
    """

    def __init__(self, heights, half_widths, front, back, centers, exponent, band_edges, band_joints):
        from scipy.interpolate import PchipInterpolator

        self.y0, self.y1 = heights[0], heights[-1]
        self.profile = PchipInterpolator(heights, np.stack([half_widths, front, back, centers], axis=1))
        self.n = exponent
        self.band_edges, self.band_joints = np.asarray(band_edges), np.asarray(band_joints)
        wide = max(half_widths)
        deep = max(front) + max(abs(c) for c in centers)
        self.lo = np.array([-wide, self.y0, -max(back) - 0.02])
        self.hi = np.array([wide, self.y1, deep])

    def distance(self, p):
        y = np.clip(p[:, 1], self.y0, self.y1)
        a, front, back, c = self.profile(y).T
        dz = p[:, 2] - c
        b = np.where(dz > 0.0, front, back)
        r = ((np.abs(p[:, 0]) / a) ** self.n + (np.abs(dz) / b) ** self.n) ** (1.0 / self.n)
        # One scale for both halves keeps the field continuous where the depth switches front/back.
        side = (r - 1.0) * np.minimum(a, 0.5 * (front + back))
        ends = np.maximum(self.y0 - p[:, 1], p[:, 1] - self.y1)
        return _smax(side, ends, 0.04)

    def label(self, p):
        return self.band_joints[np.searchsorted(self.band_edges, p[:, 1])]


# Beyond this distance from a part's bounding box its exact value can no longer change any blend (the
# widest blend is 5 cm, the narrow band 2.5 cm), so a constant stands in for it there.
_CULL_MARGIN = 0.09


class _Node:
    """A solid built from primitives; evaluates its parts only near their bounding boxes."""

    lo: np.ndarray
    hi: np.ndarray

    def leaves(self) -> list[_Primitive]:  # pragma: no cover - interface
        raise NotImplementedError

    def _evaluate(self, p: np.ndarray) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def _set_bounds(self, parts: Sequence[_Node]) -> None:
        self.lo = np.min([part.lo for part in parts], axis=0)
        self.hi = np.max([part.hi for part in parts], axis=0)

    def evaluate(self, p: np.ndarray) -> np.ndarray:
        """Approximate signed distance (N,) at points (N, 3); exact enough within the blend margin."""
        lo, hi = self.lo - _CULL_MARGIN, self.hi + _CULL_MARGIN
        near = ((p[:, 0] >= lo[0]) & (p[:, 0] <= hi[0]) & (p[:, 1] >= lo[1]) & (p[:, 1] <= hi[1])
                & (p[:, 2] >= lo[2]) & (p[:, 2] <= hi[2]))
        out = np.full(len(p), _CULL_MARGIN)
        if near.any():
            out[near] = self._evaluate(p[near])
        return out


class _Leaf(_Node):
    def __init__(self, primitive: _Primitive):
        self.primitive = primitive
        self.lo, self.hi = primitive.lo, primitive.hi

    def leaves(self):
        return [self.primitive]

    def _evaluate(self, p):
        return self.primitive.distance(p)


class _Union(_Node):
    """Smooth union of all parts with one blend width k (metres)."""

    def __init__(self, parts: Sequence[_Node | _Primitive], k: float):
        self.parts = [_as_node(x) for x in parts]
        self.k = k
        self._set_bounds(self.parts)

    def leaves(self):
        return [leaf for part in self.parts for leaf in part.leaves()]

    def _evaluate(self, p):
        d = self.parts[0].evaluate(p)
        for part in self.parts[1:]:
            d = _smin(d, part.evaluate(p), self.k)
        return d


class _Attach(_Node):
    """Each child blends into the base alone; children meet each other with a hard union.

    This is how fingers join the palm (and legs the pelvis) without webbing between neighbours.
    """

    def __init__(self, base: _Node | _Primitive, children: Sequence[tuple[_Node | _Primitive, float]]):
        self.base = _as_node(base)
        self.children = [(_as_node(c), k) for c, k in children]
        self._set_bounds([self.base] + [c for c, _ in self.children])

    def leaves(self):
        return self.base.leaves() + [leaf for c, _ in self.children for leaf in c.leaves()]

    def _evaluate(self, p):
        base = self.base.evaluate(p)
        d = base
        for child, k in self.children:
            d = np.minimum(d, _smin(base, child.evaluate(p), k))
        return d


class _Carve(_Node):
    """Smoothly subtract a cutter (eye sockets, the gluteal cleft); the cutter owns no surface."""

    def __init__(self, base: _Node | _Primitive, cutter: _Primitive, k: float):
        self.base, self.cutter, self.k = _as_node(base), _Leaf(cutter), k
        self.lo, self.hi = self.base.lo, self.base.hi

    def leaves(self):
        return self.base.leaves()

    def _evaluate(self, p):
        return _smax(self.base.evaluate(p), -self.cutter.evaluate(p), self.k)


def _as_node(x: _Node | _Primitive) -> _Node:
    return x if isinstance(x, _Node) else _Leaf(x)
