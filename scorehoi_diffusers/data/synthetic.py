"""Synthetic human-object interaction scenes: seeded poses, real contacts, rendered images, ``datasets`` output.

Every sample is built in a *body frame* (metres, y up, the floor a horizontal plane under the feet, the pelvis
at the origin, the body facing +z before a random yaw of the whole scene) and then seen by a random camera.
An interaction (:data:`INTERACTIONS`) is a recipe that poses the body and the object *together*:

* the legs and the pelvis height come from two-bone inverse kinematics that puts both feet flat on the
  floor (standing, bending, squatting) or the buttocks on a seat and the feet on the floor (sitting);
* the object is placed where the recipe wants it (on the floor within reach, in front of the belly, under a
  foot, on the back, hanging from a hand) and slid along a free direction until it touches the body;
* each hand that touches the object gets a contact point, a palm direction and a finger direction on the
  object's surface; analytic arm inverse kinematics (elbow on a random swivel, forearm twist shared between
  elbow and wrist) puts the palm there, and the fingers take a grasp (flat, holding, ball, power grip);
* a sample whose body points sink more than 2 cm into the object, whose object sinks into the floor, or
  whose hands cannot reach is drawn again from a fresh random stream.

Each recipe is a pose template with seeded perturbations: ranges for the trunk's bend (shared over pelvis
and spine as axis-angle rotations), the crouch, the stance, the hip and knee angles of sitting, where the
hands go on the object and how the elbows swing, plus axis-angle noise on spine, neck, head, collars, wrists
and fingers; the joints that must meet a target (legs, arms) are then solved by IK. Half of all scenes are
mirrored left-right. Betas are N(0, 1) clipped to [-2.5, 2.5]. Ground truth follows DESIGN §8: body contacts
are the downsampled body vertices within 5 cm of the object surface (object SDF), object contacts the
keypoints within 5 cm of the full body mesh (nearest vertex), floor contact the object's lowest vertex
within 2 cm of the floor. Cameras keep the object mostly in view (they turn round the scene otherwise).

Randomness: sample ``i`` of seed ``s`` reads only ``np.random.default_rng([split, s, i, ...])``, so any
subset of samples, in any batch size or process, comes out the same (up to float rounding of batched
matrix products); the test split uses a disjoint stream. The parameter-only path (:func:`sample_params`,
for training the prior) and the rendered path (:func:`generate_dataset`) share every parameter.

Example::

    from scorehoi_diffusers.data.synthetic import sample_params, synthesize

    params, contacts, object_names = sample_params(10_000, seed=0)   # prior training data, no pictures
    dataset = synthesize(1000, "data/synthetic", seed=0)             # rendered, saved with save_to_disk
"""
from __future__ import annotations

import colorsys
import contextlib
import hashlib
import json
import math
import shutil
import tempfile
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import roma
import torch
from PIL import Image

from ..body import BodyModel
from ..contacts import CONTACT_THRESHOLD, FLOOR_CONTACT_THRESHOLD
from ..kinematics import forward_kinematics, kinematic_levels, skin_points
from ..objects import PRIMITIVE_NAMES, ObjectTemplate, load_object
from ..params import HOIParams, axis_angle_to_matrix, matrix_to_axis_angle
from ..skeleton import (
    ANKLE, COLLAR, ELBOW, FINGER_ORDER, FOOT, HAND_START, HEAD, HIP, KNEE, LEFT, MIRRORED_JOINTS, NECK, NUM_JOINTS,
    PELVIS, RIGHT, SHOULDER, SIDE_NAMES, SPINE1, SPINE2, SPINE3, WRIST,
)
from ..rendering import Floor, MeshLayer, render
from .schema import FEATURES, params_to_fields

__all__ = [
    "INTERACTIONS",
    "SPLITS",
    "SyntheticHOIGenerator",
    "SyntheticScenes",
    "sample_params",
    "generate_samples",
    "generate_dataset",
    "save_dataset",
    "synthesize",
    "synthetic_split",
    "contact_sheet",
]

MAX_PENETRATION = 0.02  # deeper body-in-object points make a sample be drawn again
MAX_ATTEMPTS = 8
MIN_OBJECT_VISIBILITY = 0.4  # share of the object's camera-facing surface the body may not hide
SPLITS = {"train": 0, "test": 1}
_NUM_DRAWS = 512  # uniform numbers drawn per sample and attempt; recipes read them in a fixed order

_SIGN = (1.0, -1.0)  # the body's left is +x
# Shoulders, elbows, wrists and fingers (SMPL-H lists them after every trunk, leg and head joint).
_ARM_JOINTS = set(range(SHOULDER[LEFT], NUM_JOINTS))
_UP = (0.0, 1.0, 0.0)
# How a forward bend of the trunk is shared between the pelvis and the spine joints.
_POSTURE_SHARES = {PELVIS: 0.55, SPINE1: 0.2, SPINE2: 0.15, SPINE3: 0.1}


@contextlib.contextmanager
def _one_thread():
    """Run torch on one thread: the scene maths is thousands of small ops, which extra threads only slow
    down (their hand-offs cost more than the work); parallelism comes from processes instead."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


# ---------------------------------------------------------------------------------------------------------
# Small rotation helpers (float64, batched)
# ---------------------------------------------------------------------------------------------------------


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def _vec(values: Sequence[float], n: int) -> torch.Tensor:
    """A constant 3-vector repeated ``(n, 3)`` (float64)."""
    return torch.tensor(values, dtype=torch.float64).expand(n, 3).clone()


def _rot(rotvec: torch.Tensor) -> torch.Tensor:
    """Axis-angle ``(..., 3)`` to rotation matrices ``(..., 3, 3)`` (Rodrigues' formula in a few batched ops:
    the recipes call this thousands of times on small batches)."""
    angle = rotvec.norm(dim=-1, keepdim=True)
    axis = rotvec / angle.clamp_min(1e-12)
    sin, cos = angle.sin()[..., None], angle.cos()[..., None]
    x, y, z = axis.unbind(-1)
    zero = torch.zeros_like(x)
    cross = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(*axis.shape, 3)
    outer = axis[..., :, None] * axis[..., None, :]
    eye = torch.eye(3, dtype=rotvec.dtype, device=rotvec.device)
    return cos * eye + sin * cross + (1 - cos) * outer


def _axis_rot(axis: Sequence[float], angle: torch.Tensor) -> torch.Tensor:
    """Rotations ``(n, 3, 3)`` about a fixed unit axis by ``angle (n,)``."""
    return _rot(torch.tensor(axis, dtype=torch.float64) * angle[:, None])


def _frame(a: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    """Orthonormal frame with columns ``a``, ``n`` (made orthogonal to ``a``) and ``a x n``."""
    a = _unit(a)
    n = _unit(n - (n * a).sum(-1, keepdim=True) * a)
    return torch.stack([a, n, torch.cross(a, n, dim=-1)], dim=-1)


def _align(a_from, n_from, a_to, n_to) -> torch.Tensor:
    """The rotation taking ``a_from`` to ``a_to`` and the plane of ``(a_from, n_from)`` to ``(a_to, n_to)``."""
    return _frame(a_to, n_to) @ _frame(a_from, n_from).transpose(-1, -2)


def _rotation_between(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Smallest rotation taking unit vectors ``a`` to ``b`` (both ``(n, 3)``)."""
    axis = torch.cross(a, b, dim=-1)
    sin = axis.norm(dim=-1)
    angle = torch.atan2(sin, (a * b).sum(-1))
    return _rot(axis / sin.clamp_min(1e-12)[:, None] * angle[:, None])


def _yaw(angle: torch.Tensor) -> torch.Tensor:
    return _axis_rot(_UP, angle)


def _twist_angle(rotation: torch.Tensor, axis: torch.Tensor) -> torch.Tensor:
    """Angle ``(n,)`` of the twist of ``rotation`` about ``axis`` (swing-twist decomposition)."""
    quat = roma.rotmat_to_unitquat(rotation)  # (x, y, z, w)
    along = (quat[:, :3] * axis).sum(-1)
    angle = 2.0 * torch.atan2(along, quat[:, 3])
    return torch.remainder(angle + math.pi, 2 * math.pi) - math.pi


# ---------------------------------------------------------------------------------------------------------
# Rig: what the recipes need to know about a body model
# ---------------------------------------------------------------------------------------------------------


