"""The "w/o diffusion" ablation: plain gradient descent on the pipeline's guidance loss, with no diffusion prior.

:class:`GuidanceOptimization` takes everything but the prior from a :class:`~scorehoi_diffusers.ScoreHOIPipeline`:
the same initial estimate (its regressor on the crop), image evidence (crop camera and mask distance maps),
contact estimator (initial contacts, refreshed after every cycle), guidance loss and default
:class:`~scorehoi_diffusers.guidance.GuidanceConfig`, and the same step budget: ``num_cycles`` cycles of as many
steps as the pipeline's guided denoising takes per cycle (``t_start / stride``, 10 with the defaults). Each step is
``x0 <- x0 - step_size * clip(grad_x0 L(x0))``, clipped per sample by ``guidance_config.max_grad_norm`` exactly as
the pipeline's guidance gradient; ``guidance_config.scale`` is not used (the step size takes its place). With
``keypoints`` it gets the pipeline's front/back check and the same camera-translation refinement (one step per
gradient step, ``guidance_config.camera_step_size``). Like a conventional fitting method it can add a pose prior:
``pose_prior_weight`` times the negative log-likelihood of the body pose under
:class:`~scorehoi_diffusers.pose_prior.GaussianPosePrior` (fitted on training poses only), whose gradient joins the
step (bounded by ``max_grad_norm`` on its own); the guidance config's own ``pose_prior`` term (the full method's
weight of the same prior) is left out of the baseline's loss, so that each method weighs the prior once, by its own
choice. The step size and the prior's weight default to the values chosen
on the validation slice for the input at hand: one pair without keypoints, another with them. The
denoiser is never called. A step size so large that the loss becomes NaN/Inf or a body grows past
:data:`MAX_BODY_EXTENT` is a ``ValueError``, not a result.
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from diffusers.utils import logging

from .contacts import Contacts, ReconstructionState
from .guidance import GuidanceConfig, clip_gradient_norm
from .image_processor import ImageInput
from .input_checks import check_finite_number
from .objects import ObjectTemplate, load_object
from .params import HOIParams
from .person_detection import PersonDetector
from .pipelines.pipeline_output import ScoreHOIPipelineOutput
from .pose_prior import GaussianPosePrior
from .precision import geometry_dtype

logger = logging.get_logger(__name__)

# Chosen on the validation slice (indices 20000.. of the seed-0 synthetic train stream, never the test split) by
# training/choose_step_size.py with its stated rule (lowest mean CD_h + CD_o + penetration depth at N = 2 on 50
# scenes): 17.96 cm, against 18.26 (step 1e-4), 18.12 (0.0032), 18.87 (0.018) and 18.45 for the regressor alone;
# step 0.1 diverged. Command: python training/choose_step_size.py --num-samples 50 --cycles 2
# Re-chosen, same slice and rule, when the pipeline's guidance gained the mask-coverage term and contact decisions
# (GuidanceConfig.mask_coverage 100, contact_decision 0.3): step 0.0018, 17.618 cm, against 17.811 (0.00056) and
# 17.695 (0.0032). Command: python training/choose_step_size.py --num-samples 50 --step-sizes 0.00056 0.0018 0.0032
# --pose-prior-weights 0
# Checked again, same slice, rule and command, when the default guidance without keypoints became contact 1,
# penetration 20 with the release-only refresh: step 0.0018 again, 15.383 cm, against 15.384 (0.00056) and 15.425
# (0.0032).
DEFAULT_STEP_SIZE = 0.0018
# Without keypoints the same rule keeps the baseline without a pose prior: with weights 0 / 0.001 / 0.01 at each of
# those steps, 17.962 / 17.965 / 17.989 cm at step 0.00056, 18.110 cm at best elsewhere. Command: python
# training/choose_step_size.py --num-samples 50 --cycles 2 --pose-prior-weights 0 0.001 0.01
DEFAULT_POSE_PRIOR_WEIGHT = 0.0

# With 2D keypoints: chosen on the same slice (100 scenes, N = 2) with seeded simulated detections by
# training/choose_step_size.py --keypoints simulated, rule: lowest MPJPE + PA-MPJPE + CD_h + CD_o + penetration depth.
# A coarse pass (steps 1e-4 .. 0.018 x weights 0 .. 0.1) put the best near step 0.0032, weight 0.01 (28.39 cm; step
# 0.018: 36-55 cm, 1e-4: 31.1 cm, regressor alone 31.88 cm); the final grid, steps 0.00056 0.0018 0.0032 0.0056 x
# weights 0 0.001 0.003 0.01 0.03, chose step 0.0018, weight 0.001: 28.263 cm, against 28.271 without the prior
# (28.264 / 28.273 / 28.359 at weights 0.003 / 0.01 / 0.03; best at step 0.0032: 28.380, 0.00056: 29.570). So a
# larger step matters with keypoints and the prior's weight hardly does. Command: python training/choose_step_size.py
# --num-samples 100 --keypoints simulated --step-sizes 0.00056 0.0018 0.0032 0.0056 \
# --pose-prior-weights 0 0.001 0.003 0.01 0.03
# Re-chosen once the pipeline's keypoint fit (pipelines/keypoint_fit.py) gave both methods their start, same slice,
# rule and grid: step 0.0018 again and weight 0.01, 27.929 cm, against 27.968 / 27.962 / 27.934 / 28.034 at weights
# 0 / 0.001 / 0.003 / 0.03 (best at step 0.0032: 28.133, 0.00056: 28.982, 0.0056: 29.061). Checked again once the
# guidance gained mask coverage and contact decisions (the keypoint fit still at 30 steps with the quadratic prior;
# --step-sizes 0.00056 0.0018 0.0032 --pose-prior-weights 0.01): step 0.0018 again, 27.525 cm, against 28.760
# (0.00056) and 27.801 (0.0032). Not re-checked after the fit became robust (100 steps, limb restarts).
# Checked again (same slice, rule and 100 scenes; --step-sizes 0.00056 0.0018 0.0032 --pose-prior-weights 0.01) when
# the keypoint guidance became contact 0.75, penetration 15, release-only: step 0.0018 again, 26.020 cm, against
# 27.036 (0.00056) and 26.334 (0.0032).
KEYPOINT_STEP_SIZE = 0.0018
KEYPOINT_POSE_PRIOR_WEIGHT = 0.01


def default_step_size(keypoints: bool) -> float:
    """The gradient-descent step chosen on the validation slice for the input at hand: :data:`KEYPOINT_STEP_SIZE`
    with keypoints, :data:`DEFAULT_STEP_SIZE` without."""
    return KEYPOINT_STEP_SIZE if keypoints else DEFAULT_STEP_SIZE


# A body larger than this (metres, any axis) means the descent diverged: unconstrained betas had grown to 1e4-1e10
# at step 0.1 on the validation slice (bodies of 15 m to 1e9 m); a person is under 2.5 m.
MAX_BODY_EXTENT = 10.0


class GuidanceOptimization:
    r"""Optimisation-only refinement ("w/o diffusion"): gradient descent on x0 ``(B, 331)`` of the guidance loss.

    Called like the pipeline (the arguments :func:`~scorehoi_diffusers.evaluation.evaluate` passes), it returns a
    [`ScoreHOIPipelineOutput`], so the same metrics score it.

    Args:
        pipeline (`ScoreHOIPipeline`): supplies the regressor, contact estimator, body, codec and default guidance.
        step_size (`float`, *optional*): the gradient-descent step on x0, finite and > 0. Default: the one chosen on
            the validation slice for the call's input, :data:`DEFAULT_STEP_SIZE` without keypoints and
            :data:`KEYPOINT_STEP_SIZE` with them.
        pose_prior_weight (`float`, *optional*): weight (>= 0) of the pose prior's negative log-likelihood in the
            descended loss; 0 leaves it out. Default: :data:`DEFAULT_POSE_PRIOR_WEIGHT` without keypoints,
            :data:`KEYPOINT_POSE_PRIOR_WEIGHT` with them.
        pose_prior (`GaussianPosePrior`, *optional*): the prior (default: the shipped one, loaded when first used).
    """

    def __init__(
        self,
        pipeline,
        step_size: float | None = None,
        pose_prior_weight: float | None = None,
        pose_prior: GaussianPosePrior | None = None,
    ):
        if pose_prior is not None and not isinstance(pose_prior, GaussianPosePrior):
            raise TypeError(f"`pose_prior` must be a GaussianPosePrior or None, got {type(pose_prior).__name__}.")
        self.pipeline = pipeline
        self.step_size = None if step_size is None else check_finite_number(step_size, "`step_size`")
        self.pose_prior_weight = (
            None if pose_prior_weight is None else check_finite_number(pose_prior_weight, "`pose_prior_weight`", True)
        )
        self.pose_prior = pose_prior

    def settings(self, keypoints: bool) -> tuple[float, float]:
        """``(step_size, pose_prior_weight)`` a call uses, with or without ``keypoints``: the given values, else the
        validation slice's choice for that input."""
        weight = KEYPOINT_POSE_PRIOR_WEIGHT if keypoints else DEFAULT_POSE_PRIOR_WEIGHT
        return (
            default_step_size(keypoints) if self.step_size is None else self.step_size,
            weight if self.pose_prior_weight is None else self.pose_prior_weight,
        )

    def pose_negative_log_likelihood(self, x0: torch.Tensor) -> torch.Tensor:
        """Negative log-likelihood ``(B,)`` of the body pose in ``x0`` ``(B, 331)`` under the pose prior (the shipped
        one, loaded on first use, unless one was given)."""
        if self.pose_prior is None:
            self.pose_prior = self.pipeline.gaussian_pose_prior()
        self.pose_prior = self.pose_prior.to(x0.device)
        return self.pose_prior(self.pipeline.codec.decode(x0).body_pose)

    def pose_prior_gradient(self, x0: torch.Tensor, max_grad_norm: float | None) -> torch.Tensor:
        """``∇_{x0} NLL (B, 331)`` of :meth:`pose_negative_log_likelihood`: zero outside the body-pose slice, its
        norm bounded by ``max_grad_norm`` per sample as the guidance gradient's is."""
        with torch.enable_grad():
            x0 = x0.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(self.pose_negative_log_likelihood(x0).sum(), x0)
        return clip_gradient_norm(grad, max_grad_norm)[0]

    def steps_per_cycle(self, t_start: int = 50, stride: int = 5) -> int:
        """Gradient steps per cycle: the guided denoising steps of one pipeline cycle (``len(grid) - 1``)."""
        return len(self.pipeline.scheduler.refinement_timesteps(t_start, stride)) - 1

    @torch.no_grad()
    def __call__(
        self,
        image: ImageInput | Sequence[ImageInput] | None = None,
        human_mask: ImageInput | Sequence[ImageInput] | None = None,
        object_mask: ImageInput | Sequence[ImageInput] | None = None,
        object: ObjectTemplate | str | os.PathLike | None = None,
        bbox: Sequence | None = None,
        intrinsics: torch.Tensor | None = None,
        initial_params: HOIParams | None = None,
        keypoints: np.ndarray | torch.Tensor | None = None,
        contacts: Contacts | None = None,
        image_tokens: torch.Tensor | None = None,
        contact_estimator: Callable[[ReconstructionState], Contacts] | None = None,
        refresh_contacts: bool = True,
        add_contacts: bool | None = None,
        num_cycles: int = 10,
        t_start: int = 50,
        stride: int = 5,
        guidance_config: GuidanceConfig | dict[str, Any] | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
        object_root: str | os.PathLike | None = None,
        output_type: str = "pt",
        return_dict: bool = True,
        object_box: Sequence | None = None,
        person_box: Sequence | None = None,
        person_detector: PersonDetector | None = None,
    ) -> ScoreHOIPipelineOutput | tuple:
        """Refine by gradient descent; the arguments mean what they mean for ``ScoreHOIPipeline.__call__``
        (a photo without masks works the same way: the person detector and ``object_box`` make them).

        ``generator`` is accepted for a drop-in call and unused: the optimisation is deterministic.

        Returns:
            [`ScoreHOIPipelineOutput`] (``guidance_loss_history`` ``(num_cycles, B)``: the guidance loss after each
            cycle, before the contact refresh, without the pose prior, whose negative log-likelihood is the term
            ``"pose_prior"`` of ``guidance_term_history`` when its weight is > 0) or a tuple of its fields.
        """
        pipe = self.pipeline
        pipe.check_inputs(
            image, human_mask, object_mask, object, bbox, initial_params, keypoints, intrinsics, contacts,
            contact_estimator, num_cycles, t_start, stride, guidance_config, None, 0.0, generator, output_type, None,
            (),
        )
        if isinstance(guidance_config, Mapping):
            guidance_config = GuidanceConfig.from_dict(guidance_config)
        dtype = geometry_dtype(pipe.denoiser.dtype)
        template = load_object(object, object_root=object_root).to(device=pipe._execution_device, dtype=dtype)
        # The pipeline's own start: initial estimate, x0, image evidence, contact estimator and initial contacts.
        start = pipe.prepare_refinement(
            template, image, human_mask, object_mask, bbox, intrinsics, initial_params, keypoints, contacts,
            image_tokens, contact_estimator, guidance_config, dtype, object_box, person_box, person_detector,
        )
        x0, contacts, config = start.x0, start.contacts, start.config
        # The baseline's pose prior is its own, at the weight chosen for it on the validation slice (``settings``);
        # the guidance's ``pose_prior`` weight, the full method's choice, is left out, so the prior counts once.
        config = dataclasses.replace(config, pose_prior=0.0)
        add_contacts = config.add_contacts if add_contacts is None else add_contacts

        step_size, weight = self.settings(keypoints="keypoints_2d" in start.image_evidence)
        steps = self.steps_per_cycle(t_start, stride)
        contact_history: list[Contacts] = []
        loss_history: list[torch.Tensor] = []
        term_history: dict[str, list[torch.Tensor]] = {}
        for _cycle in range(num_cycles):
            contact_history.append(contacts)
            for _step in range(steps):
                gradient = pipe.guidance_x0_gradient(
                    x0, template, start.camera_translation, contacts, start.image_evidence, config, camera=start.camera
                )
                if weight > 0:
                    gradient = gradient + weight * self.pose_prior_gradient(x0, config.max_grad_norm)
                x0 = x0 - step_size * gradient
            geometry, total, terms = pipe.evaluate_cycle(x0, start, contacts, config)
            if weight > 0:
                terms = {**terms, "pose_prior": self.pose_negative_log_likelihood(x0)}
            body_points = geometry[1]
            extent = (body_points.amax(dim=1) - body_points.amin(dim=1)).amax(dim=1)  # (B,)
            diverged = ~(torch.isfinite(total) & torch.isfinite(x0).all(dim=1) & (extent <= MAX_BODY_EXTENT))
            if diverged.any():
                raise ValueError(
                    f"`step_size`={step_size:g} made gradient descent diverge for samples "
                    f"{diverged.nonzero().flatten().tolist()} (guidance loss NaN/Inf or a body over "
                    f"{MAX_BODY_EXTENT:g} m; pose prior weight {weight:g}); choose a smaller step or prior weight, "
                    "e.g. the defaults."
                )
            loss_history.append(total)
            for name, value in terms.items():
                term_history.setdefault(name, []).append(value)
            if refresh_contacts:
                contacts = start.refresh(contacts, geometry, add_contacts)

        output = pipe.assemble_output(x0, start, contacts, contact_history, loss_history, term_history, output_type)
        if not return_dict:
            return output.to_tuple()
        return output
