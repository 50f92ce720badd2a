"""ScoreHOIPipeline: refine a human-object reconstruction with a score-guided diffusion prior.

Each refinement cycle inverts the current estimate with DDIM up to ``t_start`` and denoises it back to 0
with the guided DDIM step (contact, penetration, floor and image terms); contacts are re-estimated from
the new reconstruction after every cycle and used by the next one.
"""
from __future__ import annotations

import dataclasses
import json
import os
import warnings
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from diffusers import DiffusionPipeline
from diffusers.utils import BaseOutput

from ..body import BodyModel
from ..contacts import Contacts, ProximityContactEstimator, ReconstructionState
from ..guidance import GuidanceConfig, GuidanceInputs, clip_gradient_norm, guidance_loss, mask_distance_transform
from ..models.contact_estimator import ScoreHOIContactEstimator
from ..models.denoiser import ScoreHOIDenoiser
from ..models.regressor import ScoreHOIRegressor
from ..image_processor import HOIImageBatch, HOIImageProcessor, ImageInput
from ..objects import PRIMITIVE_NAMES, ObjectTemplate, load_object
from ..params import HOIParamCodec, HOIParams
from ..schedulers.scheduling_guided_ddim import GuidedDDIMScheduler

# The one-line module a saved folder carries so that stock `DiffusionPipeline.from_pretrained(...,
# trust_remote_code=True)` finds this class (DESIGN §10).
HUB_SHIM_MODULE = "pipeline"
HUB_SHIM_SOURCE = "from scorehoi_diffusers import ScoreHOIPipeline  # noqa: F401\n"


@dataclass
class ScoreHOIPipelineOutput(BaseOutput):
    """Output of :class:`ScoreHOIPipeline`.

    Attributes:
        params: the refined :class:`HOIParams` (``output_type="pt"`` or ``"mesh"``) or a dict of numpy
            arrays (``"np"``).
        initial_params: the estimate refinement started from, in the same form.
        body_vertices: ``(B, V, 3)`` body meshes in camera space.
        body_faces: ``(F, 3)`` body triangles.
        object_vertices: ``(B, Vo, 3)`` posed object meshes in camera space.
        object_faces: ``(Fo, 3)`` object triangles.
        intrinsics: ``(B, 3, 3)`` camera matrices of the input pictures (the meshes' camera), or ``None`` when
            refinement started from ``initial_params`` without ``intrinsics``.
        contacts: the contacts after the last cycle (:class:`Contacts`, or a dict of arrays for ``"np"``).
        contact_history: the contacts each cycle's guidance used, one entry per cycle.
        guidance_loss_history: ``(num_cycles, B)`` guidance loss of each cycle's result.
        guidance_term_history: per term name, ``(num_cycles, B)`` unweighted values.
        meshes: with ``output_type="mesh"``, one ``{"body": trimesh.Trimesh, "object": trimesh.Trimesh}``
            per sample; otherwise ``None``.
    """

    params: Any
    initial_params: Any
    body_vertices: Any
    body_faces: Any
    object_vertices: Any
    object_faces: Any
    intrinsics: Any
    contacts: Any
    contact_history: List[Any]
    guidance_loss_history: Any
    guidance_term_history: Dict[str, Any]
    meshes: Optional[List[Dict[str, Any]]] = None


