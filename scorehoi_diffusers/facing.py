"""Front or back: pick the facing of an estimate that its detected 2D keypoints agree with.

A silhouette looks the same from the front and from behind, so a regressor trained on silhouette-like evidence
often returns a person seen from behind. Keypoints tell the two apart (the nose and eyes project inside the head
outline on the front only; left and right swap sides). :func:`choose_facing` scores each estimate and its
silhouette twin (:func:`turned_around`) by :func:`aligned_keypoint_error` and keeps the better one per sample.
The score first fits the projected body to the detections by a scale and a shift: on real photos the initial
estimate's depth and position are often off by far more than the front/back difference, which would otherwise
drown it (both candidates then sit in the robust term's flat tail).

The twin is the body reflected in depth through the pelvis (camera z -> -z), which projects to nearly the same
silhouette seen from the other side. A reflection is not a pose, so it is written as one: the left/right mirror
image of the pose (joints swapped with ``skeleton.MIRRORED_JOINTS``, each rotation conjugated by the body-frame
reflection ``M = diag(-1, 1, 1)``) under the root ``D @ global_orient @ M`` with ``D = diag(1, 1, -1)``. Turning
the root alone by 180 degrees would keep the pose: a person leaning right would come back leaning left, and
lose to the wrong facing. The object and the camera translation stay as they are.
"""
from __future__ import annotations

from dataclasses import replace

import torch

from .body import BodyModel, blazepose_points
from .camera import project_points
from .params import HOIParams
from .skeleton import BODY_JOINTS, LEFT_HAND_JOINTS, MIRRORED_JOINTS, RIGHT_HAND_JOINTS

__all__ = ["aligned_keypoint_error", "choose_facing", "facing_errors", "turned_around"]

# The body-frame left/right reflection (the body's left is +x) and the camera-frame depth reflection.
_BODY_MIRROR = (-1.0, 1.0, 1.0)
_DEPTH_MIRROR = (1.0, 1.0, -1.0)


def turned_around(params: HOIParams) -> HOIParams:
    """The silhouette twin of ``params``: the body reflected in depth through its pelvis, as a proper pose.

    Root ``D @ global_orient @ M``, every other joint ``M @ R[mirrored joint] @ M`` (see the module docstring).
    Applying it twice gives ``params`` back.
    """
    mirror = params.global_orient.new_tensor(_BODY_MIRROR)
    depth = params.global_orient.new_tensor(_DEPTH_MIRROR)
    local = torch.cat([params.global_orient[:, None], params.body_pose, params.left_hand_pose,
                       params.right_hand_pose], dim=1)  # (B, 52, 3, 3)
    # M R M for a diagonal M scales entry (i, j) by m_i m_j.
    mirrored = local[:, list(MIRRORED_JOINTS)] * (mirror[:, None] * mirror[None, :])
    return replace(
        params,
        global_orient=depth[:, None] * params.global_orient * mirror[None, :],
        body_pose=mirrored[:, BODY_JOINTS],
        left_hand_pose=mirrored[:, LEFT_HAND_JOINTS],
        right_hand_pose=mirrored[:, RIGHT_HAND_JOINTS],
    )


def aligned_keypoint_error(
    projected: torch.Tensor, keypoints: torch.Tensor, visibility: torch.Tensor, box_size: torch.Tensor
) -> torch.Tensor:
    """Visibility-weighted mean distance ``(B,)`` of projected points to detections, in person-box sizes, after
    the weighted least-squares scale and shift that best fit the points onto the detections.

    Args:
        projected: ``(B, K, 2)`` the body's points in pixels.
        keypoints: ``(B, K, 2)`` detected keypoints in pixels.
        visibility: ``(B, K)`` weights (0 = ignore); a sample with no weight scores 0.
        box_size: ``(B,)`` the person's box size in pixels.
    """
    weight = visibility.to(projected.dtype)[..., None]
    total = weight.sum(1).clamp_min(1e-12)  # (B, 1)
    centred = projected - (weight * projected).sum(1, keepdim=True) / total[:, None]
    target = keypoints.to(projected.dtype)
    target = target - (weight * target).sum(1, keepdim=True) / total[:, None]
    scale = (weight * centred * target).sum((1, 2)) / (weight * centred.square()).sum((1, 2)).clamp_min(1e-12)
    distance = (scale[:, None, None] * centred - target).norm(dim=-1)
    return (weight[..., 0] * distance).sum(1) / total[:, 0] / box_size.to(projected.dtype)


@torch.no_grad()
def facing_errors(body_model: BodyModel, params: HOIParams, evidence: dict[str, torch.Tensor]) -> torch.Tensor:
    """``(2, B)``: :func:`aligned_keypoint_error` of each estimate (row 0) and of its twin (row 1), one batch of
    ``2 B``.

    Args:
        body_model: the body.
        params: the estimates (batch B).
        evidence: ``intrinsics``, ``keypoints_2d``, ``keypoints_2d_visibility`` (zero where the body has no
            point) and ``keypoints_box_size`` for B samples, as the pipeline's image evidence holds them.
    """
    doubled = {name: torch.cat([value, value]) for name, value in evidence.items()}
    candidates = HOIParams.cat([params, turned_around(params)])
    _, joints, landmarks = body_model.skin_subset_landmarks(candidates)
    points = blazepose_points(joints, landmarks) + candidates.camera_translation[:, None]
    return aligned_keypoint_error(
        project_points(points, doubled["intrinsics"]), doubled["keypoints_2d"], doubled["keypoints_2d_visibility"],
        doubled["keypoints_box_size"],
    ).reshape(2, params.batch_size)


@torch.no_grad()
def choose_facing(
    body_model: BodyModel, params: HOIParams, evidence: dict[str, torch.Tensor], margin: float = 0.0,
    errors: torch.Tensor | None = None,
) -> tuple[HOIParams, torch.Tensor]:
    """Per sample, ``params`` or its twin :func:`turned_around`, whichever reprojects onto the keypoints better.

    Both candidates are scored in one batch of ``2 B``; a tie keeps the estimate as it is.

    Args:
        body_model: the body.
        params: the estimates (batch B).
        evidence: as :func:`facing_errors` takes it.
        margin: how much lower (in box sizes) the twin's error must be to be taken; the pipeline uses 0
            (``training/facing_margin.py`` measures larger ones on the validation slice).
        errors: the ``(2, B)`` :func:`facing_errors` of ``params`` when the caller already has them.

    Returns:
        ``(chosen, turned)``: the chosen estimates and a ``(B,)`` bool, True where the turned one won.
    """
    error = facing_errors(body_model, params, evidence) if errors is None else errors
    turned = error[1] < error[0] - margin
    twin = turned_around(params)
    fields = ("global_orient", "body_pose", "left_hand_pose", "right_hand_pose")
    chosen = {
        name: torch.where(turned.reshape(-1, *[1] * (getattr(params, name).dim() - 1)), getattr(twin, name),
                          getattr(params, name))
        for name in fields
    }
    return replace(params, **chosen), turned