class _Rig:
    """Skinning data of a :class:`BodyModel` in float64 plus the vertex sets and hand frames the recipes use.

    Everything is measured on the body's own rest mesh, so the recipes work for the stand-in and for a real
    SMPL-H (both are in a T-pose, palms down, facing +z, the body's left on +x).
    """

    def __init__(self, body: BodyModel):
        smplh = body.smplh
        f64 = torch.float64
        self.v_template = smplh.v_template.detach().to(f64)
        self.shapedirs = smplh.shapedirs.detach().to(f64)
        num_vertices = self.v_template.shape[0]
        self.posedirs = smplh.posedirs.detach().reshape(-1, num_vertices, 3)  # float32, large
        self.has_posedirs = bool(self.posedirs.abs().max() > 0)
        self.weights = smplh.lbs_weights.detach().to(f64)
        regressor = smplh.J_regressor.detach().to(f64)
        self.joint_template = regressor @ self.v_template
        self.joint_shapedirs = torch.einsum("jv,vck->jck", regressor, self.shapedirs)
        self.parents = smplh.parents.detach().long().clone()
        self.levels = kinematic_levels(self.parents.tolist())
        self.hand_mean = torch.cat([smplh.left_hand_mean, smplh.right_hand_mean]).detach().to(f64).reshape(30, 3)

        self.down_index = body.downsample_index.detach().clone()
        dominant = self.weights.argmax(dim=1)
        rest = self.v_template
        joints = self.joint_template
        down_dominant = dominant[self.down_index]
        # Downsampled vertices that arms never carry: what objects slide against and what sits on seats.
        self.down_trunk = torch.tensor([int(j) not in _ARM_JOINTS for j in down_dominant])
        self.down_back = torch.tensor(
            [int(j) in (0, 3, 6, 9) for j in down_dominant]
        ) & (rest[self.down_index, 2] < joints[down_dominant, 2])
        self.down_above_hips = rest[self.down_index, 1] > joints[0, 1] + 0.05
        # Buttocks and the tops of the thighs: what rests on a seat (not the knees, whatever the hip angle).
        hips_y = joints[[1, 2], 1].mean()
        seat = torch.nonzero(
            torch.isin(dominant, torch.tensor([0, 1, 2]))
            & (rest[:, 1] > hips_y - 0.1)
            & (rest[:, 2] < joints[0, 2] + 0.02)
        )[:, 0]
        if len(seat) == 0:
            seat = self._nearest(joints[0])
        sets = {"down": self.down_index, "seat": seat[::3]}  # a third of the seat is dense enough
        for side, name in ((LEFT, "left"), (RIGHT, "right")):
            foot = torch.nonzero(torch.isin(dominant, torch.tensor([ANKLE[side], FOOT[side]])))[:, 0]
            if len(foot) == 0:
                foot = self._nearest(joints[ANKLE[side]])
            lowest = rest[foot, 1].min()
            sets[f"sole_{name}"] = foot[rest[foot, 1] < lowest + 0.012]
            sets[f"palm_{name}"] = self._palm_vertices(dominant, side)
            sets[f"thigh_{name}"] = self._thigh_vertex(dominant, side)
        # Rows of every skinning quantity, gathered once per set.
        self.sets = {
            name: {
                "template": self.v_template[index],
                "shapedirs": self.shapedirs[index].reshape(-1, self.shapedirs.shape[-1]),
                "posedirs": self.posedirs[:, index].reshape(self.posedirs.shape[0], -1) if self.has_posedirs else None,
                "weights": self.weights[index],
            }
            for name, index in sets.items()
        }

        # Rest directions of the hand frames (palm normal is -y in a palms-down T-pose).
        self.palm_normal_rest = torch.tensor([0.0, -1.0, 0.0], dtype=f64)
        self.finger_rest = [
            _unit(joints[HAND_START[s] + 3] - joints[WRIST[s]]) for s in (LEFT, RIGHT)
        ]  # wrist -> middle knuckle
        self.finger_axes = self._finger_axes(joints)

    def _palm_vertices(self, dominant: torch.Tensor, side: int) -> torch.Tensor:
        """A patch of palm-side vertices at the centre of the palm."""
        rest = self.v_template
        wrist = self.joint_template[WRIST[side]]
        knuckle = self.joint_template[HAND_START[side] + 3]  # middle1
        candidates = torch.nonzero(dominant == WRIST[side])[:, 0]
        centre = 0.45 * wrist + 0.55 * knuckle
        near = candidates[(rest[candidates][:, [0, 2]] - centre[[0, 2]]).norm(dim=1) < 0.025]
        if len(near) == 0:
            near = candidates if len(candidates) else self._nearest(centre)
        lowest = rest[near, 1].min()
        return near[rest[near, 1] < lowest + 0.006]

    def _thigh_vertex(self, dominant: torch.Tensor, side: int) -> torch.Tensor:
        """The front-most thigh vertex half way down the thigh (where a sitting hand rests)."""
        rest = self.v_template
        hip, knee = self.joint_template[HIP[side]], self.joint_template[KNEE[side]]
        level = 0.5 * hip + 0.5 * knee
        candidates = torch.nonzero(torch.isin(dominant, torch.tensor([HIP[side], KNEE[side]])))[:, 0]
        band = candidates[(rest[candidates, 1] - level[1]).abs() < 0.02]
        if len(band) == 0:
            return self._nearest(level + torch.tensor([0.0, 0.0, 0.1], dtype=torch.float64), count=1)
        return band[rest[band, 2].argmax()].reshape(1)

    def _nearest(self, point: torch.Tensor, count: int = 4) -> torch.Tensor:
        """The ``count`` rest vertices nearest ``point``: the fallback for meshes unlike a human body."""
        return (self.v_template - point).norm(dim=1).argsort()[:count]

    def _finger_axes(self, joints: torch.Tensor) -> torch.Tensor:
        """Flexion axes ``(2, 15, 3)`` of every finger joint in the rest frame (curl towards the palm)."""
        axes = torch.zeros(2, 15, 3, dtype=torch.float64)
        for side in (LEFT, RIGHT):
            for finger in range(5):
                base = HAND_START[side] + 3 * finger
                for k in range(3):
                    j = base + min(k, 1)
                    bone = _unit(joints[j + 1] - joints[j])
                    axes[side, 3 * finger + k] = _unit(torch.cross(bone, self.palm_normal_rest, dim=0))
        return axes

    # -- shape -----------------------------------------------------------------------------------------

    def rest_joints(self, betas: torch.Tensor) -> torch.Tensor:
        """``(n, 52, 3)`` rest joints for ``betas (n, 10)``."""
        return self.joint_template + torch.einsum("jck,nk->njc", self.joint_shapedirs, betas)

    def rest_vertices(self, name: str, betas: torch.Tensor) -> torch.Tensor:
        """``(n, m, 3)`` rest positions of the vertex set ``name``."""
        rows = self.sets[name]
        return rows["template"] + (betas @ rows["shapedirs"].T).reshape(betas.shape[0], -1, 3)

    # -- kinematics ------------------------------------------------------------------------------------

    def forward_kinematics(self, local: torch.Tensor, rest: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """World rotations ``(n, 52, 3, 3)`` and positions ``(n, 52, 3)`` (pelvis at the origin)."""
        return forward_kinematics(local, rest, self.parents, self.levels, root_position=rest.new_zeros(rest.shape[0], 3))

    def skin(self, name: str, local, world_rot, world_pos, rest, betas) -> torch.Tensor:
        """Linear blend skinning of the vertex set ``name``: ``(n, m, 3)``, pelvis at the origin."""
        rows = self.sets[name]
        n = local.shape[0]
        vertices = self.rest_vertices(name, betas)
        if rows["posedirs"] is not None:
            eye = torch.eye(3, dtype=local.dtype)
            feature = (local[:, 1:] - eye).reshape(n, -1).float()
            vertices = vertices + (feature @ rows["posedirs"]).double().reshape(n, -1, 3)
        pelvis = rest[:, :1]
        return skin_points(vertices - pelvis, rows["weights"], world_rot, world_pos, rest - pelvis)


# ---------------------------------------------------------------------------------------------------------
# Object geometry the recipes read off the shipped primitives
# ---------------------------------------------------------------------------------------------------------


@dataclass
class _ObjectGeometry:
    """Measurements of one template (template frame, metres)."""

    low: torch.Tensor  # (3,) bounding box
    high: torch.Tensor
    seat_top: float  # highest surface point above the centre axis (seat, table top)
    handle: Optional[torch.Tensor] = None  # (3,) bag handle centre
    radius: float = 0.0  # ball radius, stool seat radius, stick handle radius
    post_tops: Optional[torch.Tensor] = None  # chair: (2, 3) tops of the back posts (x>0 first)


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
        self.local = eye.expand(n, 52, 3, 3).clone()
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
        self._ankle_height: Dict[int, torch.Tensor] = {}
        self._palm_offset: Dict[int, torch.Tensor] = {}

    # -- random numbers ---------------------------------------------------------------------------------

    def rand(self, low: float = 0.0, high: float = 1.0, size: Optional[int] = None) -> torch.Tensor:
        count = 1 if size is None else size
        if self.cursor + count > self.u.shape[1]:
            raise RuntimeError("A synthetic recipe drew more random numbers than _NUM_DRAWS provides.")
        values = self.u[:, self.cursor: self.cursor + count]
        self.cursor += count
        values = low + (high - low) * values
        return values[:, 0] if size is None else values

    def randn(self, scale: float = 1.0, clip: float = 2.5, size: Optional[int] = None) -> torch.Tensor:
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

    def _state(self) -> Dict[str, torch.Tensor]:
        return {name: getattr(self, name).clone() for name in self._STATE}

    def _restore(self, state: Dict[str, torch.Tensor]) -> None:
        for name, value in state.items():
            setattr(self, name, value.clone())
        self._fk = None

    # -- kinematics -------------------------------------------------------------------------------------

    def fk(self) -> Tuple[torch.Tensor, torch.Tensor]:
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

    def posture(self, lean: Tuple[float, float], side_lean: float = 0.06,
                bend: Optional[torch.Tensor] = None) -> torch.Tensor:
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

    def _leg_lengths(self, side: int) -> Tuple[torch.Tensor, torch.Tensor]:
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

    def stand(self, crouch, width: Tuple[float, float] = (-0.02, 0.1), step: float = 0.12) -> None:
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

    def stoop(self, height: torch.Tensor, crouch: Tuple[float, float], reach: Tuple[float, float] = (0.6, 0.85),
              extra: Tuple[float, float] = (-0.05, 0.1), max_bend: float = 1.45, step: float = 0.12,
              width: Tuple[float, float] = (-0.02, 0.1)) -> None:
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
                  hinge: Sequence[float], end_rotation: Optional[torch.Tensor] = None,
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
              gap: float = 0.004, pole: Optional[torch.Tensor] = None) -> None:
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

    def wrist_target(self, grip: "_Grip") -> torch.Tensor:
        """Where the wrist joint must be ``(n, 3)`` for ``grip`` at the object's current pose."""
        hand = self.hand_rotation(grip.side, grip.fingers, grip.palm)
        contact = self.to_body(grip.local)
        return contact - grip.gap * grip.palm - (hand @ self.palm_offset(grip.side)[..., None])[..., 0]

    def bring_within_reach(self, grips: Sequence["_Grip"], fraction=0.96, vertical: bool = True) -> None:
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
                  gap: float = 0.004, grasp: str = "flat") -> "_Grip":
        """A palm pressed on a surface point ``contact`` (body frame), facing ``palm`` (into the surface), the
        fingers as close to ``preferred`` as the surface allows."""
        palm = _unit(palm)
        return _Grip(side, self.to_local(contact), palm, _fingers_towards(palm, preferred), gap, grasp)

    def cylinder_grip(self, side: int, point: torch.Tensor, axis: torch.Tensor, radius: float,
                      thumb_sign=1.0, approach: Optional[torch.Tensor] = None) -> "_Grip":
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

    def hold(self, grips: Sequence["_Grip"], poles: Optional[Sequence[Optional[torch.Tensor]]] = None) -> None:
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

    def relax_arm(self, side: int, spread: Tuple[float, float] = (0.08, 0.3)) -> None:
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

    def lower_arm(self, side: int, lowered: Tuple[float, float], elbow: Tuple[float, float]) -> None:
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
                           fraction: Tuple[float, float], raise_object: bool = False,
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


