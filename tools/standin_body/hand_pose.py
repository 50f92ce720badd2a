"""Hand pose fields of the stand-in body: relaxed mean hands and PCA bases led by curl, thumb and spread."""
from __future__ import annotations

import numpy as np

from .skeleton import _FINGERS, _LEFT_WRIST, _Skeleton

# SMPL-H axis-angle vectors mirror between hands as (x, y, z) -> (x, -y, -z).
_MIRROR_AXIS_ANGLE = np.tile([1.0, -1.0, -1.0], 15)


def _flexion_axes(sk: _Skeleton) -> np.ndarray:
    """Unit axes (15, 3) about which each left-hand joint curls towards the palm."""
    axes = np.zeros((15, 3))
    palm_down = np.array([0.0, -1.0, 0.0])
    palm_centre = sk.joints[_LEFT_WRIST] + np.array([0.05, -0.02, -0.005])
    for i in range(15):
        j = 22 + i
        child = sk.tips[j] if i % 3 == 2 else sk.joints[j + 1]
        d = child - sk.joints[j]
        d /= np.linalg.norm(d)
        if i >= 12:  # thumb: curl towards the middle of the palm
            towards = palm_centre - sk.joints[j]
            towards -= np.dot(towards, d) * d
            axis = np.cross(d, towards / np.linalg.norm(towards))
        else:
            axis = np.cross(d, palm_down)
        axes[i] = axis / np.linalg.norm(axis)
    return axes


def _hand_pose_fields(sk: _Skeleton, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Relaxed mean hands (45,) and orthonormal PCA bases (45, 45) for both hands.

    The basis starts with interpretable directions (whole-hand curl, thumb opposition, finger spread,
    single-finger curls) and is completed by a seeded random orthonormal complement.
    """
    flex = _flexion_axes(sk)
    opposition = np.zeros((15, 3))
    opposition[12] = (1.0, 0.0, 0.0)  # thumb base rolls the thumb under the palm

    def pose(**amounts) -> np.ndarray:
        out = np.zeros((15, 3))
        for finger, values in amounts.items():
            base = 3 * _FINGERS.index(finger)
            for i, v in enumerate(values):
                out[base + i] = v * flex[base + i]
        return out

    mean = pose(index=(0.15, 0.25, 0.15), middle=(0.2, 0.3, 0.15), ring=(0.25, 0.3, 0.15),
                pinky=(0.3, 0.3, 0.15), thumb=(0.0, 0.1, 0.15)) + 0.15 * opposition
    spread = np.zeros((15, 3))
    for finger, amount in (("index", -1.0), ("ring", 0.5), ("pinky", 1.0)):
        spread[3 * _FINGERS.index(finger)] = (0.0, amount, 0.0)  # abduction about the palm normal
    leading = [
        pose(**{f: (1.0, 1.0, 1.0) for f in _FINGERS}),
        pose(thumb=(0.5, 1.0, 1.0)) + opposition,
        spread,
    ] + [pose(**{f: (1.0, 1.0, 1.0)}) for f in ("index", "middle", "ring", "pinky")]
    columns = np.stack([v.ravel() for v in leading] + list(rng.standard_normal((45 - len(leading), 45))),
                       axis=1)
    q, r = np.linalg.qr(columns)
    components = (q * np.sign(np.diag(r))).T  # rows; keeps each leading direction's sign
    return {
        "hands_componentsl": components,
        "hands_componentsr": components * _MIRROR_AXIS_ANGLE,
        "hands_meanl": mean.ravel(),
        "hands_meanr": mean.ravel() * _MIRROR_AXIS_ANGLE,
    }
