"""Landmark vertices of the stand-in body: face, feet and fingertip keypoints (smplx ``vertex_ids``)."""
from __future__ import annotations

import numpy as np

from scorehoi_diffusers.skeleton import LANDMARK_NAMES

from .skeleton import _LEFT_WRIST, _RIGHT_WRIST, _finger_base, _Skeleton


def _landmarks(sk: _Skeleton, verts: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Vertex index for each name in LANDMARK_NAMES (face, feet and fingertip keypoints)."""
    def nearest(point, allowed=()):
        candidates = np.flatnonzero(np.isin(labels, allowed))
        if len(candidates) == 0:  # the part vanished on a very coarse mesh
            candidates = np.arange(len(verts))
        return int(candidates[np.linalg.norm(verts[candidates] - np.asarray(point), axis=1).argmin()])

    def fingertip(wrist, finger):
        j = _finger_base(wrist, finger) + 2
        d = sk.tips[j] - sk.joints[j]
        mine = np.flatnonzero(labels == j)
        if len(mine) == 0:
            return nearest(sk.tips[j])
        return int(mine[(verts[mine] @ d).argmax()])

    found = {
        "nose": nearest((0.0, 0.423, 0.125), [15]),
        "reye": nearest((-0.032, 0.457, 0.096), [15]), "leye": nearest((0.032, 0.457, 0.096), [15]),
        "rear": nearest((-0.090, 0.445, -0.006), [15]), "lear": nearest((0.090, 0.445, -0.006), [15]),
    }
    for prefix, s, ankle, foot in (("L", 1.0, 7, 10), ("R", -1.0, 8, 11)):
        found[prefix + "BigToe"] = nearest((s * 0.092, -1.118, 0.170), [foot])
        found[prefix + "SmallToe"] = nearest((s * 0.140, -1.118, 0.130), [foot])
        found[prefix + "Heel"] = nearest((s * 0.085, -1.130, -0.100), [ankle])
    for prefix, wrist in (("l", _LEFT_WRIST), ("r", _RIGHT_WRIST)):
        for finger in ("thumb", "index", "middle", "ring", "pinky"):
            found[prefix + finger] = fingertip(wrist, finger)
    return np.array([found[name] for name in LANDMARK_NAMES], dtype=np.int64)