def _grip_hole(ctx: _SceneBatch, side: int, radius: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """Centre ``(n, 3)`` and axis ``(n, 3)`` of a bar of ``radius`` held in a hand at its current pose."""
    world_rot, world_pos = ctx.fk()
    hand = world_rot[:, WRIST[side]]
    palm_point = world_pos[:, WRIST[side]] + (hand @ ctx.palm_offset(side)[..., None])[..., 0]
    palm_normal = hand @ ctx.rig.palm_normal_rest
    return palm_point + (radius + 0.002) * palm_normal, _unit(_thumb_direction(ctx, side, hand))


# ---------------------------------------------------------------------------------------------------------
# Recipes: each poses one batch in the body frame, written for the left hand (half the samples get mirrored)
# ---------------------------------------------------------------------------------------------------------


def _carry_front(ctx: _SceneBatch) -> None:
    """Carry the object in front of the belly, one palm on each side (box, bag, stool)."""
    name = ctx.template.name
    ctx.posture(lean=(-0.15, 0.08))
    ctx.stand(crouch=(0.95, 0.985))
    turn = ctx.rand(-0.3, 0.3)
    if name == "box":
        turn = turn + ctx.coin(0.4).double() * (math.pi / 2)
    tilt = _rot(torch.stack([ctx.randn(0.06), torch.zeros_like(turn), ctx.randn(0.04)], 1))
    ctx.object_rotation = tilt @ _yaw(turn)
    height = ctx.rand(0.0, 0.3) if name != "stool" else ctx.rand(0.05, 0.3)
    ctx.object_translation = torch.stack([ctx.randn(0.03), height, torch.full_like(turn, 0.9)], 1)
    gap = ctx.rand(0.0, 0.08)
    ctx.slide_object((0.0, 0.0, -1.0), gap=gap, mask=ctx.rig.down_trunk)
    grips = []
    for side in (LEFT, RIGHT):
        if name == "stool":  # the seat's rim
            outward = ctx.object_rotation.transpose(1, 2) @ torch.tensor([_SIGN[side], 0.0, 0.0], dtype=torch.float64)
            angle = torch.atan2(outward[:, 2], outward[:, 0]) + ctx.randn(0.2)
            normal = torch.stack([angle.cos(), torch.zeros_like(angle), angle.sin()], 1)
            local = normal * ctx.geometry.radius
            local[:, 1] = ctx.geometry.seat_top - 0.02
        else:
            centre, normal, tangent, half = ctx.vertical_face((_SIGN[side], 0.0, 0.0), (0.0, 0.0, 1.0))
            local = centre + tangent * (half * ctx.rand(-0.2, 0.45))[:, None]
            local[:, 1] += (ctx.geometry.high[1] - ctx.geometry.low[1]) / 2 * ctx.rand(-0.4, 0.25)
        normal = ctx.direction_to_body(normal)
        preferred = torch.stack([ctx.randn(0.2), ctx.rand(0.0, 0.8), torch.ones_like(turn)], 1)
        grips.append(ctx.palm_grip(side, ctx.to_body(local), -normal, preferred,
                                   grasp="flat" if name == "box" else "hold"))
    # Lift what the arms cannot hold that low, then let it touch (or nearly touch) the belly again.
    ctx.bring_within_reach(grips, fraction=ctx.rand(0.88, 0.96)[:, None])
    ctx.slide_object((0.0, 0.0, -1.0), gap=gap, mask=ctx.rig.down_trunk)
    ctx.bring_within_reach(grips, fraction=0.97)
    poles = [torch.stack([_SIGN[side] * ctx.rand(0.8, 1.2), -ctx.rand(0.4, 1.0), ctx.rand(-0.5, 0.0)], 1)
             for side in (LEFT, RIGHT)]
    ctx.hold(grips, poles)
    ctx.look_at(ctx.object_translation)


def _lift_box(ctx: _SceneBatch) -> None:
    """Bend or squat to a box on (or just above) the floor, palms on its sides."""
    turn = ctx.rand(-0.35, 0.35) + ctx.coin(0.4).double() * (math.pi / 2)
    ctx.object_rotation = _yaw(turn)
    faces = [ctx.vertical_face((_SIGN[side], 0.0, 0.0), (0.0, 0.0, 1.0)) for side in (LEFT, RIGHT)]
    half_height = (ctx.geometry.high[1] - ctx.geometry.low[1]) / 2
    locals_ = []
    for centre, normal, tangent, half in faces:
        local = centre + tangent * (half * ctx.rand(-0.25, 0.3))[:, None]
        local[:, 1] += half_height * ctx.rand(-0.1, 0.5)
        locals_.append(local)
    lift = ctx.coin(0.6).double() * ctx.rand(0.0, 0.4)
    contact_height = 0.5 * (locals_[0][:, 1] + locals_[1][:, 1]) - ctx.geometry.low[1] + lift
    ctx.stoop(contact_height, crouch=(0.55, 0.9), reach=(0.75, 0.95), width=(0.03, 0.15), max_bend=1.2)
    ctx.object_translation = torch.stack([ctx.randn(0.03), torch.zeros_like(turn), torch.zeros_like(turn)], 1)
    ctx.rest_on_floor()
    ctx.object_translation[:, 1] += lift
    # Where the hands cannot get down to the box, it is already being lifted.
    ctx.place_within_reach(locals_, (LEFT, RIGHT), (0.8, 0.92), raise_object=True)
    ctx.push_out((0.0, 0.0, 1.0), ctx.rig.down_trunk, clearance=0.02)
    grips = []
    for side, local, (_, normal, _, _) in zip((LEFT, RIGHT), locals_, faces):
        normal = ctx.direction_to_body(normal)
        preferred = torch.stack([ctx.randn(0.2), ctx.rand(-0.3, 0.5), torch.ones_like(turn)], 1)
        grips.append(ctx.palm_grip(side, ctx.to_body(local), -normal, preferred))
    ctx.bring_within_reach(grips)
    ctx.hold(grips)
    ctx.look_at(ctx.object_translation)


def _push_front(ctx: _SceneBatch) -> None:
    """Lean into a box or a table on the floor, palms on its near face (or flat on a table top)."""
    name = ctx.template.name
    on_top = ctx.coin({"lean_on_table": 1.0, "push_table": 0.0}.get(ctx.interaction, 0.3))
    turn = ctx.randn(0.15) + ctx.coin(0.35).double() * (math.pi / 2)
    ctx.object_rotation = _yaw(turn)
    centre, normal, tangent, half = ctx.vertical_face((0.0, 0.0, -1.0), (1.0, 0.0, 0.0))
    top = ctx.geometry.high[1]
    locals_, palms = [], []
    for side in (LEFT, RIGHT):
        lateral = _SIGN[side] * (half * ctx.rand(0.2, 0.6)).clamp_max(0.3)
        face_point = centre + tangent * lateral[:, None]
        face_point[:, 1] = top - ctx.rand(0.03, 0.12) if name == "box" else top - 0.02
        top_point = centre + tangent * lateral[:, None] - normal * ctx.rand(0.05, 0.18)[:, None]
        top_point[:, 1] = top
        locals_.append(ctx.pick(on_top, top_point, face_point))
        down = _vec([0.0, -1.0, 0.0], ctx.n)
        palms.append(ctx.pick(on_top, down, -normal))
    contact_height = 0.5 * (locals_[0][:, 1] + locals_[1][:, 1]) - ctx.geometry.low[1]
    if name == "box":
        ctx.stoop(contact_height, crouch=(0.6, 0.95), reach=(0.55, 0.8), step=0.25)
    else:
        ctx.stoop(contact_height, crouch=(0.88, 0.985), reach=(0.6, 0.82), step=0.25)
    ctx.object_translation = torch.stack([ctx.randn(0.04), torch.zeros_like(turn), torch.zeros_like(turn)], 1)
    ctx.rest_on_floor()
    ctx.place_within_reach(locals_, (LEFT, RIGHT), (0.82, 0.95))
    ctx.push_out((0.0, 0.0, 1.0), ctx.rig.down_trunk, clearance=0.03)
    grips = []
    for side, local, palm in zip((LEFT, RIGHT), locals_, palms):
        palm = ctx.direction_to_body(palm)
        preferred = torch.stack([_SIGN[side] * ctx.rand(-0.1, 0.4), ctx.rand(0.5, 1.0), ctx.rand(0.3, 1.0)], 1)
        grips.append(ctx.palm_grip(side, ctx.to_body(local), palm, preferred))
    ctx.bring_within_reach(grips, vertical=False)
    ctx.hold(grips)
    ctx.look_at(ctx.object_translation)


def _push_chair(ctx: _SceneBatch) -> None:
    """Stand behind a chair with the hands on (or round) its back posts."""
    ctx.object_rotation = _yaw(ctx.randn(0.12))
    zero = torch.zeros(ctx.n, dtype=torch.float64)
    round_posts = ctx.coin(0.5)
    posts = ctx.geometry.post_tops
    locals_ = []
    for side in (LEFT, RIGHT):
        post = posts[side].expand(ctx.n, 3).clone()
        post[:, 1] -= torch.where(round_posts, ctx.rand(0.04, 0.2), zero)
        locals_.append(post)
    ctx.stoop(locals_[0][:, 1] - ctx.geometry.low[1], crouch=(0.9, 0.985), reach=(0.5, 0.8), step=0.2)
    ctx.object_translation = torch.stack([ctx.randn(0.03), zero, zero], 1)
    ctx.rest_on_floor()
    ctx.place_within_reach(locals_, (LEFT, RIGHT), (0.75, 0.9))
    ctx.push_out((0.0, 0.0, 1.0), ctx.rig.down_trunk, clearance=0.03)
    up = _vec([0.0, 1.0, 0.0], ctx.n)
    forward = torch.stack([ctx.randn(0.2), zero, torch.ones_like(zero)], 1)
    on_top = [ctx.palm_grip(side, ctx.to_body(local), -up, forward, gap=0.0, grasp="hold")
              for side, local in zip((LEFT, RIGHT), locals_)]
    around = [ctx.cylinder_grip(side, ctx.to_body(local), up, radius=0.02)
              for side, local in zip((LEFT, RIGHT), locals_)]
    ctx.branch(round_posts, lambda: ctx.hold(around), lambda: ctx.hold(on_top))
    ctx.look_at(ctx.object_translation)


def _sit(ctx: _SceneBatch) -> None:
    """Sit on a stool or chair: buttocks on the seat, feet flat on the floor, hands on the thighs or hanging."""
    name = ctx.template.name
    chair = name == "chair"
    lean_back = ctx.coin(0.5) if chair else torch.zeros(ctx.n, dtype=torch.bool)
    bend = torch.where(lean_back, ctx.rand(-0.35, -0.1), ctx.rand(-0.05, 0.3))
    ctx.posture(lean=(0.0, 0.0), bend=bend)
    for side in (LEFT, RIGHT):
        flex = ctx.rand(1.3, 1.65) + bend * 0.55
        spread = _SIGN[side] * ctx.rand(0.0, 0.3)
        ctx.set_local(HIP[side], _rot(torch.stack([-flex, torch.zeros_like(flex), spread], 1)))
        ctx.set_local(KNEE[side], _axis_rot((1.0, 0.0, 0.0), ctx.rand(1.3, 1.7)))
    turn = ctx.randn(0.12) if chair else ctx.rand(-math.pi, math.pi)
    ctx.object_rotation = _yaw(turn)
    seat_local = torch.tensor([0.0, ctx.geometry.seat_top, 0.0], dtype=torch.float64)
    offset_z = ctx.rand(-0.02, 0.08) if not chair else ctx.rand(-0.02, 0.1)
    offset_x = ctx.randn(0.02)
    gap = 0.004
    feet = [(ctx.rand(0.0, 0.12), ctx.rand(0.18, 0.45), ctx.rand(-0.05, 0.35)) for _ in (LEFT, RIGHT)]
    for _ in range(3):
        seat = ctx.skin("seat")
        contact_height = seat[..., 1].min(1).values
        world_pos = ctx.fk()[1]
        hips = 0.5 * (world_pos[:, HIP[LEFT]] + world_pos[:, HIP[RIGHT]])
        wanted = torch.stack([hips[:, 0] + offset_x, contact_height - gap, hips[:, 2] - offset_z], 1)
        ctx.object_translation = wanted - (ctx.object_rotation @ seat_local)
        ctx.floor = ctx.object_bottom()
        for side in (LEFT, RIGHT):
            out, forward, yaw = feet[side]
            hip = world_pos[:, HIP[side]]
            ankle = torch.stack(
                [hip[:, 0] + _SIGN[side] * out, ctx.floor + ctx.ankle_height(side), hip[:, 2] + forward], 1
            )
            pole = _vec([_SIGN[side] * 0.2, 0.6, 1.0], ctx.n)
            ctx.place_foot(side, ankle, _SIGN[side] * yaw, pole=pole)
    if chair:
        # Slide the chair until its backrest meets the back (leaning back) or just clears it.
        back = ctx.rig.down_back & ctx.rig.down_above_hips
        target_gap = torch.where(lean_back, ctx.rand(0.0, 0.01), ctx.rand(0.02, 0.12))
        ctx.slide_object((0.0, 0.0, 1.0), gap=target_gap, mask=back)
        ctx.push_out((0.0, 0.0, -1.0), ctx.rig.down_trunk, clearance=0.005)
    on_thighs = ctx.coin(0.75)

    def hands_on_thighs():
        world_rot = ctx.fk()[0]
        for side in (LEFT, RIGHT):
            thigh = ctx.skin(f"thigh_{SIDE_NAMES[side]}")[:, 0]
            front = world_rot[:, HIP[side]] @ torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
            along = world_rot[:, HIP[side]] @ torch.tensor([0.0, -1.0, 0.0], dtype=torch.float64)
            inward = torch.tensor([-_SIGN[side], 0.0, 0.0], dtype=torch.float64)
            fingers = along + ctx.rand(0.0, 0.6)[:, None] * inward
            # As far towards the knee as the arm reaches (short arms rest nearer the hip).
            steps = torch.linspace(-0.2, 0.12, 9, dtype=torch.float64)
            candidates = thigh[:, None] + along[:, None] * steps[None, :, None]
            distance = (candidates - ctx.shoulder(side)[:, None]).norm(dim=-1)
            fits = distance + 0.05 < 0.97 * ctx.arm_length(side)[:, None]
            best = torch.where(fits, steps, torch.full_like(steps, -0.2)).amax(1)
            contact = thigh + along * (best - ctx.rand(0.0, 0.06))[:, None]
            ctx.reach(side, contact, -front, fingers, gap=0.004)
            ctx.grasp(side, "hold", jitter=0.1)

    def hanging():
        for side in (LEFT, RIGHT):
            ctx.relax_arm(side, spread=(0.35, 0.7))

    ctx.branch(on_thighs, hands_on_thighs, hanging)
    # The hands touch the thighs, not the object: no hand contact is required.
    ctx.hand_contact[:] = False
    ctx.look_at(ctx.object_translation + torch.tensor([0.0, 0.2, 1.5], dtype=torch.float64), strength=0.4)


def _hold_ball(ctx: _SceneBatch) -> None:
    """Hold a ball with both hands, in front of the body or overhead."""
    overhead = ctx.coin(0.2)
    ctx.posture(lean=(-0.12, 0.2))
    ctx.stand(crouch=(0.94, 0.985))
    radius = ctx.geometry.radius
    height = torch.where(overhead, ctx.rand(0.75, 0.95), ctx.rand(0.05, 0.45))
    ctx.object_rotation = _rot(ctx.randn(1.5, size=3))
    ctx.object_translation = torch.stack([ctx.randn(0.03), height, torch.zeros_like(height)], 1)
    directions = []
    for side in (LEFT, RIGHT):
        d = torch.stack([_SIGN[side] * torch.ones_like(height), ctx.rand(-0.5, 0.3), ctx.rand(-0.5, 0.35)], 1)
        directions.append(_unit(d))
    ctx.place_within_reach([ctx.to_local(ctx.object_translation + radius * d) for d in directions], (LEFT, RIGHT),
                           (0.65, 0.9), raise_object=True)
    ctx.push_out((0.0, 0.0, 1.0), ctx.rig.down_trunk, clearance=0.01)
    grips = []
    for side, d in zip((LEFT, RIGHT), directions):
        preferred = torch.stack([ctx.randn(0.2), ctx.rand(0.3, 1.0), ctx.rand(0.2, 1.0)], 1)
        grips.append(ctx.palm_grip(side, ctx.object_translation + radius * d, -d, preferred, gap=0.003, grasp="ball"))
    ctx.bring_within_reach(grips)
    ctx.hold(grips)
    ctx.look_at(ctx.object_translation)


def _reach_with_ball(ctx: _SceneBatch) -> None:
    """One hand holds a ball out: palm under it (presenting, throwing) or over it (grabbing)."""
    ctx.posture(lean=(-0.1, 0.35))
    ctx.stand(crouch=(0.93, 0.985), step=0.2)
    radius = ctx.geometry.radius
    under = ctx.coin(0.6)
    shoulder = ctx.shoulder(LEFT)
    direction = _unit(torch.stack([ctx.rand(-0.1, 1.0), ctx.rand(-0.7, 1.3), ctx.rand(0.15, 1.0)], 1))
    contact = shoulder + direction * (ctx.rand(0.55, 0.9) * ctx.arm_length(LEFT))[:, None]
    up = _vec([0.0, 1.0, 0.0], ctx.n)
    grab = _unit(direction * 0.4 - up + ctx.randn(0.15, size=3))
    palm = ctx.pick(under, up, grab)
    ctx.object_rotation = _rot(ctx.randn(1.5, size=3))
    ctx.object_translation = contact + radius * palm
    horizontal = direction * torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64)
    grip = ctx.palm_grip(LEFT, contact, palm, horizontal + 0.3 * up, gap=0.003, grasp="ball")
    ctx.bring_within_reach([grip])
    ctx.hold([grip])
    ctx.relax_arm(RIGHT)
    ctx.look_at(ctx.object_translation)


