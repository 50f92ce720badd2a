"""Surface mesh of the stand-in body from its implicit field.

Marching cubes on a grid that is finer around the hands, decimation that keeps more detail at the face and
hands, Delaunay edge flips, tangential relaxation back onto the surface, and repair of folded faces.
"""
from __future__ import annotations

import numpy as np

from .implicit import _Node

_BOX_LO = np.array([-0.93, -1.16, -0.17])
_BOX_HI = np.array([0.93, 0.60, 0.21])
# Slabs where the grid uses the fine spacing: around the hands in x, y and z.
_FINE_SLABS = (((-0.93, -0.64), (0.64, 0.93)), ((0.15, 0.30),), ((-0.09, 0.10),))


def _axis_coordinates(lo: float, hi: float, fine: float, coarse: float, slabs) -> np.ndarray:
    """Grid coordinates along one axis: ``fine`` spacing inside the slabs, ``coarse`` elsewhere."""
    coords = [lo]
    while coords[-1] < hi:
        x = coords[-1]
        step = fine if any(a - coarse <= x <= b for a, b in slabs) else coarse
        coords.append(x + step)
    return np.array(coords)


def _interpolation_matrix(fine: np.ndarray, coarse: np.ndarray) -> np.ndarray:
    """Linear interpolation weights (len(fine), len(coarse)) from a uniform coarse axis."""
    t = np.clip((fine - coarse[0]) / (coarse[1] - coarse[0]), 0.0, len(coarse) - 1.000001)
    i = np.floor(t).astype(np.int64)
    w = t - i
    m = np.zeros((len(fine), len(coarse)))
    m[np.arange(len(fine)), i] = 1.0 - w
    m[np.arange(len(fine)), i + 1] = w
    return m


def _extract_surface(body: _Node, resolution: float) -> tuple[np.ndarray, np.ndarray]:
    """Marching cubes of the body's zero level set; exact distances only in a narrow band.

    Returns vertices (V, 3) and faces (F, 3). ``resolution`` is the grid spacing at the hands (metres);
    the rest of the body uses 2.25 times that.
    """
    from skimage.measure import marching_cubes

    coarse_step = 0.01
    coarse_axes = [np.arange(lo, hi + coarse_step, coarse_step) for lo, hi in zip(_BOX_LO, _BOX_HI)]
    grid = np.stack(np.meshgrid(*coarse_axes, indexing="ij"), axis=-1).reshape(-1, 3)
    coarse = body.evaluate(grid).reshape([len(a) for a in coarse_axes])

    axes = [_axis_coordinates(lo, hi, resolution, 2.25 * resolution, slabs)
            for lo, hi, slabs in zip(_BOX_LO, _BOX_HI, _FINE_SLABS)]
    # Trilinear upsampling of the coarse field is separable on a tensor grid: one matrix per axis.
    volume = coarse
    for axis, (fine_axis, coarse_axis) in enumerate(zip(axes, coarse_axes)):
        volume = np.moveaxis(np.tensordot(_interpolation_matrix(fine_axis, coarse_axis), volume,
                                          axes=(1, axis)), 0, axis)
    volume = volume.astype(np.float32)
    band = np.nonzero(np.abs(volume) < 0.025)
    points = np.stack([axes[a][band[a]] for a in range(3)], axis=1)
    volume[band] = body.evaluate(points)

    verts, faces, _, _ = marching_cubes(volume, level=0.0, allow_degenerate=False)
    # Marching cubes works in index space; map fractional indices onto the non-uniform axes.
    verts = np.stack([np.interp(verts[:, a], np.arange(len(axes[a])), axes[a]) for a in range(3)], axis=1)
    return verts, faces.astype(np.int64)


# Regions whose detail matters more than their curvature alone says (face, hands): centre, radius of full
# magnification, radius where it has faded out, factor. Decimating in this magnified space leaves them
# about ``factor`` times more vertices. The fade is slow enough that the radial map stays monotone.
_DETAIL_REGIONS = (
    ((0.0, 0.455, 0.02), 0.12, 0.42, 1.8),
    ((0.80, 0.22, 0.0), 0.11, 0.30, 1.5),
    ((-0.80, 0.22, 0.0), 0.11, 0.30, 1.5),
)


def _detail_radius(r: np.ndarray, r_full: float, r_fade: float, factor: float) -> np.ndarray:
    """Radial profile of the magnifying map: r -> r * (1 + (factor - 1) * g(r)), g fading 1 -> 0."""
    t = np.clip((r - r_full) / (r_fade - r_full), 0.0, 1.0)
    return r * (1.0 + (factor - 1.0) * (1.0 - t * t * (3.0 - 2.0 * t)))