class ScoreHOIPipeline(DiffusionPipeline):
    r"""Physically plausible human-object interaction refinement (ScoreHOI, ICCV 2025) as a diffusers pipeline.

    Args:
        denoiser ([`ScoreHOIDenoiser`]): the parameter-space diffusion prior (ε-prediction).
        scheduler ([`GuidedDDIMScheduler`]): DDIM with inversion and guided steps.
        body_model ([`BodyModel`]): SMPL-H (user files) or the licence-free stand-in body.
        regressor ([`ScoreHOIRegressor`], *optional*): image crop -> initial estimate and image tokens.
        contact_estimator ([`ScoreHOIContactEstimator`], *optional*): learned contacts from the image and the
            current reconstruction.
        betas_min, betas_max (`list[float]`, *optional*): statistics that normalise betas in ``x0``
            (defaults: -3 and 3 in every dimension).
        crop_size (`int`, defaults to 256): side of the square crop the regressor was trained on.
        guidance (`dict`, *optional*): the default `GuidanceConfig` fields of this pipeline (chosen for its
            weights on validation data); the paper release's preset when omitted.
    """

    model_cpu_offload_seq = "regressor->contact_estimator->denoiser"
    _optional_components = ["regressor", "contact_estimator"]
    _callback_tensor_inputs = ["latents", "human_contact", "object_contact", "floor_contact"]

    def __init__(
        self,
        denoiser: ScoreHOIDenoiser,
        scheduler: GuidedDDIMScheduler,
        body_model: BodyModel,
        regressor: Optional[ScoreHOIRegressor] = None,
        contact_estimator: Optional[ScoreHOIContactEstimator] = None,
        betas_min: Optional[Sequence[float]] = None,
        betas_max: Optional[Sequence[float]] = None,
        crop_size: int = 256,
        guidance: Optional[Dict[str, Any]] = None,
    ):
        super().__init__()
        self.register_modules(
            denoiser=denoiser,
            scheduler=scheduler,
            body_model=body_model,
            regressor=regressor,
            contact_estimator=contact_estimator,
        )
        default = HOIParamCodec.default()
        betas_min = list(map(float, betas_min)) if betas_min is not None else default.betas_min.tolist()
        betas_max = list(map(float, betas_max)) if betas_max is not None else default.betas_max.tolist()
        if guidance is not None:
            guidance = dataclasses.asdict(GuidanceConfig(**guidance))  # validated, JSON-ready
        self.register_to_config(betas_min=betas_min, betas_max=betas_max, crop_size=int(crop_size), guidance=guidance)
        self.codec = HOIParamCodec(betas_min, betas_max)
        self.image_processor = HOIImageProcessor(crop_size=int(crop_size))

    def _regress(self, pictures: HOIImageBatch, template: ObjectTemplate, need_params: bool) -> Dict[str, Any]:
        """Initial estimate, image tokens and a bound contact estimator from preprocessed pictures."""
        device, dtype = self._execution_device, self.regressor.dtype
        pixel_values = pictures.pixel_values.to(device=device, dtype=dtype)
        crop_intrinsics = pictures.crop_intrinsics.to(device=device, dtype=dtype)
        keypoints = template.keypoints.to(device=device, dtype=dtype).expand(pixel_values.shape[0], -1, -1)
        output = self.regressor(pixel_values, keypoints, crop_intrinsics)
        bound = None
        if self.contact_estimator is not None:
            bound = self.contact_estimator.bind(output.feature_map, crop_intrinsics, pictures.image_size)
        return {
            "params": self.codec.decode(output.x0, output.camera_translation) if need_params else None,
            "image_tokens": output.image_tokens,
            "contact_estimator": bound,
        }

    def default_guidance_config(self) -> GuidanceConfig:
        """The guidance this pipeline uses when a call gives none: its ``guidance`` config, else the release's."""
        stored = self.config.get("guidance")
        return GuidanceConfig(**stored) if stored else GuidanceConfig.release()

    # ------------------------------------------------------------------------------------------------------
    # Hub layout: a folder that also loads with stock DiffusionPipeline (trust_remote_code=True).

    def save_pretrained(self, save_directory: Union[str, os.PathLike], **kwargs) -> None:
        """Save components (safetensors + JSON) and the one-line ``pipeline.py`` custom-pipeline shim."""
        super().save_pretrained(save_directory, **kwargs)
        folder = Path(save_directory)
        (folder / f"{HUB_SHIM_MODULE}.py").write_text(HUB_SHIM_SOURCE)
        index_path = folder / "model_index.json"
        index = json.loads(index_path.read_text())
        index["_class_name"] = [HUB_SHIM_MODULE, type(self).__name__]
        index_path.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")

    @classmethod
    def load_config(cls, *args, **kwargs):
        """Read ``model_index.json``; loading through this class itself needs no custom-pipeline code.

        Saved folders name ``["pipeline", "ScoreHOIPipeline"]`` as their class so that stock
        ``DiffusionPipeline`` can find it; this class turns that back into its own name, so
        ``ScoreHOIPipeline.from_pretrained(folder)`` never executes the folder's ``pipeline.py``.
        """
        loaded = super().load_config(*args, **kwargs)
        config = loaded[0] if isinstance(loaded, tuple) else loaded
        if isinstance(config.get("_class_name"), list):
            config["_class_name"] = config["_class_name"][1]
        return loaded

    # ------------------------------------------------------------------------------------------------------
    # Geometry of one x0 batch.

    def _geometry(self, x0: torch.Tensor, camera_translation: torch.Tensor, template: ObjectTemplate):
        """Decode ``x0 (B, 331)`` and pose the downsampled body and the object keypoints (pelvis frame)."""
        params = self.codec.decode(x0, camera_translation)
        body_points, _ = self.body_model.skin_subset(params)
        object_points = template.pose(template.keypoints, params.object_rotation, params.object_translation)
        sdf = template.signed_distance_posed(body_points, params.object_rotation, params.object_translation)
        return params, body_points, object_points, sdf

    def _guidance_inputs(self, body_points, object_points, sdf, contacts: Contacts, camera_translation, image_evidence):
        return GuidanceInputs(
            body_points=body_points,
            object_points=object_points,
            body_object_sdf=sdf,
            human_contact=contacts.human,
            object_contact=contacts.object,
            floor_contact=contacts.floor,
            camera_translation=camera_translation,
            **image_evidence,
        )

    @staticmethod
    def _image_evidence(intrinsics, human_mask, object_mask, batch, device, dtype) -> Dict[str, torch.Tensor]:
        """Camera matrices ``(B, 3, 3)`` and mask distance maps ``(B, H, W)`` for the image guidance terms."""
        evidence = {}
        if intrinsics is not None:
            evidence["intrinsics"] = torch.as_tensor(intrinsics, device=device, dtype=dtype).expand(batch, 3, 3)
        for name, mask in (("human", human_mask), ("object", object_mask)):
            if mask is not None:
                mask = torch.as_tensor(np.asarray(mask) if not isinstance(mask, torch.Tensor) else mask)
                mask = mask.expand(batch, *mask.shape[-2:])
                evidence[f"{name}_distance_map"] = mask_distance_transform(mask, f"{name}_mask").to(device, dtype)
        return evidence

    # ------------------------------------------------------------------------------------------------------

    @torch.no_grad()
    def __call__(
        self,
        image: Optional[Union[ImageInput, Sequence[ImageInput]]] = None,
        human_mask: Optional[Union[ImageInput, Sequence[ImageInput]]] = None,
        object_mask: Optional[Union[ImageInput, Sequence[ImageInput]]] = None,
        object: Optional[Union[ObjectTemplate, str, os.PathLike]] = None,
        bbox: Optional[Sequence] = None,
        intrinsics: Optional[torch.Tensor] = None,
        initial_params: Optional[HOIParams] = None,
        contacts: Optional[Contacts] = None,
        image_tokens: Optional[torch.Tensor] = None,
        contact_estimator: Optional[Callable[[ReconstructionState], Contacts]] = None,
        refresh_contacts: bool = True,
        num_cycles: int = 10,
        t_start: int = 50,
        stride: int = 5,
        guidance_config: Optional[GuidanceConfig] = None,
        guidance_scale: Optional[float] = None,
        eta: float = 0.0,
        generator: Optional[Union[torch.Generator, List[torch.Generator]]] = None,
        object_root: Optional[Union[str, os.PathLike]] = None,
        output_type: str = "pt",
        return_dict: bool = True,
        callback_on_step_end: Optional[Callable[[Any, int, int, Dict], Dict]] = None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
    ) -> Union[ScoreHOIPipelineOutput, tuple]:
        r"""Reconstruct from pictures, or refine a given initial estimate.

        Give either ``image`` with ``human_mask`` and ``object_mask`` (the registered regressor makes the initial
        estimate, image tokens and contacts), or ``initial_params`` (any regressor's estimate).

        Args:
            image (PIL image, array, tensor, or a list of them): RGB picture(s), one per sample.
            human_mask, object_mask (same kinds): ``(H, W)`` masks of the person and of the object. With
                ``initial_params`` and ``intrinsics`` instead of ``image``, they feed the mask guidance term.
            object (`ObjectTemplate`, `str` or path): the object template, a shipped primitive name, a dataset
                object name (with ``object_root``) or a mesh file. Required.
            bbox (`list`, *optional*): ``x, y, w, h`` per picture around person and object; defaults to the
                box around both masks.
            intrinsics (`torch.Tensor`, *optional*): ``(3, 3)`` or ``(B, 3, 3)`` camera matrices of the
                pictures; default: focal 1.2 x the longer side, centred principal point.
            initial_params (`HOIParams`, *optional*): a starting estimate (batch B) instead of the regressor's.
            contacts (`Contacts`, *optional*): initial contacts; estimated from the initial estimate if omitted.
            image_tokens (`torch.Tensor`, *optional*): ``(B, N, D)`` image features, the denoiser's condition
                (taken from the regressor when ``image`` is given).
            contact_estimator (`callable`, *optional*): ``estimator(ReconstructionState) -> Contacts``, called
                after every cycle; defaults to the registered contact estimator bound to the image features,
                else :class:`ProximityContactEstimator`.
            refresh_contacts (`bool`, defaults to `True`): re-estimate contacts after each cycle (``False``
                keeps the initial contacts: the "frozen contacts" ablation).
            num_cycles (`int`, defaults to 10): refinement cycles N.
            t_start (`int`, defaults to 50): inversion depth.
            stride (`int`, defaults to 5): timestep stride of inversion and denoising.
            guidance_config (`GuidanceConfig`, *optional*): term weights; default: the pipeline's
                :meth:`default_guidance_config`.
            guidance_scale (`float`, *optional*): overrides ``guidance_config.scale``; 0 disables guidance.
            eta (`float`, defaults to 0): DDIM stochasticity of the denoising steps (0 is deterministic).
            generator (`torch.Generator`, *optional*): drives the noise when ``eta > 0``.
            object_root (path, *optional*): folder of user-supplied dataset object meshes.
            output_type (`str`, defaults to `"pt"`): ``"pt"``, ``"np"`` or ``"mesh"``.
            return_dict (`bool`, defaults to `True`): return a [`ScoreHOIPipelineOutput`] or a tuple.
            callback_on_step_end (`callable`, *optional*): ``fn(pipe, step_index, timestep, callback_kwargs)``
                called after every guided denoising step; may return a dict replacing ``latents``.
            callback_on_step_end_tensor_inputs (`list[str]`): tensors passed in ``callback_kwargs``, from
                ``latents``, ``human_contact``, ``object_contact``, ``floor_contact``.

        Returns:
            [`ScoreHOIPipelineOutput`] or a tuple of its fields.
        """
        if output_type not in ("pt", "np", "mesh"):
            raise ValueError(f"`output_type` must be 'pt', 'np' or 'mesh', got {output_type!r}.")
        if object is None:
            raise ValueError("`object` is required: an ObjectTemplate, a shipped primitive name "
                             f"{list(PRIMITIVE_NAMES)}, a dataset object name with `object_root`, or a mesh path.")
        if image is None and initial_params is None:
            raise ValueError("Give `image` with `human_mask` and `object_mask`, or an `initial_params` estimate.")
        if image is not None and self.regressor is None:
            raise ValueError(
                "This pipeline has no regressor, so it cannot start from pictures; pass `initial_params` "
                "(an estimate from any regressor) or load a pipeline folder that includes `regressor/`."
            )
        if initial_params is not None and not isinstance(initial_params, HOIParams):
            raise TypeError(f"`initial_params` must be HOIParams, got {type(initial_params).__name__}.")
        if not isinstance(num_cycles, int) or num_cycles < 0:
            raise ValueError(f"`num_cycles` must be an integer >= 0, got {num_cycles!r}.")
        unknown = set(callback_on_step_end_tensor_inputs) - set(self._callback_tensor_inputs)
        if unknown:
            raise ValueError(f"`callback_on_step_end_tensor_inputs` has unknown names {sorted(unknown)}; "
                             f"choose from {self._callback_tensor_inputs}.")
        config = guidance_config if guidance_config is not None else self.default_guidance_config()
        scale = config.scale if guidance_scale is None else float(guidance_scale)
        estimator = contact_estimator if contact_estimator is not None else ProximityContactEstimator()

        device, dtype = self._execution_device, self.denoiser.dtype
        template = load_object(object, object_root=object_root).to(device=device, dtype=dtype)
        if image is not None:
            pictures = self.image_processor.preprocess(image, human_mask, object_mask, bbox, intrinsics)
            estimate_from_image = self._regress(pictures, template, initial_params is None)
            if initial_params is None:
                initial_params = estimate_from_image["params"]
            if image_tokens is None:
                image_tokens = estimate_from_image["image_tokens"]
            if contact_estimator is None:
                contact_estimator = estimate_from_image["contact_estimator"]
            camera_intrinsics = pictures.intrinsics
            # The crop camera has the original camera's axes, so the image terms can work in the crop.
            intrinsics, human_mask, object_mask = (
                pictures.crop_intrinsics, pictures.human_mask, pictures.object_mask
            )
        else:
            camera_intrinsics = intrinsics
        params = initial_params.to(device=device, dtype=dtype)
        batch = params.batch_size
        camera_translation = params.camera_translation
        x0 = self.codec.encode(params)
        if not torch.isfinite(x0).all():
            bad = (~torch.isfinite(x0).all(dim=1)).nonzero().flatten().tolist()
            raise ValueError(f"`initial_params` holds NaN or Inf values in samples {bad}.")
        up_axis = torch.tensor(config.up_axis, device=device, dtype=dtype)
        up_axis = up_axis / up_axis.norm()
        image_evidence = self._image_evidence(intrinsics, human_mask, object_mask, batch, device, dtype)

        def estimate(geometry) -> Contacts:
            """Contacts from the ``_geometry`` of the current estimate."""
            return estimator(ReconstructionState(*geometry, up_axis, image_tokens)).detach()

        if contacts is None:
            contacts = estimate(self._geometry(x0, camera_translation, template))
        contacts = contacts.to(device=device, dtype=dtype)

        keypoints = template.keypoints.expand(batch, -1, -1)
        condition = self.denoiser.encode_condition(image_tokens=image_tokens, object_keypoints=keypoints)
        self.scheduler.set_refinement_timesteps(t_start, stride)
        grid = self.scheduler.refinement_timesteps(t_start, stride).tolist()

        def guided_gradient(x_t: torch.Tensor, noise: torch.Tensor, t: int) -> torch.Tensor:
            """∇_{x_t} L(x̂0(x_t)) with the predicted noise held constant."""
            with torch.enable_grad():
                x0_hat = self.scheduler.predict_original_sample(noise, t, x_t).detach().requires_grad_(True)
                _, body_points, object_points, sdf = self._geometry(x0_hat, camera_translation, template)
                inputs = self._guidance_inputs(body_points, object_points, sdf, contacts, camera_translation, image_evidence)
                loss, _ = guidance_loss(inputs, config)
                (grad_x0,) = torch.autograd.grad(loss.sum(), x0_hat)
            grad, non_finite = clip_gradient_norm(grad_x0, config.max_grad_norm)
            if non_finite.any():
                warnings.warn(
                    f"Guidance gradient was NaN/Inf for samples {non_finite.nonzero().flatten().tolist()} at "
                    f"t={t}; those samples take an unguided step.", RuntimeWarning, stacklevel=3
                )
            return self.scheduler.guidance_gradient_from_x0_gradient(grad, t)

        contact_history: List[Contacts] = []
        loss_history: List[torch.Tensor] = []
        term_history: Dict[str, List[torch.Tensor]] = {}
        steps = len(grid) - 1
        step_index = 0
        with self.progress_bar(total=num_cycles * 2 * steps) as progress:
            for _cycle in range(num_cycles):
                contact_history.append(contacts)
                latents = x0
                for t, t_next in zip(grid[:-1], grid[1:]):
                    noise = self.denoiser(latents, t, condition=condition).sample
                    latents = self.scheduler.invert_step(noise, t, latents, next_timestep=t_next).next_sample
                    progress.update()
                for t in reversed(grid[1:]):
                    noise = self.denoiser(latents, t, condition=condition).sample
                    gradient = guided_gradient(latents, noise, t) if scale > 0 else None
                    latents = self.scheduler.step(
                        noise, t, latents, eta=eta, generator=generator,
                        guidance_gradient=gradient, guidance_scale=scale,
                    ).prev_sample
                    if callback_on_step_end is not None:
                        named = {"latents": latents, "human_contact": contacts.human,
                                 "object_contact": contacts.object, "floor_contact": contacts.floor}
                        callback_kwargs = {k: named[k] for k in callback_on_step_end_tensor_inputs}
                        callback_outputs = callback_on_step_end(self, step_index, t, callback_kwargs)
                        if callback_outputs is not None and "latents" in callback_outputs:
                            latents = callback_outputs["latents"]
                    step_index += 1
                    progress.update()
                x0 = latents
                geometry = self._geometry(x0, camera_translation, template)
                _, body_points, object_points, sdf = geometry
                inputs = self._guidance_inputs(body_points, object_points, sdf, contacts, camera_translation, image_evidence)
                total, terms = guidance_loss(inputs, config)
                loss_history.append(total)
                for name, value in terms.items():
                    term_history.setdefault(name, []).append(value)
                if refresh_contacts:
                    contacts = estimate(geometry)

        final = self.codec.decode(x0, camera_translation)
        body = self.body_model(final, frame="camera")
        object_vertices = template.pose(template.vertices, final.object_rotation,
                                        final.object_translation + camera_translation)
        loss_tensor = torch.stack(loss_history) if loss_history else x0.new_zeros(0, batch)
        terms_tensor = {name: torch.stack(values) for name, values in term_history.items()}
        output = ScoreHOIPipelineOutput(
            params=final,
            initial_params=params,
            body_vertices=body.vertices,
            body_faces=self.body_model.faces,
            object_vertices=object_vertices,
            object_faces=template.faces,
            intrinsics=(
                torch.as_tensor(camera_intrinsics, dtype=dtype).expand(batch, 3, 3).to(device)
                if camera_intrinsics is not None else None
            ),
            contacts=contacts,
            contact_history=contact_history,
            guidance_loss_history=loss_tensor,
            guidance_term_history=terms_tensor,
        )
        if output_type == "mesh":
            output.meshes = _to_meshes(output)
        if output_type == "np":
            output = _to_numpy(output)
        self.maybe_free_model_hooks()
        if not return_dict:
            return output.to_tuple()
        return output