def _step_on_ball(ctx: _SceneBatch) -> None:
    """Stand on one leg with the other foot resting on a ball on the floor."""
    ctx.posture(lean=(-0.05, 0.2))
    ctx.stand(crouch=(0.95, 0.985), width=(0.0, 0.06), step=0.05)
    radius = ctx.geometry.radius
    hip = ctx.fk()[1][:, HIP[LEFT]]
    centre = torch.stack([hip[:, 0] + ctx.rand(-0.04, 0.12), ctx.floor + radius, hip[:, 2] + ctx.rand(0.28, 0.5)], 1)
    ctx.object_rotation = _rot(ctx.randn(1.5, size=3))
    ctx.object_translation = centre
    yaw = ctx.rand(-0.1, 0.35)
    sole = ctx.rig.rest_vertices("sole_left", ctx.betas).mean(1)
    sole_to_ankle = ctx.rest[:, ANKLE[LEFT]] - sole
    sole_to_ankle[:, 1] = ctx.ankle_height(LEFT)
    top = centre + torch.tensor([0.0, radius - 0.004, 0.0], dtype=torch.float64)
    ankle = top + (_yaw(yaw) @ sole_to_ankle[..., None])[..., 0]
    ctx.place_foot(LEFT, ankle, yaw, pole=_vec([0.1, 0.4, 1.0], ctx.n))
    ctx.relax_arm(LEFT)
    ctx.relax_arm(RIGHT)
    ctx.look_at(ctx.object_translation, strength=0.5)


def _swing_bat(ctx: _SceneBatch) -> None:
    """Two-handed bat grip: ready over the right shoulder or swung out in front (left hand at the knob)."""
    ctx.posture(lean=(0.0, 0.35))
    ctx.stand(crouch=(0.86, 0.98), width=(0.06, 0.18), step=0.15)
    ready = ctx.coin(0.5)
    world_pos = ctx.fk()[1]
    chest = 0.5 * (world_pos[:, SHOULDER[LEFT]] + world_pos[:, SHOULDER[RIGHT]])
    one = torch.ones(ctx.n, dtype=torch.float64)
    ready_dir = torch.stack([-ctx.rand(0.0, 0.6), one, -ctx.rand(0.05, 0.7)], 1)
    ready_at = torch.stack([-ctx.rand(0.1, 0.25), -ctx.rand(0.12, 0.3), ctx.rand(0.15, 0.3)], 1)
    swing_dir = torch.stack([ctx.rand(-0.9, 0.5), ctx.rand(-0.4, 0.3), one], 1)
    swing_at = torch.stack([ctx.rand(-0.15, 0.1), -ctx.rand(0.25, 0.45), ctx.rand(0.2, 0.35)], 1)
    axis = _unit(ctx.pick(ready, ready_dir, swing_dir))
    grip = chest + ctx.pick(ready, ready_at, swing_at)
    knob = float(ctx.geometry.low[1])
    y = _vec([0.0, 1.0, 0.0], ctx.n)
    ctx.object_rotation = _rotation_between(y, axis) @ _yaw(ctx.rand(-math.pi, math.pi))
    ctx.object_translation = grip - ctx.direction_to_body(_vec([0.0, knob + 0.055, 0.0], ctx.n))
    radius = ctx.geometry.radius
    grips = [ctx.cylinder_grip(LEFT, grip, axis, radius), ctx.cylinder_grip(RIGHT, grip + 0.09 * axis, axis, radius)]
    ctx.bring_within_reach(grips)
    ctx.hold(grips)
    ctx.look_at(ctx.object_translation + axis * 0.3 + torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64), strength=0.5)


def _lean_on_stick(ctx: _SceneBatch) -> None:
    """Rest both hands on a stick standing on the floor in front of the body (a bat as a cane)."""
    knob, end = float(ctx.geometry.low[1]), float(ctx.geometry.high[1])
    top_y, low_y = knob + 0.05, knob + 0.14
    tilt = ctx.rand(0.02, 0.3)
    height = (end - top_y) * tilt.cos()  # of the upper hand above the floor
    # A bat is short for a cane: stoop until the arms reach its top.
    ctx.stoop(height, crouch=(0.9, 0.985), reach=(0.55, 0.7), extra=(0.0, 0.08))
    world_pos = ctx.fk()[1]
    chest = 0.5 * (world_pos[:, SHOULDER[LEFT]] + world_pos[:, SHOULDER[RIGHT]])
    half_width = 0.5 * (world_pos[:, SHOULDER[LEFT], 0] - world_pos[:, SHOULDER[RIGHT], 0])
    reach = ctx.rand(0.8, 0.9) * ctx.arm_length(LEFT)
    drop = chest[:, 1] - ctx.floor - height
    forward = (reach.square() - drop.square() - half_width.square()).clamp_min(0.01).sqrt()
    grip = torch.stack([ctx.randn(0.04), ctx.floor + height, chest[:, 2] + forward], 1)
    heading = ctx.randn(0.5) - math.pi / 2  # the stick's top leans back towards the body
    up = torch.stack([tilt.sin() * heading.cos(), tilt.cos(), tilt.sin() * heading.sin()], 1)
    y = _vec([0.0, 1.0, 0.0], ctx.n)
    # The knob end is up: the template's +y (knob -> barrel) points down the stick.
    ctx.object_rotation = _rotation_between(y, -up) @ _yaw(ctx.rand(-math.pi, math.pi))
    ctx.object_translation = grip - ctx.direction_to_body(_vec([0.0, top_y, 0.0], ctx.n))
    radius = ctx.geometry.radius
    grips = [
        ctx.cylinder_grip(LEFT, grip, up, radius),
        ctx.cylinder_grip(RIGHT, grip - (low_y - top_y) * up, up, radius),
    ]
    ctx.bring_within_reach(grips, vertical=False)
    ctx.hold(grips)
    ctx.look_at(grip + torch.tensor([0.0, 0.0, 2.0], dtype=torch.float64), strength=0.3)


def _hold_stick(ctx: _SceneBatch) -> None:
    """Carry a stick in one hand by the side, pointing forward."""
    ctx.posture(lean=(-0.05, 0.2))
    ctx.stand(crouch=(0.94, 0.985), step=0.2)
    ctx.lower_arm(LEFT, lowered=(1.0, 1.4), elbow=(0.2, 1.3))
    ctx.set_local(WRIST[LEFT], _rot(torch.stack([ctx.randn(0.25), ctx.randn(0.1), ctx.randn(0.25)], 1)))
    ctx.grasp(LEFT, "power")
    radius = ctx.geometry.radius
    centre, axis = _grip_hole(ctx, LEFT, radius)
    held_at = float(ctx.geometry.low[1]) + ctx.rand(0.05, 0.2)
    y = _vec([0.0, 1.0, 0.0], ctx.n)
    ctx.object_rotation = _rotation_between(y, axis) @ _yaw(ctx.rand(-math.pi, math.pi))
    local = torch.stack([torch.zeros_like(held_at), held_at, torch.zeros_like(held_at)], 1)
    ctx.object_translation = centre - ctx.direction_to_body(local)
    ctx.hand_contact[:, LEFT] = True
    ctx.relax_arm(RIGHT)
    ctx.look_at(ctx.object_translation, strength=0.4)


def _carry_by_handle(ctx: _SceneBatch) -> None:
    """Carry a bag hanging from one hand by its top handle."""
    ctx.posture(lean=(-0.05, 0.15), side_lean=0.08)
    ctx.stand(crouch=(0.95, 0.985))
    ctx.lower_arm(LEFT, lowered=(0.95, 1.2), elbow=(0.05, 0.4))
    ctx.set_local(WRIST[LEFT], _rot(ctx.randn(0.1, size=3)))
    ctx.grasp(LEFT, "power")
    handle = ctx.geometry.handle
    centre, axis = _grip_hole(ctx, LEFT, ctx.geometry.radius)
    x = _vec([1.0, 0.0, 0.0], ctx.n)
    up = _vec([0.0, 1.0, 0.0], ctx.n)
    ctx.object_rotation = _align(x, up, axis, up)
    ctx.object_translation = centre - ctx.direction_to_body(handle.expand_as(axis))
    ctx.hand_contact[:, LEFT] = True
    ctx.relax_arm(RIGHT)
    ctx.look_at(_vec([0.0, 0.3, 2.0], ctx.n), strength=0.3)


