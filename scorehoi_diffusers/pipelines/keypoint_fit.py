"""Fit the initial estimate's body to detected 2D keypoints before the score-guided cycles.

With keypoints the pipeline's start is first turned to the facing the keypoints agree with
(:func:`~scorehoi_diffusers.facing.choose_facing`), then fitted to them. On real photos the regressor (trained
on synthetic renders) can start far from the person: limbs in other places, the body too near or too far. The
guided cycles only move the estimate a short way per cycle (the prior pulls back and the camera step is
bounded), so with keypoints the pipeline first moves the estimate onto them:
``KeypointFit.steps`` Adam steps on the body's root and body-joint rotations (x0's 6D entries) and the camera
translation, minimising

``L_image(x0, t) + prior_weight * |pose(x0) - pose(x0_start)|^2``

where ``L_image`` is the pipeline's own guidance loss (:func:`~scorehoi_diffusers.guidance.guidance_loss` on the
pipeline's geometry of x0) with only its image terms on: the robust keypoint term, with the Geman-McClure scale
``sigma`` (wider than the cycles' so that a start far off still has a gradient), and the silhouette (mask) term
with the pipeline's weight. The second term keeps the pose near the regressor's, so that the fit moves what the
keypoints say and leaves the rest (depth of a limb, hands, shape). Hands, betas and the object's x0 entries are
not optimised; the object turns with the body's root rotation about the pelvis, so it keeps its place relative to
the body. Every sample is fitted independently (Adam's moments are per entry); a sample whose loss or gradient
turns non-finite keeps the estimate it started from.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from diffusers.utils import logging

from ..facing import choose_facing
from ..guidance import GuidanceConfig, GuidanceInputs, clip_gradient_norm, guidance_loss
from ..input_checks import check_finite_number, is_int
from ..objects import ObjectTemplate
from ..params import BODY_POSE_SLICE, ROOT_SLICE, HOIParams

__all__ = ["KeypointFit"]

logger = logging.get_logger(__name__)

# The fitted x0 entries: the root and body-joint 6D rotations, one contiguous run at the start of x0.
FITTED_SLICE = slice(ROOT_SLICE.start, BODY_POSE_SLICE.stop)

# The fit's settings, chosen on the validation slice with the measured detection simulator by
# training/choose_keypoint_fit.py (48 scenes from index 20000, N = 2; lowest CD_h + CD_o among the settings that fit:
# 4.69 + 9.67 cm, against 4.73 + 9.48 with the fit off) and checked paired on 200 other validation scenes (from index
# 20048): at N = 2 no metric worse by two standard errors (CD_h -0.01 +- 0.02, CD_o -0.20 +- 0.15, MPJPE +0.07 +-
# 0.05, PA-MPJPE -0.03 +- 0.02 cm); at N = 0 (the start) CD_h -0.20 +- 0.02 and MPJPE -0.48 +- 0.05 cm.
DEFAULT_STEPS = 30
DEFAULT_LEARNING_RATE = 0.01
DEFAULT_PRIOR_WEIGHT = 100.0
DEFAULT_SIGMA = 0.3


@dataclass(frozen=True)
class KeypointFit:
    """Settings of the keypoint-fitting stage; calling it fits a batch of estimates.

    Args:
        steps: Adam steps (0 turns the stage off).
        learning_rate: Adam's step size, in 6D-rotation units and metres alike.
        prior_weight: weight of the squared distance of the fitted 6D rotations to the starting ones.
        sigma: the keypoint term's Geman-McClure scale during the fit, in person-box sizes.
    """

    steps: int = DEFAULT_STEPS
    learning_rate: float = DEFAULT_LEARNING_RATE
    prior_weight: float = DEFAULT_PRIOR_WEIGHT
    sigma: float = DEFAULT_SIGMA

    def __post_init__(self):
        if not is_int(self.steps) or self.steps < 0:
            raise ValueError(f"KeypointFit.steps must be an integer >= 0, got {self.steps!r}.")
        for name in ("learning_rate", "prior_weight", "sigma"):
            check_finite_number(getattr(self, name), f"KeypointFit.{name}", allow_zero=name == "prior_weight")

    def image_config(self, config: GuidanceConfig) -> GuidanceConfig:
        """``config`` with only the image terms on (keypoints at this fit's ``sigma``, mask as configured)."""
        return dataclasses.replace(config, contact=0.0, penetration=0.0, floor=0.0, keypoints_2d_sigma=self.sigma)

    def __call__(
        self, pipe, params: HOIParams, template: ObjectTemplate, evidence: dict[str, torch.Tensor],
        config: GuidanceConfig,
    ) -> HOIParams:
        """Turn ``params`` (batch B) to the facing the keypoints in ``evidence`` agree with, then fit it to them
        (no fit when ``steps`` is 0).

        Args:
            pipe (`ScoreHOIPipeline`): supplies the codec and the geometry of x0 (``pipe._geometry``).
            params (`HOIParams`): the estimates to fit (camera translation included).
            template (`ObjectTemplate`): the object (its points enter the geometry; no object term is on).
            evidence (`dict`): the pipeline's image evidence with the keypoint fields (``keypoints_2d``,
                ``keypoints_2d_visibility``, ``keypoints_box_size``, ``intrinsics``) and optional distance maps.
            config (`GuidanceConfig`): the run's guidance; its keypoint and mask weights weigh the fit.

        Returns:
            The fitted :class:`HOIParams`.
        """
        needed = {"keypoints_2d", "keypoints_2d_visibility", "keypoints_box_size", "intrinsics"}
        missing = sorted(needed - set(evidence))
        if missing:
            raise ValueError(f"KeypointFit needs keypoint evidence, but `evidence` lacks {missing}; call it only when "
                             "the pipeline was given `keypoints` (image_evidence.keypoint_evidence makes them).")
        params, _ = choose_facing(pipe.body_model, params, evidence)
        if self.steps == 0:
            return params
        image_config = self.image_config(config)
        x0_start = pipe.codec.encode(params).detach()
        pose_start = x0_start[:, FITTED_SLICE]
        pose = pose_start.clone().requires_grad_(True)
        translation = params.camera_translation.detach().clone().requires_grad_(True)
        optimizer = torch.optim.Adam([pose, translation], lr=self.learning_rate)
        failed = torch.zeros(params.batch_size, dtype=torch.bool, device=params.device)
        with torch.enable_grad():
            for _ in range(self.steps):
                optimizer.zero_grad(set_to_none=False)
                x0 = torch.cat([pose, x0_start[:, FITTED_SLICE.stop:]], dim=1)
                _, body_points, object_points, _, keypoints_3d = pipe._geometry(x0, translation, template, True)
                inputs = GuidanceInputs(body_points=body_points, object_points=object_points,
                                        keypoints_3d=keypoints_3d, camera_translation=translation, **evidence)
                loss, _ = guidance_loss(inputs, image_config)
                loss = loss + self.prior_weight * (pose - pose_start).square().sum(-1)
                pose_grad, translation_grad = torch.autograd.grad(loss.sum(), (pose, translation))
                # A non-finite gradient would poison Adam's moments: that sample stops and keeps its start.
                grads = torch.cat([pose_grad, translation_grad], dim=1)
                _, non_finite = clip_gradient_norm(grads, None)
                failed |= non_finite | ~torch.isfinite(loss.detach())
                keep = failed[:, None]
                pose.grad = torch.where(keep, torch.zeros_like(pose_grad), pose_grad)
                translation.grad = torch.where(keep, torch.zeros_like(translation_grad), translation_grad)
                optimizer.step()
        pose, translation = pose.detach(), translation.detach()
        if failed.any():
            samples = failed.nonzero().flatten().tolist()
            logger.warning(f"Keypoint fit: non-finite loss or gradient for samples {samples}; they keep their "
                           "starting estimate.")
            pose = torch.where(failed[:, None], pose_start, pose)
            translation = torch.where(failed[:, None], params.camera_translation, translation)
        fitted = pipe.codec.decode(torch.cat([pose, x0_start[:, FITTED_SLICE.stop:]], dim=1), translation)
        # The object turns with the body's root about the pelvis (the origin of its translation).
        turn = fitted.global_orient @ params.global_orient.transpose(-1, -2)  # (B, 3, 3)
        return dataclasses.replace(
            params,
            global_orient=fitted.global_orient,
            body_pose=fitted.body_pose,
            object_rotation=turn @ params.object_rotation,
            object_translation=(turn @ params.object_translation[..., None])[..., 0],
            camera_translation=translation,
        )