def _magnify(points: np.ndarray, inverse: bool = False) -> np.ndarray:
    """Apply (or undo) the detail-magnifying map to points (N, 3); the regions do not overlap."""
    out = points.copy()
    for center, r_full, r_fade, factor in _DETAIL_REGIONS:
        offset = points - np.asarray(center)
        r = np.linalg.norm(offset, axis=1)
        table = np.linspace(0.0, r_fade * factor, 2048)
        mapped = _detail_radius(table, r_full, r_fade, factor)
        inside = r < (mapped[-1] if inverse else r_fade)
        new_r = np.interp(r, mapped, table) if inverse else _detail_radius(r, r_full, r_fade, factor)
        scale = new_r / np.maximum(r, 1e-12)
        out[inside] = np.asarray(center) + offset[inside] * scale[inside, None]
    return out


def _clean_and_decimate(verts: np.ndarray, faces: np.ndarray, target_vertices: int):
    """Keep the largest connected piece, decimate to about ``target_vertices`` and orient outwards."""
    import fast_simplification
    import trimesh

    mesh = trimesh.Trimesh(verts, faces, process=True)
    pieces = mesh.split(only_watertight=False)
    mesh = max(pieces, key=lambda m: len(m.faces))
    target_faces = 2 * target_vertices - 4  # Euler: a closed genus-0 surface
    v, f = np.asarray(mesh.vertices), np.asarray(mesh.faces)
    if len(f) > target_faces:
        v, f = fast_simplification.simplify(_magnify(v), f, target_count=target_faces, agg=3)
        v = _magnify(v, inverse=True)
    mesh = trimesh.Trimesh(v, f, process=True)
    if mesh.volume < 0:
        mesh.invert()
    return np.asarray(mesh.vertices, dtype=np.float64), np.asarray(mesh.faces, dtype=np.int64)


def _edge_table(faces: np.ndarray):
    """Interior edges as (a, b, c, d, f1, f2): faces f1 = (a, b, c) and f2 = (b, a, d) up to rotation."""
    n = len(faces)
    rolled = [np.roll(faces, -k, axis=1) for k in range(3)]  # rows (a, b, c) for each corner
    a = np.concatenate([r[:, 0] for r in rolled])
    b = np.concatenate([r[:, 1] for r in rolled])
    c = np.concatenate([r[:, 2] for r in rolled])
    face = np.tile(np.arange(n), 3)
    key_ab = a * (faces.max() + 1) + b
    key_ba = b * (faces.max() + 1) + a
    order = np.argsort(key_ab)
    pos = np.searchsorted(key_ab[order], key_ba)
    pos = np.minimum(pos, len(order) - 1)
    twin = order[pos]
    valid = (key_ab[twin] == key_ba) & (a < b)
    i, j = np.flatnonzero(valid), twin[valid]
    return a[i], b[i], c[i], c[j], face[i], face[j]


def _flip_edges(verts: np.ndarray, faces: np.ndarray, passes: int = 4) -> np.ndarray:
    """Delaunay edge flips on nearly flat edge pairs: removes the slivers that decimation leaves."""
    faces = faces.copy()
    for _ in range(passes):
        a, b, c, d, f1, f2 = _edge_table(faces)
        pa, pb, pc, pd = verts[a], verts[b], verts[c], verts[d]

        def angle(at, p, q):
            u, v = p - at, q - at
            cos = (u * v).sum(1) / (np.linalg.norm(u, axis=1) * np.linalg.norm(v, axis=1) + 1e-15)
            return np.arccos(np.clip(cos, -1.0, 1.0))

        n1 = np.cross(pb - pa, pc - pa)
        n2 = np.cross(pa - pb, pd - pb)
        m1 = np.cross(pa - pc, pd - pc)  # the two faces after the flip: (c, a, d) and (d, b, c)
        m2 = np.cross(pb - pd, pc - pd)

        def unit(x):
            return x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-15)

        n1, n2, m1, m2 = unit(n1), unit(n2), unit(m1), unit(m2)
        flat = ((n1 * n2).sum(1) > 0.95) & ((m1 * m2).sum(1) > 0.95) & ((m1 * n1).sum(1) > 0.9)
        candidates = np.flatnonzero(flat & (angle(pc, pa, pb) + angle(pd, pa, pb) > np.pi + 1e-3))
        if len(candidates) == 0:
            break
        flips = _FlipBook(faces, a, b)
        for e in candidates[np.argsort(-(angle(pc, pa, pb) + angle(pd, pa, pb))[candidates])]:
            if flips.allowed(a[e], b[e], c[e], d[e], f1[e], f2[e]):
                flips.flip(a[e], b[e], c[e], d[e], f1[e], f2[e])
    return faces