def _params_numpy(params: HOIParams) -> Dict[str, np.ndarray]:
    return {field.name: getattr(params, field.name).cpu().numpy() for field in fields(params)}


def _contacts_numpy(contacts: Contacts) -> Dict[str, np.ndarray]:
    return {"human": contacts.human.cpu().numpy(), "object": contacts.object.cpu().numpy(),
            "floor": contacts.floor.cpu().numpy()}


def _to_numpy(output: ScoreHOIPipelineOutput) -> ScoreHOIPipelineOutput:
    return ScoreHOIPipelineOutput(
        params=_params_numpy(output.params),
        initial_params=_params_numpy(output.initial_params),
        body_vertices=output.body_vertices.cpu().numpy(),
        body_faces=output.body_faces.cpu().numpy(),
        object_vertices=output.object_vertices.cpu().numpy(),
        object_faces=output.object_faces.cpu().numpy(),
        intrinsics=output.intrinsics.cpu().numpy() if output.intrinsics is not None else None,
        contacts=_contacts_numpy(output.contacts),
        contact_history=[_contacts_numpy(c) for c in output.contact_history],
        guidance_loss_history=output.guidance_loss_history.cpu().numpy(),
        guidance_term_history={k: v.cpu().numpy() for k, v in output.guidance_term_history.items()},
    )


def _to_meshes(output: ScoreHOIPipelineOutput) -> List[Dict[str, Any]]:
    import trimesh

    body_faces = output.body_faces.cpu().numpy()
    object_faces = output.object_faces.cpu().numpy()
    return [
        {
            "body": trimesh.Trimesh(body.cpu().numpy(), body_faces, process=False),
            "object": trimesh.Trimesh(obj.cpu().numpy(), object_faces, process=False),
        }
        for body, obj in zip(output.body_vertices, output.object_vertices)
    ]
