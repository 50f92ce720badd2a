"""Rigging of the stand-in body: per-vertex joint labels, skinning weights and the joint regressor."""
from __future__ import annotations

import numpy as np

from .implicit import _Node
from .skeleton import _NUM_BODY_JOINTS, PARENTS


def _surface_labels(body: _Node, verts: np.ndarray) -> np.ndarray:
    """Joint owning each vertex (V,): the owner of the primitive whose surface the vertex lies on."""
    leaves = body.leaves()
    distances = np.stack([leaf.distance(verts) for leaf in leaves], axis=1)
    nearest = distances.argmin(axis=1)
    labels = np.empty(len(verts), dtype=np.int64)
    for i, leaf in enumerate(leaves):
        mine = nearest == i
        if mine.any():
            labels[mine] = leaf.label(verts[mine])
    # The crotch belongs to the pelvis (as in real bodies): it keeps the two thighs' skinning and shape
    # changes from pulling the midline apart.
    crotch = np.isin(labels, (1, 2)) & (np.abs(verts[:, 0]) < 0.025)
    labels[crotch] = 0
    return labels


def _blend_width(joint: int) -> float:
    """How far (metres) the skinning of a body part blends into its neighbours along the surface."""
    if joint >= _NUM_BODY_JOINTS:
        return 0.008 if (joint - 22) % 15 == 12 else 0.005  # thumb base / other finger joints
    widths = {0: 0.07, 3: 0.05, 6: 0.04, 9: 0.05, 12: 0.03, 15: 0.03, 13: 0.04, 16: 0.035, 18: 0.03,
              20: 0.012, 1: 0.06, 4: 0.035, 7: 0.025, 10: 0.015}
    return widths.get(joint, widths.get(joint - 1))  # right-side joints follow their left twin (j - 1)


def _kinematic_neighbours(joint: int) -> set[int]:
    """The joint, its parent and grandparent, children and grandchildren."""
    out = {joint}
    parent = PARENTS[joint]
    if parent >= 0:
        out.add(int(parent))
        if PARENTS[parent] >= 0:
            out.add(int(PARENTS[parent]))
    children = set(np.flatnonzero(PARENTS == joint).tolist())
    grandchildren = set(np.flatnonzero(np.isin(PARENTS, list(children))).tolist()) if children else set()
    return out | children | grandchildren


def _skinning_weights(verts: np.ndarray, faces: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Smooth LBS weights (V, 52): the label segmentation diffused along the mesh, rows summing to 1.

    The diffusion is an implicit screened-Laplacian solve whose edge conductance follows each part's blend
    width, so knees blend over centimetres and finger joints over millimetres. Weights on joints that are
    not kinematic neighbours of a vertex's own part (e.g. the next finger, the other thigh) are dropped.
    """
    import scipy.sparse as sp
    import scipy.sparse.linalg as spla

    n = len(verts)
    edges = np.unique(np.sort(np.vstack([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1),
                      axis=0)
    width = np.array([_blend_width(j) for j in range(52)])
    sigma = 0.5 * (width[labels[edges[:, 0]]] + width[labels[edges[:, 1]]])
    length2 = ((verts[edges[:, 0]] - verts[edges[:, 1]]) ** 2).sum(1)
    conductance = 0.5 * sigma**2 / length2  # two half-steps: a smoother, more Gaussian-like kernel
    a = sp.coo_matrix((np.r_[conductance, conductance], (np.r_[edges[:, 0], edges[:, 1]],
                                                         np.r_[edges[:, 1], edges[:, 0]])), shape=(n, n))
    laplacian = sp.diags(np.asarray(a.sum(1)).ravel()) - a
    solve = spla.factorized((sp.identity(n) + laplacian).tocsc())
    weights = np.zeros((n, 52))
    weights[np.arange(n), labels] = 1.0
    for _ in range(2):
        weights = np.stack([solve(weights[:, j]) for j in range(52)], axis=1)
    allowed = np.zeros((52, 52), dtype=bool)
    for j in range(52):
        allowed[j, list(_kinematic_neighbours(j))] = True
    weights = np.where(allowed[labels], np.clip(weights, 0.0, None), 0.0)
    weights /= weights.sum(1, keepdims=True)
    weights[weights < 0.01] = 0.0
    return weights / weights.sum(1, keepdims=True)


def _joint_regressor(verts: np.ndarray, labels: np.ndarray, joints: np.ndarray) -> np.ndarray:
    """Sparse non-negative regressor (52, V) whose rows sum to 1 and reproduce each rest joint.

    Each joint is a weighted average of surface vertices around it on its own, its parent's and its
    children's parts, so that joints follow the surface when the shape changes. A small pull towards equal
    weights spreads each row over many vertices instead of a few.
    """
    from scipy.optimize import nnls

    ridge = 3e-3
    regressor = np.zeros((52, len(verts)))
    for j in range(52):
        parts = {j, int(PARENTS[j])} | set(np.flatnonzero(PARENTS == j).tolist())
        candidates = np.flatnonzero(np.isin(labels, list(parts)))
        if len(candidates) < 16:  # a part lost to a very coarse mesh: fall back to any vertex
            candidates = np.arange(len(verts))
        distance = np.linalg.norm(verts[candidates] - joints[j], axis=1)
        radius = 1.5 * np.sort(distance)[8]  # ~1.5x the local half-thickness of the body there
        for _ in range(12):
            near = candidates[distance < radius]
            count = len(near)
            # Rows: reproduce the joint; sum to one (heavily weighted); stay close to equal weights.
            system = np.vstack([verts[near].T, 10.0 * np.ones((1, count)), ridge * np.eye(count)])
            target = np.concatenate([joints[j], [10.0], np.full(count, ridge / count)])
            w, _ = nnls(system, target, maxiter=50 * count)
            if np.linalg.norm(verts[near].T @ w / w.sum() - joints[j]) < 2e-3:
                break
            radius *= 1.3
        regressor[j, near] = w / w.sum()
    return regressor
