"""Rest-pose skeleton of the stand-in body: SMPL-H's 52 joints placed from adult human proportions.

About 1.70 m tall, y up, facing +z, the body's left on +x, arms out in a T-pose, palms down; five-fingered
hands with three phalanges per finger. Also the joint-index helpers the other generator modules share.
"""
from __future__ import annotations

import numpy as np

from scorehoi_diffusers.skeleton import FINGER_ORDER, WRIST, finger_joint
from scorehoi_diffusers.skeleton import PARENTS as _PARENTS

PARENTS = np.array(_PARENTS, dtype=np.int64)
_FINGERS = FINGER_ORDER
_NUM_BODY_JOINTS = 22  # root and the 21 body joints, before the hands
_ROOT_PARENT = 4294967295  # SMPL stores the root's parent as uint32(-1).
_LEFT_WRIST, _RIGHT_WRIST = WRIST


def _finger_base(wrist: int, finger: str) -> int:
    """Index of the first joint of ``finger`` of the hand hanging off ``wrist``."""
    return finger_joint(WRIST.index(wrist), finger)


def _mirror(points: np.ndarray) -> np.ndarray:
    """Mirror points (..., 3) through the body's sagittal plane (x -> -x)."""
    return points * np.array([-1.0, 1.0, 1.0])

# Left-side body joints (metres); the right side mirrors them. Soles at y = -1.13, crown at y = 0.57.
_LEFT_BODY_JOINTS = {
    0: (0.0, -0.220, 0.005),
    1: (0.078, -0.305, 0.0),
    3: (0.0, -0.110, -0.015),
    4: (0.100, -0.690, 0.005),
    6: (0.0, 0.020, -0.010),
    7: (0.085, -1.055, -0.035),
    9: (0.0, 0.080, -0.005),
    10: (0.108, -1.110, 0.090),
    12: (0.0, 0.300, -0.025),
    13: (0.075, 0.215, -0.015),
    15: (0.0, 0.390, 0.010),
    16: (0.180, 0.235, -0.025),
    18: (0.440, 0.225, -0.035),
    20: (0.690, 0.225, -0.030),
}

# Left hand in its wrist frame (x along the fingers, y the back of the hand, z the thumb side): knuckle
# offset, fan angle towards the thumb (degrees), phalanx lengths (proximal, middle, distal incl. the pad),
# radii at the three joints and at the tip.
_FINGER_LAYOUT = {
    "index": ((0.094, 0.003, 0.027), 4.0, (0.040, 0.024, 0.022), (0.0093, 0.0086, 0.0079, 0.0071)),
    "middle": ((0.098, 0.004, 0.0065), 0.0, (0.045, 0.028, 0.024), (0.0097, 0.0090, 0.0081, 0.0073)),
    "ring": ((0.093, 0.003, -0.0135), -4.0, (0.042, 0.026, 0.023), (0.0091, 0.0084, 0.0076, 0.0069)),
    "pinky": ((0.084, 0.0, -0.0315), -9.0, (0.033, 0.020, 0.020), (0.0081, 0.0074, 0.0067, 0.0061)),
}
# The thumb sits lower (palm side) and points forward-out, so it can oppose the fingers.
_THUMB_JOINTS = ((0.024, -0.012, 0.020), (0.052, -0.018, 0.046), (0.079, -0.022, 0.064))
_THUMB_TIP = (0.102, -0.024, 0.078)
_THUMB_RADII = (0.0125, 0.0108, 0.0098, 0.0088)


class _Skeleton:
    """Rest-pose joints (52, 3), bone end points (52, 3) and fingertip flesh ends, left hand first."""

    def __init__(self) -> None:
        joints = np.zeros((52, 3))
        for j, pos in _LEFT_BODY_JOINTS.items():
            joints[j] = pos
            if pos[0] != 0.0:
                joints[j + 1] = _mirror(np.array(pos))
        self.finger_radii: dict[int, tuple[float, ...]] = {}
        self.tips = np.zeros((52, 3))  # flesh end of each distal phalanx, at its joint-3 row
        for wrist, side in ((_LEFT_WRIST, 1.0), (_RIGHT_WRIST, -1.0)):
            origin = joints[wrist]
            flip = np.array([side, 1.0, 1.0])
            for finger, (knuckle, fan, lengths, radii) in _FINGER_LAYOUT.items():
                angle = np.deg2rad(fan)
                direction = np.array([np.cos(angle), 0.0, np.sin(angle)])
                base = _finger_base(wrist, finger)
                pos = np.array(knuckle)
                for i in range(3):
                    joints[base + i] = origin + flip * pos
                    pos = pos + lengths[i] * direction
                self.tips[base + 2] = origin + flip * pos
                self.finger_radii[base] = radii
            base = _finger_base(wrist, "thumb")
            for i in range(3):
                joints[base + i] = origin + flip * np.array(_THUMB_JOINTS[i])
            self.tips[base + 2] = origin + flip * np.array(_THUMB_TIP)
            self.finger_radii[base] = _THUMB_RADII
        self.joints = joints
        self.ends = self._bone_ends()

    def _bone_ends(self) -> np.ndarray:
        """End point of the bone each joint rotates (52, 3), used for bone frames and shape changes."""
        j = self.joints
        ends = np.zeros_like(j)
        axial_child = {0: 3, 9: 12, 20: _finger_base(20, "middle"), 21: _finger_base(21, "middle")}
        for k in range(52):
            children = np.flatnonzero(PARENTS == k)
            if k in axial_child:
                ends[k] = j[axial_child[k]]
            elif len(children) == 1:
                ends[k] = j[children[0]]
            elif k == 15:
                ends[k] = j[15] + np.array([0.0, 0.18, 0.0])  # crown
            elif k in (10, 11):
                ends[k] = j[k] + np.array([0.0, -0.005, 0.07])  # toe tips
            else:
                ends[k] = self.tips[k]  # distal phalanges
        return ends
