"""The scene builder: one batch of samples of one interaction, posed in the body frame."""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import roma
import torch

from ...objects import ObjectTemplate
from ...skeleton import (
    ANKLE,
    COLLAR,
    ELBOW,
    FINGER_ORDER,
    FOOT,
    HAND_START,
    HEAD,
    HIP,
    KNEE,
    LEFT,
    NECK,
    NUM_JOINTS,
    PELVIS,
    RIGHT,
    SHOULDER,
    SIDE_NAMES,
    SPINE1,
    SPINE2,
    SPINE3,
    WRIST,
)
from .rig import _Rig
from .rotations import _align, _axis_rot, _rot, _rotation_between, _twist_angle, _unit, _vec, _yaw

_SIGN = (1.0, -1.0)  # the body's left is +x
# How a forward bend of the trunk is shared between the pelvis and the spine joints.
_POSTURE_SHARES = {PELVIS: 0.55, SPINE1: 0.2, SPINE2: 0.15, SPINE3: 0.1}


# ---------------------------------------------------------------------------------------------------------
# Object geometry the recipes read off the shipped primitives
# ---------------------------------------------------------------------------------------------------------


@dataclass
class _ObjectGeometry:
    """Measurements of one template (template frame, metres)."""

    low: torch.Tensor  # (3,) bounding box
    high: torch.Tensor
    seat_top: float  # highest surface point above the centre axis (seat, table top)
    handle: torch.Tensor | None = None  # (3,) bag handle centre
    radius: float = 0.0  # ball radius, stool seat radius, stick handle radius
    post_tops: torch.Tensor | None = None  # chair: (2, 3) tops of the back posts (x>0 first)


def _measure_object(template: ObjectTemplate) -> _ObjectGeometry:
    vertices = template.vertices.detach().double()
    low, high = vertices.min(0).values, vertices.max(0).values
    near_axis = vertices[(vertices[:, [0, 2]]).norm(dim=1) < 0.06]
    seat_top = float(near_axis[:, 1].max()) if len(near_axis) else float(high[1])
    geometry = _ObjectGeometry(low=low, high=high, seat_top=seat_top)
    name = template.name
    if name == "ball":
        geometry.radius = float(high[0] - low[0]) / 2
    elif name == "stool":
        geometry.radius = float(high[0] - low[0]) / 2
    elif name == "stick":
        handle = vertices[(vertices[:, 1] > low[1] + 0.02) & (vertices[:, 1] < low[1] + 0.31)]
        geometry.radius = float(handle[:, [0, 2]].norm(dim=1).max())
    elif name == "bag":
        top = vertices[vertices[:, 1] > high[1] - 0.005]
        centre = top.mean(0)
        geometry.handle = torch.stack([centre[0], high[1] - 0.015, centre[2]])
        geometry.radius = 0.015
    elif name == "chair":
        top = vertices[vertices[:, 1] > high[1] - 0.005]
        posts = [top[top[:, 0] * s > 0.05].mean(0) for s in (1.0, -1.0)]
        geometry.post_tops = torch.stack(posts)
    return geometry


# ---------------------------------------------------------------------------------------------------------
# Hand shapes
# ---------------------------------------------------------------------------------------------------------

# Absolute flexion (radians) of (knuckle, middle, tip) joints of the four fingers, sideways spread of the
# fingers, and the thumb's (swing across the palm, flexion of its three joints).
_GRASPS = {
    "flat": dict(curl=(0.0, 0.03, 0.02), spread=0.06, thumb=(0.0, -0.35, -0.1, 0.0)),
    "hold": dict(curl=(0.15, 0.15, 0.1), spread=0.04, thumb=(0.1, -0.2, 0.0, 0.0)),
    "ball": dict(curl=(0.25, 0.25, 0.15), spread=0.15, thumb=(0.3, -0.1, 0.1, 0.1)),
    "power": dict(curl=(1.25, 1.45, 0.9), spread=0.0, thumb=(-0.7, 0.5, 0.5, 0.4)),
}


# ---------------------------------------------------------------------------------------------------------
# The scene builder: one batch of samples of one interaction
# ---------------------------------------------------------------------------------------------------------


