"""The guidance loss of an ``x0`` batch and its gradient: what every guided step of ``ScoreHOIPipeline`` computes.

At batch 1 one gradient is about 1.8k small ATen operations (decode, subset skinning, signed distances, the loss
and its backward), each costing microseconds whatever its size; that is most of a refinement's time on a CPU.
:meth:`GuidanceGradientMixin.compile_guidance` hands the loss to ``torch.compile``, which fuses the forward and the
backward into a few kernels, at the price of compiling once per input shape.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from diffusers.utils import logging

from ..body import blazepose_points
from ..camera_refinement import CameraRefinement
from ..contacts import Contacts
from ..guidance import GuidanceConfig, GuidanceInputs, clip_gradient_norm, guidance_loss
from ..objects import ObjectTemplate
from ..pose_prior import GaussianPosePrior

logger = logging.get_logger(__name__)


class GuidanceGradientMixin:
    """Geometry, guidance loss and guidance gradient of ``x0`` for a pipeline with ``codec``, ``body_model`` and
    ``scheduler``."""

    _compiled_guidance_objective: Callable | None = None
    _pose_prior: GaussianPosePrior | None = None

    def _geometry(self, x0: torch.Tensor, camera_translation: torch.Tensor, template: ObjectTemplate,
                  keypoints: bool = False, signed_distances: bool = True):
        """Decode ``x0 (B, 331)`` and pose the downsampled body and the object keypoints (pelvis frame), and look up
        the body points' signed distances to the object (``None`` without ``signed_distances``: the keypoint fit's
        image terms never read them); with ``keypoints``, also the body's ``(B, 33, 3)`` BlazePose points, as a
        fifth entry."""
        params = self.codec.decode(x0, camera_translation)
        skinned = self.body_model.skin_subset_landmarks(params) if keypoints else self.body_model.skin_subset(params)
        body_points = skinned[0]
        object_points = template.pose(template.keypoints, params.object_rotation, params.object_translation)
        sdf = None
        if signed_distances:
            sdf = template.signed_distance_posed(body_points, params.object_rotation, params.object_translation)
        if keypoints:
            return params, body_points, object_points, sdf, blazepose_points(*skinned[1:])
        return params, body_points, object_points, sdf

    def gaussian_pose_prior(self) -> GaussianPosePrior:
        """The shipped Gaussian pose prior, read from its file on first use (the ``pose_prior`` guidance term's, and
        the optimisation-only baseline's unless it is given another)."""
        if self._pose_prior is None:
            self._pose_prior = GaussianPosePrior.from_file()
        return self._pose_prior

    def pose_negative_log_likelihood(self, body_pose: torch.Tensor) -> torch.Tensor:
        """``(B,)`` negative log-likelihood of ``body_pose (B, 21, 3, 3)`` under the shipped Gaussian pose prior,
        for the ``pose_prior`` guidance term."""
        prior = self.gaussian_pose_prior()
        if prior.mean.device != body_pose.device:
            prior = self._pose_prior = prior.to(body_pose.device)
        return prior(body_pose)

    def _guidance_inputs(self, geometry, contacts: Contacts, camera_translation, image_evidence,
                         guidance_config: GuidanceConfig):
        params, body_points, object_points, sdf = geometry[:4]
        pose_nll = None
        if guidance_config.pose_prior > 0:
            pose_nll = self.pose_negative_log_likelihood(params.body_pose).to(body_points.dtype)
        return GuidanceInputs(
            pose_negative_log_likelihood=pose_nll,
            keypoints_3d=geometry[4] if len(geometry) > 4 else None,
            body_points=body_points,
            object_points=object_points,
            body_object_sdf=sdf,
            human_contact=contacts.human,
            object_contact=contacts.object,
            floor_contact=contacts.floor,
            camera_translation=camera_translation,
            **image_evidence,
        )

    def guidance_objective(
        self,
        x0: torch.Tensor,
        camera_translation: torch.Tensor,
        object: ObjectTemplate,
        contacts: Contacts,
        image_evidence: dict[str, torch.Tensor],
        guidance_config: GuidanceConfig,
    ) -> torch.Tensor:
        """The guidance loss ``(B,)`` of ``x0 (B, 331)``: :func:`guidance_loss` on its geometry (the function
        :meth:`compile_guidance` compiles)."""
        keypoints = "keypoints_2d" in image_evidence
        geometry = self._geometry(x0, camera_translation, object, keypoints)
        inputs = self._guidance_inputs(geometry, contacts, camera_translation, image_evidence, guidance_config)
        return guidance_loss(inputs, guidance_config)[0]

    def compile_guidance(self, **compile_kwargs) -> None:
        """Run the guidance loss and its gradient through ``torch.compile`` from now on.

        The loss of one guided step (decode, skinning, signed distances, every guidance term) becomes one graph,
        and its backward another, each fused into a few kernels. On a 2-core CPU, with the denoiser compiled too, a
        batch-1 pipeline call took 0.36-0.67x of the eager time (``benchmarks/bench_compile.py --latency``). The
        first call of each new input shape (batch size, object, keypoints or not) compiles, which takes one to two
        minutes on a CPU (inductor's cache on disk makes later processes faster), so it pays off in a process that
        refines many pictures, not in a one-photo command. Each batch size gets its own graph (``dynamic=False``
        unless given): graphs with a symbolic batch size ran slower here. The gradients match the eager ones to
        float32 rounding, not bit for bit, and repeated calls are deterministic. The denoiser compiles separately:
        ``pipe.denoiser = torch.compile(pipe.denoiser, dynamic=False)``.

        Args:
            **compile_kwargs: passed to ``torch.compile`` (e.g. ``mode``, ``backend``, ``fullgraph``, ``dynamic``).
        """
        compile_kwargs.setdefault("dynamic", False)
        # Read the pose prior's file now: a file read while the loss is being traced would break the graph.
        self.gaussian_pose_prior()
        self._compiled_guidance_objective = torch.compile(self.guidance_objective, **compile_kwargs)

    def guidance_gradient(
        self,
        latents: torch.Tensor,
        noise_pred: torch.Tensor,
        timestep: int,
        object: ObjectTemplate,
        camera_translation: torch.Tensor,
        contacts: Contacts,
        image_evidence: dict[str, torch.Tensor],
        guidance_config: GuidanceConfig,
        camera: CameraRefinement | None = None,
    ) -> torch.Tensor:
        """The guidance gradient ``∇_{x_t} L(x̂0(x_t))`` of one denoising step, with the predicted noise held constant.

        ``L`` is :func:`guidance_loss` on the geometry of the predicted clean sample ``x̂0``. Per sample, a
        non-finite gradient becomes zero (that sample takes an unguided step, and a warning is logged) and
        ``guidance_config.max_grad_norm`` bounds the norm.

        Args:
            latents (`torch.Tensor`): ``(B, 331)`` the noisy sample ``x_t``.
            noise_pred (`torch.Tensor`): ``(B, 331)`` the denoiser's ε at ``timestep``.
            timestep (`int`): the current timestep ``t``.
            object (`ObjectTemplate`): the object template.
            camera_translation (`torch.Tensor`): ``(B, 3)`` pelvis position in the camera.
            contacts (`Contacts`): the contacts the contact term pulls together.
            image_evidence (`dict`): camera matrices and mask distance maps (``GuidanceInputs`` fields).
            guidance_config (`GuidanceConfig`): term weights.
            camera (`CameraRefinement`, *optional*): replaces ``camera_translation`` and steps with its gradient.

        Returns:
            `torch.Tensor` of shape ``(B, 331)``, for ``scheduler.step(guidance_gradient=...)``.
        """
        x0_hat = self.scheduler.predict_original_sample(noise_pred, timestep, latents)
        grad = self.guidance_x0_gradient(
            x0_hat, object, camera_translation, contacts, image_evidence, guidance_config, f" at t={timestep}", camera
        )
        # x̂0 = (x_t − √(1 − ᾱ_t) ε) / √ᾱ_t has Jacobian 1 / √ᾱ_t in x_t when ε is held constant.
        return grad / self.scheduler.alphas_cumprod[timestep] ** 0.5

    def guidance_x0_gradient(
        self,
        x0: torch.Tensor,
        object: ObjectTemplate,
        camera_translation: torch.Tensor,
        contacts: Contacts,
        image_evidence: dict[str, torch.Tensor],
        guidance_config: GuidanceConfig,
        where: str = "",
        camera: CameraRefinement | None = None,
    ) -> torch.Tensor:
        """``∇_{x0} L (B, 331)`` of :func:`guidance_loss` on the geometry of ``x0``; per sample a non-finite gradient
        becomes zero (with a logged warning naming the samples and ``where``) and the norm is bounded by
        ``guidance_config.max_grad_norm``. With ``camera``, its translation replaces ``camera_translation`` and takes
        one step from the same pass's ``∇_t L``. The guided step and the optimisation-only baseline both use it."""
        with torch.enable_grad():
            x0 = x0.detach().requires_grad_(True)
            wrt = (x0,)
            if camera is not None:
                camera_translation = camera.translation.detach().requires_grad_(True)
                wrt = (x0, camera_translation)
            objective = self._compiled_guidance_objective or self.guidance_objective
            loss = objective(x0, camera_translation, object, contacts, image_evidence, guidance_config)
            grad_x0, *grad_camera = torch.autograd.grad(loss.sum(), wrt)
        if camera is not None:
            camera.step(grad_camera[0])
        grad, non_finite = clip_gradient_norm(grad_x0, guidance_config.max_grad_norm)
        if non_finite.any():
            logger.warning(
                f"Guidance gradient was NaN/Inf for samples {non_finite.nonzero().flatten().tolist()}{where}; "
                "those samples take an unguided step."
            )
        return grad
