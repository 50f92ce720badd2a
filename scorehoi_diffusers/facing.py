"""Front or back: pick the facing of an estimate that its detected 2D keypoints agree with.

A silhouette looks the same from the front and from behind, so a regressor trained on silhouette-like evidence
often returns a person seen from behind. Keypoints tell the two apart (the nose and eyes project inside the head
outline on the front only; left and right swap sides). :func:`choose_facing` scores each estimate and the same
estimate turned 180 degrees about the body's own vertical axis through the pelvis by the keypoint reprojection
term, and keeps the better one per sample. The object, the camera translation and every other joint stay as
they are: only the root rotation changes.
"""
from __future__ import annotations

from dataclasses import replace

import torch

from .body import BodyModel, blazepose_points
from .guidance import keypoints_2d_term
from .params import HOIParams

__all__ = ["choose_facing", "keypoint_loss", "turned_around"]

# 180 degrees about the body's vertical (y) axis in its own frame: x -> -x, z -> -z.
_TURN_AROUND = (-1.0, 1.0, -1.0)


def turned_around(params: HOIParams) -> HOIParams:
    """``params`` with the body turned 180 degrees about its own vertical axis: ``global_orient @ diag(-1, 1, -1)``."""
    turn = params.global_orient.new_tensor(_TURN_AROUND)
    return replace(params, global_orient=params.global_orient * turn)


def keypoint_loss(
    body_model: BodyModel, params: HOIParams, evidence: dict[str, torch.Tensor], sigma: float
) -> torch.Tensor:
    """The unweighted keypoint reprojection term ``(B,)`` of ``params`` (camera translation included).

    Args:
        body_model: the body.
        params: the estimates (batch B).
        evidence: ``intrinsics``, ``keypoints_2d``, ``keypoints_2d_visibility`` and ``keypoints_box_size`` for B
            samples, as the pipeline's image evidence holds them.
        sigma: the term's Geman-McClure scale (``GuidanceConfig.keypoints_2d_sigma``).
    """
    _, joints, landmarks = body_model.skin_subset_landmarks(params)
    points = blazepose_points(joints, landmarks) + params.camera_translation[:, None]
    return keypoints_2d_term(
        points, evidence["intrinsics"], evidence["keypoints_2d"], evidence["keypoints_2d_visibility"],
        evidence["keypoints_box_size"], sigma,
    )


@torch.no_grad()
def choose_facing(
    body_model: BodyModel, params: HOIParams, evidence: dict[str, torch.Tensor], sigma: float
) -> tuple[HOIParams, torch.Tensor]:
    """Per sample, ``params`` or :func:`turned_around` ``params``, whichever reprojects onto the keypoints better.

    Both candidates are scored in one batch of ``2 B``; a tie keeps the estimate as it is.

    Args:
        body_model, evidence, sigma: as for :func:`keypoint_loss`.
        params: the estimates (batch B).

    Returns:
        ``(chosen, turned)``: the chosen estimates and a ``(B,)`` bool, True where the turned one won.
    """
    batch = params.batch_size
    doubled = {name: torch.cat([value, value]) for name, value in evidence.items()}
    candidates = HOIParams.cat([params, turned_around(params)])
    loss = keypoint_loss(body_model, candidates, doubled, sigma).reshape(2, batch)
    turned = loss[1] < loss[0]
    orient = torch.where(turned[:, None, None], candidates.global_orient[batch:], params.global_orient)
    return replace(params, global_orient=orient), turned
