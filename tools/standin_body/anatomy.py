"""Body parts of the stand-in body built from implicit primitives hung on the skeleton's bones.

Hands (palm, pads, fingers, opposable thumb), arms, legs and feet, the head with its face, and the lofted
torso, assembled by :func:`_body` into one blend tree whose every surface primitive is owned by a joint.
"""
from __future__ import annotations

import numpy as np

from .implicit import _Attach, _Carve, _Ellipsoid, _Loft, _Node, _Palm, _Primitive, _RoundCone, _Union
from .skeleton import _FINGERS, _LEFT_WRIST, _finger_base, _Skeleton


def _rotation_y(angle: float) -> np.ndarray:
    """Rotation matrix (3, 3) about the y axis."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _hand(sk: _Skeleton, wrist: int) -> _Node:
    """Palm with thenar/hypothenar pads, four fingers and an opposable thumb (three phalanges each)."""
    side = 1.0 if wrist == _LEFT_WRIST else -1.0
    origin = sk.joints[wrist]
    flip = np.diag([side, 1.0, 1.0])  # hand frame -> world; a reflection for the right hand

    def world(offset):
        return origin + flip @ np.asarray(offset, float)

    palm = _Palm(origin, flip, (0.004, 0.100), 0.0035, (0.019, 0.0265), 0.0115, -0.001, wrist)
    thenar = _Ellipsoid(world((0.036, -0.011, 0.019)), (0.032, 0.0125, 0.017), wrist,
                        rotation=flip @ _rotation_y(-0.55))
    hypothenar = _Ellipsoid(world((0.045, -0.007, -0.026)), (0.038, 0.012, 0.013), wrist)
    fingers = []
    for finger in _FINGERS:
        base = _finger_base(wrist, finger)
        radii = sk.finger_radii[base]
        joints = [sk.joints[base], sk.joints[base + 1], sk.joints[base + 2], sk.tips[base + 2]]
        # The distal cone ends one tip radius short of the flesh end, so the pad ends at the tip.
        direction = joints[3] - joints[2]
        joints[3] = joints[3] - radii[3] * direction / np.linalg.norm(direction)
        phalanges = [
            _RoundCone(joints[i], joints[i + 1], radii[i], radii[i + 1], base + i,
                       up=(0.0, 1.0, 0.0), scale=(0.92, 1.0))
            for i in range(3)
        ]
        fingers.append((_Union(phalanges, 0.003), 0.014 if finger == "thumb" else 0.009))
    return _Attach(_Union([palm, thenar, hypothenar], 0.012), fingers)


def _arm(sk: _Skeleton, side: float) -> _Node:
    """Deltoid, upper arm with biceps/triceps, forearm and hand; side +1 for the left arm, -1 the right."""
    j = sk.joints
    shoulder, elbow, wrist = (16, 18, 20) if side > 0 else (17, 19, 21)

    def at(x, y, z):
        return np.array([side * x, y, z])

    deltoid = _Ellipsoid(at(0.196, 0.231, -0.022), (0.072, 0.057, 0.058), shoulder)
    upper = _RoundCone(j[shoulder], j[elbow], 0.047, 0.037, shoulder)
    biceps = _Ellipsoid(at(0.305, 0.229, -0.014), (0.085, 0.036, 0.036), shoulder)
    triceps = _Ellipsoid(at(0.29, 0.236, -0.050), (0.090, 0.037, 0.034), shoulder)
    forearm = _RoundCone(j[elbow], j[wrist], 0.038, 0.0255, elbow, up=(0.0, 1.0, 0.0), scale=(0.78, 1.1))
    forearm_muscle = _Ellipsoid(at(0.505, 0.228, -0.028), (0.085, 0.039, 0.045), elbow)
    hand = _hand(sk, wrist)
    lower = _Attach(_Union([forearm, forearm_muscle], 0.03), [(hand, 0.02)])
    return _Attach(_Union([deltoid, upper, biceps, triceps], 0.03), [(lower, 0.03)])


def _leg(sk: _Skeleton, side: float) -> _Node:
    """Thigh with quadriceps/hamstrings, knee, calf and foot; side +1 for the left leg, -1 the right."""
    j = sk.joints
    hip, knee, ankle, foot = (1, 4, 7, 10) if side > 0 else (2, 5, 8, 11)

    def at(x, y, z):
        return np.array([side * x, y, z])

    thigh = _RoundCone(at(0.084, -0.30, 0.0), j[knee], 0.077, 0.048, hip)
    quads = _Ellipsoid(at(0.097, -0.48, 0.026), (0.066, 0.18, 0.060), hip)
    hamstrings = _Ellipsoid(at(0.088, -0.47, -0.032), (0.066, 0.16, 0.060), hip)
    shin = _RoundCone(j[knee], j[ankle], 0.047, 0.030, knee)
    calf = _Ellipsoid(at(0.097, -0.83, -0.030), (0.050, 0.125, 0.050), knee)
    kneecap = _Ellipsoid(at(0.100, -0.688, 0.030), (0.026, 0.030, 0.020), knee)
    heel = _Ellipsoid(at(0.085, -1.095, -0.062), (0.031, 0.035, 0.040), ankle)
    sole = _RoundCone(at(0.088, -1.090, -0.045), at(0.104, -1.104, 0.088), 0.034, 0.026, ankle,
                      up=(0.0, 1.0, 0.0), scale=(0.80, 1.55))
    instep = _Ellipsoid(at(0.090, -1.070, 0.015), (0.034, 0.036, 0.070), ankle)
    toes = _RoundCone(at(0.106, -1.110, 0.098), at(0.112, -1.114, 0.150), 0.021, 0.016, foot,
                      up=(0.0, 1.0, 0.0), scale=(0.78, 1.75))
    foot_node = _Union([heel, sole, instep, toes], 0.02)
    lower = _Attach(_Union([shin, calf, kneecap], 0.03), [(foot_node, 0.025)])
    return _Attach(_Union([thigh, quads, hamstrings], 0.04), [(lower, 0.03)])


def _head() -> _Node:
    """Cranium, jaw and face with brow, nose, lips, eyes in shallow sockets, and ears."""
    cranium = _Ellipsoid((0.0, 0.475, -0.008), (0.077, 0.095, 0.098), 15)
    jaw = _RoundCone((0.0, 0.438, 0.012), (0.0, 0.372, 0.064), 0.064, 0.024, 15)
    brow = _Ellipsoid((0.0, 0.478, 0.070), (0.058, 0.015, 0.022), 15)
    midface = _Ellipsoid((0.0, 0.418, 0.045), (0.056, 0.045, 0.050), 15)
    nose = _RoundCone((0.0, 0.458, 0.093), (0.0, 0.423, 0.108), 0.0075, 0.0115, 15)
    ears = [_Ellipsoid((s * 0.077, 0.445, -0.006), (0.010, 0.030, 0.019), 15) for s in (1.0, -1.0)]
    lips = _Ellipsoid((0.0, 0.389, 0.084), (0.021, 0.009, 0.010), 15)
    skull = _Union([cranium, jaw, midface, brow], 0.035)
    for s in (1.0, -1.0):
        skull = _Carve(skull, _Ellipsoid((s * 0.032, 0.458, 0.100), (0.017, 0.011, 0.014), 15), 0.01)
    eyes = [_Ellipsoid((s * 0.032, 0.457, 0.083), (0.012, 0.009, 0.012), 15) for s in (1.0, -1.0)]
    features = [(nose, 0.012), (lips, 0.008)] + [(e, 0.008) for e in ears] + [(e, 0.004) for e in eyes]
    return _Attach(skull, features)


def _body(sk: _Skeleton) -> _Node:
    """The whole body as a blend tree; every surface primitive is owned by the joint that moves it."""
    j = sk.joints
    loft = _Loft(
        heights=[-0.40, -0.33, -0.25, -0.15, -0.05, 0.05, 0.13, 0.20, 0.25, 0.29],
        half_widths=[0.122, 0.155, 0.156, 0.148, 0.135, 0.145, 0.167, 0.174, 0.155, 0.080],
        front=[0.070, 0.085, 0.095, 0.100, 0.095, 0.100, 0.112, 0.105, 0.080, 0.060],
        back=[0.090, 0.120, 0.105, 0.085, 0.080, 0.085, 0.098, 0.095, 0.085, 0.070],
        centers=[0.0, 0.0, 0.0, 0.005, 0.0, 0.0, 0.0, -0.010, -0.020, -0.030],
        exponent=2.3,
        band_edges=[j[3, 1], j[6, 1], j[9, 1]],
        band_joints=[0, 3, 6, 9],
    )
    torso_parts: list[_Primitive] = [loft]
    for s, collar in ((1.0, 13), (-1.0, 14)):
        torso_parts += [
            _Ellipsoid((s * 0.075, -0.325, -0.055), (0.090, 0.105, 0.085), 0),  # buttock
            _Ellipsoid((s * 0.070, 0.152, 0.055), (0.085, 0.055, 0.050), 9),  # pectoral
            _Ellipsoid((s * 0.075, 0.160, -0.060), (0.070, 0.080, 0.040), 9),  # shoulder blade
            _RoundCone((s * 0.020, 0.290, -0.040), (s * 0.165, 0.255, -0.030), 0.045, 0.038, collar),
        ]
    cleft = _Ellipsoid((0.0, -0.375, -0.145), (0.007, 0.075, 0.035), 0)
    torso = _Carve(_Union(torso_parts, 0.04), cleft, 0.012)
    neck = _RoundCone((0.0, 0.240, -0.035), (0.0, 0.410, -0.005), 0.058, 0.052, 12,
                      up=(1.0, 0.0, 0.0), scale=(1.0, 0.95))
    head = _Attach(neck, [(_head(), 0.03)])
    return _Attach(
        torso,
        [(head, 0.035), (_arm(sk, 1.0), 0.035), (_arm(sk, -1.0), 0.035),
         (_leg(sk, 1.0), 0.05), (_leg(sk, -1.0), 0.05)],
    )
