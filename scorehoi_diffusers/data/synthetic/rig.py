"""What the scene recipes need to know about a body model: its skinning data in float64, vertex sets, hand frames."""
from __future__ import annotations

import torch

from ...body import BodyModel
from ...kinematics import forward_kinematics, kinematic_levels, skin_points
from ...skeleton import (
    ANKLE,
    FOOT,
    HAND_START,
    HIP,
    KNEE,
    LEFT,
    NUM_JOINTS,
    PELVIS,
    RIGHT,
    SHOULDER,
    SPINE1,
    SPINE2,
    SPINE3,
    WRIST,
)
from .rotations import _unit

# Shoulders, elbows, wrists and fingers (SMPL-H lists them after every trunk, leg and head joint).
_ARM_JOINTS = set(range(SHOULDER[LEFT], NUM_JOINTS))


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
            [int(j) in (PELVIS, SPINE1, SPINE2, SPINE3) for j in down_dominant]
        ) & (rest[self.down_index, 2] < joints[down_dominant, 2])
        self.down_above_hips = rest[self.down_index, 1] > joints[PELVIS, 1] + 0.05
        # Buttocks and the tops of the thighs: what rests on a seat (not the knees, whatever the hip angle).
        hips_y = joints[list(HIP), 1].mean()
        seat = torch.nonzero(
            torch.isin(dominant, torch.tensor([PELVIS, *HIP]))
            & (rest[:, 1] > hips_y - 0.1)
            & (rest[:, 2] < joints[PELVIS, 2] + 0.02)
        )[:, 0]
        if len(seat) == 0:
            seat = self._nearest(joints[PELVIS])
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

    def forward_kinematics(self, local: torch.Tensor, rest: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """World rotations ``(n, 52, 3, 3)`` and positions ``(n, 52, 3)`` (pelvis at the origin)."""
        pelvis = rest.new_zeros(rest.shape[0], 3)
        return forward_kinematics(local, rest, self.parents, self.levels, root_position=pelvis)

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
