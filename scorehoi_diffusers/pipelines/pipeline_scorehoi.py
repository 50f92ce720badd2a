"""ScoreHOIPipeline: refine a human-object reconstruction with a score-guided diffusion prior.

Each refinement cycle inverts the current estimate with DDIM up to ``t_start`` and denoises it back to 0
with the guided DDIM step (contact, penetration, floor and image terms); contacts are re-estimated from
the new reconstruction after every cycle and used by the next one.
"""
from __future__ import annotations

import dataclasses
import json
import numbers
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import DiffusionPipeline
from diffusers.utils import logging

from ..body import BodyModel
from ..camera_refinement import CameraRefinement
from ..contacts import Contacts, ProximityContactEstimator, ReconstructionState
from ..guidance import GuidanceConfig, guidance_loss
from ..image_evidence import check_keypoints, keypoint_evidence, mask_evidence
from ..image_processor import HOIImageBatch, HOIImageProcessor, ImageInput
from ..input_checks import check_box_layout, check_finite_number, is_int
from ..models.contact_estimator import BoundContactEstimator, ScoreHOIContactEstimator
from ..models.denoiser import ScoreHOIDenoiser
from ..models.regressor import ScoreHOIRegressor
from ..objects import PRIMITIVE_NAMES, ObjectTemplate, load_object
from ..params import HOIParamCodec, HOIParams
from ..person_detection import PersonDetector
from ..precision import geometry_dtype, upcast
from ..safetensors_only import check_safetensors_only, safetensors_kwargs
from ..schedulers.scheduling_guided_ddim import GuidedDDIMScheduler
from .ddim_inversion import check_inversion_iterations, cycle_inversion_iterations, inversion_offsets, invert
from .guidance_gradient import GuidanceGradientMixin
from .hub import PUSH_KWARGS, push_pipeline_to_hub, upload_pipeline_folder, write_hub_files
from .keypoint_fit import KeypointFit
from .keypoint_inputs import crop_body_keypoints
from .noise_prediction import NoisePrediction
from .object_gradient_steps import OBJECT_REFINEMENTS, ObjectGradientSteps
from .photo_inputs import resolve_photo_inputs
from .pipeline_output import RefinementStart, ScoreHOIPipelineOutput, output_to_meshes, output_to_numpy
from .step_callback import callback_latents

logger = logging.get_logger(__name__)

# The deepest inversion and the largest timestep stride `__call__` accepts. Beyond them the guided steps diverge
# (a body of 1e16 m, or NaN): with the shipped weights and 10 cycles, stride 5 broke from t_start 700, stride 10
# from 560, stride 25 from 175 and stride 50 from 100; the limits keep a margin below the first breaks.
MAX_T_START = 400
MAX_STRIDE = 10

NO_REGRESSOR_MESSAGE = (
    "This pipeline has no regressor, so it cannot start from pictures; pass `initial_params` (an estimate from any "
    "regressor) or load a pipeline folder that includes `regressor/`."
)


