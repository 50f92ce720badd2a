"""Contact labels and the estimators that refresh them between refinement cycles.

ScoreHOI re-estimates contacts from every new reconstruction and feeds them to the next cycle's guidance
(the paper's release computed them and threw them away). Any callable ``estimator(state) -> Contacts``
plugs in; :class:`ProximityContactEstimator` is the geometric default, a learned estimator (image features
at the projected points) comes with the regressor.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from .params import HOIParams

# Metres. A body vertex touches the object when it is within this signed distance of the object surface, an
# object keypoint touches the body when a body vertex is this close: the ground-truth contact rule of the
# synthetic data and the BEHAVE/InterCap loaders, the rule of the geometric estimator and of the metrics.
CONTACT_THRESHOLD = 0.05
# Metres. The object rests on the floor when its lowest point is within this height of the floor.
FLOOR_CONTACT_THRESHOLD = 0.02


@dataclass
class Contacts:
    """Soft or hard contact labels in ``[0, 1]``.

    Attributes:
        human: ``(B, S)`` per downsampled body vertex: touches the object.
        object: ``(B, M)`` per object keypoint: touches the body.
        floor: ``(B,)`` the object rests on the floor.
    """

    human: torch.Tensor
    object: torch.Tensor
    floor: torch.Tensor

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if not isinstance(value, torch.Tensor):
                raise TypeError(f"Contacts.{field.name} must be a torch.Tensor, got {type(value).__name__}.")
        batch = self.human.shape[0]
        if self.human.dim() != 2 or self.object.dim() != 2 or self.floor.shape != (batch,):
            raise ValueError(
                "Contacts must have shapes human (B, S), object (B, M), floor (B,); got "
                f"{tuple(self.human.shape)}, {tuple(self.object.shape)}, {tuple(self.floor.shape)}."
            )
        if self.object.shape[0] != batch:
            raise ValueError(f"Contacts.object has batch {self.object.shape[0]}, Contacts.human has {batch}.")

    def detach(self) -> Contacts:
        return Contacts(self.human.detach(), self.object.detach(), self.floor.detach())

    def to(self, device=None, dtype=None) -> Contacts:
        return Contacts(*(getattr(self, f.name).to(device=device, dtype=dtype) for f in fields(self)))

    def released_by(self, refreshed: Contacts) -> Contacts:
        """``refreshed`` with no label above this one's (elementwise minimum): a refresh may release a contact but
        not add one, whatever the contact decision threshold (a label under it stays under it). Shapes as
        ``self``; a NaN in either stays NaN.

        Why: a learned estimator reads the current geometry, so a body pulled towards the object makes it call
        more points in contact, which the next cycle pulls in turn; over ten cycles the body crept into contact
        around the true contacts (``ScoreHOIPipeline.__call__``'s ``add_contacts``).
        """
        return Contacts(*(torch.minimum(getattr(self, f.name), getattr(refreshed, f.name)) for f in fields(self)))


@dataclass
class ReconstructionState:
    """What a contact estimator sees of the current reconstruction (pelvis at the origin, camera axes).

    Attributes:
        params: the current :class:`HOIParams`.
        body_points: ``(B, S, 3)`` downsampled body vertices.
        object_points: ``(B, M, 3)`` posed object keypoints.
        body_object_sdf: ``(B, S)`` signed distance of each body point to the object surface.
        up_axis: ``(3,)`` unit vector pointing up.
        image_tokens: ``(B, N, D)`` image features, when a regressor provided them.
    """

    params: HOIParams
    body_points: torch.Tensor
    object_points: torch.Tensor
    body_object_sdf: torch.Tensor
    up_axis: torch.Tensor
    image_tokens: torch.Tensor | None = None


class ProximityContactEstimator:
    """Contacts read off the geometry of the current reconstruction.

    A body vertex is in contact when it is within ``threshold`` of the object surface, an object keypoint
    when it is within ``threshold`` of a body vertex (the ground-truth rule of the training data), and the object
    rests on the floor when its lowest keypoint is within ``threshold`` of the lowest body-or-object point.

    Args:
        threshold: contact distance in metres.
    """

    def __init__(self, threshold: float = CONTACT_THRESHOLD):
        if not threshold > 0:
            raise ValueError(f"`threshold` must be positive, got {threshold}.")
        self.threshold = threshold

    def __call__(self, state: ReconstructionState) -> Contacts:
        human = (state.body_object_sdf < self.threshold).to(state.body_points.dtype)
        object_distance = torch.cdist(state.object_points, state.body_points).amin(dim=-1)
        object_contact = (object_distance < self.threshold).to(state.body_points.dtype)
        up = state.up_axis.to(state.body_points)
        object_height = (state.object_points @ up).amin(dim=-1)
        floor_height = torch.minimum((state.body_points @ up).amin(dim=-1), object_height)
        floor = (object_height - floor_height < self.threshold).to(state.body_points.dtype)
        return Contacts(human=human, object=object_contact, floor=floor)
