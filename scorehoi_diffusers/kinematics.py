"""Forward kinematics and linear blend skinning of a vertex subset, as pure functions of tensors.

These are the two steps of a skinned body's forward pass after the blend shapes: chain the per-joint rotations
down the kinematic tree (:func:`forward_kinematics`), then move every point by the weighted blend of its joints'
rigid transforms (:func:`skin_points`). ``smplx.lbs`` does the same for the whole mesh with 4x4 matrices;
here the rotations and translations stay separate and only the points asked for are skinned, which is what the
guidance loop (:meth:`~scorehoi_diffusers.body.BodyModel.skin_subset`) and the synthetic scene rig need.

The kinematic tree is walked one depth level at a time (all joints of a level in one batched op), so a 52-joint
SMPL-H skeleton takes 15 steps instead of 51.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["kinematic_levels", "forward_kinematics", "skin_points"]


def kinematic_levels(parents: Sequence[int]) -> list[torch.Tensor]:
    """Joint indices grouped by depth in the kinematic tree.

    Args:
        parents: ``(J,)`` parent of each joint; joint 0 is the root and every parent precedes its children.

    Returns:
        One ``(n_d,)`` long tensor per depth ``d = 1, 2, ...`` (the root, depth 0, is not listed).
    """
    parents = [int(p) for p in parents]
    depth = [0] * len(parents)
    for joint in range(1, len(parents)):
        if not 0 <= parents[joint] < joint:
            raise ValueError(f"`parents` must list each joint after its parent, but joint {joint} has parent "
                             f"{parents[joint]}.")
        depth[joint] = depth[parents[joint]] + 1
    deepest = max(depth, default=0)
    return [torch.tensor([j for j, d in enumerate(depth) if d == level], dtype=torch.long)
            for level in range(1, deepest + 1)]


def forward_kinematics(
    rotations: torch.Tensor,
    joints: torch.Tensor,
    parents: torch.Tensor,
    levels: Sequence[torch.Tensor] | None = None,
    root_position: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pose a skeleton: world rotation and position of every joint.

    Joint ``j`` with parent ``p`` ends up at ``G_p + R_p (J_j - J_p)`` with world rotation ``R_j = R_p r_j``.

    Args:
        rotations: ``(B, J, 3, 3)`` joint rotations relative to the parent (the root's is its world rotation).
        joints: ``(B, J, 3)`` rest-pose joint positions.
        parents: ``(J,)`` long tensor, parent of each joint (the root's entry is ignored).
        levels: :func:`kinematic_levels` of ``parents``; pass it when posing the same tree many times.
        root_position: ``(B, 3)`` where the root goes; defaults to its rest position ``joints[:, 0]``.

    Returns:
        ``(world_rotations (B, J, 3, 3), posed_joints (B, J, 3))``.
    """
    if levels is None:
        levels = kinematic_levels(parents.tolist())
    offsets = joints.clone()
    offsets[:, 1:] = joints[:, 1:] - joints[:, parents[1:]]
    world_rotations = torch.empty_like(rotations)
    posed_joints = torch.empty_like(joints)
    world_rotations[:, 0] = rotations[:, 0]
    posed_joints[:, 0] = joints[:, 0] if root_position is None else root_position
    for level in levels:
        parent = parents[level]
        parent_rotation = world_rotations[:, parent]
        posed_joints[:, level] = posed_joints[:, parent] + (parent_rotation @ offsets[:, level, :, None])[..., 0]
        world_rotations[:, level] = parent_rotation @ rotations[:, level]
    return world_rotations, posed_joints


def skin_points(
    points: torch.Tensor,
    weights: torch.Tensor,
    world_rotations: torch.Tensor,
    posed_joints: torch.Tensor,
    joints: torch.Tensor,
) -> torch.Tensor:
    """Linear blend skinning of rest-pose points.

    The rigid transform of joint ``j`` maps a rest point ``x`` to ``R_j (x - J_j) + G_j``; each point moves by
    the ``weights``-blend of these transforms: the blended 3x3 matrix applied to it plus the blended translation.

    Args:
        points: ``(B, N, 3)`` rest-pose points, blend shapes already added, in the frame of ``joints``.
        weights: ``(N, J)`` skinning weights of the points.
        world_rotations: ``(B, J, 3, 3)`` from :func:`forward_kinematics`.
        posed_joints: ``(B, J, 3)`` from :func:`forward_kinematics`.
        joints: ``(B, J, 3)`` the rest joints ``forward_kinematics`` posed.

    Returns:
        ``(B, N, 3)`` posed points.
    """
    translations = posed_joints - (world_rotations @ joints[..., None])[..., 0]
    blended_rotations = torch.einsum("nj,bjcd->bncd", weights, world_rotations)
    blended_translations = torch.einsum("nj,bjc->bnc", weights, translations)
    return (blended_rotations @ points[..., None])[..., 0] + blended_translations