def _wear_backpack(ctx: _SceneBatch) -> None:
    """A backpack on the back (straps side against it), arms hanging."""
    ctx.posture(lean=(0.0, 0.3))
    ctx.stand(crouch=(0.95, 0.985), step=0.2)
    ctx.relax_arm(LEFT)
    ctx.relax_arm(RIGHT)
    tilt = _rot(torch.stack([ctx.randn(0.05), torch.zeros(ctx.n, dtype=torch.float64), ctx.randn(0.03)], 1))
    ctx.object_rotation = tilt @ _yaw(math.pi + ctx.randn(0.08))
    ctx.object_translation = _vec([0.0, 0.0, -0.9], ctx.n)  # behind the back, then slid onto it
    ctx.object_translation[:, 0] = ctx.randn(0.02)
    ctx.object_translation[:, 1] = ctx.rand(0.1, 0.3)
    ctx.slide_object((0.0, 0.0, 1.0), gap=ctx.rand(0.0, 0.01), mask=ctx.rig.down_trunk)
    ctx.look_at(_vec([0.0, 0.3, 2.0], ctx.n), strength=0.3)


def _pick_up_bag(ctx: _SceneBatch) -> None:
    """Bend down and take a bag on the floor by its top handle."""
    ctx.object_rotation = _yaw(ctx.rand(-math.pi, math.pi))
    zero = torch.zeros(ctx.n, dtype=torch.float64)
    handle_height = ctx.geometry.handle[1] - ctx.geometry.low[1] + zero
    ctx.stoop(handle_height, crouch=(0.6, 0.95), reach=(0.7, 0.85), width=(0.02, 0.14))
    ctx.object_translation = torch.stack([ctx.rand(0.0, 0.2), zero, zero], 1)
    ctx.rest_on_floor()
    handle = ctx.geometry.handle.expand(ctx.n, 3)
    ctx.place_within_reach([handle], (LEFT,), (0.8, 0.95))
    ctx.push_out((0.0, 0.0, 1.0), ctx.rig.down_trunk, clearance=0.03)
    axis = ctx.direction_to_body(_vec([1.0, 0.0, 0.0], ctx.n))
    # Palm down, thumb towards the body's midline, as a hand naturally comes down on a handle.
    sign = torch.where(axis[:, 0] > 0, -1.0, 1.0)
    up = _vec([0.0, 1.0, 0.0], ctx.n)
    grips = [ctx.cylinder_grip(LEFT, ctx.to_body(handle), axis, ctx.geometry.radius, thumb_sign=sign, approach=up)]
    ctx.bring_within_reach(grips, vertical=False)
    ctx.hold(grips)
    ctx.relax_arm(RIGHT)
    ctx.look_at(ctx.object_translation)


# name -> (object, recipe, relative frequency)
_RECIPES = {
    "sit_on_stool": ("stool", _sit, 1.0),
    "carry_stool": ("stool", _carry_front, 0.4),
    "sit_on_chair": ("chair", _sit, 1.0),
    "push_chair": ("chair", _push_chair, 0.6),
    "carry_box": ("box", _carry_front, 1.0),
    "lift_box": ("box", _lift_box, 0.8),
    "push_box": ("box", _push_front, 0.7),
    "carry_bag": ("bag", _carry_front, 0.5),
    "carry_bag_by_handle": ("bag", _carry_by_handle, 0.6),
    "wear_backpack": ("bag", _wear_backpack, 0.5),
    "pick_up_bag": ("bag", _pick_up_bag, 0.4),
    "hold_ball": ("ball", _hold_ball, 0.8),
    "reach_with_ball": ("ball", _reach_with_ball, 0.6),
    "step_on_ball": ("ball", _step_on_ball, 0.4),
    "swing_bat": ("stick", _swing_bat, 0.8),
    "lean_on_stick": ("stick", _lean_on_stick, 0.5),
    "hold_stick": ("stick", _hold_stick, 0.4),
    "lean_on_table": ("table", _push_front, 0.7),
    "push_table": ("table", _push_front, 0.6),
}
INTERACTIONS = tuple(_RECIPES)
# Interactions whose object would hide behind the body in a frontal view.
_SEEN_FROM_BEHIND = ("wear_backpack",)


# ---------------------------------------------------------------------------------------------------------
# Finishing a batch: mirror, checks, yaw, camera
# ---------------------------------------------------------------------------------------------------------

_MIRROR = torch.diag(torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64))


def _mirror(ctx: _SceneBatch, mask: torch.Tensor) -> None:
    """Reflect the scenes ``mask`` through the body's sagittal plane (x -> -x): left-handed recipes become right-handed.

    Valid because the body's rest shape and every shipped primitive are symmetric in x.
    """
    mirrored = _MIRROR @ ctx.local[:, list(MIRRORED_JOINTS)] @ _MIRROR
    ctx.local = ctx.pick(mask, mirrored, ctx.local)
    ctx.object_rotation = ctx.pick(mask, _MIRROR @ ctx.object_rotation @ _MIRROR, ctx.object_rotation)
    ctx.object_translation = ctx.pick(mask, ctx.object_translation @ _MIRROR, ctx.object_translation)
    ctx.hand_contact = ctx.pick(mask, ctx.hand_contact.flip(1), ctx.hand_contact)
    ctx._fk = None


def _camera(points: torch.Tensor, draws: torch.Tensor, facing: torch.Tensor, from_behind: bool = False):
    """A level camera looking at the scene: world-to-camera rotation ``(n, 3, 3)``, centre ``(n, 3)`` and
    intrinsics for a 1-pixel image ``(n, 3, 3)`` (multiply the first two rows by the image size).

    ``draws (n, 6)`` are uniforms for: azimuth (mostly in front of the body, which faces ``facing`` radians;
    behind it with ``from_behind``, for objects on the back); elevation (0 to 35 degrees, looking down);
    focal length (500 to 1500 px for 256 px images); distance, so that the scene spans 70 to 92 % of the
    frame along its larger image extent; the principal point's offset (within what keeps the scene inside).
    """
    n = points.shape[0]
    az_u, el_u, focal_u, fill_u, cx_u, cy_u = draws.unbind(1)
    front = az_u < 0.8
    relative = torch.where(
        front, (az_u / 0.8 - 0.5) * math.radians(200), math.radians(100) + (az_u - 0.8) / 0.2 * math.radians(160)
    )
    if from_behind:
        relative = math.radians(80) + az_u * math.radians(200)
    azimuth = facing + relative
    elevation = el_u * math.radians(35)
    focal = (500.0 + 1000.0 * focal_u) / 256.0
    low, high = points.min(1).values, points.max(1).values
    target = 0.5 * (low + high)
    eye_dir = torch.stack([azimuth.sin() * elevation.cos(), elevation.sin(), azimuth.cos() * elevation.cos()], 1)
    z_axis = -eye_dir
    up = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64).expand(n, 3)
    y_axis = _unit(-(up - (up * z_axis).sum(1, keepdim=True) * z_axis))
    x_axis = torch.cross(y_axis, z_axis, dim=-1)
    rotation = torch.stack([x_axis, y_axis, z_axis], dim=1)
    q = (points - target[:, None]) @ rotation.transpose(1, 2)
    half = 0.5 * (0.7 + 0.22 * fill_u)
    # Nearest distance at which every point projects within `half` of the centre along both image axes.
    distance = (focal[:, None] * q[..., :2].abs().amax(-1) / half[:, None] - q[..., 2]).max(1).values
    depth = q[..., 2] + distance[:, None]
    uv = focal[:, None, None] * q[..., :2] / depth[..., None]
    margin = 2.0 / 256.0
    lower = -0.5 + margin - uv.min(1).values
    upper = 0.5 - margin - uv.max(1).values
    shift = 0.8 * (lower + (upper - lower) * torch.stack([cx_u, cy_u], 1))
    centre = target + distance[:, None] * eye_dir
    intrinsics = torch.zeros(n, 3, 3, dtype=torch.float64)
    intrinsics[:, 0, 0] = focal
    intrinsics[:, 1, 1] = focal
    intrinsics[:, :2, 2] = 0.5 + shift
    intrinsics[:, 2, 2] = 1.0
    return rotation, centre, intrinsics


def _visible_fraction(body: torch.Tensor, surface: torch.Tensor, normals: torch.Tensor, rotation: torch.Tensor,
                      centre: torch.Tensor, intrinsics: torch.Tensor, cells: int = 32) -> torch.Tensor:
    """Rough share ``(n,)`` of the object's camera-facing surface points ``(n, m, 3)`` not hidden by the body
    points ``(n, b, 3)`` (world frame), from a coarse depth map of the body splatted into ``cells`` squared."""
    n = body.shape[0]

    def to_cells(points):
        camera = (points - centre[:, None]) @ rotation.transpose(1, 2)
        uv = (camera / camera[..., 2:]) @ intrinsics.transpose(1, 2)
        cell = (uv[..., :2] * cells).floor().long().clamp(0, cells - 1)
        return camera[..., 2], cell[..., 1] * cells + cell[..., 0]

    body_depth, body_cell = to_cells(body)
    depth_map = torch.full((n, cells * cells), float("inf"), dtype=body.dtype)
    depth_map = depth_map.scatter_reduce(1, body_cell, body_depth, reduce="amin")
    # Body points are a few centimetres apart: spread each over its neighbouring cells to close the gaps.
    depth_map = -torch.nn.functional.max_pool2d(-depth_map.reshape(n, 1, cells, cells), 3, stride=1, padding=1)
    depth_map = depth_map.reshape(n, -1)
    object_depth, object_cell = to_cells(surface)
    view = _unit((surface - centre[:, None]))
    facing = (normals * view).sum(-1) < 0
    visible = facing & (object_depth < depth_map.gather(1, object_cell) + 0.02)
    return visible.sum(1) / facing.sum(1).clamp_min(1)


def _finish(ctx: _SceneBatch) -> Dict[str, torch.Tensor]:
    """Mirror half of the batch, check the scenes, spin them by their yaw and put a camera on them."""
    _mirror(ctx, ctx.coin(0.5))
    down = ctx.down_vertices()
    sdf = ctx.object_sdf(down)
    failed = ctx.failed | ((-sdf).amax(1) > MAX_PENETRATION) | (sdf.amin(1) > 0.03)
    for side in (LEFT, RIGHT):
        palm = ctx.skin(f"palm_{SIDE_NAMES[side]}").mean(1, keepdim=True)
        failed |= ctx.hand_contact[:, side] & (ctx.object_sdf(palm)[:, 0].abs() > 0.03)
    failed |= down[..., 1].amin(1) < ctx.floor - 0.03
    failed |= ctx.object_bottom() < ctx.floor - 0.01
    failed |= ~torch.isfinite(ctx.local).all(dim=(1, 2, 3)) | ~torch.isfinite(ctx.object_translation).all(1)

    yaw = _yaw(ctx.yaw)
    local = ctx.local.clone()
    local[:, 0] = yaw @ local[:, 0]
    object_rotation = yaw @ ctx.object_rotation
    object_translation = (yaw @ ctx.object_translation[..., None])[..., 0]
    object_vertices = ctx.template.vertices.double() @ object_rotation.transpose(1, 2) + object_translation[:, None]
    body_points = down @ yaw.transpose(1, 2)
    points = torch.cat([body_points, object_vertices], dim=1)
    surface = ctx.template.surface_points[::8].double() @ object_rotation.transpose(1, 2) + object_translation[:, None]
    normals = ctx.template.surface_normals[::8].double() @ object_rotation.transpose(1, 2)
    # A camera that sees too little of the object (hidden behind the body) turns a quarter round the scene.
    behind = ctx.interaction in _SEEN_FROM_BEHIND
    camera, best = None, None
    for turn in (0.0, 0.25, 0.5, 0.75):
        draws = ctx.camera_draws.clone()
        draws[:, 0] = torch.remainder(draws[:, 0] + turn, 1.0)
        candidate = _camera(points, draws, ctx.yaw, behind)
        visible = _visible_fraction(body_points, surface, normals, *candidate)
        if camera is None:
            camera, best = candidate, visible
            continue
        better = (best < MIN_OBJECT_VISIBILITY) & (visible > best)
        camera = tuple(ctx.pick(better, new, old) for new, old in zip(candidate, camera))
        best = torch.where(better, visible, best)
    rotation, centre, intrinsics = camera
    return {
        "local": local,
        "betas": ctx.betas,
        "object_rotation": object_rotation,
        "object_translation": object_translation,
        "floor": ctx.floor,
        "camera_rotation": rotation,
        "camera_centre": centre,
        "intrinsics": intrinsics,
        "failed": failed,
    }


