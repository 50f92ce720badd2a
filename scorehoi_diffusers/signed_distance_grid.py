"""Geometry an object template precomputes from its mesh: its diameter and a signed-distance grid.

Pure functions of a ``trimesh.Trimesh`` and numpy arrays; :class:`~scorehoi_diffusers.objects.ObjectTemplate`
calls them once per mesh.
"""
from __future__ import annotations

import numpy as np
import trimesh
from scipy import ndimage
from scipy.spatial import ConvexHull, cKDTree
from scipy.spatial.distance import cdist

# Above this many (hull) vertices the diameter comes from extreme points along fixed directions instead of
# all pairs: within 0.25 % of the exact value, in linear time.
_EXACT_DIAMETER_VERTICES = 4096

# Up to this many faces (every shipped object) the grid's distances are exact. trimesh's closest-point query
# bounds each node's candidate triangles by its nearest vertex, so nodes deep inside a large dense mesh (a scan)
# would test nearly every face: such meshes use the narrow-band propagation instead, exact near the surface and
# within a few mm elsewhere.
EXACT_GRID_MAX_FACES = 2_000

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
    tree) for meshes of up to :data:`EXACT_GRID_MAX_FACES` faces; larger ones use :func:`_propagated_distance`.
    The sign comes from a flood fill of the grid away from the surface (each connected region has one sign)
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
    if len(mesh.faces) <= EXACT_GRID_MAX_FACES:
        # A node may test every face: chunks of at most ~4M node-face pairs keep memory to a few hundred MB.
        chunks = np.array_split(nodes, -(-len(nodes) * len(mesh.faces) // 4_000_000))
        distance = np.concatenate([trimesh.proximity.closest_point(mesh, chunk)[1] for chunk in chunks])
    else:
        distance = _propagated_distance(mesh, nodes, spacing, shape, np.random.default_rng(0))
    # A grid edge is at most `cell` long, so if the surface crossed it one end would be within cell / 2 of it:
    # nodes farther than `cell` are joined only by edges that stay on one side.
    band = distance < float(spacing.max())
    inside = _inside(mesh, nodes, band, shape) if mesh.is_watertight else _inside_by_vote(mesh, nodes)
    grid = np.where(inside, -distance, distance).reshape(shape)
    return grid, np.stack([low, high])


def _propagated_distance(
    mesh: trimesh.Trimesh, nodes: np.ndarray, spacing: np.ndarray, shape: tuple, rng: np.random.Generator
) -> np.ndarray:
    """Unsigned distance `(R^3,)` for large meshes: exact on a narrow band, propagated elsewhere (within mm).

    Exact point-to-triangle distances on a narrow band around the surface (candidate triangles from dense surface
    samples), carried to the rest of the grid by a Euclidean distance transform and a few closest-point
    propagation sweeps, then made exact against the propagated triangle.
    """
    cell = float(spacing.max())
    # Dense samples (about 6 per cell face, plus every face centroid so small faces are candidates too).
    count = int(np.clip(6 * mesh.area / cell**2, 20_000, 400_000))
    samples, sample_face = trimesh.sample.sample_surface(mesh, count, seed=rng)
    samples = np.concatenate([samples, mesh.triangles_center])
    sample_face = np.concatenate([sample_face, np.arange(len(mesh.faces))])

    # Narrow band: nodes within 1.5 cells of a sample. Two neighbouring nodes outside the band are both
    # more than half an edge from the surface, so the edge between them cannot cross it.
    neighbours = 4
    sample_distance, nearest = cKDTree(samples).query(nodes, k=neighbours, distance_upper_bound=1.5 * cell)
    band = np.isfinite(sample_distance[:, 0])
    band_nearest = nearest[band]
    band_nearest = np.where(band_nearest == len(samples), band_nearest[:, :1], band_nearest)
    candidate_face = sample_face[band_nearest]  # (M, neighbours)
    band_nodes = nodes[band]
    candidate_point = trimesh.triangles.closest_point(
        mesh.triangles[candidate_face.reshape(-1)], np.repeat(band_nodes, neighbours, axis=0)
    ).reshape(-1, neighbours, 3)
    best = np.linalg.norm(candidate_point - band_nodes[:, None], axis=-1).argmin(axis=1)
    rows = np.arange(len(band_nodes))

    # Every node takes the closest point (and its triangle) of its nearest band node ...
    source = ndimage.distance_transform_edt(
        ~band.reshape(shape), sampling=spacing, return_distances=False, return_indices=True
    )
    source = np.ravel_multi_index(source.reshape(3, -1), shape)
    closest = np.zeros_like(nodes)
    face = np.zeros(len(nodes), dtype=np.int64)
    closest[band] = candidate_point[rows, best]
    face[band] = candidate_face[rows, best]
    closest, face = closest[source].reshape(*shape, 3), face[source].reshape(shape)
    # ... then neighbours' closest points are tried, which fixes nodes whose nearest band node belongs
    # to another part of the surface (near the medial axis).
    grid_nodes = nodes.reshape(*shape, 3)
    distance = np.linalg.norm(grid_nodes - closest, axis=-1)
    for _ in range(2):
        previous_closest, previous_face = closest.copy(), face.copy()
        for axis in range(3):
            for step in (1, -1):
                dst = [slice(None)] * 3
                src = [slice(None)] * 3
                dst[axis], src[axis] = (slice(1, None), slice(0, -1)) if step == 1 else (slice(0, -1), slice(1, None))
                dst, src = tuple(dst), tuple(src)
                trial = np.linalg.norm(grid_nodes[dst] - previous_closest[src], axis=-1)
                better = trial < distance[dst]
                np.copyto(distance[dst], trial, where=better)
                np.copyto(closest[dst], previous_closest[src], where=better[..., None])
                np.copyto(face[dst], previous_face[src], where=better)
    # Band nodes already hold their exact closest point; the others now get it on their final triangle.
    distance, face = distance.reshape(-1), face.reshape(-1)
    far = ~band
    exact = trimesh.triangles.closest_point(mesh.triangles[face[far]], nodes[far])
    distance[far] = np.minimum(distance[far], np.linalg.norm(nodes[far] - exact, axis=1))

    return distance


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