class _SceneBatch:
    """Pose state and helpers for ``n`` samples of one interaction, in the body frame.

    Recipes read random numbers with :meth:`rand` / :meth:`randn` / :meth:`coin`; each call consumes one
    column of every sample's own uniform block, so a sample's values never depend on its batch-mates.
    """

    def __init__(self, rig: _Rig, interaction: str, template: ObjectTemplate, geometry: _ObjectGeometry,
                 uniforms: torch.Tensor):
        self.rig = rig
        self.interaction = interaction
        self.template = template
        self.geometry = geometry
        self.u = uniforms
        self.n = uniforms.shape[0]
        self.cursor = 0
        n = self.n
        self.betas = self.randn(1.0, clip=2.5, size=10)
        self.yaw = self.rand(-math.pi, math.pi)
        self.camera_draws = torch.stack([self.rand() for _ in range(6)], dim=1)
        self.rest = rig.rest_joints(self.betas)
        eye = torch.eye(3, dtype=torch.float64)
        self.local = eye.expand(n, NUM_JOINTS, 3, 3).clone()
        for side in (LEFT, RIGHT):  # hands start at the model's relaxed mean hand, slightly varied
            start = HAND_START[side]
            mean = rig.hand_mean[15 * side: 15 * side + 15]
            noise = self.randn(0.08, size=45).reshape(n, 15, 3)
            self.local[:, start: start + 15] = _rot(mean + noise)
        self.object_rotation = eye.expand(n, 3, 3).clone()
        self.object_translation = torch.zeros(n, 3, dtype=torch.float64)
        self.floor = torch.zeros(n, dtype=torch.float64)
        self.failed = torch.zeros(n, dtype=torch.bool)
        self.hand_contact = torch.zeros(n, 2, dtype=torch.bool)  # (left, right) hand must touch the object
        self._fk = None
        self._ankle_height: dict[int, torch.Tensor] = {}
        self._palm_offset: dict[int, torch.Tensor] = {}

    # -- random numbers ---------------------------------------------------------------------------------

    def rand(self, low: float = 0.0, high: float = 1.0, size: int | None = None) -> torch.Tensor:
        count = 1 if size is None else size
        if self.cursor + count > self.u.shape[1]:
            raise RuntimeError("A synthetic recipe drew more random numbers than _NUM_DRAWS provides.")
        values = self.u[:, self.cursor: self.cursor + count]
        self.cursor += count
        values = low + (high - low) * values
        return values[:, 0] if size is None else values

    def randn(self, scale: float = 1.0, clip: float = 2.5, size: int | None = None) -> torch.Tensor:
        uniform = self.rand(size=size).clamp(1e-9, 1 - 1e-9)
        return scale * torch.special.ndtri(uniform).clamp(-clip, clip)

    def coin(self, probability: float) -> torch.Tensor:
        return self.rand() < probability

    def pick(self, mask: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """``a`` where ``mask`` else ``b``, broadcasting the mask over trailing dimensions."""
        return torch.where(mask.reshape(-1, *([1] * (a.dim() - 1))), a, b)

    def branch(self, mask: torch.Tensor, first, second) -> None:
        """Run two alternative pose edits and keep ``first``'s result where ``mask``, ``second``'s elsewhere."""
        saved = self._state()
        first()
        chosen = self._state()
        self._restore(saved)
        second()
        other = self._state()
        self._restore({name: self.pick(mask, chosen[name], other[name]) for name in chosen})

    _STATE = ("local", "object_rotation", "object_translation", "floor", "failed", "hand_contact")

    def _state(self) -> dict[str, torch.Tensor]:
        return {name: getattr(self, name).clone() for name in self._STATE}

    def _restore(self, state: dict[str, torch.Tensor]) -> None:
        for name, value in state.items():
            setattr(self, name, value.clone())
        self._fk = None

    # -- kinematics -------------------------------------------------------------------------------------

    def fk(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._fk is None:
            self._fk = self.rig.forward_kinematics(self.local, self.rest)
        return self._fk

    def set_local(self, joint: int, rotation: torch.Tensor) -> None:
        self.local[:, joint] = rotation
        self._fk = None

    def skin(self, name: str) -> torch.Tensor:
        """Posed vertices ``(n, m, 3)`` of the rig's vertex set ``name``."""
        world_rot, world_pos = self.fk()
        return self.rig.skin(name, self.local, world_rot, world_pos, self.rest, self.betas)

    def down_vertices(self) -> torch.Tensor:
        return self.skin("down")

    def object_sdf(self, points: torch.Tensor) -> torch.Tensor:
        """Signed distance ``(n, m)`` of body-frame points to the posed object."""
        local = (points - self.object_translation[:, None]) @ self.object_rotation
        return self.template.signed_distance(local.float()).double()

    def object_points(self, local_points: torch.Tensor) -> torch.Tensor:
        """Template points ``(m, 3)`` or ``(n, m, 3)`` in the body frame ``(n, m, 3)``."""
        return local_points @ self.object_rotation.transpose(1, 2) + self.object_translation[:, None]

    def object_bottom(self) -> torch.Tensor:
        """Lowest object vertex height ``(n,)``."""
        return self.object_points(self.template.vertices.double())[..., 1].min(1).values

    # -- posture ----------------------------------------------------------------------------------------

    def posture(self, lean: tuple[float, float], side_lean: float = 0.06,
                bend: torch.Tensor | None = None) -> torch.Tensor:
        """Bend the trunk forward by ``lean`` radians (negative: backwards), split over pelvis and spine.

        ``bend (n,)`` overrides the drawn angle. Returns the total bend ``(n,)``.
        """
        drawn = self.rand(*lean)
        bend = drawn if bend is None else bend
        roll = self.randn(side_lean)
        self.set_local(PELVIS, _rot(torch.stack([_POSTURE_SHARES[PELVIS] * bend, self.randn(0.1), roll], 1)))
        for joint in (SPINE1, SPINE2, SPINE3):
            share = _POSTURE_SHARES[joint]
            twist = self.randn(0.06)
            self.set_local(joint, _rot(torch.stack([share * bend + self.randn(0.04), twist, -roll / 3], 1)))
        self.set_local(NECK, _rot(torch.stack([-0.3 * bend + self.randn(0.1), self.randn(0.15), self.randn(0.05)], 1)))
        self.set_local(HEAD, _rot(torch.stack([self.randn(0.12), self.randn(0.2), self.randn(0.05)], 1)))
        for side in (LEFT, RIGHT):
            self.set_local(COLLAR[side], _rot(self.randn(0.05, size=3)))
        return bend

    def _leg_lengths(self, side: int) -> tuple[torch.Tensor, torch.Tensor]:
        rest = self.rest
        thigh = (rest[:, KNEE[side]] - rest[:, HIP[side]]).norm(dim=1)
        shin = (rest[:, ANKLE[side]] - rest[:, KNEE[side]]).norm(dim=1)
        return thigh, shin

    def ankle_height(self, side: int) -> torch.Tensor:
        """Height ``(n,)`` of the ankle joint above the sole when the foot is flat."""
        if side not in self._ankle_height:
            sole = self.rig.rest_vertices(f"sole_{SIDE_NAMES[side]}", self.betas)
            self._ankle_height[side] = self.rest[:, ANKLE[side], 1] - sole[..., 1].min(1).values
        return self._ankle_height[side]

    def stand(self, crouch, width: tuple[float, float] = (-0.02, 0.1), step: float = 0.12) -> None:
        """Put both feet flat on the floor: ``crouch`` (a range or ``(n,)``) is the hip-to-ankle distance over
        the leg length.

        Sets :attr:`floor` (floor height, body frame) from the leg that reaches least far.
        """
        world_rot, world_pos = self.fk()
        targets, floors, yaws = [], [], []
        for side in (LEFT, RIGHT):
            hip = world_pos[:, HIP[side]]
            thigh, shin = self._leg_lengths(side)
            x = hip[:, 0] + _SIGN[side] * self.rand(*width)
            z = self.rand(-step, step) + 0.02
            reach = (crouch if isinstance(crouch, torch.Tensor) else self.rand(*crouch)) * (thigh + shin)
            horizontal = torch.stack([x - hip[:, 0], z - hip[:, 2]], 1).norm(dim=1)
            drop = (reach.square() - horizontal.square()).clamp_min(0.01).sqrt()
            floors.append(hip[:, 1] - drop - self.ankle_height(side))
            targets.append((x, z))
            yaws.append(_SIGN[side] * self.rand(-0.05, 0.35))
        self.floor = torch.maximum(floors[0], floors[1])
        for side in (LEFT, RIGHT):
            x, z = targets[side]
            ankle = torch.stack([x, self.floor + self.ankle_height(side), z], 1)
            self.place_foot(side, ankle, yaws[side])

    def _shoulder_height(self, bend: torch.Tensor) -> torch.Tensor:
        """Mean shoulder height ``(n,)`` above the pelvis when the trunk is bent by ``bend`` as :meth:`posture`
        does (forward kinematics of the spine chain only; collars at rest)."""
        rest = self.rest
        rotation = torch.eye(3, dtype=torch.float64).expand(self.n, 3, 3)
        position = torch.zeros(self.n, 3, dtype=torch.float64)
        previous = PELVIS
        for joint in (PELVIS, SPINE1, SPINE2, SPINE3):
            position = position + (rotation @ (rest[:, joint] - rest[:, previous])[..., None])[..., 0]
            rotation = rotation @ _axis_rot((1.0, 0.0, 0.0), _POSTURE_SHARES[joint] * bend)
            previous = joint
        shoulders = 0.5 * (rest[:, SHOULDER[LEFT]] + rest[:, SHOULDER[RIGHT]]) - rest[:, SPINE3]
        return position[:, 1] + (rotation @ shoulders[..., None])[:, 1, 0]

    def stoop(self, height: torch.Tensor, crouch: tuple[float, float], reach: tuple[float, float] = (0.6, 0.85),
              extra: tuple[float, float] = (-0.05, 0.1), max_bend: float = 1.45, step: float = 0.12,
              width: tuple[float, float] = (-0.02, 0.1)) -> None:
        """Bend the trunk (and crouch deeper if bending is not enough) so that the shoulders come within
        ``reach`` (fraction of an arm) above a point at ``height (n,)`` above the floor; then stand.
        """
        rest = self.rest
        hip_drop = rest[:, PELVIS, 1] - 0.5 * (rest[:, HIP[LEFT], 1] + rest[:, HIP[RIGHT], 1])
        legs = 0.5 * sum(sum(self._leg_lengths(side)) for side in (LEFT, RIGHT))
        ankle = 0.5 * (self.ankle_height(LEFT) + self.ankle_height(RIGHT))
        arm = 0.5 * (self.arm_length(LEFT) + self.arm_length(RIGHT)) + 0.05
        squat = self.rand(*crouch)
        shoulder = height + self.rand(*reach) * arm  # wanted shoulder height above the floor
        wanted = shoulder - (ankle + hip_drop + squat * legs)  # ... and above the pelvis
        # The shoulder height falls monotonically with the bend: bisect for it.
        low = torch.zeros_like(height)
        high = torch.full_like(height, max_bend)
        for _ in range(10):
            middle = 0.5 * (low + high)
            too_high = self._shoulder_height(middle) > wanted
            low, high = torch.where(too_high, middle, low), torch.where(too_high, high, middle)
        lowest = self._shoulder_height(torch.full_like(height, max_bend))
        deeper = (shoulder - lowest - ankle - hip_drop) / legs  # bent as far as it goes: squat instead
        squat = torch.where(lowest > wanted, deeper.clamp(0.4, crouch[1]), squat)
        bend = (0.5 * (low + high) + self.rand(*extra)).clamp(0.0, max_bend)
        self.posture(lean=(0.0, 0.0), bend=bend)
        self.stand(crouch=squat, step=step, width=width)

    def place_foot(self, side: int, ankle: torch.Tensor, foot_yaw: torch.Tensor, pole=None) -> None:
        """Leg IK to ``ankle (n, 3)``, knee towards ``pole`` (default: forward), foot flat and yawed."""
        if pole is None:
            pole = _vec([_SIGN[side] * 0.15, 0.0, 1.0], self.n)
        hinge = (1.0, 0.0, 0.0)
        reached = self._two_bone(PELVIS, HIP[side], KNEE[side], ANKLE[side], ankle, pole, hinge, twist_share=0.0)
        self.failed |= ~reached
        world_rot, _ = self.fk()
        self.set_local(ANKLE[side], world_rot[:, KNEE[side]].transpose(1, 2) @ _yaw(foot_yaw))
        self.set_local(FOOT[side], _rot(self.randn(0.03, size=3)))

    # -- inverse kinematics ------------------------------------------------------------------------------

    def _two_bone(self, parent: int, a: int, b: int, c: int, target: torch.Tensor, pole: torch.Tensor,
                  hinge: Sequence[float], end_rotation: torch.Tensor | None = None,
                  twist_share: float = 0.5) -> torch.Tensor:
        """Rotate joints ``a`` and ``b`` so that joint ``c`` lands on ``target``; returns reachability ``(n,)``.

        ``hinge`` is the rest-frame axis ``b`` bends about; the bend plane contains ``pole``. With
        ``end_rotation`` (world ``(n, 3, 3)``) joint ``c`` is turned to it, and ``twist_share`` of its twist
        about the bone is moved into joint ``b`` (a forearm twists along its length, not at the wrist).
        """
        world_rot, world_pos = self.fk()
        rest = self.rest
        l1 = (rest[:, b] - rest[:, a]).norm(dim=1)
        l2 = (rest[:, c] - rest[:, b]).norm(dim=1)
        start = world_pos[:, a]
        offset = target - start
        distance = offset.norm(dim=1)
        reached = distance <= l1 + l2 + 0.005
        distance_c = distance.clamp((l1 - l2).abs() + 1e-3, 0.998 * (l1 + l2))
        direction = _unit(offset)
        cos_a = ((l1.square() + distance_c.square() - l2.square()) / (2 * l1 * distance_c)).clamp(-1, 1)
        side = _unit(pole - (pole * direction).sum(1, keepdim=True) * direction)
        middle = start + l1[:, None] * (cos_a[:, None] * direction + (1 - cos_a.square()).sqrt()[:, None] * side)
        end = start + distance_c[:, None] * direction

        upper = _unit(middle - start)
        lower = _unit(end - middle)
        bend_normal = torch.cross(upper, lower, dim=-1)
        rest_upper = _unit(rest[:, b] - rest[:, a])
        rest_lower = _unit(rest[:, c] - rest[:, b])
        hinge_rest = torch.tensor(hinge, dtype=torch.float64).expand_as(rest_upper)
        # Nearly straight limbs have no bend plane of their own: take the pole's.
        straight = bend_normal.norm(dim=1) < 1e-6
        bend_normal = torch.where(straight[:, None], torch.cross(upper, side, dim=-1), bend_normal)
        upper_world = _align(rest_upper, hinge_rest, upper, bend_normal)
        self.set_local(a, world_rot[:, parent].transpose(1, 2) @ upper_world)
        bend = _rotation_between(rest_lower, _unit((upper_world.transpose(1, 2) @ lower[..., None])[..., 0]))
        if end_rotation is not None:
            end_local = (upper_world @ bend).transpose(1, 2) @ end_rotation
            twist = _twist_angle(end_local, rest_lower) * twist_share
            twist_rot = _rot(rest_lower * twist[:, None])
            bend = bend @ twist_rot
            self.set_local(b, bend)
            self.set_local(c, twist_rot.transpose(1, 2) @ end_local)
        else:
            self.set_local(b, bend)
        return reached

    def shoulder(self, side: int) -> torch.Tensor:
        return self.fk()[1][:, SHOULDER[side]]

    def arm_length(self, side: int) -> torch.Tensor:
        rest = self.rest
        upper = (rest[:, ELBOW[side]] - rest[:, SHOULDER[side]]).norm(dim=1)
        fore = (rest[:, WRIST[side]] - rest[:, ELBOW[side]]).norm(dim=1)
        return upper + fore

    def palm_offset(self, side: int) -> torch.Tensor:
        """``(n, 3)`` rest offset from the wrist joint to the centre of the palm's surface."""
        if side not in self._palm_offset:
            palm = self.rig.rest_vertices(f"palm_{SIDE_NAMES[side]}", self.betas).mean(1)
            self._palm_offset[side] = palm - self.rest[:, WRIST[side]]
        return self._palm_offset[side]

    def hand_rotation(self, side: int, fingers: torch.Tensor, palm: torch.Tensor) -> torch.Tensor:
        """World hand rotation with fingers along ``fingers`` and the palm facing ``palm`` (both ``(n, 3)``)."""
        finger_rest = self.rig.finger_rest[side].expand_as(fingers)
        palm_rest = self.rig.palm_normal_rest.expand_as(palm)
        return _align(finger_rest, palm_rest, fingers, palm)

    def reach(self, side: int, contact: torch.Tensor, palm: torch.Tensor, fingers: torch.Tensor,
              gap: float = 0.004, pole: torch.Tensor | None = None) -> None:
        """Put the centre of a palm ``gap`` short of ``contact``, facing ``palm``, fingers along ``fingers``.

        ``palm`` points from the hand into the surface. The elbow swings towards ``pole`` (default: out, down
        and back). Samples the arm cannot reach fail.
        """
        palm = _unit(palm)
        fingers = _unit(fingers - (fingers * palm).sum(1, keepdim=True) * palm)
        hand = self.hand_rotation(side, fingers, palm)
        wrist = contact - gap * palm - (hand @ self.palm_offset(side)[..., None])[..., 0]
        if pole is None:
            pole = torch.stack([_SIGN[side] * self.rand(0.3, 1.0), -self.rand(0.6, 1.0), self.rand(-0.6, 0.1)], 1)
        hinge = (0.0, -_SIGN[side], 0.0)  # elbows bend forward from a palms-down T-pose
        reached = self._two_bone(COLLAR[side], SHOULDER[side], ELBOW[side], WRIST[side], wrist, pole, hinge,
                                 end_rotation=hand, twist_share=0.55)
        self.failed |= ~reached
        self.hand_contact[:, side] = True

    def wrist_target(self, grip: _Grip) -> torch.Tensor:
        """Where the wrist joint must be ``(n, 3)`` for ``grip`` at the object's current pose."""
        hand = self.hand_rotation(grip.side, grip.fingers, grip.palm)
        contact = self.to_body(grip.local)
        return contact - grip.gap * grip.palm - (hand @ self.palm_offset(grip.side)[..., None])[..., 0]

    def bring_within_reach(self, grips: Sequence[_Grip], fraction=0.96, vertical: bool = True) -> None:
        """Translate the object towards the shoulders until every grip's wrist is within ``fraction`` (a float
        or ``(n, 1)``) of the arm's length; only horizontally when ``vertical`` is False (objects standing on
        the floor)."""
        for _ in range(3):
            move = torch.zeros(self.n, 3, dtype=torch.float64)
            for grip in grips:
                offset = self.wrist_target(grip) - self.shoulder(grip.side)
                distance = offset.norm(dim=1, keepdim=True)
                excess = (distance - fraction * self.arm_length(grip.side)[:, None]).clamp_min(0)
                step = -offset / distance * excess * 1.05
                if not vertical:
                    step = step * torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64)
                move = torch.where(step.norm(dim=1, keepdim=True) > move.norm(dim=1, keepdim=True), step, move)
            self.object_translation = self.object_translation + move

    def palm_grip(self, side: int, contact: torch.Tensor, palm: torch.Tensor, preferred: torch.Tensor,
                  gap: float = 0.004, grasp: str = "flat") -> _Grip:
        """A palm pressed on a surface point ``contact`` (body frame), facing ``palm`` (into the surface), the
        fingers as close to ``preferred`` as the surface allows."""
        palm = _unit(palm)
        return _Grip(side, self.to_local(contact), palm, _fingers_towards(palm, preferred), gap, grasp)

    def cylinder_grip(self, side: int, point: torch.Tensor, axis: torch.Tensor, radius: float,
                      thumb_sign=1.0, approach: torch.Tensor | None = None) -> _Grip:
        """A power grip round a bar of ``radius`` through ``point`` along ``axis`` (body frame); the thumb
        points along ``thumb_sign * axis`` and the hand sits on the side facing ``approach`` (default: the
        shoulder)."""
        axis = _unit(axis)
        if approach is None:
            approach = self.shoulder(side) - point
        outward = _unit(approach - (approach * axis).sum(1, keepdim=True) * axis)
        roll = self.randn(0.25)
        outward = _unit((_rot(axis * roll[:, None]) @ outward[..., None])[..., 0])
        palm = -outward
        thumb = axis * (thumb_sign[:, None] if isinstance(thumb_sign, torch.Tensor) else thumb_sign)
        fingers = torch.cross(thumb, palm, dim=-1) if side == LEFT else torch.cross(palm, thumb, dim=-1)
        return _Grip(side, self.to_local(point + radius * outward), palm, fingers, 0.002, "power")

    def hold(self, grips: Sequence[_Grip], poles: Sequence[torch.Tensor | None] | None = None) -> None:
        """Reach every grip (arm IK) and shape its hand."""
        poles = poles or [None] * len(grips)
        for grip, pole in zip(grips, poles):
            self.reach(grip.side, self.to_body(grip.local), grip.palm, grip.fingers, gap=grip.gap, pole=pole)
            self.grasp(grip.side, grip.grasp)

    def grasp(self, side: int, kind: str, jitter: float = 0.08) -> None:
        """Shape the fingers of one hand (absolute joint rotations, see :data:`_GRASPS`)."""
        spec = _GRASPS[kind]
        thumb = FINGER_ORDER.index("thumb")
        # Flexion of the 15 joints (finger-major, three joints each), then a sideways turn of each first joint.
        flexion = torch.tensor([spec["thumb"][1:] if f == thumb else spec["curl"] for f in range(5)],
                               dtype=torch.float64).reshape(15)
        sideways = torch.tensor([spec["thumb"][0] if f == thumb else (f - 1.5) * spec["spread"] for f in range(5)],
                                dtype=torch.float64)
        flexion = flexion + self.randn(jitter, size=15)
        sideways = _SIGN[side] * (sideways + self.randn(jitter, size=5) * torch.tensor([0, 0, 0, 0, 1.0]))
        rotations = _rot(self.rig.finger_axes[side] * flexion[..., None])  # (n, 15, 3, 3)
        turn = _rot(self.rig.palm_normal_rest * sideways[..., None])  # (n, 5, 3, 3)
        first = torch.arange(0, 15, 3)
        rotations[:, first] = turn @ rotations[:, first]
        start = HAND_START[side]
        self.local[:, start: start + 15] = rotations
        self._fk = None

    def relax_arm(self, side: int, spread: tuple[float, float] = (0.08, 0.3)) -> None:
        """Let an arm hang under gravity beside the body (whatever the trunk's bend), elbow a little bent."""
        s = _SIGN[side]
        direction = _unit(torch.stack([s * self.rand(*spread), -torch.ones(self.n, dtype=torch.float64),
                                       self.rand(-0.2, 0.25)], 1))
        wrist = self.shoulder(side) + direction * (self.rand(0.85, 0.98) * self.arm_length(side))[:, None]
        pole = _vec([0.0, 0.0, -1.0], self.n)
        pole[:, 0] = s * self.rand(0.1, 0.5)
        # The elbow's hinge then turns the palm towards the thigh, as a hanging arm rests.
        self._two_bone(COLLAR[side], SHOULDER[side], ELBOW[side], WRIST[side], wrist, pole, (0.0, -s, 0.0))
        self.set_local(WRIST[side], _rot(self.randn(0.12, size=3)))

    def lower_arm(self, side: int, lowered: tuple[float, float], elbow: tuple[float, float]) -> None:
        """Lower an arm from the T-pose by ``lowered`` radians (palm towards the body), elbow bent by ``elbow``."""
        s = _SIGN[side]
        down = -s * self.rand(*lowered)
        self.set_local(SHOULDER[side], _rot(torch.stack([self.randn(0.12), self.randn(0.15), down], 1)))
        self.set_local(ELBOW[side], _axis_rot((0.0, -s, 0.0), self.rand(*elbow)))
        self.set_local(WRIST[side], _rot(self.randn(0.12, size=3)))

    def look_at(self, point: torch.Tensor, strength: float = 0.7) -> None:
        """Turn neck and head part of the way towards ``point (n, 3)``."""
        world_rot, world_pos = self.fk()
        forward = world_rot[:, HEAD] @ torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
        wanted = _unit(point - world_pos[:, HEAD])
        turn = _rotation_between(forward, wanted)
        rotvec = roma.rotmat_to_rotvec(turn) * strength
        angle = rotvec.norm(dim=1, keepdim=True)
        rotvec = rotvec * (angle.clamp_max(1.0) / angle.clamp_min(1e-9))
        for joint in (NECK, HEAD):
            parent_rot = world_rot[:, self.rig.parents[joint]]
            local_vec = (parent_rot.transpose(1, 2) @ (0.5 * rotvec)[..., None])[..., 0]
            self.set_local(joint, _rot(local_vec) @ self.local[:, joint])
            world_rot, world_pos = self.fk()

    # -- object placement --------------------------------------------------------------------------------

    def slide_object(self, direction: Sequence[float], gap: torch.Tensor, mask: torch.Tensor,
                     iterations: int = 6) -> None:
        """Move the object along ``direction`` until the body points ``mask`` are ``gap`` from its surface."""
        direction = torch.tensor(direction, dtype=torch.float64)
        points = self.down_vertices()[:, mask]
        for _ in range(iterations):
            distance = self.object_sdf(points).min(1).values
            step = distance - gap
            step = torch.where(step > 0.05, 0.85 * step, step)
            self.object_translation = self.object_translation + step[:, None] * direction

    def push_out(self, direction: Sequence[float], mask: torch.Tensor, clearance: float = 0.01) -> None:
        """Move the object along ``direction`` just far enough that the body points ``mask`` are outside it."""
        direction = torch.tensor(direction, dtype=torch.float64)
        points = self.down_vertices()[:, mask]
        for _ in range(4):
            distance = self.object_sdf(points).min(1).values
            step = (clearance - distance).clamp_min(0)
            self.object_translation = self.object_translation + step[:, None] * direction

    def rest_on_floor(self) -> None:
        """Translate the object vertically so that its lowest vertex touches the floor."""
        self.object_translation[:, 1] += self.floor - self.object_bottom()

    def place_within_reach(self, locals_: Sequence[torch.Tensor], sides: Sequence[int],
                           fraction: tuple[float, float], raise_object: bool = False,
                           min_forward: float = 0.15) -> None:
        """Slide the object along +z so that each template point ``locals_[k]`` ``(n, 3)`` lies at
        ``fraction`` of an arm's length from the shoulder of ``sides[k]``.

        Where a point is too far below the shoulder for that, ``raise_object`` lifts the object until it is
        within reach at least ``min_forward`` in front; otherwise such samples fail.
        """
        frac = self.rand(*fraction)
        reaches = [frac * (self.arm_length(side) + 0.06) for side in sides]
        if raise_object:
            self.raise_within_reach(locals_, sides, reaches, min_forward)
        shift = None
        for local, side, reach in zip(locals_, sides, reaches):
            contact, shoulder = self.to_body(local), self.shoulder(side)
            lateral = (contact[:, [0, 1]] - shoulder[:, [0, 1]]).square().sum(1)
            self.failed |= lateral > reach.square()
            wanted = shoulder[:, 2] + (reach.square() - lateral).clamp_min(0).sqrt() - contact[:, 2]
            shift = wanted if shift is None else torch.minimum(shift, wanted)
        self.object_translation[:, 2] += shift

    def raise_within_reach(self, locals_: Sequence[torch.Tensor], sides: Sequence[int],
                           reaches: Sequence[torch.Tensor], min_forward=None) -> None:
        """Lift the object until every template point ``locals_[k]`` is within ``reaches[k]`` of the shoulder of
        ``sides[k]``, keeping its forward offset from the shoulder (or at least ``min_forward``)."""
        lift = torch.zeros(self.n, dtype=torch.float64)
        for local, side, reach in zip(locals_, sides, reaches):
            contact, shoulder = self.to_body(local), self.shoulder(side)
            forward = (contact[:, 2] - shoulder[:, 2]) if min_forward is None else torch.full_like(reach, min_forward)
            room = reach.square() - (contact[:, 0] - shoulder[:, 0]).square() - forward.square()
            self.failed |= room < 0
            lowest = shoulder[:, 1] - room.clamp_min(0).sqrt()
            lift = torch.maximum(lift, lowest - contact[:, 1])
        self.object_translation[:, 1] += lift

    def vertical_face(self, wanted: Sequence[float], reference: Sequence[float]):
        """The vertical bounding-box face whose outward normal best matches the body-frame ``wanted``.

        Returns template-frame ``(centre, normal, tangent, half_tangent)``, all ``(n, 3)`` except
        ``half_tangent (n,)``; ``tangent`` is the face's horizontal axis, signed to agree with ``reference``.
        """
        low, high = self.geometry.low, self.geometry.high
        centre, half = (low + high) / 2, (high - low) / 2
        normals = torch.tensor([[1.0, 0, 0], [-1.0, 0, 0], [0, 0, 1.0], [0, 0, -1.0]], dtype=torch.float64)
        body_normals = torch.einsum("nab,kb->nka", self.object_rotation, normals)
        face = (body_normals @ torch.tensor(wanted, dtype=torch.float64)).argmax(1)
        normal = normals[face]
        tangent = normals[(face + 2) % 4].abs()  # the other horizontal axis
        body_tangent = (self.object_rotation @ tangent[..., None])[..., 0]
        sign = torch.where(body_tangent @ torch.tensor(reference, dtype=torch.float64) < 0, -1.0, 1.0)
        tangent = tangent * sign[:, None]
        face_centre = centre + normal * half
        return face_centre, normal, tangent, (tangent.abs() * half).sum(1)

    def to_local(self, point: torch.Tensor) -> torch.Tensor:
        """Body-frame point ``(n, 3)`` to the template frame at the current object pose."""
        return ((point - self.object_translation)[:, None] @ self.object_rotation)[:, 0]

    def to_body(self, local_point: torch.Tensor) -> torch.Tensor:
        """Template point ``(n, 3)`` to the body frame at the current object pose."""
        return self.object_points(local_point[:, None])[:, 0]

    def direction_to_body(self, local_direction: torch.Tensor) -> torch.Tensor:
        return (self.object_rotation @ local_direction[..., None])[..., 0]


@dataclass
class _Grip:
    """One hand's hold on the object: template-frame contact ``local (n, 3)``, body-frame unit ``palm``
    (into the surface) and ``fingers`` directions, the palm's ``gap`` to the surface and the hand shape."""

    side: int
    local: torch.Tensor
    palm: torch.Tensor
    fingers: torch.Tensor
    gap: float
    grasp: str


def _fingers_towards(normal: torch.Tensor, preferred: torch.Tensor) -> torch.Tensor:
    """``preferred`` made perpendicular to ``normal``."""
    return _unit(preferred - (preferred * normal).sum(1, keepdim=True) * normal)


def _thumb_direction(ctx: _SceneBatch, side: int, hand: torch.Tensor) -> torch.Tensor:
    """World direction ``(n, 3)`` the thumb side of a hand with world rotation ``hand`` points to."""
    fingers = ctx.rig.finger_rest[side]
    palm = ctx.rig.palm_normal_rest
    thumb_rest = -torch.cross(fingers, palm, dim=0) if side == LEFT else torch.cross(fingers, palm, dim=0)
    return (hand @ thumb_rest)


def _grip_hole(ctx: _SceneBatch, side: int, radius: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Centre ``(n, 3)`` and axis ``(n, 3)`` of a bar of ``radius`` held in a hand at its current pose."""
    world_rot, world_pos = ctx.fk()
    hand = world_rot[:, WRIST[side]]
    palm_point = world_pos[:, WRIST[side]] + (hand @ ctx.palm_offset(side)[..., None])[..., 0]
    palm_normal = hand @ ctx.rig.palm_normal_rest
    return palm_point + (radius + 0.002) * palm_normal, _unit(_thumb_direction(ctx, side, hand))
