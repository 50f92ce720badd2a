"""Fit the initial estimate's body to detected 2D keypoints and the person mask before the score-guided cycles.

With keypoints the pipeline's start is first turned to the facing the keypoints agree with
(:func:`~scorehoi_diffusers.facing.choose_facing`), then fitted to the picture. On real photos the regressor
(trained on synthetic renders) can start far from the person: limbs in other places, the body too near or too far,
too thin for a long coat. The guided cycles only move the estimate a short way per cycle (the prior pulls back and
the camera step is bounded), so with keypoints the pipeline first moves the estimate onto the picture's evidence:
``KeypointFit.steps`` Adam steps on the body's root and body-joint rotations (x0's 6D entries), its shape (x0's
normalised betas, with ``fit_shape``) and the camera translation, minimising

``L_image(x0, t) + coverage * C(x0, t) + prior_weight * |pose(x0) - pose(x0_start)|^2
+ shape_prior_weight * |betas(x0) - betas(x0_start)|^2``

(with ``prior_scale`` the pose term is robust instead: ``prior_weight * sum_j rho(|pose_j(x0) - pose_j(x0_start)|)``
over the root and body joints ``j``, ``rho`` the Geman-McClure penalty at that scale, so that a joint the keypoints
pull far from the regressor's rotation is let go instead of held). A gradient fit cannot take a limb out of a wrong
basin (an arm down that the picture shows raised): with ``limb_restart_threshold``, limbs still far from their
keypoints after the fit are restarted from other rotations of their shoulder or hip (:mod:`.limb_restarts`).

where ``L_image`` is the pipeline's own guidance loss (:func:`~scorehoi_diffusers.guidance.guidance_loss` on the
pipeline's geometry of x0) with only its image terms on: the robust keypoint term, with the Geman-McClure scale
``sigma`` (wider than the cycles' so that a start far off still has a gradient), and the silhouette (mask) term
with the pipeline's weight, which pulls the body's points INTO the person mask. Nothing in it makes the body FILL
the mask; ``C`` does (:func:`~scorehoi_diffusers.mask_coverage.mask_coverage_loss`): a fixed, evenly strided
sample of the person mask's pixels, each at a robust (Charbonnier) distance to the nearest projected body point. The
prior terms keep the pose and shape near the regressor's, so that the fit moves what the picture says and leaves
the rest (depth of a limb, hands). Hands and the object's x0 entries are not optimised; the object turns with the
body's root rotation about the pelvis, so it keeps its place relative to the body. Every sample is fitted
independently (Adam's moments are per entry); a sample whose loss or gradient turns non-finite keeps the estimate
it started from.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
from diffusers.utils import logging

from ..camera import project_points
from ..facing import choose_facing, facing_errors, turned_around
from ..guidance import GuidanceConfig, GuidanceInputs, clip_gradient_norm, geman_mcclure, guidance_loss, image_diagonal
from ..input_checks import check_finite_number, is_int
from ..mask_coverage import COVERAGE_SAMPLES, mask_coverage_loss, sample_mask_pixels
from ..objects import ObjectTemplate
from ..params import BETAS_SLICE, BODY_POSE_SLICE, ROOT_SLICE, HOIParams
from ..person_detection import VISIBLE
from .limb_restarts import far_off_limbs, turned_limbs

__all__ = ["KeypointFit"]

logger = logging.get_logger(__name__)

# The fitted x0 entries: the root and body-joint 6D rotations, one contiguous run at the start of x0, and (with
# ``fit_shape``) the normalised betas.
FITTED_SLICE = slice(ROOT_SLICE.start, BODY_POSE_SLICE.stop)
# The entries of one joint's 6D rotation in the fitted run.
ROTATION_SIZE = 6

# The fit's settings, chosen on the validation slice with the measured detection simulator by
# training/choose_keypoint_fit.py (48 scenes from index 20000, N = 2; rule: lowest CD_h + CD_o among the settings that
# fit). Steps, learning rate, prior weight and sigma: 30, 0.01, 100, 0.3 (4.69 + 9.67 cm, against 4.73 + 9.48 with
# the fit off; grid steps 30/100, learning rate 0.003/0.01/0.03, prior weight 10/100, sigma 0.1/0.3). Then, one at a
# time: the shape fit, shape prior weight none (shape fixed)/0.1/1/10 (14.37/14.61/14.38/14.35 cm CD_h + CD_o: 10);
# the coverage weight 0/10/30/100/300/1000/3000 (14.35/14.47/14.33/14.31/14.29/14.26/14.30: 1000; silhouette IoU of
# the start against the scenes' person masks 0.692 -> 0.724); steps 30/60 at 1000 (14.26/14.32) and 30/60/100 at
# 300 (14.29/14.32/14.35): 30. Checked paired on 200 other validation scenes (from index 20048) against the fit
# without shape and coverage: see README.md, "Real photos". Last, the robust pose prior and the limb restarts, chosen
# on 48 validation scenes rendered in the randomised style (where the regressor starts further off, as on real
# photos; rule: lowest CD_h + CD_o at N = 2, kept only if not worse by 2 SE on 48 standard-style scenes): prior scale
# 0.1 with 100 steps at learning rate 0.03 (14.84 cm, against 15.06 for 30 steps at 0.01 with the quadratic prior,
# 14.94 for 100 steps at 0.03 with it, 15.88 / 16.68 at scale 0.05 / 0.03), restarts past 0.2 box sizes (14.84, tied
# with none; kept because a limb a quarter turn off is out of the gradient fit's reach). Commands and the paired
# checks on 200 other scenes of both styles: training/choose_keypoint_fit.py's docstring.
DEFAULT_STEPS = 100
DEFAULT_LEARNING_RATE = 0.03
DEFAULT_PRIOR_WEIGHT = 100.0
DEFAULT_SIGMA = 0.3
DEFAULT_FIT_SHAPE = True
DEFAULT_SHAPE_PRIOR_WEIGHT = 10.0
DEFAULT_COVERAGE = 1000.0
# Geman-McClure scale of the per-joint pose prior (6D-rotation units); None would make it quadratic.
DEFAULT_PRIOR_SCALE = 0.1
# Mean landmark error (person-box sizes) past which a limb is restarted; None: no restarts.
DEFAULT_LIMB_RESTART_THRESHOLD = 0.2
# Steps every limb restart is fitted for before only each sample's lowest goes on for the rest of ``steps``, so that
# seven turns of a limb cost 7 x 50 + 50 steps instead of 7 x 100 (refitting them all for the whole fit made the
# cameraman photo's start 3.2x slower at batch 8). Not searched on data: 25 was tried first and failed
# tests/test_keypoint_fit.py's restart test (after 25 steps the lowest restart was the arm's depth-mirrored twin);
# 40 and 50 pass it, and 50 is what was validated: paired on 200 validation scenes of each style with simulated
# detections (training/validate_change.py, first index 20048, N = 2, together with the nearest-then-gather coverage
# term, against full refits), nothing worse by two standard errors.
DEFAULT_RESTART_SCREEN_STEPS = 50
# Below what difference of the front/back check's two errors (box sizes) the estimate's silhouette twin is fitted
# too and the lower objective kept. 0.02 is set from the two real photos, whose check errors differ by 0.004-0.008
# (so the photos informed it), then checked on the validation slice (a rule fixed before: nothing worse by two
# standard errors at N = 0 and 2, no more flips; 200 scenes from index 20300, simulated detections and the real
# detector): it passed, moving one scene with simulated detections. Restarting every sample, and this margin before
# restarts needed confident landmarks, had failed on scenes 20048-20247 (3.5 % flipped against 1.5 %, all scenes
# without landmarks). docs/results.md, "The regressor taught the detector's person mask".
DEFAULT_FACING_RESTART_MARGIN = 0.02
# Confident landmarks (visibility > person_detection.VISIBLE) a sample needs for a facing restart. The check fits a
# scale and a 2D shift (three unknowns) before it scores, so with fewer landmarks both errors are (nearly) zero: a
# tie that says nothing, and the fit's objective would then pick a facing from the person mask alone, which cannot
# tell front from back (on the validation slice, every scene a restart flipped had no landmarks at all).
FACING_RESTART_MIN_LANDMARKS = 3


@dataclass(frozen=True)
class KeypointFit:
    """Settings of the keypoint-fitting stage; calling it fits a batch of estimates.

    Args:
        steps: Adam steps (0 turns the stage off).
        learning_rate: Adam's step size, in 6D-rotation units, normalised-beta units and metres alike.
        prior_weight: weight of the squared distance of the fitted 6D rotations to the starting ones.
        prior_scale: ``None`` for that quadratic prior; a scale (6D-rotation units, > 0) makes it robust per joint:
            each joint's distance ``r`` to its starting 6D rotation costs the Geman-McClure ``rho(r) = s^2 r^2 /
            (s^2 + r^2)`` instead of ``r^2``. The same for ``r << s``; for ``r >> s`` the cost stops growing at
            ``s^2`` and its pull fades, so strong keypoint evidence can move a limb the regressor put in the wrong
            place, while small corrections are held as before.
        limb_restart_threshold: ``None`` for no limb restarts; a distance in person-box sizes: after the fit, each
            arm or leg whose confident landmarks lie on average farther than this from the body is restarted with
            its shoulder or hip turned a quarter turn about each axis (and not turned), every restart fitted
            again in one batch, and whichever ends lowest on the fit's objective kept (:mod:`.limb_restarts`;
            with the quadratic prior a turn always costs more than it gains: use it with ``prior_scale``).
        restart_screen_steps: every restart is first fitted for this many steps; then only each sample's lowest
            goes on, for the rest of ``steps`` (``>= steps``: every restart fitted for all ``steps``).
        facing_restart_margin: ``None`` for no facing restarts; a distance in person-box sizes: where the front/back
            check's two keypoint errors (:func:`~scorehoi_diffusers.facing.facing_errors`) differ by less than this,
            the estimate's silhouette twin (:func:`~scorehoi_diffusers.facing.turned_around`, the body seen from
            the other side) is fitted too, in the same batch, and whichever ends lowest on the fit's objective is
            kept, each against its own start (``math.inf``: for every sample). Only samples with at least
            ``FACING_RESTART_MIN_LANDMARKS`` confident landmarks are restarted; fewer cannot tell front from back.
            The check compares the two unfitted; on a photo whose start stands side-on to the camera their errors
            can differ by a few thousandths of a box size, and the check then decides by chance which way the fit
            turns the body.
        sigma: the keypoint term's Geman-McClure scale during the fit, in person-box sizes.
        fit_shape: whether the body's shape (x0's normalised betas) is fitted too.
        shape_prior_weight: weight of the squared distance of the fitted normalised betas to the starting ones
            (with ``fit_shape``).
        coverage: weight of the mask-coverage term (:func:`mask_coverage_loss`, needs a person mask; 0 = off).
        coverage_samples: the number of person-mask pixels the coverage term samples per estimate (the
            evidence's own sample, ``human_mask_pixels``, when it holds this many, as the pipeline's does).
    """

    steps: int = DEFAULT_STEPS
    learning_rate: float = DEFAULT_LEARNING_RATE
    prior_weight: float = DEFAULT_PRIOR_WEIGHT
    sigma: float = DEFAULT_SIGMA
    fit_shape: bool = DEFAULT_FIT_SHAPE
    shape_prior_weight: float = DEFAULT_SHAPE_PRIOR_WEIGHT
    coverage: float = DEFAULT_COVERAGE
    coverage_samples: int = COVERAGE_SAMPLES
    prior_scale: float | None = DEFAULT_PRIOR_SCALE
    limb_restart_threshold: float | None = DEFAULT_LIMB_RESTART_THRESHOLD
    restart_screen_steps: int = DEFAULT_RESTART_SCREEN_STEPS
    facing_restart_margin: float | None = DEFAULT_FACING_RESTART_MARGIN

    def __post_init__(self):
        for name in ("steps", "coverage_samples", "restart_screen_steps"):
            value, least = getattr(self, name), 0 if name == "steps" else 1
            if not is_int(value) or value < least:
                raise ValueError(f"KeypointFit.{name} must be an integer >= {least}, got {value!r}.")
        if not isinstance(self.fit_shape, bool):
            raise TypeError(f"KeypointFit.fit_shape must be True or False, got {self.fit_shape!r}.")
        for name in ("learning_rate", "prior_weight", "sigma", "shape_prior_weight", "coverage"):
            check_finite_number(getattr(self, name), f"KeypointFit.{name}",
                                allow_zero=name in ("prior_weight", "shape_prior_weight", "coverage"))
        for name in ("prior_scale", "limb_restart_threshold"):
            if getattr(self, name) is not None:
                check_finite_number(getattr(self, name), f"KeypointFit.{name}", allow_zero=False)
        margin = self.facing_restart_margin
        if margin is not None and (isinstance(margin, bool) or not isinstance(margin, (int, float))
                                   or math.isnan(margin) or margin <= 0):
            raise ValueError(f"KeypointFit.facing_restart_margin must be None or a number > 0 (math.inf: every "
                             f"sample), got {margin!r}.")

    def pose_prior(self, pose: torch.Tensor, pose_start: torch.Tensor) -> torch.Tensor:
        """``(B,)`` the pose prior of ``pose`` against ``pose_start`` (both ``(B, 22 * 6)``), weight included."""
        if self.prior_scale is None:
            return self.prior_weight * (pose - pose_start).square().sum(-1)
        squared = (pose - pose_start).unflatten(-1, (-1, ROTATION_SIZE)).square().sum(-1)  # (B, 22)
        return self.prior_weight * geman_mcclure(squared, self.prior_scale).sum(-1)

    def image_config(self, config: GuidanceConfig) -> GuidanceConfig:
        """``config`` with only the image terms on (keypoints at this fit's ``sigma``, mask as configured); the
        fit's own ``coverage`` weighs the mask-coverage term, so the cycles' ``mask_coverage`` is off, and its own
        robust pose prior replaces the cycles' Gaussian ``pose_prior``."""
        return dataclasses.replace(config, contact=0.0, penetration=0.0, floor=0.0, mask_coverage=0.0, pose_prior=0.0,
                                   keypoints_2d_sigma=self.sigma)

    def __call__(
        self, pipe, params: HOIParams, template: ObjectTemplate, evidence: dict[str, torch.Tensor],
        config: GuidanceConfig,
    ) -> HOIParams:
        """Turn ``params`` (batch B) to the facing the keypoints in ``evidence`` agree with, then fit it to them
        and to the person mask (no fit when ``steps`` is 0).

        Args:
            pipe (`ScoreHOIPipeline`): supplies the codec and the geometry of x0 (``pipe._geometry``).
            params (`HOIParams`): the estimates to fit (camera translation included).
            template (`ObjectTemplate`): the object (its points enter the geometry; no object term is on).
            evidence (`dict`): the pipeline's image evidence with the keypoint fields (``keypoints_2d``,
                ``keypoints_2d_visibility``, ``keypoints_box_size``, ``intrinsics``) and optional distance maps
                (the coverage term acts when ``human_distance_map`` is there).
            config (`GuidanceConfig`): the run's guidance; its keypoint and mask weights weigh the fit.

        Returns:
            The fitted :class:`HOIParams`.
        """
        needed = {"keypoints_2d", "keypoints_2d_visibility", "keypoints_box_size", "intrinsics"}
        missing = sorted(needed - set(evidence))
        if missing:
            raise ValueError(f"KeypointFit needs keypoint evidence, but `evidence` lacks {missing}; call it only when "
                             "the pipeline was given `keypoints` (image_evidence.keypoint_evidence makes them).")
        errors = facing_errors(pipe.body_model, params, evidence)
        params, _ = choose_facing(pipe.body_model, params, evidence, errors=errors)
        if self.steps == 0:
            return params
        image_config = self.image_config(config)
        mask_pixels, diagonal = None, None
        if self.coverage > 0 and evidence.get("human_distance_map") is not None:
            distance_map = evidence["human_distance_map"]
            mask_pixels = evidence.get("human_mask_pixels")
            if mask_pixels is None or mask_pixels.shape[1] != self.coverage_samples:
                mask_pixels = sample_mask_pixels(distance_map, self.coverage_samples)
            diagonal = image_diagonal(*distance_map.shape[1:])
        problem = _FitProblem(pipe, template, evidence, image_config, mask_pixels, diagonal)
        batch = params.batch_size
        restart_facing = self._undecided_facings(errors, evidence)
        if len(restart_facing):
            # Candidates: the estimates (rows < B), then the twins of the undecided ones.
            owner = torch.cat([torch.arange(batch, device=restart_facing.device), restart_facing])
            params = HOIParams.cat([params, turned_around(params[restart_facing])])
            problem = problem.select(owner)
        x0_start = pipe.codec.encode(params).detach()
        pose, betas, translation = self._optimise(problem, x0_start, params.camera_translation)
        if self.limb_restart_threshold is not None:
            pose, betas, translation = self._restart_far_limbs(problem, x0_start, pose, betas, translation)
        if len(restart_facing):
            with torch.no_grad():
                loss, _ = self._objective(problem, x0_start, pose, betas, translation)
            chosen = _lowest_per_owner(loss, owner, batch)
            params, x0_start = params[chosen], x0_start[chosen]
            pose, betas, translation = pose[chosen], betas[chosen], translation[chosen]
        fitted_params = pipe.codec.decode(_x0_of(x0_start, pose, betas), translation)
        # The object turns with the body's root about the pelvis (the origin of its translation).
        turn = fitted_params.global_orient @ params.global_orient.transpose(-1, -2)  # (B, 3, 3)
        return dataclasses.replace(
            params,
            global_orient=fitted_params.global_orient,
            body_pose=fitted_params.body_pose,
            betas=fitted_params.betas if self.fit_shape else params.betas,
            object_rotation=turn @ params.object_rotation,
            object_translation=(turn @ params.object_translation[..., None])[..., 0],
            camera_translation=translation,
        )

    def _undecided_facings(self, errors: torch.Tensor, evidence: dict[str, torch.Tensor]) -> torch.Tensor:
        """``(R,)`` the samples whose facing is restarted: the front/back check's ``errors`` ``(2, B)`` (of the
        estimate and its twin, before the check; turning a sample only swaps its two) differ by less than
        ``facing_restart_margin``, with at least ``FACING_RESTART_MIN_LANDMARKS`` confident landmarks."""
        if self.facing_restart_margin is None:
            return torch.zeros(0, dtype=torch.long, device=errors.device)
        confident = (evidence["keypoints_2d_visibility"] > VISIBLE).sum(1) >= FACING_RESTART_MIN_LANDMARKS
        undecided = (errors[0] - errors[1]).abs() < self.facing_restart_margin
        return (undecided & confident).nonzero().flatten()

    def _optimise(self, problem: _FitProblem, x0_start: torch.Tensor, translation_start: torch.Tensor,
                  x0_from: torch.Tensor | None = None, steps: int | None = None):
        """``steps`` (default ``self.steps``) Adam steps on the pose, shape and camera translation, from ``x0_from``
        (default ``x0_start``, ``(B, 331)``), with the priors pulling to ``x0_start``.

        Returns:
            ``(pose (B, 22 * 6), betas, translation (B, 3))``; a sample whose loss or gradient turned non-finite
            keeps where it started.
        """
        x0_from = x0_start if x0_from is None else x0_from
        pose_from, betas_from = x0_from[:, FITTED_SLICE], x0_from[:, BETAS_SLICE]
        pose = pose_from.clone().requires_grad_(True)
        betas = betas_from.clone().requires_grad_(self.fit_shape)
        translation = translation_start.detach().clone().requires_grad_(True)
        fitted = [pose, translation, betas] if self.fit_shape else [pose, translation]
        optimizer = torch.optim.Adam(fitted, lr=self.learning_rate)
        failed = torch.zeros(len(x0_start), dtype=torch.bool, device=x0_start.device)
        with torch.enable_grad():
            for _ in range(self.steps if steps is None else steps):
                optimizer.zero_grad(set_to_none=False)
                loss, _ = self._objective(problem, x0_start, pose, betas, translation)
                grads = torch.autograd.grad(loss.sum(), fitted)
                # A non-finite gradient would poison Adam's moments: that sample stops and keeps its start.
                _, non_finite = clip_gradient_norm(torch.cat(grads, dim=1), None)
                failed |= non_finite | ~torch.isfinite(loss.detach())
                keep = failed[:, None]
                for tensor, grad in zip(fitted, grads):
                    tensor.grad = torch.where(keep, torch.zeros_like(grad), grad)
                optimizer.step()
        pose, betas, translation = pose.detach(), betas.detach(), translation.detach()
        if failed.any():
            samples = failed.nonzero().flatten().tolist()
            logger.warning(f"Keypoint fit: non-finite loss or gradient for samples {samples}; they keep their "
                           "starting estimate.")
            pose = torch.where(failed[:, None], pose_from, pose)
            betas = torch.where(failed[:, None], betas_from, betas)
            translation = torch.where(failed[:, None], translation_start, translation)
        return pose, betas, translation

    def _objective(self, problem: _FitProblem, x0_start: torch.Tensor, pose: torch.Tensor, betas: torch.Tensor,
                   translation: torch.Tensor):
        """``(loss (B,), inputs)``: the fit's objective at ``pose`` and ``betas``, priors pulling to ``x0_start``."""
        loss, coverage, inputs = problem.image_losses(_x0_of(x0_start, pose, betas), translation)
        loss = loss + self.pose_prior(pose, x0_start[:, FITTED_SLICE])
        if self.fit_shape:
            loss = loss + self.shape_prior_weight * (betas - x0_start[:, BETAS_SLICE]).square().sum(-1)
        if coverage is not None:
            loss = loss + self.coverage * coverage
        return loss, inputs

    def _restart_far_limbs(self, problem: _FitProblem, x0_start: torch.Tensor, pose: torch.Tensor,
                           betas: torch.Tensor, translation: torch.Tensor):
        """Fit restarts of the limbs the fit left far off (:mod:`.limb_restarts`), all in one batch, on the same
        objective (priors pulling to ``x0_start``), and keep for each sample whichever of its fit and its restarts
        ends lowest. Every restart is fitted for ``restart_screen_steps``; only each sample's lowest goes on.

        Returns:
            ``(pose, betas, translation)`` as :meth:`_optimise`.
        """
        with torch.no_grad():
            loss, inputs = self._objective(problem, x0_start, pose, betas, translation)
            evidence = problem.evidence
            projected = project_points(inputs.to_camera(inputs.keypoints_3d), inputs.intrinsics)
            far = far_off_limbs(projected, evidence["keypoints_2d"], evidence["keypoints_2d_visibility"],
                                evidence["keypoints_box_size"], self.limb_restart_threshold)
            if not far.any():
                return pose, betas, translation
            fitted_params = problem.pipe.codec.decode(_x0_of(x0_start, pose, betas), translation)
            sample, restart_pose = turned_limbs(fitted_params.body_pose, far)
            restart_params = dataclasses.replace(fitted_params[sample], body_pose=restart_pose)
            restart_from = problem.pipe.codec.encode(restart_params).detach()
        batch, screen = len(x0_start), min(self.restart_screen_steps, self.steps)
        restarts, restart_start = problem.select(sample), x0_start[sample]
        restart_pose, restart_betas, restart_translation = self._optimise(restarts, restart_start, translation[sample],
                                                                          restart_from, steps=screen)
        if screen < self.steps:
            with torch.no_grad():
                screen_loss, _ = self._objective(restarts, restart_start, restart_pose, restart_betas,
                                                 restart_translation)
            best = _lowest_per_owner(screen_loss, sample, batch)
            best = best[best < len(sample)]  # (S,) each restarted sample's best restart, in sample order
            sample, restarts, restart_start = sample[best], restarts.select(best), restart_start[best]
            screened = _x0_of(restart_start, restart_pose[best], restart_betas[best])
            restart_pose, restart_betas, restart_translation = self._optimise(
                restarts, restart_start, restart_translation[best], screened, steps=self.steps - screen)
        with torch.no_grad():
            restart_loss, _ = self._objective(restarts, restart_start, restart_pose, restart_betas,
                                              restart_translation)
        # Each sample's lowest objective among its fit (candidate i < B) and its restarts (B + r).
        owner = torch.cat([torch.arange(batch, device=x0_start.device), sample])
        chosen = _lowest_per_owner(torch.cat([loss, restart_loss]), owner, batch)
        return (torch.cat([pose, restart_pose])[chosen], torch.cat([betas, restart_betas])[chosen],
                torch.cat([translation, restart_translation])[chosen])


def _lowest_per_owner(losses: torch.Tensor, owner: torch.Tensor, owners: int) -> torch.Tensor:
    """``(owners,)`` for each owner the index of its candidate with the lowest loss (the first on ties, non-finite
    losses last; ``len(losses)`` for an owner with no candidate), given ``losses (C,)`` and ``owner (C,)``."""
    losses = losses.nan_to_num(nan=math.inf)
    lowest = torch.full((owners,), math.inf, dtype=losses.dtype, device=losses.device)
    lowest = lowest.scatter_reduce(0, owner, losses, "amin")
    candidate = torch.arange(len(owner), device=owner.device)
    winner = torch.where(losses == lowest[owner], candidate, len(owner))
    return torch.full((owners,), len(owner), dtype=owner.dtype, device=owner.device).scatter_reduce(
        0, owner, winner, "amin")


def _x0_of(x0: torch.Tensor, pose: torch.Tensor, betas: torch.Tensor) -> torch.Tensor:
    """``x0 (B, 331)`` with its fitted entries replaced by ``pose (B, 22 * 6)`` and ``betas``."""
    return torch.cat([pose, x0[:, FITTED_SLICE.stop:BETAS_SLICE.start], betas, x0[:, BETAS_SLICE.stop:]], dim=1)


@dataclass(frozen=True)
class _FitProblem:
    """What the fit's image losses need: the pipeline, object, evidence, image-only config and coverage pixels."""

    pipe: object
    template: ObjectTemplate
    evidence: dict[str, torch.Tensor]
    image_config: GuidanceConfig
    mask_pixels: torch.Tensor | None
    diagonal: float | None

    def image_losses(self, x0: torch.Tensor, translation: torch.Tensor):
        """``(guidance (B,), coverage (B,) or None, inputs)``: the image terms of ``x0`` and the guidance inputs."""
        _, body_points, object_points, _, keypoints_3d = self.pipe._geometry(
            x0, translation, self.template, keypoints=True, signed_distances=False)
        inputs = GuidanceInputs(body_points=body_points, object_points=object_points, keypoints_3d=keypoints_3d,
                                camera_translation=translation, **self.evidence)
        loss, _ = guidance_loss(inputs, self.image_config)
        coverage = None
        if self.mask_pixels is not None:
            coverage = mask_coverage_loss(inputs.to_camera(body_points), inputs.intrinsics, self.mask_pixels,
                                          self.diagonal)
        return loss, coverage, inputs

    def select(self, rows: torch.Tensor) -> _FitProblem:
        """The same problem for the samples ``rows`` (``(R,)`` indices, repeats allowed)."""
        evidence = {name: value[rows] for name, value in self.evidence.items()}
        mask_pixels = None if self.mask_pixels is None else self.mask_pixels[rows]
        return dataclasses.replace(self, evidence=evidence, mask_pixels=mask_pixels)
