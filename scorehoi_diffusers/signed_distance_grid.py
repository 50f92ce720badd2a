"""Geometry an object template precomputes from its mesh: its diameter and a signed-distance grid.

Pure functions of a ``trimesh.Trimesh`` and numpy arrays; :class:`~scorehoi_diffusers.objects.ObjectTemplate`
calls them once per mesh.
"""
from __future__ import annotations

import numpy as np
import trimesh
from scipy import ndimage
from scipy.spatial import ConvexHull
from scipy.spatial.distance import cdist

# Above this many (hull) vertices the diameter comes from extreme points along fixed directions instead of
# all pairs: within 0.25 % of the exact value, in linear time.
_EXACT_DIAMETER_VERTICES = 4096

# Fixed, well-spread ray directions for the ray-parity vote on meshes that are not watertight. An odd
# count avoids ties; directions are off the coordinate axes so rays rarely graze axis-aligned edges.
_VOTE_DIRECTIONS = np.array(
    [
        [0.4395, 0.6176, 0.6522],
        [-0.7071, 0.3015, 0.6396],
        [0.1219, -0.9024, 0.4133],
        [-0.5517, -0.4406, -0.7081],
        [0.8542, -0.1237, -0.5050],
        [-0.2346, 0.8813, -0.4101],
        [0.6093, 0.2311, -0.7585],
    ]
)


def diameter(mesh: trimesh.Trimesh) -> float:
    """Largest vertex-to-vertex distance; the farthest pair lies on the convex hull.

    Exact up to :data:`_EXACT_DIAMETER_VERTICES` hull vertices. Beyond, all pairs would take hours (a scanned
    sphere has every vertex on its hull), so only the extreme vertices along 1000 well-spread directions are
    paired: every direction is within 0.07 rad of one of them (or its opposite), so the result is within
    ``1 - cos(0.07)``, 0.25 %, of the exact diameter, and never above it.
    """
    vertices = np.asarray(mesh.vertices)
    if len(vertices) > _EXACT_DIAMETER_VERTICES:
        vertices = _extreme_vertices(vertices)
    if len(vertices) > 4:
        # "QJ" joggles the input so flat or degenerate meshes still get a hull.
        vertices = vertices[ConvexHull(vertices, qhull_options="QJ").vertices]
    # Row blocks keep memory bounded for scanned meshes with thousands of hull vertices.
    blocks = np.array_split(vertices, max(1, len(vertices) // 1024))
    return max(float(cdist(block, vertices).max()) for block in blocks)


def _extreme_vertices(vertices: np.ndarray, count: int = 1000) -> np.ndarray:
    """The vertices `(<= 2 count, 3)` extreme along `count` Fibonacci directions of a half sphere (both ends)."""
    index = np.arange(count) + 0.5
    z = index / count  # uniform in (0, 1]: a half sphere suffices, each direction gives both extremes
    angle = np.pi * (1 + 5**0.5) * index
    radius = np.sqrt(1 - z**2)
    directions = np.stack([radius * np.cos(angle), radius * np.sin(angle), z], axis=1)
    chosen = []
    for block in np.array_split(directions, max(1, count // 20)):
        projection = block @ vertices.T  # (20, V): rows contiguous for argmax, memory bounded for large meshes
        chosen += [projection.argmax(axis=1), projection.argmin(axis=1)]
    return vertices[np.unique(np.concatenate(chosen))]


def signed_distance_grid(mesh: trimesh.Trimesh, resolution: int, padding: float) -> tuple[np.ndarray, np.ndarray]:
    """Exact signed distance to `mesh` at the nodes of a regular grid around it (negative inside).

    The unsigned distance is the exact point-to-triangle distance (trimesh's closest-point query on its triangle
    tree). The sign comes from a flood fill of the grid away from the surface (each connected region has one sign)
    plus embree ray tests for the nodes near the surface and the enclosed regions; meshes with holes use a
    ray-parity vote instead.

    Args:
        mesh (`trimesh.Trimesh`): the surface, in metres.
        resolution (`int`): nodes per axis, R.
        padding (`float`): the box is the mesh's bounding box grown on every side by
            `max(padding * longest side, 2 cm)`.

    Returns:
        grid `(R, R, R)` float64 indexed `[x, y, z]`, and bounds `(2, 3)`.
    """
    low, high = mesh.bounds
    pad = max(padding * float((high - low).max()), 0.02)
    low, high = low - pad, high + pad
    spacing = (high - low) / (resolution - 1)
    shape = (resolution,) * 3
    axes = [np.linspace(low[d], high[d], resolution) for d in range(3)]
    nodes = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    distance = np.concatenate(
        [trimesh.proximity.closest_point(mesh, chunk)[1] for chunk in np.array_split(nodes, -(-len(nodes) // 32768))]
    )
    # A grid edge is at most `cell` long, so if the surface crossed it one end would be within cell / 2 of it:
    # nodes farther than `cell` are joined only by edges that stay on one side.
    band = distance < float(spacing.max())
    inside = _inside(mesh, nodes, band, shape) if mesh.is_watertight else _inside_by_vote(mesh, nodes)
    grid = np.where(inside, -distance, distance).reshape(shape)
    return grid, np.stack([low, high])


def _inside(mesh: trimesh.Trimesh, nodes: np.ndarray, band: np.ndarray, shape: tuple) -> np.ndarray:
    """Inside test for a watertight mesh: one ray test per off-band region, one per band node."""
    labels, count = ndimage.label(~band.reshape(shape))
    faces_of_box = [labels[0], labels[-1], labels[:, 0], labels[:, -1], labels[:, :, 0], labels[:, :, -1]]
    on_border = np.unique(np.concatenate([f.ravel() for f in faces_of_box]))
    labels = labels.reshape(-1)
    enclosed = np.setdiff1d(np.arange(1, count + 1), on_border)  # regions the padded border can't reach
    region_inside = np.zeros(count + 1, dtype=bool)
    if len(enclosed):
        order = np.argsort(labels, kind="stable")
        representative = order[np.searchsorted(labels[order], enclosed)]
        region_inside[enclosed] = mesh.contains(nodes[representative])
    inside = region_inside[labels]
    inside[band] = mesh.contains(nodes[band])
    return inside


def _inside_by_vote(mesh: trimesh.Trimesh, nodes: np.ndarray) -> np.ndarray:
    """Inside test tolerant to holes: majority of ray-parity tests along :data:`_VOTE_DIRECTIONS`."""
    inside = np.zeros(len(nodes), dtype=bool)
    in_box = trimesh.bounds.contains(mesh.bounds, nodes)
    origins = nodes[in_box]
    votes = np.zeros(len(origins), dtype=np.int64)
    directions = _VOTE_DIRECTIONS / np.linalg.norm(_VOTE_DIRECTIONS, axis=1, keepdims=True)
    for direction in directions:
        _, ray_index, _ = mesh.ray.intersects_location(
            origins, np.broadcast_to(direction, origins.shape), multiple_hits=True
        )
        votes += np.bincount(ray_index, minlength=len(origins)) % 2
    inside[in_box] = votes * 2 > len(directions)
    return inside
