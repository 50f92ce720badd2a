"""Limb restarts for the keypoint fit: try other rotations for a limb the fit left far from its keypoints.

A gradient fit only moves a limb within its basin: an arm the regressor put down, when the picture shows it raised
to the face, is pulled sideways by its keypoints as often as up, and the fit settles where the 2D error is a little
smaller but the arm is still wrong. After the fit, every limb (arms, legs) whose confidently detected landmarks
(visibility > :data:`~scorehoi_diffusers.person_detection.VISIBLE`) lie on average more than a threshold (in box
sizes) from the body's projected points gets a few alternative rotations of its root joint (shoulder or hip): the
fitted rotation turned by a quarter turn either way about each of the parent's axes (:data:`RESTART_TURNS`), and
not turned at all. Every restart is fitted again, all in one batch, on the fit's own objective (its priors still
pull to the regressor's pose): all of them for ``KeypointFit.restart_screen_steps`` steps, then only each sample's
lowest for the rest of the fit's steps; each sample keeps whichever of its fit and that restart ends lowest. With the
robust pose prior a turned joint costs at most the prior's cap, so a turn is kept when the keypoints gain more than
that; the unturned restart gets the same second fit as the turned ones, so that a turn is kept only when the turn,
not the extra steps, explains the picture better. No random numbers: the same inputs give the same restarts.
"""
from __future__ import annotations

import math

import torch

from ..params import axis_angle_to_matrix
from ..person_detection import VISIBLE
from ..skeleton import BLAZEPOSE_NAMES, JOINT_INDEX

__all__ = ["LIMBS", "RESTART_TURNS", "far_off_limbs", "turned_limbs"]

# Each limb: its root joint (SMPL-H joint name) and the BlazePose landmarks below it.
LIMBS: tuple[tuple[str, tuple[str, ...]], ...] = tuple(
    limb
    for side in ("left", "right")
    for limb in (
        (f"{side}_shoulder", tuple(f"{side}_{name}" for name in ("elbow", "wrist", "pinky", "index", "thumb"))),
        (f"{side}_hip", tuple(f"{side}_{name}" for name in ("knee", "ankle", "heel", "foot_index"))),
    )
)
# A limb counts as detected with at least this many confident landmarks.
MIN_LIMB_LANDMARKS = 2


def _restart_turns() -> torch.Tensor:
    """``(7, 3, 3)``: no turn, then quarter turns either way about the parent joint's x, y and z axes."""
    axes = torch.eye(3, dtype=torch.float64)
    return axis_angle_to_matrix(torch.cat([torch.zeros(1, 3, dtype=torch.float64), axes, -axes]) * (math.pi / 2))


# The turns a restart applies to a far-off limb's root joint, in the parent's frame.
RESTART_TURNS = _restart_turns()


def far_off_limbs(projected: torch.Tensor, keypoints_2d: torch.Tensor, visibility: torch.Tensor,
                  box_size: torch.Tensor, threshold: float) -> torch.Tensor:
    """Which limbs of :data:`LIMBS` lie far from their detected landmarks.

    Args:
        projected: ``(B, 33, 2)`` the body's BlazePose points projected, in pixels.
        keypoints_2d: ``(B, 33, 2)`` detected landmarks, same pixels.
        visibility: ``(B, 33)`` their visibilities.
        box_size: ``(B,)`` the person's box size in pixels.
        threshold: the mean distance, in box sizes, beyond which a limb is far off.

    Returns:
        ``(B, len(LIMBS))`` bool: at least :data:`MIN_LIMB_LANDMARKS` confident landmarks, at a mean distance over
        ``threshold``.
    """
    distance = (projected - keypoints_2d).norm(dim=-1) / box_size[:, None]  # (B, 33)
    confident = visibility > VISIBLE
    far = []
    for _, landmarks in LIMBS:
        index = [BLAZEPOSE_NAMES.index(name) for name in landmarks]
        seen = confident[:, index]
        count = seen.sum(-1)
        mean = torch.where(seen, distance[:, index], 0).sum(-1) / count.clamp(min=1)
        far.append((count >= MIN_LIMB_LANDMARKS) & (mean > threshold))
    return torch.stack(far, dim=-1)


def turned_limbs(body_pose: torch.Tensor, far: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The restarts of the far-off limbs: each such limb's root joint turned by each of :data:`RESTART_TURNS`.

    Args:
        body_pose: ``(B, 21, 3, 3)`` fitted body-joint rotations.
        far: ``(B, len(LIMBS))`` from :func:`far_off_limbs`.

    Returns:
        ``(sample, restart_pose)``: ``(R,)`` the sample each restart belongs to, in order, and ``(R, 21, 3, 3)``
        its body pose, ``R = 7 x`` the number of far-off limbs.
    """
    pairs = far.nonzero()  # (P, 2): sample, limb
    turns = RESTART_TURNS.to(body_pose)
    sample = pairs[:, 0].repeat_interleave(len(turns))
    limb = pairs[:, 1].repeat_interleave(len(turns))
    turn = torch.arange(len(turns), device=body_pose.device).repeat(len(pairs))
    # The body pose's index of each limb's root joint (the root joint itself, 0, is not in body_pose).
    roots = torch.tensor([JOINT_INDEX[root] - 1 for root, _ in LIMBS], device=body_pose.device)[limb]
    pose = body_pose[sample].clone()
    rows = torch.arange(len(sample), device=body_pose.device)
    pose[rows, roots] = turns[turn] @ pose[rows, roots]
    return sample, pose
