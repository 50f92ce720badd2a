"""Shape directions of the stand-in body: ten blend shapes from per-bone affine changes.

Each direction (height, weight, shoulder width, ...) scales bones' lengths and cross-sections, optionally
with a soft forward swelling of the torso, and moves the vertices through their skinning weights.
"""
from __future__ import annotations

import numpy as np

from scorehoi_diffusers.standin_body import SHAPE_DIRECTION_NAMES

from .skeleton import PARENTS, _Skeleton

_TORSO, _NECK, _HEAD, _COLLARS = (0, 3, 6, 9), (12,), (15,), (13, 14)
_UPPER_ARMS, _FOREARMS, _HANDS = (16, 17), (18, 19), (20, 21)
_THIGHS, _SHINS, _FEET = (1, 2), (4, 5), (7, 8, 10, 11)
_FINGER_JOINTS = tuple(range(22, 52))
_ALL = tuple(range(52))

# Each direction: per-bone changes (joints, length factor, radial factors along world x, y, z) plus
# optional forward bumps (centre, radii, amplitude in metres). One unit of beta applies them once.
_SHAPE_RECIPES: dict[str, tuple[list, list]] = {
    "height": ([(_ALL, 1.04, (1.015, 1.015, 1.015))], []),
    "weight": ([(_TORSO, 1.0, (1.07, 1.0, 1.11)), (_NECK, 1.0, (1.07, 1.0, 1.07)),
                (_COLLARS, 1.04, (1.0, 1.06, 1.06)), (_UPPER_ARMS, 1.0, (1.0, 1.09, 1.09)),
                (_FOREARMS, 1.0, (1.0, 1.06, 1.06)), (_HANDS + _FINGER_JOINTS, 1.0, (1.03, 1.03, 1.03)),
                (_THIGHS, 1.0, (1.09, 1.0, 1.09)), (_SHINS, 1.0, (1.06, 1.0, 1.06)),
                (_FEET + _HEAD, 1.0, (1.02, 1.02, 1.02))],
               [((0.0, -0.10, 0.10), (0.11, 0.10), 0.012)]),
    "shoulder_width": ([(_COLLARS, 1.16, (1.0, 1.0, 1.0)), ((9,), 1.0, (1.03, 1.0, 1.0))], []),
    "hip_width": ([((0,), 1.0, (1.12, 1.0, 1.0)), (_THIGHS, 1.0, (1.03, 1.0, 1.03))], []),
    "leg_length": ([(_THIGHS + _SHINS, 1.06, (1.0, 1.0, 1.0))], []),
    "arm_length": ([(_UPPER_ARMS + _FOREARMS, 1.07, (1.0, 1.0, 1.0)),
                    (_HANDS + _FINGER_JOINTS, 1.04, (1.0, 1.0, 1.0))], []),
    "belly": ([((0, 3), 1.0, (1.0, 1.0, 1.05))], [((0.0, -0.10, 0.10), (0.11, 0.10), 0.025)]),
    "chest": ([((6, 9), 1.0, (1.03, 1.0, 1.08))], [((0.0, 0.15, 0.10), (0.13, 0.07), 0.010)]),
    "head_size": ([(_HEAD, 1.07, (1.07, 1.07, 1.07)), (_NECK, 1.0, (1.03, 1.0, 1.03))], []),
    "limb_muscularity": ([(_UPPER_ARMS, 1.0, (1.0, 1.14, 1.14)), (_FOREARMS, 1.0, (1.0, 1.10, 1.10)),
                          (_THIGHS, 1.0, (1.12, 1.0, 1.12)), (_SHINS, 1.0, (1.10, 1.0, 1.10)),
                          (_NECK, 1.0, (1.05, 1.0, 1.05)), (_COLLARS, 1.0, (1.0, 1.06, 1.06))], []),
}


def _bone_maps(sk: _Skeleton, changes: list) -> tuple[np.ndarray, np.ndarray]:
    """Per-bone affine maps x -> J'_j + L_j (x - J_j) for one recipe: new joints (52, 3), L (52, 3, 3).

    L_j scales a bone's length by its length factor and its cross-section by the radial factors; children
    ride on their parent's map, so the skeleton stays connected.
    """
    linear = np.tile(np.eye(3), (52, 1, 1))
    for joints, length, radial in changes:
        for j in joints:
            u = sk.ends[j] - sk.joints[j]
            u /= np.linalg.norm(u)
            across = np.eye(3) - np.outer(u, u)
            linear[j] = length * np.outer(u, u) + across @ np.diag(radial) @ across
    new = sk.joints.copy()
    for j in range(1, 52):
        p = PARENTS[j]
        new[j] = new[p] + linear[p] @ (sk.joints[j] - sk.joints[p])
    return new, linear


def _shape_directions(sk: _Skeleton, verts: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Shape blend shapes (V, 3, 10): vertex displacements for one unit of each beta."""
    dirs = np.zeros((len(verts), 3, len(SHAPE_DIRECTION_NAMES)))
    for k, name in enumerate(SHAPE_DIRECTION_NAMES):
        changes, bumps = _SHAPE_RECIPES[name]
        new, linear = _bone_maps(sk, changes)
        per_bone = new[None] + np.einsum("jab,vjb->vja", linear, verts[:, None] - sk.joints[None])
        moved = np.einsum("vj,vja->va", weights, per_bone)
        for center, (rx, ry), amplitude in bumps:
            # A soft forward swelling of the front of the torso, fading to zero at the sides and back.
            c = np.asarray(center)
            falloff = np.exp(-(((verts[:, 0] - c[0]) / rx) ** 2 + ((verts[:, 1] - c[1]) / ry) ** 2))
            front = np.clip((verts[:, 2] + 0.02) / 0.09, 0.0, 1.0)
            moved[:, 2] += amplitude * falloff * front * front * (3.0 - 2.0 * front)
        dirs[:, :, k] = moved - verts
    return dirs