class _FlipBook:
    """Edge flips applied in place that keep the mesh manifold.

    Each face flips at most once per pass, no edge is duplicated, no vertex drops below three neighbours.
    """

    def __init__(self, faces: np.ndarray, a: np.ndarray, b: np.ndarray):
        self.faces = faces
        self.edges = {(min(x, y), max(x, y)) for x, y in zip(a.tolist(), b.tolist())}
        self.used = np.zeros(len(faces), dtype=bool)
        self.valence = np.bincount(np.r_[a, b], minlength=faces.max() + 1)

    def allowed(self, a, b, c, d, f1, f2) -> bool:
        return not (self.used[f1] or self.used[f2] or (min(c, d), max(c, d)) in self.edges
                    or self.valence[a] <= 3 or self.valence[b] <= 3)

    def flip(self, a, b, c, d, f1, f2) -> None:
        """Replace faces (a, b, c) and (b, a, d) by (c, a, d) and (d, b, c)."""
        self.faces[f1], self.faces[f2] = (c, a, d), (d, b, c)
        self.used[f1] = self.used[f2] = True
        self.edges.discard((min(a, b), max(a, b)))
        self.edges.add((min(c, d), max(c, d)))
        self.valence[[a, b]] -= 1
        self.valence[[c, d]] += 1


def _project(body: _Node, verts: np.ndarray, steps: int = 2) -> np.ndarray:
    """Newton steps along the field's gradient that move points (N, 3) onto the zero level set."""
    for _ in range(steps):
        d, grad = _value_and_gradient(body, verts)
        verts = verts - (d / np.maximum((grad**2).sum(1), 1e-6))[:, None] * grad
    return verts


def _value_and_gradient(body: _Node, points: np.ndarray, eps: float = 2e-4):
    """Field values (N,) and central-difference gradients (N, 3) at points (N, 3)."""
    offsets = np.vstack([np.eye(3), -np.eye(3)]) * eps
    probes = (points[None] + offsets[:, None]).reshape(-1, 3)
    values = body.evaluate(np.vstack([points, probes]))
    around = values[len(points):].reshape(6, -1)
    return values[: len(points)], ((around[:3] - around[3:]) / (2 * eps)).T


def _face_alignment(body: _Node, verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Cosine (F,) between each face's normal and the field's gradient at its centre; < 0 means folded."""
    tri = verts[faces]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    _, grad = _value_and_gradient(body, tri.mean(1))
    return (normal * grad).sum(1) / (np.linalg.norm(normal, axis=1) * np.linalg.norm(grad, axis=1) + 1e-15)


def _relax(body: _Node, verts: np.ndarray, faces: np.ndarray, iterations: int = 6) -> np.ndarray:
    """Tangential smoothing with re-projection that evens out triangles without tilting any face away."""
    import scipy.sparse as sp

    n = len(verts)
    edges = np.vstack([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    adjacency = sp.coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n)).tocsr()
    adjacency = ((adjacency + adjacency.T) > 0).astype(np.float64)
    degree = np.asarray(adjacency.sum(1)).ravel()
    for _ in range(iterations):
        _, normals = _value_and_gradient(body, verts)
        normals /= np.linalg.norm(normals, axis=1, keepdims=True) + 1e-12
        delta = adjacency @ verts / degree[:, None] - verts
        delta -= (delta * normals).sum(1, keepdims=True) * normals
        moved = _project(body, verts + 0.5 * delta)
        # Undo the move around any face it would tilt far from the surface (creases, finger crevices).
        before, after = _face_alignment(body, verts, faces), _face_alignment(body, moved, faces)
        worse = (after < 0.5) & (after < before)
        moved[np.unique(faces[worse])] = verts[np.unique(faces[worse])]
        verts = moved
    return verts


def _repair_folds(body: _Node, verts: np.ndarray, faces: np.ndarray, rounds: int = 4) -> np.ndarray:
    """Flip edges of faces tilted away from the surface when the flip makes both faces agree better."""
    faces = faces.copy()
    for _ in range(rounds):
        align = _face_alignment(body, verts, faces)
        a, b, c, d, f1, f2 = _edge_table(faces)
        bad = (align[f1] < 0.3) | (align[f2] < 0.3)
        if not bad.any():
            break
        flips = _FlipBook(faces, a, b)
        for e in np.flatnonzero(bad):
            if not flips.allowed(a[e], b[e], c[e], d[e], f1[e], f2[e]):
                continue
            after = np.array([(c[e], a[e], d[e]), (d[e], b[e], c[e])])
            if _face_alignment(body, verts, after).min() > min(align[f1[e]], align[f2[e]]) + 0.1:
                flips.flip(a[e], b[e], c[e], d[e], f1[e], f2[e])
    return faces