class ScoreHOIPipeline(GuidanceGradientMixin, DiffusionPipeline):
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
        keypoint_guidance (`dict`, *optional*): the default `GuidanceConfig` fields for a call with 2D keypoints
            (given or detected; chosen apart, since keypoints pin the body that the stronger physical terms would
            otherwise move); ``guidance`` when omitted.

    Precision: the networks run in their dtype (``from_pretrained(..., dtype=torch.float16)``); latents, geometry,
    guidance and outputs run in that dtype promoted to at least float32 (``precision.geometry_dtype``), so float16
    and bfloat16 give float32 meshes and float64 runs in float64 throughout.
    """

    model_cpu_offload_seq = "regressor->contact_estimator->denoiser"
    _optional_components = ["regressor", "contact_estimator"]
    _callback_tensor_inputs = ["latents", "human_contact", "object_contact", "floor_contact"]
    keypoint_fit = KeypointFit()  # with keypoints: the front/back check, then the fit (pipelines/keypoint_fit.py)

    def __init__(
        self,
        denoiser: ScoreHOIDenoiser,
        scheduler: GuidedDDIMScheduler,
        body_model: BodyModel,
        regressor: ScoreHOIRegressor | None = None,
        contact_estimator: ScoreHOIContactEstimator | None = None,
        betas_min: Sequence[float] | None = None,
        betas_max: Sequence[float] | None = None,
        crop_size: int = 256,
        guidance: dict[str, Any] | None = None,
        keypoint_guidance: dict[str, Any] | None = None,
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
        # Validated and JSON-ready; from a saved folder these are entries of its model_index.json.
        if guidance is not None:
            guidance = dataclasses.asdict(GuidanceConfig.from_dict(guidance, "`guidance` (model_index.json)"))
        if keypoint_guidance is not None:
            keypoint_guidance = dataclasses.asdict(
                GuidanceConfig.from_dict(keypoint_guidance, "`keypoint_guidance` (model_index.json)"))
        self.register_to_config(betas_min=betas_min, betas_max=betas_max, crop_size=int(crop_size), guidance=guidance,
                                keypoint_guidance=keypoint_guidance)
        self.codec = HOIParamCodec(betas_min, betas_max)
        self.image_processor = HOIImageProcessor(crop_size=int(crop_size))

    @torch.no_grad()
    def prepare_initial_estimate(
        self, pictures: HOIImageBatch, object: ObjectTemplate, body_keypoints: torch.Tensor | None = None
    ) -> tuple[HOIParams, torch.Tensor, BoundContactEstimator | None]:
        """The regressor's initial estimate, image tokens and image-bound contact estimator for preprocessed pictures.

        This is what ``pipeline(image=...)`` starts from; with ``num_cycles=0`` the pipeline returns this estimate.

        Args:
            pictures (`HOIImageBatch`): the output of ``pipeline.image_processor.preprocess`` (batch B).
            object (`ObjectTemplate`): the object template (its keypoints condition the regressor).
            body_keypoints (`torch.Tensor`, *optional*): ``(B, 33, 3)``, for a regressor that reads keypoints.

        Returns:
            ``(initial_params, image_tokens, contact_estimator)``: the estimate as :class:`HOIParams` (batch B),
            ``(B, N, D)`` image tokens for the denoiser, and the registered contact estimator bound to the
            pictures' features (``None`` when the pipeline has none).
        """
        if self.regressor is None:
            raise ValueError(NO_REGRESSOR_MESSAGE)
        device, dtype = self._execution_device, self.regressor.dtype
        pixel_values = pictures.pixel_values.to(device=device, dtype=dtype)
        crop_intrinsics = pictures.crop_intrinsics.to(device=device, dtype=dtype)
        keypoints = object.keypoints.to(device=device, dtype=dtype).expand(pixel_values.shape[0], -1, -1)
        output = self.regressor(pixel_values, keypoints, crop_intrinsics, body_keypoints=body_keypoints)
        bound = None
        if self._contact_estimator_fits_body():
            bound = self.contact_estimator.bind(output.feature_map, crop_intrinsics, pictures.image_size)
        initial_params = self.codec.decode(upcast(output.x0), upcast(output.camera_translation))
        return initial_params, output.image_tokens, bound

    def _contact_estimator_fits_body(self) -> bool:
        """Whether the registered contact estimator was built for this body model's downsampled vertices.

        A pipeline trained with one body (e.g. the stand-in) and loaded with another (e.g. the user's SMPL-H,
        whose downsampled subset has another size) cannot use its learned contacts; it falls back to proximity
        contacts read off the reconstruction instead of failing.
        """
        if self.contact_estimator is None:
            return False
        expected, actual = self.contact_estimator.config.num_body_points, self.body_model.num_downsampled
        if expected != actual:
            logger.warning(
                f"The contact estimator was trained for a body with {expected} downsampled vertices, but this "
                f"body model has {actual}; contacts come from proximity instead. Train a contact estimator for "
                "this body (training/train_regressor.py) to use learned contacts with it."
            )
            return False
        return True

    def default_guidance_config(self, keypoints: bool = False) -> GuidanceConfig:
        """The guidance this pipeline uses when a call gives none: with ``keypoints`` (2D keypoints given or
        detected) its ``keypoint_guidance`` config if it has one, else its ``guidance`` config, else the release's."""
        stored = (self.config.get("keypoint_guidance") if keypoints else None) or self.config.get("guidance")
        return GuidanceConfig(**stored) if stored else GuidanceConfig.release()

    # ------------------------------------------------------------------------------------------------------
    # Hub layout: a folder that also loads with stock DiffusionPipeline (trust_remote_code=True).

    def save_pretrained(self, save_directory: str | os.PathLike, push_to_hub: bool = False, **kwargs) -> None:
        """Save components (safetensors + JSON), the ``pipeline.py`` shim and the model card, then upload if asked
        (``push_to_hub=True``: to ``repo_id``, default the folder's name; see :func:`.hub.upload_pipeline_folder`)."""
        push = {name: kwargs.pop(name) for name in PUSH_KWARGS if name in kwargs}
        super().save_pretrained(save_directory, **kwargs)
        write_hub_files(save_directory, type(self).__name__, source=self.config.get("_name_or_path"))
        if push_to_hub:
            upload_pipeline_folder(save_directory, push.pop("repo_id", Path(save_directory).name), **push)

    def push_to_hub(self, repo_id: str, **kwargs) -> str:
        """Upload the pipeline as :meth:`save_pretrained` writes it, shim and model card included (arguments as
        :func:`.hub.push_pipeline_to_hub`)."""
        return push_pipeline_to_hub(self, repo_id, **kwargs)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs) -> ScoreHOIPipeline:
        """[`DiffusionPipeline.from_pretrained`] of safetensors weights only.

        A local component folder whose weights are only pickled files (``diffusion_pytorch_model.bin``, ``.pt``,
        ``.pkl``, ...) is refused before anything is read, and ``use_safetensors=True`` is passed on.
        """
        folder = Path(pretrained_model_name_or_path)
        index_path = folder / "model_index.json"
        if index_path.is_file():
            index = json.loads(index_path.read_text())
            for name, value in sorted(index.items()):
                # Components are `[module, class]` pairs; the other entries are the pipeline's own config.
                if isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value):
                    check_safetensors_only(folder / name, name)
        return super().from_pretrained(pretrained_model_name_or_path, **safetensors_kwargs(kwargs))

    @classmethod
    def load_config(cls, *args, **kwargs):
        """Read ``model_index.json``; loading through this class itself needs no custom-pipeline code.

        Saved folders name ``["pipeline", "ScoreHOIPipeline"]`` as their class so that stock
        ``DiffusionPipeline`` can find it; this class turns that back into its own name, so
        ``ScoreHOIPipeline.from_pretrained(folder)`` never executes the folder's ``pipeline.py``. A folder of
        another pipeline class is refused.
        """
        loaded = super().load_config(*args, **kwargs)
        config = loaded[0] if isinstance(loaded, tuple) else loaded
        if isinstance(config.get("_class_name"), list):
            config["_class_name"] = config["_class_name"][1]
        known = {klass.__name__ for klass in cls.__mro__ if issubclass(klass, ScoreHOIPipeline)}
        if config.get("_class_name") not in known:
            raise ValueError(
                f"`_class_name` in model_index.json is {config.get('_class_name')!r}, not {cls.__name__!r}: the "
                "folder holds another pipeline; load it with that pipeline's class."
            )
        return loaded

    def check_inputs(
        self, image, human_mask, object_mask, object, bbox, initial_params, keypoints, intrinsics, contacts,
        contact_estimator, num_cycles, t_start, stride, guidance_config, guidance_scale, eta, generator, output_type,
        callback_on_step_end, callback_on_step_end_tensor_inputs, inversion_iterations=None, condition_scale=1.0,
        object_refinement="prior",
    ) -> None:
        """Raise a one-line ``ValueError``/``TypeError`` naming the first bad argument of :meth:`__call__`."""
        if output_type not in ("pt", "np", "mesh"):
            raise ValueError(f"`output_type` must be 'pt', 'np' or 'mesh', got {output_type!r}.")
        if object is None:
            raise ValueError("`object` is required: an ObjectTemplate, a shipped primitive name "
                             f"{list(PRIMITIVE_NAMES)}, a dataset object name with `object_root`, or a mesh path.")
        if image is None and initial_params is None:
            raise ValueError("Give `image` (with `human_mask` and `object_mask`, or `object_box`), or an "
                             "`initial_params` estimate.")
        if isinstance(image, (list, tuple)) and len(image) == 0:
            raise ValueError("`image` is an empty list; give at least one picture.")
        if image is not None and self.regressor is None:
            raise ValueError(NO_REGRESSOR_MESSAGE)
        if image is None and bbox is not None:
            raise ValueError("`bbox` only applies to `image`; drop it when refining `initial_params`.")
        if bbox is not None:
            check_box_layout(bbox, "bbox")
        if initial_params is not None and not isinstance(initial_params, HOIParams):
            raise TypeError(f"`initial_params` must be HOIParams, got {type(initial_params).__name__}.")
        if keypoints is not None:
            check_keypoints(keypoints)
            if image is None and intrinsics is None:
                raise ValueError("`keypoints` are pixels of a picture: give `image` or the pictures' `intrinsics`.")
        if contacts is not None and not isinstance(contacts, Contacts):
            raise TypeError(f"`contacts` must be Contacts, got {type(contacts).__name__}.")
        if contact_estimator is not None and not callable(contact_estimator):
            raise TypeError("`contact_estimator` must be a callable `estimator(ReconstructionState) -> Contacts`, "
                            f"got {type(contact_estimator).__name__}.")
        if not is_int(num_cycles) or num_cycles < 0:
            raise ValueError(f"`num_cycles` must be an integer >= 0, got {num_cycles!r}.")
        num_train_timesteps = self.scheduler.config.num_train_timesteps
        if not is_int(stride) or not 1 <= stride <= MAX_STRIDE or num_train_timesteps % stride != 0:
            raise ValueError(
                f"`stride` must be an integer in [1, {MAX_STRIDE}] dividing {num_train_timesteps} (the scheduler's "
                f"training steps), e.g. 5 or 10 (larger guided steps diverge); got {stride!r}."
            )
        if not is_int(t_start) or not stride <= t_start <= MAX_T_START or t_start % stride != 0:
            raise ValueError(
                f"`t_start` must be a multiple of `stride`={stride} in [{stride}, {MAX_T_START}] (deeper inversion "
                f"makes the guided steps diverge), got {t_start!r}."
            )
        if guidance_config is not None and not isinstance(guidance_config, (GuidanceConfig, Mapping)):
            raise TypeError(f"`guidance_config` must be a GuidanceConfig or a dict of its fields, "
                            f"got {type(guidance_config).__name__}.")
        if isinstance(guidance_config, Mapping):
            GuidanceConfig.from_dict(guidance_config)
        if guidance_scale is not None:
            check_finite_number(guidance_scale, "`guidance_scale` (0 turns guidance off)", True)
        if inversion_iterations is not None:
            check_inversion_iterations(inversion_iterations)
        check_finite_number(condition_scale, "`condition_scale` (classifier-free guidance weight)", True)
        if object_refinement not in OBJECT_REFINEMENTS:
            raise ValueError(f"`object_refinement` must be one of {list(OBJECT_REFINEMENTS)}, "
                             f"got {object_refinement!r}.")
        if not isinstance(eta, numbers.Real) or not 0 <= eta <= 1:
            raise ValueError(f"`eta` must be a number in [0, 1] (0: deterministic DDIM, 1: DDPM-like), got {eta!r}.")
        generators = generator if isinstance(generator, list) else [generator]
        if generator is not None and not all(isinstance(g, torch.Generator) for g in generators):
            raise TypeError(f"`generator` must be a torch.Generator (e.g. torch.Generator().manual_seed(42)) or a "
                            f"list of them, got {type(generator).__name__}.")
        if callback_on_step_end is not None and not callable(callback_on_step_end):
            raise TypeError(f"`callback_on_step_end` must be callable, got {type(callback_on_step_end).__name__}.")
        unknown = set(callback_on_step_end_tensor_inputs) - set(self._callback_tensor_inputs)
        if unknown:
            raise ValueError(f"`callback_on_step_end_tensor_inputs` has unknown names {sorted(unknown)}; "
                             f"choose from {self._callback_tensor_inputs}.")

    def prepare_refinement(
        self,
        template: ObjectTemplate,
        image,
        human_mask,
        object_mask,
        bbox,
        intrinsics,
        initial_params: HOIParams | None,
        keypoints,
        contacts: Contacts | None,
        image_tokens: torch.Tensor | None,
        contact_estimator: Callable[[ReconstructionState], Contacts] | None,
        guidance_config: GuidanceConfig | None,
        dtype: torch.dtype,
        object_box: Sequence | None = None,
        person_box: Sequence | None = None,
        person_detector: PersonDetector | None = None,
    ) -> RefinementStart:
        """Steps 2–4 of ``__call__`` (arguments as there, already checked): the masks left out, made from the photo
        (with the detector's keypoints unless given), the initial estimate (from the pictures unless given; with
        keypoints, turned to the facing they agree with and fitted to them), its x0, the image evidence, the camera
        refinement and the models' crop keypoints (with keypoints), the contact estimator and the initial contacts,
        and the guidance: ``guidance_config``, or the default for the input once it is known whether it has keypoints
        (:meth:`default_guidance_config`)."""
        photo = resolve_photo_inputs(image, human_mask, object_mask, object_box, person_box, person_detector)
        human_mask, object_mask = photo.human_mask, photo.object_mask
        keypoints = photo.keypoints if keypoints is None else keypoints
        config = guidance_config
        if config is None:
            config = self.default_guidance_config(keypoints=keypoints is not None)
        device, body_keypoints = self._execution_device, None
        if image is not None:
            pictures = self.image_processor.preprocess(image, human_mask, object_mask, bbox, intrinsics)
            body_keypoints = crop_body_keypoints(keypoints, pictures, self.denoiser)
            regressed_params, regressed_tokens, bound_estimator = self.prepare_initial_estimate(
                pictures, template, crop_body_keypoints(keypoints, pictures, self.regressor))
            initial_params = regressed_params if initial_params is None else initial_params
            image_tokens = regressed_tokens if image_tokens is None else image_tokens
            contact_estimator = bound_estimator if contact_estimator is None else contact_estimator
            camera_intrinsics = pictures.intrinsics
            # The crop camera has the original camera's axes, so the image terms can work in the crop.
            intrinsics, human_mask, object_mask = (
                pictures.crop_intrinsics, pictures.human_mask, pictures.object_mask
            )
        else:
            camera_intrinsics = intrinsics
        estimator = contact_estimator if contact_estimator is not None else ProximityContactEstimator()

        params = initial_params.to(device=device, dtype=dtype)
        batch = params.batch_size
        image_evidence = mask_evidence(intrinsics, human_mask, object_mask, batch, device, dtype)
        camera = None
        if keypoints is not None and config.keypoints_2d > 0:
            image_evidence |= keypoint_evidence(keypoints, camera_intrinsics, intrinsics, batch, device, dtype)
            params = self.keypoint_fit(self, params, template, image_evidence, config)
            if config.camera_step_size > 0:
                camera = CameraRefinement(params.camera_translation, config.camera_step_size)
        camera_translation = params.camera_translation
        x0 = self.codec.encode(params)
        if not torch.isfinite(x0).all():
            bad = (~torch.isfinite(x0).all(dim=1)).nonzero().flatten().tolist()
            raise ValueError(f"`initial_params` holds NaN or Inf values in samples {bad}.")

        up_axis = torch.tensor(config.up_axis, device=device, dtype=dtype)
        up_axis = up_axis / up_axis.norm()

        def estimate(geometry) -> Contacts:
            """Contacts from the ``_geometry`` of the current estimate."""
            return estimator(ReconstructionState(*geometry[:4], up_axis, image_tokens)).detach()

        if contacts is None:
            contacts = estimate(self._geometry(x0, camera_translation, template))
        contacts = contacts.to(device=device, dtype=dtype)
        return RefinementStart(template, params, x0, camera_translation, camera_intrinsics, image_tokens,
                               image_evidence, estimate, contacts, config, camera, body_keypoints)

    def evaluate_cycle(
        self, x0: torch.Tensor, start: RefinementStart, contacts: Contacts, config: GuidanceConfig
    ) -> tuple[tuple, torch.Tensor, dict[str, torch.Tensor]]:
        """The geometry of a cycle's result and its guidance loss ``(B,)`` and unweighted terms (the camera translation
        refined so far, with keypoints)."""
        if start.camera is not None:
            start.camera_translation = start.camera.translation
        keypoints = "keypoints_2d" in start.image_evidence
        geometry = self._geometry(x0, start.camera_translation, start.template, keypoints)
        inputs = self._guidance_inputs(geometry, contacts, start.camera_translation, start.image_evidence, config)
        total, terms = guidance_loss(inputs, config)
        return geometry, total, terms

    def assemble_output(
        self, x0: torch.Tensor, start: RefinementStart, contacts: Contacts, contact_history: list[Contacts],
        loss_history: list[torch.Tensor], term_history: dict[str, list[torch.Tensor]], output_type: str,
    ) -> ScoreHOIPipelineOutput:
        """Step 7 of ``__call__``: decode ``x0``, pose the meshes in the camera and convert to ``output_type``."""
        template, camera_translation, batch = start.template, start.camera_translation, start.batch
        final = self.codec.decode(x0, camera_translation)
        body = self.body_model(final, frame="camera")
        object_vertices = template.pose(template.vertices, final.object_rotation,
                                        final.object_translation + camera_translation)
        loss_tensor = torch.stack(loss_history) if loss_history else x0.new_zeros(0, batch)
        terms_tensor = {name: torch.stack(values) for name, values in term_history.items()}
        camera_intrinsics = start.camera_intrinsics
        output = ScoreHOIPipelineOutput(
            params=final,
            initial_params=start.params,
            body_vertices=body.vertices,
            body_faces=self.body_model.faces,
            object_vertices=object_vertices,
            object_faces=template.faces,
            intrinsics=(
                torch.as_tensor(camera_intrinsics, dtype=x0.dtype).expand(batch, 3, 3).to(x0.device)
                if camera_intrinsics is not None else None
            ),
            contacts=contacts,
            contact_history=contact_history,
            guidance_loss_history=loss_tensor,
            guidance_term_history=terms_tensor,
        )
        if output_type == "mesh":
            output.meshes = output_to_meshes(output)
        if output_type == "np":
            output = output_to_numpy(output)
        return output

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
        guidance_scale: float | None = None,
        eta: float = 0.0,
        generator: torch.Generator | list[torch.Generator] | None = None,
        object_root: str | os.PathLike | None = None,
        output_type: str = "pt",
        return_dict: bool = True,
        callback_on_step_end: Callable[[Any, int, int, dict], dict] | None = None,
        callback_on_step_end_tensor_inputs: Sequence[str] = ("latents",),
        object_box: Sequence | None = None,
        person_box: Sequence | None = None,
        person_detector: PersonDetector | None = None,
        inversion_iterations: int | Sequence[int] | None = None,
        condition_scale: float = 1.0,
        object_refinement: str = "prior",
    ) -> ScoreHOIPipelineOutput | tuple:
        r"""Reconstruct from pictures, or refine a given initial estimate.

        Give either ``image`` (the registered regressor makes the initial estimate, image tokens and contacts) with
        ``human_mask`` and ``object_mask`` or, for the masks left out, ``object_box`` (the person mask comes from
        the person detector, the object mask from the box by GrabCut), or ``initial_params`` (any regressor's
        estimate).

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
            keypoints (array or tensor, *optional*): ``(33, 3)`` or ``(B, 33, 3)`` BlazePose landmarks ``(u, v,
                visibility)`` in the pictures' pixels, for the keypoint term, the camera-translation refinement, a
                front/back check of the initial estimate and models built with ``body_keypoints=True``; with
                ``initial_params``, give ``intrinsics`` too.
            contacts (`Contacts`, *optional*): initial contacts; estimated from the initial estimate if omitted.
            image_tokens (`torch.Tensor`, *optional*): ``(B, N, D)`` image features, the denoiser's condition
                (taken from the regressor when ``image`` is given).
            contact_estimator (`callable`, *optional*): ``estimator(ReconstructionState) -> Contacts``, called
                on the initial estimate (when ``contacts`` is not given) and after every cycle; defaults to the
                registered contact estimator bound to the pictures' features when ``image`` is given, else
                :class:`ProximityContactEstimator`.
            refresh_contacts (`bool`, defaults to `True`): re-estimate contacts after each cycle (``False``
                keeps the initial contacts: the "frozen contacts" ablation).
            add_contacts (`bool`, *optional*): let a refresh raise a label (add a contact). ``False`` keeps each
                label at most at its previous value, so a refresh can only release contacts
                ([`Contacts.released_by`]); default: the guidance config's ``add_contacts``.
            num_cycles (`int`, defaults to 10): refinement cycles N (0 returns the initial estimate).
            t_start (`int`, defaults to 50): inversion depth, a multiple of ``stride`` up to
                ``MAX_T_START`` (400; deeper inversion diverges).
            stride (`int`, defaults to 5): timestep stride of inversion and denoising, up to ``MAX_STRIDE`` (10)
                and dividing the scheduler's training steps (1000).
            guidance_config (`GuidanceConfig` or `dict`, *optional*): term weights (a dict is read as
                ``GuidanceConfig(**dict)``); default: the pipeline's :meth:`default_guidance_config` for the input,
                which differs with keypoints (given or detected) and without. Its ``inversion_iterations`` and
                ``direct_inversion`` choose how each cycle inverts (`ddim_inversion`).
            guidance_scale (`float`, *optional*): overrides ``guidance_config.scale``; finite and >= 0, 0
                disables guidance.
            eta (`float`, defaults to 0): DDIM stochasticity of the denoising steps, in [0, 1] (0 is
                deterministic).
            generator (`torch.Generator` or a list of one per sample, *optional*): drives the noise when
                ``eta > 0``.
            object_root (path, *optional*): folder of user-supplied dataset object meshes.
            output_type (`str`, defaults to `"pt"`): ``"pt"``, ``"np"`` or ``"mesh"``.
            return_dict (`bool`, defaults to `True`): return a [`ScoreHOIPipelineOutput`] or a tuple.
            callback_on_step_end (`callable`, *optional*): ``fn(pipe, step_index, timestep, callback_kwargs)``
                called after every guided denoising step; may return a dict replacing ``latents`` (same shape;
                cast back to the pipeline's dtype).
            callback_on_step_end_tensor_inputs (`list[str]`): tensors passed in ``callback_kwargs``, from
                ``latents``, ``human_contact``, ``object_contact``, ``floor_contact``.
            object_box, person_box (`list`, *optional*): ``x, y, w, h`` (one per picture) around the object, cut
                into ``object_mask`` when that is not given, and around the person the detector should take
                (needed when a picture shows several people and ``object_box`` touches more than one).
            person_detector ([`PersonDetector`], *optional*): finds the person where ``human_mask`` is not given;
                default: the bundled mediapipe detector (``person_detection.default_person_detector``).
            inversion_iterations (`int` or `list[int]`, *optional*): fixed-point iterations per DDIM inversion step
                (one denoiser pass each); k > 0 makes inversion the exact inverse of unguided denoising
                (`ddim_inversion.invert`). A list gives one per cycle, its last entry repeated for later cycles
                (``[0, 0, 1]``: plain inversion in the first two cycles, exact after them). Default: the guidance
                config's ``inversion_iterations``.
            condition_scale (`float`, defaults to 1): classifier-free guidance weight w on the denoiser's condition,
                ``ε_null + w (ε − ε_null)``; not 1 costs a second pass per step (`noise_prediction.NoisePrediction`).
            object_refinement (`str`, defaults to `"prior"`): ``"prior"`` denoises the object's pose with the body
                (the paper's method); ``"gradient"`` takes it out of the diffusion and refines it by the optimisation
                baseline's gradient steps on the same guidance loss, in the same steps (`object_gradient_steps`).

        Returns:
            [`ScoreHOIPipelineOutput`] or a tuple of its fields.
        """
        # 1. Check inputs
        self.check_inputs(
            image, human_mask, object_mask, object, bbox, initial_params, keypoints, intrinsics, contacts,
            contact_estimator, num_cycles, t_start, stride, guidance_config, guidance_scale, eta, generator,
            output_type, callback_on_step_end, callback_on_step_end_tensor_inputs, inversion_iterations,
            condition_scale, object_refinement,
        )
        if isinstance(guidance_config, Mapping):
            guidance_config = GuidanceConfig.from_dict(guidance_config)
        # The denoiser runs in its own dtype; latents, geometry and guidance in at least float32.
        device, model_dtype = self._execution_device, self.denoiser.dtype
        dtype = geometry_dtype(model_dtype)
        template = load_object(object, object_root=object_root).to(device=device, dtype=dtype)

        # 2.-4. Initial estimate, x0, image evidence and initial contacts (shared with the optimisation baseline)
        start = self.prepare_refinement(
            template, image, human_mask, object_mask, bbox, intrinsics, initial_params, keypoints, contacts,
            image_tokens, contact_estimator, guidance_config, dtype, object_box, person_box, person_detector,
        )
        batch, camera_translation, x0, contacts = start.batch, start.camera_translation, start.x0, start.contacts
        config = start.config
        scale = config.scale if guidance_scale is None else float(guidance_scale)
        add_contacts = config.add_contacts if add_contacts is None else add_contacts
        if inversion_iterations is None:
            inversion_iterations = config.inversion_iterations
        if isinstance(generator, list) and len(generator) != batch:
            raise ValueError(f"`generator` is a list of {len(generator)} generators for {batch} samples; "
                             "give one per sample or a single torch.Generator.")
        image_tokens, image_evidence = start.image_tokens, start.image_evidence

        # 5. Denoiser condition and timesteps
        predict_noise = NoisePrediction.from_inputs(
            self.denoiser, image_tokens, template.keypoints.expand(batch, -1, -1), start.body_keypoints,
            condition_scale)
        self.scheduler.set_refinement_timesteps(t_start, stride)
        grid = self.scheduler.refinement_timesteps(t_start, stride).tolist()
        object_step_size = None
        if object_refinement == "gradient":
            # The optimisation baseline's step for this input (imported here: that module imports the pipelines).
            from ..optimization_baseline import default_step_size

            object_step_size = default_step_size("keypoints_2d" in image_evidence)

        # 6. Refinement cycles: DDIM inversion to t_start, guided denoising back to 0, contact refresh
        contact_history: list[Contacts] = []
        loss_history: list[torch.Tensor] = []
        term_history: dict[str, list[torch.Tensor]] = {}
        steps = len(grid) - 1
        step_index = 0
        with self.progress_bar(total=num_cycles * 2 * steps) as progress:
            for cycle in range(num_cycles):
                contact_history.append(contacts)
                object_steps = None if object_step_size is None else ObjectGradientSteps(self, x0, object_step_size)
                guide = self if object_steps is None else object_steps
                iterations = cycle_inversion_iterations(inversion_iterations, cycle)
                offsets, top_noise = {}, None
                if config.direct_inversion:
                    path = invert(predict_noise, self.scheduler, x0, grid, iterations, progress.update,
                                  return_path=True)
                    latents, top_noise = path.samples[-1], path.noise[-1]
                    offsets = inversion_offsets(self.scheduler, path)
                else:
                    latents = invert(predict_noise, self.scheduler, x0, grid, iterations, progress.update)
                for t, t_prev in zip(reversed(grid[1:]), reversed(grid[:-1])):
                    # The path's top noise was read on these very latents: no second denoiser pass for it.
                    noise = top_noise if t == grid[-1] and top_noise is not None else predict_noise(latents, t)
                    gradient = None
                    if scale > 0:
                        gradient = guide.guidance_gradient(
                            latents, noise, t, template, camera_translation, contacts, image_evidence, config,
                            start.camera,
                        )
                    latents = self.scheduler.step(
                        noise, t, latents, eta=eta, generator=generator,
                        guidance_gradient=gradient, guidance_scale=scale,
                    ).prev_sample
                    if t in offsets:
                        # Before the object's replacement and the callback: the offset belongs to the DDIM step
                        # (the unguided step from the path lands on the path), not to what edits its result.
                        latents = latents + offsets[t]
                    if object_steps is not None:
                        latents = object_steps.replace(latents, noise, t_prev)
                    if callback_on_step_end is not None:
                        named = {"latents": latents, "human_contact": contacts.human,
                                 "object_contact": contacts.object, "floor_contact": contacts.floor}
                        callback_kwargs = {k: named[k] for k in callback_on_step_end_tensor_inputs}
                        callback_outputs = callback_on_step_end(self, step_index, t, callback_kwargs)
                        if callback_outputs is not None and "latents" in callback_outputs:
                            latents = callback_latents(callback_outputs["latents"], latents)
                    step_index += 1
                    progress.update()
                x0 = latents
                geometry, total, terms = self.evaluate_cycle(x0, start, contacts, config)
                loss_history.append(total)
                for name, value in terms.items():
                    term_history.setdefault(name, []).append(value)
                if refresh_contacts:
                    contacts = start.refresh(contacts, geometry, add_contacts)

        # 7. Decode the meshes and assemble the output
        output = self.assemble_output(x0, start, contacts, contact_history, loss_history, term_history, output_type)
        self.maybe_free_model_hooks()
        if not return_dict:
            return output.to_tuple()
        return output