# ---------------------------------------------------------------------------------------------------------
# Public generator
# ---------------------------------------------------------------------------------------------------------


@dataclass
class SyntheticScenes:
    """A batch of synthetic scenes (parameters only).

    Attributes:
        params: :class:`HOIParams` (float32, camera axes).
        contacts: ``{"human": (B, S), "object": (B, 64), "floor": (B,)}`` float32 0/1 labels.
        object_names: object of each sample.
        interactions: recipe of each sample (see :data:`INTERACTIONS`).
        indices: ``(B,)`` sample indices.
        intrinsics: ``(B, 3, 3)`` float32 pinhole matrices for a 1-pixel image; scale the first two rows by
            the image size (:meth:`intrinsics_for`).
        floor_plane: ``(B, 4)`` float32 ``(nx, ny, nz, d)`` of the floor in camera space, ``n`` pointing up.
        failed: ``(B,)`` bool, samples that did not pass the plausibility checks in any attempt (rare).
    """

    params: HOIParams
    contacts: Dict[str, torch.Tensor]
    object_names: List[str]
    interactions: List[str]
    indices: np.ndarray
    intrinsics: torch.Tensor
    floor_plane: torch.Tensor
    failed: torch.Tensor

    def intrinsics_for(self, image_size: int) -> torch.Tensor:
        """``(B, 3, 3)`` intrinsics for square images of ``image_size`` pixels (pixel centres at integers)."""
        K = self.intrinsics.clone()
        K[:, :2] *= image_size
        K[:, :2, 2] -= 0.5
        return K


def _select(
    objects: Optional[Sequence[str]], interactions: Optional[Sequence[str]]
) -> Tuple[Tuple[str, ...], Tuple[str, ...]]:
    """Validated ``(objects, interactions)``: the interactions drawn and the objects they use."""
    if isinstance(objects, str):
        objects = (objects,)
    if isinstance(interactions, str):
        interactions = (interactions,)
    if objects is not None:
        objects = tuple(dict.fromkeys(objects))
        unknown = [name for name in objects if name not in PRIMITIVE_NAMES]
        if unknown or not objects:
            raise ValueError(
                f"`objects` must be a non-empty list of the shipped primitives {list(PRIMITIVE_NAMES)} (the "
                f"interaction recipes are written for them), got {list(objects)}."
            )
    if interactions is not None:
        interactions = tuple(dict.fromkeys(interactions))
        unknown = [name for name in interactions if name not in _RECIPES]
        if unknown or not interactions:
            raise ValueError(
                f"`interactions` must be a non-empty list of {list(INTERACTIONS)}, got {list(interactions)}."
            )
    chosen = tuple(
        name for name, (obj, _, _) in _RECIPES.items()
        if (objects is None or obj in objects) and (interactions is None or name in interactions)
    )
    if not chosen:
        raise ValueError(
            f"No interaction uses the objects {list(objects)} among the interactions {list(interactions)}."
        )
    used = tuple(dict.fromkeys(_RECIPES[name][0] for name in chosen))
    return used, chosen


def _check_split(split: str) -> int:
    if split not in SPLITS:
        raise ValueError(f"`split` must be one of {list(SPLITS)}, got {split!r}.")
    return SPLITS[split]


def _check_count(name: str, value: int, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}, got {value!r}.")
    return int(value)


