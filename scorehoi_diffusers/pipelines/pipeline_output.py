"""The output of :class:`ScoreHOIPipeline` and its numpy and trimesh forms (``output_type="np"`` / ``"mesh"``)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch
from diffusers.utils import BaseOutput

from ..camera_refinement import CameraRefinement
from ..contacts import Contacts
from ..guidance import GuidanceConfig
from ..objects import ObjectTemplate
from ..params import HOIParams

__all__ = ["ScoreHOIPipelineOutput", "output_to_meshes", "output_to_numpy"]


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
    contact_history: list[Any]
    guidance_loss_history: Any
    guidance_term_history: dict[str, Any]
    meshes: list[dict[str, Any]] | None = None


def _params_numpy(params: HOIParams) -> dict[str, np.ndarray]:
    return {field.name: getattr(params, field.name).cpu().numpy() for field in fields(params)}


def _contacts_numpy(contacts: Contacts) -> dict[str, np.ndarray]:
    return {"human": contacts.human.cpu().numpy(), "object": contacts.object.cpu().numpy(),
            "floor": contacts.floor.cpu().numpy()}


def output_to_numpy(output: ScoreHOIPipelineOutput) -> ScoreHOIPipelineOutput:
    """The same output with every tensor as a numpy array (params and contacts as dicts of arrays)."""
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


def output_to_meshes(output: ScoreHOIPipelineOutput) -> list[dict[str, Any]]:
    """One ``{"body": trimesh.Trimesh, "object": trimesh.Trimesh}`` per sample, in camera space."""
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


@dataclass
class RefinementStart:
    """Where refinement starts (``ScoreHOIPipeline.prepare_refinement``): the estimate, its ``x0 (B, 331)``, the
    image evidence and contacts, ``estimate(geometry) -> Contacts``, the contact refresh, the guidance ``config``
    (the call's, or the pipeline's default for the input), with keypoints the
    camera-translation refinement (``camera_translation`` follows it after every cycle), and the crop-normalised
    ``body_keypoints (B, 33, 3)`` for the denoiser (None without keypoints or pictures, or for a denoiser built
    without keypoint input)."""

    template: ObjectTemplate
    params: HOIParams
    x0: torch.Tensor
    camera_translation: torch.Tensor
    camera_intrinsics: Any
    image_tokens: torch.Tensor | None
    image_evidence: dict[str, torch.Tensor]
    estimate: Callable[[tuple], Contacts]
    contacts: Contacts
    config: GuidanceConfig
    camera: CameraRefinement | None = None
    body_keypoints: torch.Tensor | None = None

    @property
    def batch(self) -> int:
        return self.params.batch_size

    def refresh(self, contacts: Contacts, geometry: tuple, add_contacts: bool) -> Contacts:
        """The contacts after a cycle: re-estimated from its ``geometry``; unless ``add_contacts``, released only
        (:meth:`Contacts.released_by`: no label rises above its value in ``contacts``)."""
        refreshed = self.estimate(geometry)
        return refreshed if add_contacts else contacts.released_by(refreshed)