class SyntheticHOIGenerator:
    """Seeded synthetic HOI scenes for one body model and a set of the shipped object primitives.

    Args:
        body: a :class:`~scorehoi_diffusers.body.BodyModel`; ``None`` loads the licence-free stand-in body.
        objects: primitive names to use (default: all of :data:`~scorehoi_diffusers.objects.PRIMITIVE_NAMES`);
            only the interactions of these objects are drawn.
        interactions: names from :data:`INTERACTIONS` to draw (default: all those of ``objects``).
    """

    def __init__(self, body: Optional[BodyModel] = None, objects: Optional[Sequence[str]] = None,
                 interactions: Optional[Sequence[str]] = None):
        if body is None:
            body = _default_body()
        if not isinstance(body, BodyModel):
            raise TypeError(f"`body` must be a BodyModel or None, got {type(body).__name__}.")
        self.body = body
        self.objects, self.interactions = _select(objects, interactions)
        if body not in _RIGS:
            _RIGS[body] = _Rig(body)
        self.rig = _RIGS[body]
        self.templates = {name: load_object(name) for name in self.objects}
        self.geometry = {name: _measure_object(t) for name, t in self.templates.items()}
        weights = np.array([_RECIPES[name][2] for name in self.interactions])
        self._cumulative = np.cumsum(weights / weights.sum())
        self._part_faces = None

    # -- parameters -------------------------------------------------------------------------------------

    def scenes(self, indices: Sequence[int], seed: int = 0, split: str = "train") -> SyntheticScenes:
        """Build the scenes ``indices`` of ``(seed, split)``; each depends only on its own index."""
        stream = _check_split(split)
        seed = _check_count("seed", seed)
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        if len(indices) == 0:
            raise ValueError("`indices` is empty.")
        if (indices < 0).any():
            raise ValueError("`indices` must be non-negative.")
        n = len(indices)
        kinds = self._kinds(indices, seed, stream)
        results: Dict[str, torch.Tensor] = {}
        pending = np.arange(n)
        with torch.no_grad(), _one_thread():
            for attempt in range(MAX_ATTEMPTS):
                uniforms = torch.as_tensor(np.stack([
                    np.random.default_rng([stream, seed, int(indices[k]), attempt + 1]).random(_NUM_DRAWS)
                    for k in pending
                ]))
                still_failing = []
                for kind in np.unique(kinds[pending]):
                    rows = np.flatnonzero(kinds[pending] == kind)
                    name = self.interactions[kind]
                    object_name, recipe, _ = _RECIPES[name]
                    ctx = _SceneBatch(self.rig, name, self.templates[object_name], self.geometry[object_name],
                                      uniforms[rows])
                    recipe(ctx)
                    out = _finish(ctx)
                    targets = pending[rows]
                    for key, value in out.items():
                        if key not in results:
                            results[key] = torch.zeros((n,) + tuple(value.shape[1:]), dtype=value.dtype)
                        results[key][targets] = value
                    still_failing.append(targets[out["failed"].numpy()])
                pending = np.sort(np.concatenate(still_failing))
                if len(pending) == 0:
                    break
            object_names = [_RECIPES[self.interactions[k]][0] for k in kinds]
            return self._assemble(results, indices, object_names, [self.interactions[k] for k in kinds])

    def _kinds(self, indices: np.ndarray, seed: int, stream: int) -> np.ndarray:
        """Index into :attr:`interactions` of each sample: its stream's first number, whatever the attempt."""
        choice = np.array([np.random.default_rng([stream, seed, int(i)]).random() for i in indices])
        return np.minimum(np.searchsorted(self._cumulative, choice, side="right"), len(self.interactions) - 1)

    def interactions_of(self, indices: Sequence[int], seed: int = 0, split: str = "train") -> List[str]:
        """The interaction each sample ``indices`` of ``(seed, split)`` shows, without building it."""
        stream = _check_split(split)
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        return [self.interactions[k] for k in self._kinds(indices, _check_count("seed", seed), stream)]

    def _assemble(self, results, indices, object_names, interactions) -> SyntheticScenes:
        """World-frame results to camera-frame :class:`HOIParams` and ground-truth contacts."""
        rotation = results["camera_rotation"]
        local = results["local"]
        hand_offsets = matrix_to_axis_angle(local[:, 22:52]) - self.rig.hand_mean
        params = HOIParams(
            global_orient=rotation @ local[:, 0],
            body_pose=local[:, 1:22],
            left_hand_pose=axis_angle_to_matrix(hand_offsets[:, :15]),
            right_hand_pose=axis_angle_to_matrix(hand_offsets[:, 15:]),
            betas=results["betas"],
            object_rotation=rotation @ results["object_rotation"],
            object_translation=(rotation @ results["object_translation"][..., None])[..., 0],
            camera_translation=-(rotation @ results["camera_centre"][..., None])[..., 0],
        ).to(dtype=torch.float32)
        up = rotation[:, :, 1].float()  # world +y in camera axes
        # Floor: up . (p - pelvis) = floor height, i.e. up . p + d = 0 with d = -up . pelvis - floor.
        d = -(up * params.camera_translation).sum(1) - results["floor"].float()
        floor_plane = torch.cat([up, d[:, None]], dim=1)
        contacts = self._contacts(params, object_names, up, results["floor"].float())
        return SyntheticScenes(
            params=params,
            contacts=contacts,
            object_names=object_names,
            interactions=interactions,
            indices=np.asarray(indices),
            intrinsics=results["intrinsics"].float(),
            floor_plane=floor_plane,
            failed=results["failed"],
        )

    def _contacts(self, params: HOIParams, object_names: List[str], up: torch.Tensor, floor: torch.Tensor):
        """Ground truth from the final float32 parameters through the body model itself (DESIGN §8)."""
        output = self.body(params, frame="pelvis")
        n = params.batch_size
        human = torch.zeros(n, self.body.num_downsampled)
        objects = torch.zeros(n, 64)
        floor_contact = torch.zeros(n)
        names = np.array(object_names)
        for name in np.unique(names):
            rows = torch.as_tensor(np.flatnonzero(names == name))
            template = self.templates[name]
            R, t = params.object_rotation[rows], params.object_translation[rows]
            sdf = template.signed_distance_posed(output.downsampled_vertices[rows], R, t)
            human[rows] = (sdf < CONTACT_THRESHOLD).float()
            keypoints = template.pose(template.keypoints, R, t)
            nearest = torch.cdist(keypoints, output.vertices[rows]).amin(-1)
            objects[rows] = (nearest < CONTACT_THRESHOLD).float()
            heights = (template.pose(template.vertices, R, t) * up[rows, None]).sum(-1).amin(1) - floor[rows]
            floor_contact[rows] = (heights < FLOOR_CONTACT_THRESHOLD).float()
        return {"human": human, "object": objects, "floor": floor_contact}

    # -- rendering --------------------------------------------------------------------------------------

    def render(self, scenes: SyntheticScenes, image_size: int = 256, seed: int = 0,
               split: str = "train") -> Iterator[dict]:
        """Render ``scenes`` (built with ``seed`` and ``split``) and yield one schema sample per scene.

        Appearance (clothes, skin, object and floor colours, wall, background, light) is drawn from each
        sample's own stream, so it too depends only on ``(seed, split, index)``.
        """
        stream = _check_split(split)
        image_size = _check_count("image_size", image_size, 16)
        params = scenes.params
        intrinsics = scenes.intrinsics_for(image_size).double().numpy()
        with torch.no_grad(), _one_thread():
            vertices = self.body(params, frame="camera").vertices.double().numpy()
        fields = params_to_fields(params)
        for k in range(params.batch_size):
            index = int(scenes.indices[k])
            rng = np.random.default_rng([stream, seed, index, 0])
            image, human_mask, object_mask = self._render_one(scenes, k, vertices[k], intrinsics[k], image_size, rng)
            union = human_mask | object_mask
            rows, cols = np.nonzero(union)
            if len(rows):
                bbox = [cols.min(), rows.min(), cols.max() - cols.min() + 1, rows.max() - rows.min() + 1]
            else:
                bbox = [0, 0, 0, 0]
            yield {
                "image": Image.fromarray(image),
                "human_mask": Image.fromarray(human_mask.astype(np.uint8) * 255),  # 2-D uint8: mode "L"
                "object_mask": Image.fromarray(object_mask.astype(np.uint8) * 255),
                "intrinsics": intrinsics[k].astype(np.float32),
                "bbox": np.asarray(bbox, dtype=np.float32),
                **{name: value[k] for name, value in fields.items()},
                "human_contact": scenes.contacts["human"][k].numpy(),
                "object_contact": scenes.contacts["object"][k].numpy(),
                "floor_contact": float(scenes.contacts["floor"][k]),
                "object_name": scenes.object_names[k],
                "gender": str(self.body.config.gender),
                "source": "synthetic",
                "sample_id": f"synthetic-{split}-{seed}-{index:08d}",
            }

    def _body_parts(self) -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
        """Body faces grouped by clothing region (from the joint that moves each face most), each as
        ``(vertex indices used, faces re-indexed into them)``."""
        if self._part_faces is None:
            faces = self.body.faces.detach().cpu().numpy().astype(np.int64)
            joint = self.rig.weights.numpy()[faces].sum(1).argmax(1)
            self._part_faces = {}
            for part, joints in _BODY_PARTS.items():
                part_faces = faces[np.isin(joint, joints)]
                if len(part_faces):
                    used, compact = np.unique(part_faces, return_inverse=True)
                    self._part_faces[part] = (used, compact.reshape(-1, 3))
        return self._part_faces

    def _render_one(self, scenes: SyntheticScenes, k: int, vertices: np.ndarray, K: np.ndarray, size: int,
                    rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        params = scenes.params
        name = scenes.object_names[k]
        template = self.templates[name]
        rotation = params.object_rotation[k].double().numpy()
        translation = (params.object_translation[k] + params.camera_translation[k]).double().numpy()
        object_vertices = template.vertices.double().numpy() @ rotation.T + translation

        colors = _clothing_colors(rng)
        layers = [
            MeshLayer(vertices[used], faces, colors[part], name=f"human_{part}")
            for part, (used, faces) in self._body_parts().items()
        ]
        num_body_layers = len(layers)
        layers.append(MeshLayer(object_vertices, template.faces.numpy(), _object_color(name, rng), name="object"))

        plane = scenes.floor_plane[k].double().numpy()
        up, offset = plane[:3], plane[3]
        everything = np.concatenate([vertices, object_vertices])
        centre = 0.5 * (everything.min(0) + everything.max(0))
        on_floor = centre - (up @ centre + offset) * up
        toward_camera = -on_floor - (-on_floor @ up) * up
        toward_camera /= max(np.linalg.norm(toward_camera), 1e-9)
        wall_distance = rng.uniform(1.2, 4.0)
        if rng.random() < 0.75:
            across = np.cross(up, toward_camera)
            base = on_floor - wall_distance * toward_camera
            corners = np.array([base - 15 * across, base + 15 * across, base + 15 * across + 6 * up,
                                base - 15 * across + 6 * up])
            wall_color = _muted_color(rng, 0.45, 0.95)
            layers.append(MeshLayer(corners, np.array([[0, 1, 2], [0, 2, 3]]), wall_color, name="wall"))
        floor_colors = _floor_colors(rng)
        floor = Floor(point=on_floor, normal=up, size=max(10.0, 5.0 * wall_distance + 6.0),
                      tile=float(rng.uniform(0.15, 0.8)), colors=floor_colors, axis=toward_camera)
        light = np.array([rng.uniform(-0.8, 0.8), rng.uniform(-1.0, -0.3), rng.uniform(-1.0, -0.2)])
        result = render(layers, K, (size, size), background=_gradient(rng, size), light_direction=light, floor=floor)
        human_mask = result.masks[:num_body_layers].any(0)
        object_mask = result.masks[num_body_layers]
        return result.image, human_mask, object_mask

    def samples(self, indices: Sequence[int], seed: int = 0, split: str = "train", image_size: int = 256,
                batch_size: int = 16) -> Iterator[dict]:
        """Schema samples for ``indices``, built ``batch_size`` scenes at a time."""
        image_size = _check_count("image_size", image_size, 16)
        batch_size = _check_count("batch_size", batch_size, 1)
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        for start in range(0, len(indices), batch_size):
            scenes = self.scenes(indices[start: start + batch_size], seed, split)
            yield from self.render(scenes, image_size, seed, split)


# Rigs are measured once per body model and shared by its generators.
_RIGS: "weakref.WeakKeyDictionary[BodyModel, _Rig]" = weakref.WeakKeyDictionary()

# Clothing regions: the body joints whose faces each region takes.
_BODY_PARTS = {
    "skin": [12, 15, 20, 21] + list(range(22, 52)),
    "shirt": [3, 6, 9, 13, 14, 16, 17],
    "forearms": [18, 19],
    "trousers": [0, 1, 2, 4, 5],
    "shoes": [7, 8, 10, 11],
}


def _hsv(h: float, s: float, v: float) -> Tuple[float, float, float]:
    return tuple(float(c) for c in colorsys.hsv_to_rgb(h % 1.0, s, v))


def _muted_color(rng: np.random.Generator, low: float, high: float) -> Tuple[float, float, float]:
    return _hsv(rng.random(), rng.uniform(0.0, 0.35), rng.uniform(low, high))


def _clothing_colors(rng: np.random.Generator) -> Dict[str, Tuple[float, float, float]]:
    tone = rng.random()
    skin = tuple(float(a + (b - a) * tone) for a, b in zip((0.95, 0.80, 0.68), (0.35, 0.22, 0.15)))
    shirt = _hsv(rng.random(), rng.uniform(0.15, 0.8), rng.uniform(0.3, 0.95))
    trousers = _hsv(rng.choice([0.6, 0.62, 0.08, 0.3, rng.random()]), rng.uniform(0.0, 0.6), rng.uniform(0.12, 0.6))
    shoes = _hsv(rng.random(), rng.uniform(0.0, 0.3), rng.choice([rng.uniform(0.08, 0.3), rng.uniform(0.75, 0.95)]))
    return {
        "skin": skin,
        "shirt": shirt,
        "forearms": shirt if rng.random() < 0.5 else skin,
        "trousers": trousers,
        "shoes": shoes,
    }


_OBJECT_HUES = {
    "box": [(0.08, 0.45, 0.75)],
    "ball": [(0.06, 0.85, 0.85), (0.0, 0.75, 0.8), (0.6, 0.7, 0.7), (0.15, 0.8, 0.9)],
    "stool": [(0.08, 0.55, 0.6), (0.0, 0.0, 0.25), (0.58, 0.5, 0.6)],
    "chair": [(0.08, 0.55, 0.55), (0.0, 0.0, 0.2), (0.0, 0.0, 0.85)],
    "table": [(0.09, 0.5, 0.65), (0.0, 0.0, 0.9), (0.07, 0.6, 0.4)],
    "stick": [(0.1, 0.45, 0.8), (0.0, 0.0, 0.2), (0.07, 0.6, 0.5)],
    "bag": [(0.6, 0.6, 0.45), (0.0, 0.7, 0.6), (0.3, 0.5, 0.4), (0.0, 0.0, 0.2)],
}


def _object_color(name: str, rng: np.random.Generator) -> Tuple[float, float, float]:
    choices = _OBJECT_HUES.get(name, [(rng.random(), 0.6, 0.7)])
    h, s, v = choices[rng.integers(len(choices))]
    saturation = float(np.clip(s + rng.normal(0, 0.08), 0, 1))
    return _hsv(h + rng.normal(0, 0.02), saturation, float(np.clip(v + rng.normal(0, 0.08), 0.05, 1)))


def _floor_colors(rng: np.random.Generator):
    h, s, v = rng.random(), rng.uniform(0.0, 0.4), rng.uniform(0.3, 0.85)
    contrast = rng.uniform(0.03, 0.2)
    return _hsv(h, s, v), _hsv(h, s, float(np.clip(v * (1 - contrast), 0, 1)))


def _gradient(rng: np.random.Generator, size: int) -> np.ndarray:
    """A vertical two-colour gradient background ``(size, size, 3)`` uint8."""
    top = np.array(_muted_color(rng, 0.5, 1.0))
    bottom = np.array(_muted_color(rng, 0.3, 0.9))
    t = np.linspace(0.0, 1.0, size)[:, None, None]
    image = (1 - t) * top + t * bottom
    return np.round(np.broadcast_to(image, (size, size, 3)) * 255).astype(np.uint8)


_DEFAULT_BODY: Dict[str, BodyModel] = {}


def _default_body() -> BodyModel:
    if "standin" not in _DEFAULT_BODY:
        _DEFAULT_BODY["standin"] = BodyModel()
    return _DEFAULT_BODY["standin"]


# ---------------------------------------------------------------------------------------------------------
# Functions the CLI and the training code call
# ---------------------------------------------------------------------------------------------------------

# Generators are cached per (body, objects): building one measures the body and loads the templates.
_GENERATORS: Dict[tuple, SyntheticHOIGenerator] = {}
# Bodies given by the caller, so that dataset workers forked from this process reuse them.
_BODIES: Dict[str, BodyModel] = {}


def _body_key(body: Optional[BodyModel]) -> Optional[dict]:
    """A picklable description of ``body`` that :func:`_generator` can turn back into it."""
    if body is None:
        return None
    if not isinstance(body, BodyModel):
        raise TypeError(f"`body` must be a BodyModel or None, got {type(body).__name__}.")
    key = f"body-{id(body)}"
    _BODIES[key] = body
    names = ("model_path", "gender", "num_downsampled_vertices", "downsample_seed")
    config = {name: body.config[name] for name in names}
    return {"key": key, "config": config}


def _generator(body_key: Optional[dict], objects: Optional[Sequence[str]],
               interactions: Optional[Sequence[str]] = None) -> SyntheticHOIGenerator:
    objects, interactions = _select(objects, interactions)
    cache_key = (None if body_key is None else body_key["key"], objects, interactions)
    if cache_key not in _GENERATORS:
        if body_key is None:
            body = None
        else:
            body = _BODIES.get(body_key["key"])
            if body is None:  # a fresh worker process: rebuild the body from its config
                body = _BODIES[body_key["key"]] = BodyModel(**body_key["config"])
        _GENERATORS[cache_key] = SyntheticHOIGenerator(body, objects, interactions)
    return _GENERATORS[cache_key]


def sample_params(
    num: int,
    seed: int = 0,
    body: Optional[BodyModel] = None,
    objects: Optional[Sequence[str]] = None,
    split: str = "train",
    start: int = 0,
    batch_size: int = 256,
    interactions: Optional[Sequence[str]] = None,
) -> Tuple[HOIParams, Dict[str, torch.Tensor], List[str]]:
    """Parameters and contacts of samples ``start .. start + num - 1``, without rendering (the prior's data).

    Args:
        num: number of samples.
        seed: dataset seed; sample ``i`` depends only on ``(seed, split, i)``.
        body: body model (default: the stand-in body).
        objects: primitive names to draw from (default: all).
        split: ``"train"`` or ``"test"`` (a disjoint random stream).
        start: index of the first sample.
        batch_size: scenes built together (speed only; the values do not depend on it).
        interactions: names from :data:`INTERACTIONS` to draw (default: all those of ``objects``).

    Returns:
        ``(params, contacts, object_names)``: float32 :class:`HOIParams` of batch ``num``; contacts
        ``{"human": (num, S), "object": (num, 64), "floor": (num,)}``; the object name of each sample.
        The same ``(seed, split, i)`` gives the same parameters as the rendered dataset.
    """
    num = _check_count("num", num, 1)
    start = _check_count("start", start)
    batch_size = _check_count("batch_size", batch_size, 1)
    generator = _generator(_body_key(body), objects, interactions)
    parts = [
        generator.scenes(np.arange(first, min(first + batch_size, start + num)), seed, split)
        for first in range(start, start + num, batch_size)
    ]
    params = HOIParams.cat([part.params for part in parts])
    contacts = {key: torch.cat([part.contacts[key] for part in parts]) for key in parts[0].contacts}
    names = [name for part in parts for name in part.object_names]
    return params, contacts, names


def generate_samples(
    num_samples: int,
    seed: int = 0,
    image_size: int = 256,
    body: Optional[BodyModel] = None,
    objects: Optional[Sequence[str]] = None,
    split: str = "train",
    start: int = 0,
    batch_size: int = 16,
    interactions: Optional[Sequence[str]] = None,
) -> Iterator[dict]:
    """Yield rendered schema samples ``start .. start + num_samples - 1`` one by one (dicts of
    :data:`~scorehoi_diffusers.data.schema.FEATURES`; images as PIL images). Arguments as in
    :func:`generate_dataset`."""
    num_samples = _check_count("num_samples", num_samples, 1)
    start = _check_count("start", start)
    generator = _generator(_body_key(body), objects, interactions)
    yield from generator.samples(np.arange(start, start + num_samples), seed, split, image_size, batch_size)


def _dataset_examples(chunks: List[List[int]], settings: dict) -> Iterator[dict]:
    """``datasets`` generator: renders the index ``chunks`` (a worker receives a share of them)."""
    from tqdm.auto import tqdm

    generator = _generator(settings["body"], settings["objects"], settings["interactions"])
    total = sum(len(chunk) for chunk in chunks)
    with tqdm(total=total, desc="Synthesizing HOI samples", unit="sample", disable=not settings["progress"]) as bar:
        for chunk in chunks:
            samples = generator.samples(chunk, settings["seed"], settings["split"], settings["image_size"], len(chunk))
            for sample in samples:
                yield sample
                bar.update(1)


@contextlib.contextmanager
def _datasets_progress_bars(enabled: bool):
    """Turn the ``datasets`` library's progress bars on or off for a while."""
    import datasets

    were_enabled = datasets.is_progress_bar_enabled()
    if enabled:
        datasets.enable_progress_bars()
    else:
        datasets.disable_progress_bars()
    try:
        yield
    finally:
        if were_enabled:
            datasets.enable_progress_bars()
        else:
            datasets.disable_progress_bars()


def generate_dataset(
    num_samples: int,
    seed: int = 0,
    image_size: int = 256,
    body: Optional[BodyModel] = None,
    objects: Optional[Sequence[str]] = None,
    progress: bool = True,
    split: str = "train",
    start: int = 0,
    num_proc: Optional[int] = None,
    batch_size: int = 16,
    cache_dir: Optional[Union[str, Path]] = None,
    interactions: Optional[Sequence[str]] = None,
) -> "datasets.Dataset":
    """Render a synthetic dataset as a ``datasets.Dataset`` (Arrow on disk, features = schema ``FEATURES``).

    Args:
        num_samples: number of samples; they are ``start .. start + num_samples - 1`` of ``(seed, split)``.
        seed: dataset seed. Same seed, same samples, byte for byte.
        image_size: side of the square images in pixels.
        body: body model (default: the stand-in body).
        objects: primitive names to draw from (default: all).
        progress: show a progress bar.
        split: ``"train"`` or ``"test"`` (a disjoint random stream).
        start: index of the first sample.
        num_proc: worker processes (``datasets`` shards the work; results do not depend on it).
        batch_size: scenes built together.
        cache_dir: where the Arrow files go (default: a new temporary folder, so nothing stale is reused).
        interactions: names from :data:`INTERACTIONS` to draw (default: all those of ``objects``).
    """
    import datasets

    num_samples = _check_count("num_samples", num_samples, 1)
    start = _check_count("start", start)
    image_size = _check_count("image_size", image_size, 16)
    batch_size = _check_count("batch_size", batch_size, 1)
    _check_split(split)
    seed = _check_count("seed", seed)
    if num_proc is not None:
        num_proc = _check_count("num_proc", num_proc, 1)
    settings = {
        "seed": seed,
        "split": split,
        "image_size": image_size,
        "objects": list(_select(objects, interactions)[0]),
        "interactions": list(_select(objects, interactions)[1]),
        "body": _body_key(body),
        "progress": bool(progress) and (num_proc or 1) == 1,
    }
    chunks = [
        list(range(first, min(first + batch_size, start + num_samples)))
        for first in range(start, start + num_samples, batch_size)
    ]
    if cache_dir is None:
        cache_dir = tempfile.mkdtemp(prefix="scorehoi-synthetic-")
    description = {key: value for key, value in settings.items() if key not in ("body", "progress")}
    description.update(num_samples=num_samples, start=start,
                       body=None if settings["body"] is None else settings["body"]["config"])
    fingerprint = hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()[:24]
    # With one process our bar (which knows the total) replaces the builder's; workers only have the builder's.
    with _datasets_progress_bars(progress and (num_proc or 1) > 1):
        dataset = datasets.Dataset.from_generator(
            _dataset_examples,
            features=FEATURES,
            cache_dir=str(cache_dir),
            gen_kwargs={"chunks": chunks, "settings": settings},
            num_proc=num_proc,
            fingerprint=fingerprint,
        )
    dataset.info.description = "scorehoi_diffusers synthetic HOI: " + json.dumps(description, sort_keys=True)
    return dataset


def save_dataset(dataset: "datasets.Dataset", out_dir: Union[str, Path]) -> Path:
    """Write ``dataset`` to ``out_dir`` with ``save_to_disk`` (read it back with ``datasets.load_from_disk``)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"`out_dir` {str(out_dir)!r} exists and is not a folder.")
    dataset.save_to_disk(str(out_dir))
    return out_dir


def synthesize(
    num_samples: int,
    out_dir: Union[str, Path],
    seed: int = 0,
    image_size: int = 256,
    body: Optional[BodyModel] = None,
    objects: Optional[Sequence[str]] = None,
    split: str = "train",
    progress: bool = True,
    num_proc: Optional[int] = None,
    overwrite: bool = False,
    interactions: Optional[Sequence[str]] = None,
) -> "datasets.Dataset":
    """Render ``num_samples`` synthetic samples and save them as a dataset in ``out_dir`` (``scorehoi synthesize``).

    Refuses to write into a non-empty ``out_dir`` unless ``overwrite``. Other arguments as in
    :func:`generate_dataset`. Returns the saved dataset, loaded back from ``out_dir``.
    """
    import datasets

    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise FileExistsError(
            f"`out_dir` {str(out_dir)!r} is not empty; choose another folder or pass overwrite=True."
        )
    with tempfile.TemporaryDirectory(prefix="scorehoi-synthetic-") as cache_dir:
        dataset = generate_dataset(num_samples, seed=seed, image_size=image_size, body=body, objects=objects,
                                   progress=progress, split=split, num_proc=num_proc, cache_dir=cache_dir,
                                   interactions=interactions)
        if out_dir.exists() and overwrite:
            shutil.rmtree(out_dir)
        with _datasets_progress_bars(progress):
            save_dataset(dataset, out_dir)
        del dataset
    return datasets.load_from_disk(str(out_dir))


def synthetic_split(split: str = "train", num_samples: int = 1000, seed: int = 0, **kwargs) -> "datasets.Dataset":
    """The ``"train"`` or ``"test"`` split: the test split draws from a random stream disjoint from training's.

    Other arguments go to :func:`generate_dataset`.
    """
    return generate_dataset(num_samples, seed=seed, split=split, **kwargs)


def contact_sheet(samples: Sequence[dict], body: Optional[BodyModel] = None, columns: int = 4) -> np.ndarray:
    """A picture for checking samples by eye: per sample the image, and the image with the human mask
    (blue) and object mask (orange) blended in, ground-truth body contacts (red dots) and object keypoint
    contacts (yellow dots).

    Args:
        samples: schema samples (e.g. from :func:`generate_samples` or a loaded dataset) of one body model.
        body: the body model they were made with (default: the stand-in body).
        columns: samples per row.

    Returns:
        ``(H, W, 3)`` uint8.
    """
    from PIL import ImageDraw

    from ..objects import load_object
    from .schema import sample_to_params

    samples = list(samples)
    if not samples:
        raise ValueError("`samples` is empty.")
    columns = _check_count("columns", columns, 1)
    body = _default_body() if body is None else body
    tiles = []
    for sample in samples:
        image = np.asarray(sample["image"].convert("RGB") if hasattr(sample["image"], "convert") else sample["image"])
        human = np.asarray(sample["human_mask"]) > 127
        obj = np.asarray(sample["object_mask"]) > 127
        overlay = image.astype(np.float64)
        overlay[human] = 0.45 * overlay[human] + 0.55 * np.array([40, 110, 255])
        overlay[obj] = 0.45 * overlay[obj] + 0.55 * np.array([255, 140, 0])
        picture = Image.fromarray(np.round(overlay).astype(np.uint8))
        draw = ImageDraw.Draw(picture)
        params = sample_to_params(sample)
        K = np.asarray(sample["intrinsics"], dtype=np.float64)
        with torch.no_grad():
            points = body(params, frame="camera").downsampled_vertices[0].double().numpy()
        template = load_object(sample["object_name"])
        keypoints = template.pose(template.keypoints, params.object_rotation,
                                  params.object_translation + params.camera_translation)[0].double().numpy()
        labelled = ((points, sample["human_contact"], (255, 30, 30)),
                    (keypoints, sample["object_contact"], (255, 240, 0)))
        for cloud, flags, color in labelled:
            chosen = cloud[np.asarray(flags) > 0.5]
            pixels = (chosen / chosen[:, 2:]) @ K.T
            for u, v in pixels[:, :2]:
                draw.ellipse([u - 1.5, v - 1.5, u + 1.5, v + 1.5], fill=color)
        x, y, w, h = np.asarray(sample["bbox"], dtype=np.float64)
        draw.rectangle([x, y, x + w - 1, y + h - 1], outline=(0, 200, 0))
        draw.text((3, 2), f"{sample['object_name']}  floor={int(sample['floor_contact'])}", fill=(255, 255, 255))
        tiles.append(np.concatenate([image, np.asarray(picture)], axis=1))
    height, width = tiles[0].shape[:2]
    gap = 4
    rows = math.ceil(len(tiles) / columns)
    sheet = np.full((rows * (height + gap) - gap, columns * (width + gap) - gap, 3), 255, dtype=np.uint8)
    for k, tile in enumerate(tiles):
        r, c = divmod(k, columns)
        sheet[r * (height + gap): r * (height + gap) + height, c * (width + gap): c * (width + gap) + width] = tile
    return sheet
